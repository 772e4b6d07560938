"""Deadlines that tell a slow node from a failed one.

A fixed deadline cannot do both jobs: long enough for a noisy engine on a wide part (or
a node behind a slow link), it leaves a hung node undetected for as long; short enough
to catch a hang, it fails every call of a node that is merely slow. So each call's
deadline follows what that call should take on *that* node:

- **work** (``call_work``): a request's cost in a priori units, rows x 2**qubits x gate
  operations, times (2 x symbols + 1) for a Jacobian and 2 x symbols for a VJP (the
  shift rule's executions). Work only compares requests of one **kind** (``call_kind``:
  Evaluate, Jacobian, VJP), so its unit does not matter; across kinds it does not
  compare: exact gradients run the adjoint method, whose cost against an Evaluate is not
  the shift rule's factor, and fixed latencies dominate small calls of every kind.
- **pace** (``Pace``, one per node and call kind, in ``Paces``): the node's recent
  answered calls of that kind as (seconds, work of that kind in flight on the node when
  the call was sent), the call's own work included. ``predict(work)`` is the slowest of
  them scaled up to ``work`` and never down -- ``max_i seconds_i * max(1, work / work_i)``
  -- so a fixed latency (a slow link) and a cost that grows with the work (a wide noisy
  part, a queue of calls ahead) are both covered, generously. So in gradient mode "vjp"
  (Evaluate rounds forward, VJP rounds backward) each kind's deadlines follow its own
  calls: one shared pace scaled the VJPs' larger work by the Evaluates' rate, and a hung
  node was given up on later than necessary.
- **deadline** = ``timeout_seconds`` + ``SLACK`` x the prediction for the work of the
  call's kind in flight on the node with this call (at least the node's timed-out probes'
  latency; plus each other kind's prediction for its own work in flight, when there is
  any), capped at ``MAX_DEADLINE_SECONDS``. A node
  without answered calls of the kind is predicted by the other nodes' paces of that kind
  (the same circuits run everywhere), and with no history anywhere the deadline is
  ``timeout_seconds``, the old fixed one.
- a call that **exceeds** its deadline is a failure (DEADLINE_EXCEEDED: retried elsewhere
  as before), and its deadline joins the node's pace as a lower bound on the node's
  speed. A retry on that node therefore waits ``SLACK + 1`` times longer, so a node that
  became slow is learned within an attempt or two instead of failing the job, while a
  node that hangs is still given up on after ``timeout_seconds`` plus a few multiples of
  its usual time.

Health probes (GetInfo, no work) use the slowest of the node's paces: a node whose calls
take 40 s is not declared dead because its probe took 6 s. A probe that times out joins
the node's probe pace, a fixed latency that every later call's prediction covers.
"""

from __future__ import annotations

import functools
from collections import deque

import cirq

from qpumesh.coordinator.executor import CircuitTask

SLACK = 4.0
"""A call may take this many times the node's predicted time (beyond ``timeout_seconds``)."""
PACE_WINDOW = 32
"""Answered (or timed-out) calls per node the prediction looks at."""
MAX_DEADLINE_SECONDS = 3600.0
"""No call waits longer than this (or ``timeout_seconds``, if that is longer)."""
_MAX_EXPONENT = 60
"""2**qubits is capped here so that the work of any circuit stays a finite float."""


KINDS = ("evaluate", "jacobian", "vjp")
"""The call kinds whose paces are kept apart (``call_kind``)."""


@functools.lru_cache(maxsize=1024)
def _operations(cirq_json: str) -> int:
    """Count the operations of a serialised circuit (parsed once per circuit)."""
    circuit = cirq.read_json(json_text=cirq_json)
    return max(1, sum(1 for _ in circuit.all_operations()))


def call_work(task: CircuitTask) -> float:
    """Return the a priori work of running ``task``: rows x 2**qubits x operations (x shift-rule factor).

    The factor is the shift rule's executions per row: 2 x symbols + 1 for a Jacobian with
    values, 2 x symbols for a VJP (no values), 1 for an evaluation.
    """
    rows = max(1, int(task.values.shape[0]))
    width = min(len(task.circuit.qubits), _MAX_EXPONENT)
    if task.jacobian:
        factor = 2 * len(task.symbols) + 1
    elif task.cotangents is not None:
        factor = max(1, 2 * len(task.symbols))
    else:
        factor = 1
    return float(rows) * float(2**width) * _operations(task.circuit.cirq_json) * factor


def call_kind(task: CircuitTask) -> str:
    """Return the kind of call ``task`` makes: ``"jacobian"``, ``"vjp"`` or ``"evaluate"`` (``KINDS``)."""
    if task.jacobian:
        return "jacobian"
    return "evaluate" if task.cotangents is None else "vjp"


