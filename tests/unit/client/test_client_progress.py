"""The progress line of ``qpumesh train``/``watch``: formatting and TTY vs. log output."""

from __future__ import annotations

import io
import math

from qpumesh.client.progress import (
    ProgressDisplay,
    format_bar,
    format_duration,
    format_faults,
    format_progress,
)
from qpumesh.v1 import coordinator_pb2 as pb


def _metrics(epoch: int, wall: float = 2.0) -> pb.EpochMetrics:
    return pb.EpochMetrics(
        epoch=epoch, train_loss=0.01234, test_loss=0.005678, test_r2=0.98765, wall_seconds=wall
    )


def test_format_duration() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(65.4) == "1:05"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(math.nan) == "?"
    assert format_duration(-1) == "?"


def test_format_bar_fills_in_proportion() -> None:
    assert format_bar(0, 10, width=10) == "[..........]"
    assert format_bar(3, 10, width=10) == "[###.......]"
    assert format_bar(10, 10, width=10) == "[##########]"
    assert format_bar(12, 10, width=4) == "[####]"
    assert format_bar(1, 0, width=4) == "[....]"


def test_format_progress_shows_every_quantity() -> None:
    line = format_progress(
        3, 10, train_loss=0.01234, test_loss=0.005678, test_r2=0.98765, seconds_per_epoch=2.31, width=10
    )
    assert line == (
        "epoch  3/10 [###.......] train 1.234e-02  test 5.678e-03  R² 0.9877  2.31 s/epoch  ETA 0:16"
    )


def test_format_progress_shows_the_hardware_estimate_when_known() -> None:
    line = format_progress(
        3,
        10,
        train_loss=0.01,
        test_loss=0.005,
        test_r2=0.9,
        seconds_per_epoch=2.0,
        hardware_seconds_per_epoch=123.45,
    )
    assert line.endswith("2.00 s/epoch  ETA 0:14  hardware 2:03/epoch")
    assert format_progress(1, 2, train_loss=0, test_loss=0, test_r2=0, seconds_per_epoch=1.0,
                           hardware_seconds_per_epoch=12.34).endswith("hardware 12.3 s/epoch")  # fmt: skip


def test_format_progress_survives_nan() -> None:
    line = format_progress(
        1, 5, train_loss=math.nan, test_loss=math.nan, test_r2=math.nan, seconds_per_epoch=math.nan
    )
    assert "R² nan" in line
    assert "ETA ?" in line


def test_log_mode_prints_one_line_per_epoch() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, 3, tty=False)
    display.start()
    display.epoch(_metrics(1, 2.0))
    display.note("fault on node-1: timeout")
    display.epoch(_metrics(2, 4.0))
    display.epoch(_metrics(2, 4.0))  # a replayed event is not shown twice
    display.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3 ")
    assert lines[1] == "fault on node-1: timeout"
    assert lines[2].startswith("epoch 2/3 ")
    assert "3.00 s/epoch" in lines[2]  # mean of 2 s and 4 s
    assert "\r" not in out.getvalue()


def test_tty_mode_redraws_one_line() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, 2, tty=True)
    display.start()
    display.epoch(_metrics(1))
    display.note("state: running")
    display.epoch(_metrics(2))
    display.close()
    text = out.getvalue()
    assert text.startswith("\repoch 0/2 ")
    assert text.count("\n") == 2  # the note and the final newline
    assert "state: running\n" in text
    final_line = text.rstrip("\n").split("\r")[-1]
    assert final_line.startswith("epoch 2/2 [####################]")
    assert display.seconds_per_epoch == 2.0


def test_faults_are_counted_on_the_progress_line() -> None:
    assert format_faults({}) == ""
    assert format_faults({"failover": 2, "error": 3}) == "faults 5 (error 3, failover 2)"
    out = io.StringIO()
    display = ProgressDisplay(out, 2, tty=False)
    display.fault("error", "fault on node-0: error")
    display.fault("failover", "fault on node-1: failover")
    display.fault("error", "fault on node-0: error")
    display.epoch(_metrics(1))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("ETA 0:02  faults 3 (error 2, failover 1)")


def test_faults_update_the_line_in_place_or_print_when_asked() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, 2, tty=True)
    display.start()
    display.fault("timeout", "fault on node-0: timeout")
    assert out.getvalue().split("\r")[-1].endswith("waiting for the first epoch ...  faults 1 (timeout 1)")
    assert "\n" not in out.getvalue()

    verbose = io.StringIO()
    display = ProgressDisplay(verbose, 2, tty=False, show_faults=True)
    display.fault("timeout", "fault on node-0: timeout")
    display.epoch(_metrics(1))
    lines = verbose.getvalue().splitlines()
    assert lines[0] == "fault on node-0: timeout"
    assert lines[1].endswith("faults 1 (timeout 1)")
