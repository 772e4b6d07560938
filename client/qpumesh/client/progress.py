"""The live training progress line of ``qpumesh train`` and ``qpumesh watch``.

On a terminal one line is redrawn in place (carriage return, no escape codes);
when stdout is a file or a pipe (CI logs, ``| tee``) every epoch gets its own
line, so logs stay readable. State changes and log lines are printed above the
progress line; node faults are counted on it (or printed one per line on request).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import TextIO

from qpumesh.v1 import coordinator_pb2 as pb

BAR_WIDTH = 20
"""Characters of the bar between the brackets."""


def format_duration(seconds: float) -> str:
    """Format seconds as ``m:ss`` or ``h:mm:ss`` ("?" when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_hardware(seconds: float) -> str:
    """Format an estimated time on hardware: ``12.3 s`` below a minute, else ``h:mm:ss``."""
    return f"{seconds:.3g} s" if seconds < 60 else format_duration(seconds)


def format_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """Return ``[#####.....]`` filled in proportion to ``done / total``."""
    fraction = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
    filled = int(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def format_faults(faults: Mapping[str, int]) -> str:
    """Return ``faults 12 (error 7, failover 5)``, or "" when there were none."""
    total = sum(faults.values())
    if not total:
        return ""
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(faults.items()) if count)
    return f"faults {total} ({kinds})"


def format_progress(
    epoch: int,
    total: int,
    *,
    train_loss: float,
    test_loss: float,
    test_r2: float,
    seconds_per_epoch: float,
    faults: Mapping[str, int] | None = None,
    width: int = BAR_WIDTH,
    hardware_seconds_per_epoch: float = 0.0,
) -> str:
    """Return one progress line, e.g.

    ``epoch  3/10 [######..............] train 1.234e-02  test 5.678e-03  R² 0.9876  2.31 s/epoch  ETA 0:16``

    Args:
        epoch: epochs completed (1-based number of the last one).
        total: epochs the job will run.
        train_loss: mean training loss of the last epoch.
        test_loss: test loss after the last epoch.
        test_r2: test R² after the last epoch.
        seconds_per_epoch: mean wall time of an epoch so far.
        faults: node fault events of the job so far, by kind; appended as
            ``faults N (kind n, ...)`` when there were any.
        width: characters of the bar.
        hardware_seconds_per_epoch: mean estimated wall time of an epoch on the nodes'
            hardware profiles; appended as ``hardware 12.3 s/epoch`` (``hardware 1:02:03/epoch``
            from a minute on) when positive.
    """
    digits = len(str(max(total, 1)))
    eta = format_duration(seconds_per_epoch * max(0, total - epoch))
    line = (
        f"epoch {epoch:>{digits}}/{total} {format_bar(epoch, total, width)} "
        f"train {train_loss:.3e}  test {test_loss:.3e}  R² {test_r2:.4f}  "
        f"{seconds_per_epoch:.2f} s/epoch  ETA {eta}"
    )
    if hardware_seconds_per_epoch > 0:
        line += f"  hardware {format_hardware(hardware_seconds_per_epoch)}/epoch"
    fault_text = format_faults(faults or {})
    return f"{line}  {fault_text}" if fault_text else line


class ProgressDisplay:
    """Shows epoch metrics as they arrive.

    Node faults are counted by kind and shown at the end of the progress line
    (a faulty run can produce hundreds; one line each would bury the progress),
    or printed one per line with ``show_faults``.

    Args:
        stream: where to write (normally ``sys.stdout``).
        total_epochs: the job's epoch count, for the bar and the ETA.
        tty: redraw one line in place; default: ``stream.isatty()``.
        show_faults: print every fault event as its own line.
    """

    def __init__(
        self, stream: TextIO, total_epochs: int, *, tty: bool | None = None, show_faults: bool = False
    ) -> None:
        self.stream = stream
        self.total_epochs = total_epochs
        self.tty = stream.isatty() if tty is None else tty
        self.show_faults = show_faults
        self.faults: Counter[str] = Counter()
        self._line = ""
        self._wall: list[float] = []
        self._hardware: list[float] = []
        self._shown: set[int] = set()
        self._last: pb.EpochMetrics | None = None

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall time of the epochs seen so far (NaN before the first)."""
        return sum(self._wall) / len(self._wall) if self._wall else math.nan

    def start(self) -> None:
        """On a terminal, show an empty bar until the first epoch finishes."""
        if self.tty:
            self._redraw(self._render())

    def epoch(self, metrics: pb.EpochMetrics) -> None:
        """Show a finished epoch (an epoch seen before, e.g. on a replayed stream, is skipped)."""
        if metrics.epoch in self._shown:
            return
        self._shown.add(metrics.epoch)
        if metrics.wall_seconds > 0:
            self._wall.append(metrics.wall_seconds)
            self._hardware.append(metrics.hardware_seconds)
        self._last = metrics
        line = self._render()
        if self.tty:
            self._redraw(line)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def fault(self, kind: str, text: str) -> None:
        """Count a node fault event (and print ``text`` if ``show_faults``)."""
        self.faults[kind or "fault"] += 1
        if self.show_faults:
            self.note(text)
        elif self.tty and self._line:
            self._redraw(self._render())

    def note(self, text: str) -> None:
        """Print a message line, keeping the progress line (on a terminal) below it."""
        if self.tty and self._line:
            self.stream.write("\r" + " " * len(self._line) + "\r")
            self.stream.write(text + "\n")
            self.stream.write(self._line)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line so later output starts on a fresh line."""
        if self.tty and self._line:
            self.stream.write("\n")
            self.stream.flush()
        self._line = ""

    def _render(self) -> str:
        """Build the progress line of the last epoch seen (the waiting line before the first)."""
        if self._last is None:
            digits = len(str(max(self.total_epochs, 1)))
            line = (
                f"epoch {0:>{digits}}/{self.total_epochs} {format_bar(0, self.total_epochs)} "
                "waiting for the first epoch ..."
            )
            fault_text = format_faults(self.faults)
            return f"{line}  {fault_text}" if fault_text else line
        return format_progress(
            self._last.epoch,
            self.total_epochs,
            train_loss=self._last.train_loss,
            test_loss=self._last.test_loss,
            test_r2=self._last.test_r2,
            seconds_per_epoch=self.seconds_per_epoch,
            faults=self.faults,
            hardware_seconds_per_epoch=sum(self._hardware) / len(self._hardware) if self._hardware else 0.0,
        )

    def _redraw(self, line: str) -> None:
        padding = " " * max(0, len(self._line) - len(line))
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._line = line
