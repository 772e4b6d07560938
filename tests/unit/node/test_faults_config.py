"""Fault settings: the text a user types (env vars, flags) becomes the FaultConfig they meant."""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest

from qpumesh.node.fault_injection import QPU_NODE_PREFIX, FaultInjector
from qpumesh.node.faults import add_fault_arguments, read_fault_settings
from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.wire.fault_config import FAULT_OPTIONS, FaultConfig, FaultConfigError
from qpumesh.wire.settings import boolean as parse_bool
from qpumesh.wire.settings import probability
from qpumesh.wire.units import bandwidth as parse_bandwidth
from qpumesh.wire.units import duration_ms as parse_duration_ms

parse_probability = probability()


@pytest.mark.parametrize(
    ("text", "ms"),
    [("20ms", 20.0), ("1.5s", 1500.0), ("500us", 0.5), ("20", 20.0), (" 0.25 s ", 250.0), ("2m", 120_000.0),
     ("0", 0.0), ("1e3ms", 1000.0)],
)  # fmt: skip
def test_durations_parse_to_milliseconds(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "fast", "-5ms", "20 hours", "ms", "1.5.2s"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="20ms"):
        parse_duration_ms(text)


@pytest.mark.parametrize(
    ("text", "bps"),
    [("1MB/s", 1e6), ("1mb/s", 1e6), ("512KiB/s", 512 * 1024), ("10Mbit/s", 1.25e6), ("250000", 250_000.0),
     ("2 GB/s", 2e9), ("0", 0.0), ("100kB", 1e5)],
)  # fmt: skip
def test_bandwidths_parse_to_bytes_per_second(text: str, bps: float) -> None:
    assert parse_bandwidth(text) == pytest.approx(bps)


@pytest.mark.parametrize("text", ["", "fast", "1 parsec/s", "-1MB/s", "MB/s", "1MBps"])
def test_bad_bandwidths_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="1MB/s"):
        parse_bandwidth(text)


def test_probability_and_bool_parsers() -> None:
    assert parse_probability("0.05") == pytest.approx(0.05)
    assert parse_probability("5%") == pytest.approx(0.05)
    for bad in ("1.5", "-0.1", "nan", "often"):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            parse_probability(bad)
    assert parse_bool("TRUE") and parse_bool("1") and parse_bool("on")
    assert not parse_bool("false") and not parse_bool("") and not parse_bool("0")
    with pytest.raises(ValueError):
        parse_bool("maybe")


def test_environment_builds_the_config_and_flags_win() -> None:
    environ = {
        "QPUMESH_FAULT_LATENCY_MS": "20ms",
        "QPUMESH_FAULT_JITTER_MS": "5",
        "QPUMESH_FAULT_JITTER_DIST": "Exponential",
        "QPUMESH_FAULT_BANDWIDTH_BPS": "1MB/s",
        "QPUMESH_FAULT_ERROR_RATE": "0.05",
        "QPUMESH_FAULT_HANG": "false",
        "QPUMESH_FAULT_CRASH_AFTER": "100",
        "QPUMESH_FAULT_SEED": "7",
        "QPUMESH_ADMIN_TOKEN": " s3cret ",
    }
    settings = read_fault_settings({}, environ)
    assert settings.faults == FaultConfig(
        latency_ms=20.0,
        jitter_ms=5.0,
        jitter_dist="exponential",
        bandwidth_bytes_per_second=1e6,
        error_rate=0.05,
        hang=False,
        crash_after_calls=100,
        seed=7,
    )
    assert settings.admin_token == "s3cret"

    parser = argparse.ArgumentParser()
    add_fault_arguments(parser)
    flags = vars(parser.parse_args(["--fault-latency", "1.5s", "--fault-hang", "yes", "--admin-token", "t"]))
    settings = read_fault_settings(flags, environ)
    assert settings.faults.latency_ms == 1500.0
    assert settings.faults.hang
    assert settings.faults.error_rate == pytest.approx(0.05)  # not overridden: from the environment
    assert settings.admin_token == "t"


def test_empty_environment_means_no_faults_and_admin_disabled() -> None:
    settings = read_fault_settings({}, {"QPUMESH_FAULT_LATENCY_MS": ""})
    assert settings.faults == FaultConfig()
    assert not settings.faults.active
    assert settings.admin_token == ""


def test_a_bad_variable_is_named_in_the_error() -> None:
    with pytest.raises(FaultConfigError, match="QPUMESH_FAULT_ERROR_RATE"):
        read_fault_settings({}, {"QPUMESH_FAULT_ERROR_RATE": "2"})
    with pytest.raises(FaultConfigError, match="QPUMESH_FAULT_BANDWIDTH_BPS"):
        read_fault_settings({}, {"QPUMESH_FAULT_BANDWIDTH_BPS": "lots"})


