"""Deadlines that tell a slow node from a failed one.

A fixed deadline cannot do both jobs: long enough for a noisy engine on a wide part (or
a node behind a slow link), it leaves a hung node undetected for as long; short enough
to catch a hang, it fails every call of a node that is merely slow. So each call's
deadline follows what that call should take on *that* node:

- **work** (``call_work``): a request's cost in a priori units, rows x 2**qubits x gate
  operations, times (2 x symbols + 1) for a Jacobian and 2 x symbols for a VJP (the
  shift rule's executions; the adjoint method costs less, so the estimate errs long).
  Work only compares requests, so its unit does not matter.
- **pace** (``Pace``, one per node): the node's recent answered calls as (seconds, work
  in flight on the node when the call was sent), the call's own work included.
  ``predict(work)`` is the slowest of them scaled up to ``work`` and never down --
  ``max_i seconds_i * max(1, work / work_i)`` -- so a fixed latency (a slow link) and a
  cost that grows with the work (a wide noisy part, a queue of calls ahead) are both
  covered, generously.
- **deadline** = ``timeout_seconds`` + ``SLACK`` x the prediction for the work in flight
  on the node with this call, capped at ``MAX_DEADLINE_SECONDS``. A node without answered
  calls is predicted by the other nodes' paces (the same circuits run everywhere), and
  with no history anywhere the deadline is ``timeout_seconds``, the old fixed one.
- a call that **exceeds** its deadline is a failure (DEADLINE_EXCEEDED: retried elsewhere
  as before), and its deadline joins the node's pace as a lower bound on the node's
  speed. A retry on that node therefore waits ``SLACK + 1`` times longer, so a node that
  became slow is learned within an attempt or two instead of failing the job, while a
  node that hangs is still given up on after ``timeout_seconds`` plus a few multiples of
  its usual time.

Health probes (GetInfo, no work) use the same pace: a node whose calls take 40 s is not
declared dead because its probe took 6 s.
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


def deadline(timeout_seconds: float, own: Pace, others: list[Pace], work: float) -> float:
    """Return the deadline of a call whose node has ``work`` in flight including this call.

    Args:
        timeout_seconds: the floor (``PoolOptions.timeout_seconds``).
        own: the node's pace.
        others: the other nodes' paces, used while ``own`` has no history.
        work: the node's work in flight with this call (``call_work`` units; 0 for a probe).
    """
    if own:
        predicted = own.predict(work)
    else:
        predicted = max((pace.predict(work) for pace in others if pace), default=0.0)
    return min(timeout_seconds + SLACK * predicted, max(MAX_DEADLINE_SECONDS, timeout_seconds))


def describe(timeout_seconds: float, seconds: float) -> str:
    """Say how a call's deadline of ``seconds`` was set: its floor, slack and cap (for errors)."""
    cap = max(MAX_DEADLINE_SECONDS, timeout_seconds)
    return (
        f"deadline {seconds:.3g} s = floor {timeout_seconds:g} s (timeout_seconds) + {SLACK:g} x the "
        f"node's predicted time for its work in flight, capped at {cap:g} s (MAX_DEADLINE_SECONDS)"
    )
