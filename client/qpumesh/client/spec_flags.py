"""The job spec of ``qpumesh train``: one flag per ``JobSpec`` field, and YAML spec files.

The flags come from the fields of ``qpumesh.wire.job_spec.JobSpec`` (their help text,
metavar and choices are the fields' metadata), so a field added there is a flag here.
``--spec FILE.yaml`` gives a mapping of fields; flags given on the command line win.
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


def add_spec_flags(group: argparse._ActionsContainer) -> None:
    """Add ``--spec FILE.yaml`` and one flag per ``JobSpec`` field (unset flags parse as None)."""
    group.add_argument("--spec", type=Path, metavar="FILE.yaml", help="YAML mapping of JobSpec fields")
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

    A relative ``csv_path`` is taken relative to the file's directory.

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
    csv_path = values.get("csv_path")
    if isinstance(csv_path, str) and csv_path:
        values["csv_path"] = _local_path(csv_path, path.parent)
    return values


def _local_path(value: str, base: Path) -> str:
    """Absolute path of ``value`` (relative to ``base``) if that file exists here, else ``value``.

    The coordinator reads the CSV file; a local mesh runs in another working
    directory, so local relative paths are made absolute. A path that does not
    exist here is left alone: it may name a file on the coordinator's machine.
    """
    candidate = (base / value).expanduser()
    return str(candidate.resolve()) if candidate.exists() else value


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
            values[name] = _local_path(value, Path.cwd()) if name == "csv_path" else value
            base = Path.cwd() if name == "ansatz_circuit" else base
    reference = values.get("ansatz_circuit")
    if isinstance(reference, str) and reference:
        # A file's JSON, or the JSON of circuits built by calling user code here (never on the coordinator).
        defaults = JobSpec()
        qubits, layers = values.get("qubits", defaults.qubits), values.get("layers", defaults.layers)
        values["ansatz_circuit"] = load_ansatz_circuit(reference, int(qubits), int(layers), base)
        values.setdefault("ansatz", "custom")
    return JobSpec.from_dict(values)
