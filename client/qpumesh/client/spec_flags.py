"""The job spec of ``qpumesh train``: one flag per ``JobSpec`` field, and YAML spec files.

The flags come from the fields of ``qpumesh.wire.job_spec.JobSpec`` (their help text,
metavar and choices are the fields' metadata), so a field added there is a flag here.
``--spec FILE.yaml`` gives a mapping of fields; flags given on the command line win.

A user series is read here, on the client's machine, and sent with the job:
``--csv FILE`` (or ``csv: FILE`` in the YAML file, relative to it) sets the task to
"csv" and fills ``series`` with the file's ``--csv-column`` (default: the last
column). ``--server-csv PATH`` instead names a file under the coordinator's
``--data-root``, which the coordinator reads.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qpumesh.client.cli_support import UsageError
from qpumesh.client.custom_circuits import load_ansatz_circuit
from qpumesh.wire.job_spec import FIELDS, JobSpec, flag_of
from qpumesh.wire.series import SeriesError, read_csv_series


def add_spec_flags(group: argparse._ActionsContainer) -> None:
    """Add ``--spec FILE.yaml`` and one flag per ``JobSpec`` field (unset flags parse as None)."""
    group.add_argument("--spec", type=Path, metavar="FILE.yaml", help="YAML mapping of JobSpec fields")
    group.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="train on a column of this CSV file (read here and sent with the job; sets --task csv)",
    )
    for field in dataclasses.fields(JobSpec):
        if field.name not in FIELDS:
            continue
        kind = _partitions if field.name == "partitions" else type(field.default)
        group.add_argument(
            flag_of(field),
            dest=field.name,
            type=kind,
            choices=field.metadata["choices"] or None,
            metavar=field.metadata["metavar"] or None,
            help=field.metadata["help"] or None,
        )


def _partitions(value: str) -> int:
    if value == "auto":
        return 0
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {value!r}") from None


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a YAML job spec: a mapping of ``JobSpec`` fields.

    ``csv: FILE`` (relative to the YAML file's directory) is read here into ``series``.

    Raises:
        UsageError: the file is missing, not YAML, or not a mapping.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read spec file {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"spec file {path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise UsageError(
            f"spec file {path} must hold a mapping of job spec fields, not {type(data).__name__}"
        )
    values = {str(key).replace("-", "_"): value for key, value in data.items()}
    csv_file = values.pop("csv", None)
    if csv_file is not None:
        if not isinstance(csv_file, str) or not csv_file:
            raise UsageError(f"spec file {path}: csv must name a CSV file")
        values["_csv_file"] = (path.parent / csv_file).expanduser()
    return values


def read_series(path: Path, column: str = "") -> list[float]:
    """Read a column of the user's CSV file (on this machine) as the job's series.

    Raises:
        UsageError: the file cannot be read or parsed (the message quotes the bad cell).
    """
    try:
        return read_csv_series(path, column)
    except SeriesError as error:
        raise UsageError(f"{path}: {error}") from None


def build_spec(args: argparse.Namespace) -> JobSpec:
    """Merge ``--spec FILE`` with the spec flags (flags win) and validate the result.

    Raises:
        UsageError: the spec file cannot be used.
        SpecError: a field is unknown or has an unusable value (names the field).
    """
    values: dict[str, Any] = load_spec_file(args.spec) if args.spec is not None else {}
    base = args.spec.parent if args.spec is not None and "ansatz_circuit" in values else Path.cwd()
    for name in FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
            base = Path.cwd() if name == "ansatz_circuit" else base
    csv_file: Path | None = getattr(args, "csv", None) or values.pop("_csv_file", None)
    values.pop("_csv_file", None)
    if csv_file is not None:
        if values.get("csv_path"):
            raise UsageError("give --csv FILE (read here) or --server-csv PATH (read there), not both")
        values.setdefault("task", "csv")
        values["series"] = read_series(csv_file, str(values.get("csv_column", "")))
        values.setdefault("name", csv_file.name[:200])
    reference = values.get("ansatz_circuit")
    if isinstance(reference, str) and reference:
        # A file's JSON, or the JSON of circuits built by calling user code here (never on the coordinator).
        defaults = JobSpec()
        qubits, layers = values.get("qubits", defaults.qubits), values.get("layers", defaults.layers)
        values["ansatz_circuit"] = load_ansatz_circuit(reference, int(qubits), int(layers), base)
        values.setdefault("ansatz", "custom")
    return JobSpec.from_dict(values)
