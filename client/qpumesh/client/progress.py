"""The live training progress line of ``qpumesh train`` and ``qpumesh watch``.

On a terminal one line is redrawn in place (carriage return, no escape codes);
when stdout is a file or a pipe (CI logs, ``| tee``) every epoch gets its own
line, so logs stay readable. Events that are not epochs (state changes, node
faults, log lines) are printed above the progress line.
"""

from __future__ import annotations

import math
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


def format_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """Return ``[#####.....]`` filled in proportion to ``done / total``."""
    fraction = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
    filled = int(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def format_progress(
    epoch: int,
    total: int,
    *,
    train_loss: float,
    test_loss: float,
    test_r2: float,
    seconds_per_epoch: float,
    width: int = BAR_WIDTH,
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
        width: characters of the bar.
    """
    digits = len(str(max(total, 1)))
    eta = format_duration(seconds_per_epoch * max(0, total - epoch))
    return (
        f"epoch {epoch:>{digits}}/{total} {format_bar(epoch, total, width)} "
        f"train {train_loss:.3e}  test {test_loss:.3e}  R² {test_r2:.4f}  "
        f"{seconds_per_epoch:.2f} s/epoch  ETA {eta}"
    )


class ProgressDisplay:
    """Shows epoch metrics as they arrive.

    Args:
        stream: where to write (normally ``sys.stdout``).
        total_epochs: the job's epoch count, for the bar and the ETA.
        tty: redraw one line in place; default: ``stream.isatty()``.
    """

    def __init__(self, stream: TextIO, total_epochs: int, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.total_epochs = total_epochs
        self.tty = stream.isatty() if tty is None else tty
        self._line = ""
        self._wall: list[float] = []
        self._shown: set[int] = set()

    @property
    def seconds_per_epoch(self) -> float:
        """Mean wall time of the epochs seen so far (NaN before the first)."""
        return sum(self._wall) / len(self._wall) if self._wall else math.nan

    def start(self) -> None:
        """On a terminal, show an empty bar until the first epoch finishes."""
        if self.tty:
            digits = len(str(max(self.total_epochs, 1)))
            self._redraw(
                f"epoch {0:>{digits}}/{self.total_epochs} {format_bar(0, self.total_epochs)} "
                "waiting for the first epoch ..."
            )

    def epoch(self, metrics: pb.EpochMetrics) -> None:
        """Show a finished epoch (an epoch seen before, e.g. on a replayed stream, is skipped)."""
        if metrics.epoch in self._shown:
            return
        self._shown.add(metrics.epoch)
        if metrics.wall_seconds > 0:
            self._wall.append(metrics.wall_seconds)
        line = format_progress(
            metrics.epoch,
            self.total_epochs,
            train_loss=metrics.train_loss,
            test_loss=metrics.test_loss,
            test_r2=metrics.test_r2,
            seconds_per_epoch=self.seconds_per_epoch,
        )
        if self.tty:
            self._redraw(line)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

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

    def _redraw(self, line: str) -> None:
        padding = " " * max(0, len(self._line) - len(line))
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._line = line
