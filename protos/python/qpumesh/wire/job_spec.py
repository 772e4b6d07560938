"""The experiment specification that travels with a training job, and its message.

A ``JobSpec`` is what a user submits (CLI flags, a YAML file, or the ``JobSpec``
protobuf message) and what a checkpoint carries, so a resumed job trains exactly
the same model. Every field is validated up front; a bad value raises
``SpecError`` naming the field, which the coordinator returns as INVALID_ARGUMENT
and the CLI as a usage error. Client and coordinator both build specs here, so a
spec means the same on both sides of the wire:

- the dataclass's fields are the message's fields (``extra`` is its map; a test
  checks the two lists agree), and each field's ``metadata`` holds the help text
  and flag of ``qpumesh train``;
- ``spec_to_proto`` sets *every* field, so a stored or echoed spec is explicit;
- ``spec_from_proto`` takes unset (optional) fields from the defaults below and
  validates the result.

Every size is bounded here, before any work starts (the message names the bound):
strings (``MAX_NAME_CHARS``, ``MAX_PATH_CHARS``), the ``extra`` map (``MAX_EXTRA_*``),
the series (``MAX_SERIES_POINTS`` values, for ``series`` and ``series_length``), and
the training settings' ranges.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.series import MAX_SERIES_POINTS

TASKS = ("pendulum", "narma", "narma2", "csv")
MODELS = ("centric", "distributed", "classical")
ANSATZES = ("v0", "chen2020", "custom")
OPTIMIZERS = ("rmsprop", "adam")
GRADIENT_MODES = ("jacobian", "vjp")
"""How training gets the circuits' derivatives: Jacobians in the forward round, or VJPs in backward."""

INPUT_DIM = 1
"""d_x: every task feeds one scalar per time step."""
MAX_ANSATZ_CIRCUIT_CHARS = 4 * 1024 * 1024
"""Largest ``ansatz_circuit`` JSON a job may carry."""

MAX_NAME_CHARS = 200
"""Longest ``name`` and ``csv_column``."""
MAX_PATH_CHARS = 1024
"""Longest ``csv_path``."""
MAX_EXTRA_ENTRIES = 32
MAX_EXTRA_KEY_CHARS = 64
MAX_EXTRA_VALUE_CHARS = 1024
MAX_QUBITS = 1024
"""Widest model (D = d_x + d_h); its width is otherwise limited by the nodes (docs/model.md, "Bounds")."""
MAX_PARTITIONS = 256
"""Most parts M of a distributed model: one request per part and time step, all in one round."""
MAX_PART_QUBITS = 64
"""Widest circuit (a part, or the centric model's one circuit): the largest ``--max-qubits`` a node takes."""


def _field(
    default: Any, help_text: str, *, metavar: str = "", choices: tuple[str, ...] = (), flag: str = ""
) -> Any:
    """Declare a ``JobSpec`` field with its ``qpumesh train`` flag: help, metavar, choices, flag name.

    The flag defaults to ``--`` and the field name with dashes.
    """
    metadata = {"help": help_text, "metavar": metavar, "choices": choices, "flag": flag}
    return field(default=default, metadata=metadata)