def test_bad_flags_are_usage_errors() -> None:
    parser = argparse.ArgumentParser()
    add_fault_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--fault-latency", "soon"])


def test_config_validation_and_proto_round_trip() -> None:
    with pytest.raises(FaultConfigError, match="error_rate"):
        FaultConfig(error_rate=1.5)
    with pytest.raises(FaultConfigError, match="jitter_dist"):
        FaultConfig(jitter_dist="uniform")
    with pytest.raises(FaultConfigError, match="latency_ms"):
        FaultConfig(latency_ms=math.inf)
    config = FaultConfig(latency_ms=20, jitter_ms=5, error_rate=0.1, crash_after_calls=3, seed=11, hang=True)
    assert FaultConfig.from_proto(config.to_proto()) == config
    assert FaultConfig.from_proto(FaultConfig().to_proto()) == FaultConfig()
    assert config.describe() == (
        "latency 20ms, jitter 5ms (normal), error rate 0.1, hang, crash after 3 calls"
    )


def test_seeded_draws_are_reproducible_and_jitter_is_non_negative() -> None:
    def delays(dist: str) -> list[float]:
        injector = FaultInjector(FaultConfig(latency_ms=10, jitter_ms=5, jitter_dist=dist, seed=3))
        return [injector._plan(QPU_NODE_PREFIX + "Evaluate").delay_seconds for _ in range(200)]

    for dist in ("normal", "exponential"):
        first, second = delays(dist), delays(dist)
        assert first == second
        assert min(first) >= 0.010
        assert 0.012 < sum(first) / len(first) < 0.018  # mean |N(0,5)| = 4 ms, Exp mean 5 ms


def test_crash_counts_only_work_calls() -> None:
    crashes: list[int] = []
    injector = FaultInjector(FaultConfig(crash_after_calls=2), on_crash=lambda: crashes.append(1))
    plans = [
        injector._plan(QPU_NODE_PREFIX + m)
        for m in ("GetInfo", "Evaluate", "GetInfo", "ShiftGradient", "Evaluate")
    ]
    assert [p.crash for p in plans] == [False, False, False, False, True]


class _AbortError(Exception):
    pass


class _Context:
    """The parts of a gRPC servicer context the injector uses; ``abort`` raises."""

    def is_active(self) -> bool:
        return True

    def abort(self, code: object, details: str) -> None:
        raise _AbortError(f"{code}: {details}")

    def add_callback(self, callback: object) -> bool:
        return True


def test_without_faults_calls_run_at_once_are_counted_and_faults_set_later_apply() -> None:
    crashes: list[int] = []
    injector = FaultInjector(on_crash=lambda: crashes.append(1))
    context = _Context()
    for method in ("Evaluate", "GetInfo", "ShiftGradient"):
        assert injector.apply(QPU_NODE_PREFIX + method, "request", context, lambda r, c: f"reply to {r}") == (
            "reply to request"
        )
    counters = injector.counters()
    assert (counters.calls, counters.work_calls, counters.delayed, counters.hung) == (3, 2, 0, 0)
    # Set at runtime (as NodeAdmin.SetFaults does): the next call is failed, and a crash
    # counts the work calls made before it was set.
    injector.set_config(FaultConfig(error_rate=1.0))
    with pytest.raises(_AbortError, match="random error"):
        injector.apply(QPU_NODE_PREFIX + "Evaluate", "request", context, lambda r, c: "never")
    injector.set_config(FaultConfig(crash_after_calls=3))
    injector.apply(QPU_NODE_PREFIX + "GetInfo", "request", context, lambda r, c: "info")
    assert crashes == []
    with pytest.raises(_AbortError, match="crashed"):
        injector.apply(QPU_NODE_PREFIX + "Evaluate", "request", context, lambda r, c: "never")
    assert crashes == [1]
    injector.set_config(FaultConfig())  # cleared: at once again
    assert injector.apply(QPU_NODE_PREFIX + "Evaluate", "request", context, lambda r, c: "ok") == "ok"
    assert injector.counters().calls == 7


def test_one_fault_setting_per_config_field_and_message_field() -> None:
    names = [option.dest for option in FAULT_OPTIONS]
    assert names == [f.name for f in dataclasses.fields(FaultConfig)]
    assert names == [f.name for f in apb.FaultConfig.DESCRIPTOR.fields]