class Pace:
    """How long one node's calls take for their work: the basis of its deadlines.

    Touched only on the mesh's event loop (like the rest of ``MeshNode``). Every call
    predicts and records once, so both are kept cheap: the records are kept as their
    seconds and their seconds per unit of work, because
    ``max_i seconds_i * max(1, work / work_i)`` equals
    ``max(max_i seconds_i, work * max_i seconds_i / work_i)`` (a record without work
    takes part in the first maximum only).
    """

    def __init__(self) -> None:
        self._seconds: deque[float] = deque(maxlen=PACE_WINDOW)
        self._rates: deque[float] = deque(maxlen=PACE_WINDOW)
        """Seconds per unit of work of each record (0 for a record without work)."""
        self.in_flight_work = 0.0
        """Work of the calls sent to the node and not answered yet."""

    def __bool__(self) -> bool:
        return bool(self._seconds)

    def predict(self, work: float) -> float:
        """Return the seconds a call with ``work`` in flight should take at most (0 without history).

        A record without work (a probe) is a fixed latency: it is not scaled.
        """
        if not self._seconds:
            return 0.0
        return max(*self._seconds, work * max(self._rates))

    def record(self, seconds: float, work: float) -> None:
        """Remember that ``work`` in flight took ``seconds`` (or, for a timeout, at least that)."""
        seconds, work = max(0.0, seconds), max(0.0, work)
        self._seconds.append(seconds)
        self._rates.append(seconds / work if work > 0 else 0.0)

    def clear(self) -> None:
        """Forget the history (another node answers at the address now)."""
        self._seconds.clear()
        self._rates.clear()


class Paces:
    """One node's paces: one per call kind (``KINDS``) and one of its timed-out probes.

    Touched only on the mesh's event loop, like ``Pace``.
    """

    def __init__(self) -> None:
        self.kinds = {kind: Pace() for kind in KINDS}
        self.probes = Pace()
        """Probes that timed out (a fixed latency: every call's prediction covers it)."""

    def __getitem__(self, kind: str) -> Pace:
        return self.kinds[kind]

    def __bool__(self) -> bool:
        return bool(self.probes) or any(self.kinds.values())

    def slowest(self) -> float:
        """Return the longest call or timed-out probe remembered, of any kind (0 without history)."""
        return max(self.probes.predict(0.0), *(pace.predict(0.0) for pace in self.kinds.values()))

    def besides(self, kind: str) -> float:
        """Seconds predicted for the other kinds' work in flight on the node (0: none).

        Each kind by its own pace, added to a call's prediction, so that calls of one kind
        queued behind another's are not cut short.
        """
        extra = 0.0
        for other, pace in self.kinds.items():
            if other != kind and pace.in_flight_work > 0.0:
                extra += pace.predict(pace.in_flight_work)
        return extra

    def latency(self) -> float:
        """Return the longest timed-out probe remembered: a fixed latency every call covers."""
        return self.probes.predict(0.0)

    def clear(self) -> None:
        """Forget the history (another node answers at the address now)."""
        for pace in self.kinds.values():
            pace.clear()
        self.probes.clear()


def deadline(  # noqa: PLR0917 (the parts of a prediction)
    timeout_seconds: float,
    own: Pace,
    others: list[Pace],
    work: float,
    besides: float = 0.0,
    latency: float = 0.0,
) -> float:
    """Return the deadline of a call whose node has ``work`` in flight including this call.

    Args:
        timeout_seconds: the floor (``PoolOptions.timeout_seconds``).
        own: the node's pace (of the call's kind).
        others: the other nodes' paces (of that kind), used while ``own`` has no history.
        work: the node's work in flight with this call (``call_work`` units of the call's
            kind; 0 for a probe).
        besides: seconds predicted for the node's other kinds in flight (``Paces.besides``).
        latency: the node's fixed latency, from timed-out probes (``Paces.latency``): the
            prediction is at least this.
    """
    if own:
        predicted = own.predict(work)
    else:
        predicted = max((pace.predict(work) for pace in others if pace), default=0.0)
    predicted = max(predicted, latency) + besides
    return min(timeout_seconds + SLACK * predicted, max(MAX_DEADLINE_SECONDS, timeout_seconds))


def probe_deadline(timeout_seconds: float, own: Paces, others: list[Paces]) -> float:
    """Return a health probe's deadline: the floor + ``SLACK`` x the node's slowest call (or others').

    Args:
        timeout_seconds: the probe's floor.
        own: the node's paces.
        others: the other nodes' paces, used while ``own`` has no history.
    """
    predicted = own.slowest() if own else max((p.slowest() for p in others if p), default=0.0)
    return min(timeout_seconds + SLACK * predicted, max(MAX_DEADLINE_SECONDS, timeout_seconds))


def describe(timeout_seconds: float, seconds: float) -> str:
    """Say how a call's deadline of ``seconds`` was set: its floor, slack and cap (for errors)."""
    cap = max(MAX_DEADLINE_SECONDS, timeout_seconds)
    return (
        f"deadline {seconds:.3g} s = floor {timeout_seconds:g} s (timeout_seconds) + {SLACK:g} x the "
        f"node's predicted time for its work in flight, capped at {cap:g} s (MAX_DEADLINE_SECONDS)"
    )