class SpecError(ValueError):
    """A job spec field holds a value the coordinator cannot train with."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class JobSpec:
    """One training experiment.

    Attributes:
        name: free-form label shown in job listings.
        task: "pendulum", "narma" (Chen's NARMA-n family), "narma2" (NARMA-2 as the
            paper writes it, input u_t ~ U[0, 0.5]; docs/model.md) or "csv" (a user
            series: ``series``, or ``csv_path``).
        narma_order: n of NARMA-n (paper: 2, 5, 10), task "narma".
        csv_path: for task "csv" without ``series``: a CSV file under the coordinator's
            ``--data-root``, relative to it (the coordinator reads it at submission and
            stores its values in ``series``; it then stays only as a label).
        csv_column: column of that file to model (default: the last one).
        model: "centric" (one VQC per gate), "distributed" (each gate split into
            ``partitions`` sub-circuits) or "classical" (torch LSTM baseline).
        qubits: width of v_t = [h_{t-1}; x_t], i.e. d_x + d_h, as in the paper's
            centric models; hidden size d_h = qubits - 1.
        partitions: M, sub-circuits per gate for "distributed"; 0 = auto (the
            planner picks the smallest M that fits the nodes' max qubits).
        layers: variational layers L per (sub-)circuit.
        ansatz: "v0" (H + RY encoding, CNOT ladders + RY) or "chen2020"
            (H, RY(arctan x), RZ(arctan x^2), ring CNOTs + Rot), or "custom": the
            circuits of ``ansatz_circuit``.
            Defaults (chen2020, L = 3, M = 2) are the smallest setting with which both
            the 4-qubit centric and the distributed model pass test R² 0.99 on the
            pendulum at the final epoch of the paper's schedule (seed 0; see
            docs/results.md for other seeds); v0 cannot see x_t at initialisation
            (docs/model.md).
        epochs, batch_size, window, lr, optimizer, seed: training settings
            (paper defaults: 100, 10, 4, 0.01, RMSprop).
        shots: measurement shots per observable term; 0 = exact expectations.
        gradient_mode: "jacobian" (the nodes return full Jacobians in the forward round:
            one round per time step, none in backward) or "vjp" (the forward round only
            evaluates; the backward pass sends one round per time step with the incoming
            gradient as cotangents, and each node returns the vector-Jacobian product from
            one weighted adjoint sweep: 2 rounds per time step, far less node work for parts
            with many read-outs; docs/model.md, "Gradient modes"). The same gradients (to
            1e-10, tested) and the same circuit-execution and shot accounting.
        train_fraction: leading fraction of the windows used for training.
        series_length: number of points of the generated series (pendulum: 240
            samples on [0, 20]; NARMA: points after the washout).
        extra: free-form labels (bounded: ``MAX_EXTRA_*``).
        series: the raw values of a user series (task "csv"), oldest first.
        ansatz_circuit: for ansatz "custom", the Cirq JSON of the user's circuit(s)
            (docs/model.md, custom circuits). ``qpumesh train --ansatz-circuit`` reads
            it from a file or builds it by calling a Python function on the client.
    """

    name: str = _field("", "label shown in job listings")
    task: str = _field("pendulum", "benchmark series", choices=TASKS)
    narma_order: int = _field(2, "n of NARMA-n (task narma)", metavar="N")
    csv_path: str = _field(
        "", "CSV file under the coordinator's --data-root (task csv)", metavar="PATH", flag="--server-csv"
    )
    csv_column: str = _field("", "column of the CSV file (default: the last)", metavar="C")
    model: str = _field("distributed", "", choices=MODELS)
    qubits: int = _field(4, "width of [h; x] (d_h = Q - 1)", metavar="Q")
    partitions: int = _field(2, "sub-circuits per gate (distributed)", metavar="M|auto")
    layers: int = _field(3, "variational layers per circuit", metavar="L")
    ansatz: str = _field("chen2020", "", choices=ANSATZES)
    epochs: int = _field(100, "", metavar="E")
    batch_size: int = _field(10, "", metavar="B")
    window: int = _field(4, "values seen per prediction", metavar="W")
    lr: float = _field(0.01, "learning rate")
    optimizer: str = _field("rmsprop", "", choices=OPTIMIZERS)
    seed: int = _field(0, "", metavar="S")
    shots: int = _field(0, "shots per observable term (0 = exact)")
    gradient_mode: str = _field(
        "jacobian",
        "jacobian: Jacobians in the forward round (1 round per time step); vjp: values forward, "
        "vector-Jacobian products in backward (2 rounds per time step, one adjoint sweep per request; "
        "faster for wide parts)",
        choices=GRADIENT_MODES,
    )
    train_fraction: float = _field(0.67, "leading fraction of windows to train on", metavar="F")
    series_length: int = _field(240, "points of the generated series", metavar="N")
    ansatz_circuit: str = _field(
        "",
        "your own ansatz (sets --ansatz custom): a Cirq JSON file, or MODULE:FUNCTION(qubits, layers) "
        "returning a cirq.Circuit, run here (docs/model.md, custom circuits)",
        metavar="FILE|MODULE:FUNCTION",
    )
    extra: Mapping[str, str] = field(default_factory=dict)
    series: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "series", tuple(float(v) for v in self.series))
        self.validate()

    @property
    def hidden_size(self) -> int:
        """d_h = qubits - d_x."""
        return self.qubits - INPUT_DIM

    def validate(self) -> None:
        """Raise ``SpecError`` naming the first field with an unusable value."""
        _choice("task", self.task, TASKS)
        _choice("model", self.model, MODELS)
        _choice("ansatz", self.ansatz, ANSATZES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("gradient_mode", self.gradient_mode, GRADIENT_MODES)
        _int_range("narma_order", self.narma_order, 1, 100)
        _int_range("qubits", self.qubits, INPUT_DIM + 1, MAX_QUBITS)
        _int_range("partitions", self.partitions, 0, MAX_PARTITIONS)
        self._check_parts()
        _int_range("layers", self.layers, 1, 50)
        _int_range("epochs", self.epochs, 1, 100_000)
        _int_range("batch_size", self.batch_size, 1, 100_000)
        _int_range("window", self.window, 1, 1_000)
        _int_range("seed", self.seed, 0, 2**63 - 1)
        _int_range("shots", self.shots, 0, 10**9)
        _int_range("series_length", self.series_length, self.window + 3, MAX_SERIES_POINTS)
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise SpecError("lr", f"must be a positive finite number, got {self.lr!r}")
        if not (isinstance(self.train_fraction, int | float) and 0 < self.train_fraction < 1):
            raise SpecError("train_fraction", f"must be in (0, 1), got {self.train_fraction!r}")
        _text("name", self.name, MAX_NAME_CHARS)
        _text("csv_column", self.csv_column, MAX_NAME_CHARS)
        _text("csv_path", self.csv_path, MAX_PATH_CHARS)
        if self.ansatz == "custom" and not self.ansatz_circuit:
            raise SpecError("ansatz_circuit", "ansatz 'custom' needs its circuit (--ansatz-circuit)")
        if self.ansatz_circuit and self.ansatz != "custom":
            raise SpecError("ansatz", f"a job with ansatz_circuit uses ansatz 'custom', got {self.ansatz!r}")
        if len(self.ansatz_circuit) > MAX_ANSATZ_CIRCUIT_CHARS:
            size = len(self.ansatz_circuit)
            raise SpecError("ansatz_circuit", f"{size} characters, more than {MAX_ANSATZ_CIRCUIT_CHARS}")
        self._validate_extra()
        self._validate_series()

    def _validate_extra(self) -> None:
        if len(self.extra) > MAX_EXTRA_ENTRIES:
            raise SpecError("extra", f"{len(self.extra)} entries; at most {MAX_EXTRA_ENTRIES}")
        for key, value in self.extra.items():
            if not 0 < len(key) <= MAX_EXTRA_KEY_CHARS:
                raise SpecError("extra", f"keys must have 1 to {MAX_EXTRA_KEY_CHARS} characters")
            if len(value) > MAX_EXTRA_VALUE_CHARS:
                raise SpecError(
                    "extra", f"value of {key!r}: {len(value)} characters; at most {MAX_EXTRA_VALUE_CHARS}"
                )

    def _validate_series(self) -> None:
        if self.series and self.task != "csv":
            raise SpecError("series", f"a series is for task 'csv', not {self.task!r}")
        if self.task != "csv":
            return
        if not self.series and not self.csv_path:
            raise SpecError(
                "series",
                "task 'csv' needs the series (qpumesh train --csv FILE sends it) "
                "or a csv_path under the coordinator's --data-root",
            )
        if not self.series:
            return
        if len(self.series) > MAX_SERIES_POINTS:
            raise SpecError("series", f"{len(self.series)} values; at most {MAX_SERIES_POINTS}")
        if len(self.series) < self.window + 3:
            raise SpecError(
                "series", f"{len(self.series)} values; window {self.window} needs at least {self.window + 3}"
            )
        if not all(math.isfinite(v) for v in self.series):
            raise SpecError("series", "every value must be a finite number")

    def _check_parts(self) -> None:
        """Each part writes a hidden unit, and no circuit is wider than any node can be."""
        if self.model == "centric" and self.qubits > MAX_PART_QUBITS:
            raise SpecError(
                "qubits",
                f"a centric model is one circuit of {self.qubits} qubits, and a node takes at most "
                f"{MAX_PART_QUBITS}; use --model distributed with --partitions >= "
                f"{-(-self.qubits // MAX_PART_QUBITS)}",
            )
        if self.model != "distributed" or self.partitions == 0:
            return
        if self.partitions > self.hidden_size:
            raise SpecError(
                "partitions",
                f"{self.partitions} parts exceed the hidden size d_h = {self.hidden_size} (every part "
                f"writes a hidden unit); use --partitions <= {self.hidden_size}",
            )
        widest = -(-self.qubits // self.partitions)
        if widest > MAX_PART_QUBITS:
            raise SpecError(
                "partitions",
                f"{self.partitions} parts of {self.qubits} qubits are up to {widest} qubits wide, and a "
                f"part may have at most {MAX_PART_QUBITS}; use --partitions >= "
                f"{-(-self.qubits // MAX_PART_QUBITS)}",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as plain JSON/YAML-serialisable values."""
        out = dataclasses.asdict(self)
        out["extra"] = dict(self.extra)
        out["series"] = list(self.series)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> JobSpec:
        """Build a spec from a mapping (YAML/JSON), refusing unknown fields by name.

        Raises:
            SpecError: for an unknown field, a value of the wrong type, or an
                unusable value.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise SpecError(name, f"unknown field; known fields are {sorted(known)}")
            kwargs[name] = _coerce(name, known[name].default, value)
        return cls(**kwargs)


def _coerce(name: str, default: Any, value: Any) -> Any:
    """Check ``value`` against the type of the field's default (ints may be given for floats)."""
    if name == "extra":
        if not isinstance(value, Mapping):
            raise SpecError(name, "must be a mapping of strings")
        if len(value) > MAX_EXTRA_ENTRIES:  # before copying an arbitrarily large mapping
            raise SpecError(name, f"{len(value)} entries; at most {MAX_EXTRA_ENTRIES}")
        return {str(k): str(v) for k, v in value.items()}
    if name == "series":
        if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__len__"):
            raise SpecError(name, "must be a list of numbers")
        if len(value) > MAX_SERIES_POINTS:
            raise SpecError(name, f"{len(value)} values; at most {MAX_SERIES_POINTS}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise SpecError(name, "must be a list of numbers")
        return tuple(float(v) for v in value)
    if name == "partitions" and value == "auto":
        return 0
    if isinstance(default, bool) or isinstance(value, bool):
        raise SpecError(name, f"expected {type(default).__name__}, got {value!r}")
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if not isinstance(value, type(default)):
        raise SpecError(name, f"expected {type(default).__name__}, got {type(value).__name__} {value!r}")
    return value


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(name, f"must be one of {', '.join(choices)}; got {value!r}")


def _text(name: str, value: str, limit: int) -> None:
    if not isinstance(value, str):
        raise SpecError(name, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise SpecError(name, f"{len(value)} characters; at most {limit}")


def _int_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(name, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise SpecError(name, f"must be between {low} and {high}, got {value}")


FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(JobSpec) if f.name not in ("extra", "series")
)
"""The scalar fields; each is an ``optional`` field of the same name in the ``JobSpec`` message."""


def flag_of(spec_field: dataclasses.Field[Any]) -> str:
    """Return the ``qpumesh train`` flag of a ``JobSpec`` field (``--batch-size``, ``--csv``)."""
    return str(spec_field.metadata.get("flag") or "--" + spec_field.name.replace("_", "-"))


def spec_to_proto(spec: JobSpec, *, series_values: bool = True) -> pb.JobSpec:
    """Return the message for ``spec`` with every field explicitly set.

    Args:
        spec: the spec.
        series_values: include the series' values (``series.length`` is always set).
    """
    msg = pb.JobSpec(**{name: getattr(spec, name) for name in FIELDS})
    msg.extra.update({str(k): str(v) for k, v in spec.extra.items()})
    if spec.series:
        msg.series.length = len(spec.series)
        if series_values:
            msg.series.values.extend(spec.series)
    return msg


def spec_from_proto(msg: pb.JobSpec) -> JobSpec:
    """Build and validate a ``JobSpec`` from its message.

    Unset optional fields take ``JobSpec``'s defaults, so a client may send only
    what it wants to change.

    Raises:
        SpecError: naming the first field with an unusable value.
    """
    kwargs: dict[str, Any] = {name: getattr(msg, name) for name in FIELDS if msg.HasField(name)}
    if len(msg.extra) > MAX_EXTRA_ENTRIES:
        raise SpecError("extra", f"{len(msg.extra)} entries; at most {MAX_EXTRA_ENTRIES}")
    if len(msg.series.values) > MAX_SERIES_POINTS:
        raise SpecError("series", f"{len(msg.series.values)} values; at most {MAX_SERIES_POINTS}")
    return JobSpec(extra=dict(msg.extra), series=tuple(msg.series.values), **kwargs)
