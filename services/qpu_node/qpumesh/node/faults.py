"""Fault injection on a QPU node: slow, flaky, hung or crashing nodes on demand.

The hosts the mesh is tested on have no ``tc netem``, so network faults are emulated
in the application, at the node's gRPC edge: ``FaultInterceptor`` (a
``grpc.ServerInterceptor``) delays, fails or swallows ``qpumesh.v1.QPUNode`` calls
according to the node's current ``FaultConfig``. Health checks, server reflection
and the admin service are never faulted, so a node under test can always be
inspected and repaired.

Per QPUNode call, in this order:

1. crash: the Evaluate/ShiftGradient call after the first ``crash_after_calls``
   ones ends the process (``os._exit``), as a node that dies mid-job;
2. hang: no reply until the caller's deadline passes or it cancels (or until the
   fault is cleared at runtime, after which the call proceeds normally);
3. error: with probability ``error_rate`` the call fails with UNAVAILABLE;
4. delay: ``latency_ms`` + a jitter draw (``|N(0, jitter_ms)|`` or
   ``Exp(mean=jitter_ms)``) + request bytes / bandwidth, before the call runs, and
   reply bytes / bandwidth after it. A caller that gives up during a delay (a lost
   hedge, an expired deadline) frees the server thread at once.

The config comes from ``QPUMESH_FAULT_*`` environment variables or ``qpumesh node
serve --fault-*`` flags at start-up, and can be replaced at runtime through the
``qpumesh.v1.NodeAdmin`` service (``qpumesh fault NODE ...``) when the node has an
admin token (``QPUMESH_ADMIN_TOKEN``). docs/faults.md is the user reference.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import math
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from qpumesh.v1 import node_admin_pb2 as apb
from qpumesh.wire.settings import (
    Option,
    add_arguments,
    boolean,
    choice,
    given_flags,
    integer,
    probability,
    read_environment,
)

logger = logging.getLogger(__name__)

_Request = TypeVar("_Request")
_Reply = TypeVar("_Reply")

QPU_NODE_PREFIX = "/qpumesh.v1.QPUNode/"
"""Method-name prefix of the RPCs that faults apply to."""
WORK_METHODS = frozenset({QPU_NODE_PREFIX + "Evaluate", QPU_NODE_PREFIX + "ShiftGradient"})
"""The RPCs that ``crash_after_calls`` counts."""
ADMIN_SERVICE_NAME = apb.DESCRIPTOR.services_by_name["NodeAdmin"].full_name
"""``qpumesh.v1.NodeAdmin``."""
ADMIN_TOKEN_METADATA = "x-qpumesh-admin-token"
"""Metadata key carrying the admin token."""
JITTER_DISTRIBUTIONS = ("normal", "exponential")
CRASH_EXIT_STATUS = 3
"""Exit status of a node killed by ``crash_after_calls``."""


class FaultConfigError(ValueError):
    """A fault setting has a bad value; the message names the variable or flag."""


# --------------------------------------------------------------------------- parsing

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|µs|ms|s|m)?\s*$")
_DURATION_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_BANDWIDTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*(?:/\s*s)?\s*$")
_BANDWIDTH_UNITS = {
    "": 1.0, "b": 1.0,
    "kb": 1e3, "mb": 1e6, "gb": 1e9,
    "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30,
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
}  # fmt: skip


def parse_duration_ms(text: str) -> float:
    """Parse a duration into milliseconds: "20ms", "1.5s", "500us", "2m"; a bare number is ms.

    Raises:
        ValueError: the text is not a non-negative duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expected a duration such as 20ms, 1.5s or 500us, got {text!r}")
    value = float(match.group(1)) * _DURATION_MS[match.group(2) or "ms"]
    if not math.isfinite(value):
        raise ValueError(f"expected a finite duration, got {text!r}")
    return value


def parse_bandwidth(text: str) -> float:
    """Parse a bandwidth into bytes per second: "1MB/s", "512KiB/s", "10Mbit/s", "250000".

    Decimal (kB, MB, GB), binary (KiB, MiB, GiB) and bit (kbit, Mbit, Gbit) units are
    accepted, case-insensitively, with or without "/s"; a bare number is bytes/s and 0
    means unlimited.

    Raises:
        ValueError: the text is not a non-negative bandwidth.
    """
    match = _BANDWIDTH.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _BANDWIDTH_UNITS:
        raise ValueError(f"expected a bandwidth such as 1MB/s, 512KiB/s or 10Mbit/s, got {text!r}")
    value = float(match.group(1)) * _BANDWIDTH_UNITS[unit]
    if not math.isfinite(value):
        raise ValueError(f"expected a finite bandwidth, got {text!r}")
    return value


_probability = probability()
_count = integer(0)
_jitter_distribution = choice(*JITTER_DISTRIBUTIONS)


def parse_probability(text: str) -> float:
    """Parse a probability in [0, 1]; "5%" is accepted too.

    Raises:
        ValueError: the text is not a number in [0, 1].
    """
    return _probability(text)


def parse_bool(text: str) -> bool:
    """Parse 1/true/yes/on or 0/false/no/off (any case; empty is false).

    Raises:
        ValueError: anything else.
    """
    return boolean(text)


def parse_count(text: str) -> int:
    """Parse a non-negative integer.

    Raises:
        ValueError: the text is not one.
    """
    return _count(text)


def parse_jitter_distribution(text: str) -> str:
    """Parse "normal" or "exponential" (any case).

    Raises:
        ValueError: anything else.
    """
    return _jitter_distribution(text)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class FaultConfig:
    """The faults a node injects into its QPUNode calls; the default injects none.

    Attributes:
        latency_ms: fixed extra latency per call, in milliseconds.
        jitter_ms: scale of the random extra latency per call, in milliseconds.
        jitter_dist: "normal" (``|N(0, jitter_ms)|``) or "exponential" (mean ``jitter_ms``).
        bandwidth_bytes_per_second: emulated link speed; each call is delayed by
            (request + reply bytes) / bandwidth. 0 = unlimited.
        error_rate: probability that a call fails with UNAVAILABLE.
        hang: never answer; calls wait until the caller's deadline or cancellation.
        crash_after_calls: end the process (``os._exit``) when the Evaluate/
            ShiftGradient call after the first N arrives. 0 = never.
        seed: seed of the jitter and error draws; None = nondeterministic.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_dist: str = "normal"
    bandwidth_bytes_per_second: float = 0.0
    error_rate: float = 0.0
    hang: bool = False
    crash_after_calls: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms", "bandwidth_bytes_per_second"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise FaultConfigError(f"{name} must be a finite number >= 0, got {value}")
        if self.jitter_dist not in JITTER_DISTRIBUTIONS:
            raise FaultConfigError(
                f"jitter_dist must be one of {', '.join(JITTER_DISTRIBUTIONS)}, got {self.jitter_dist!r}"
            )
        if not 0.0 <= self.error_rate <= 1.0:
            raise FaultConfigError(f"error_rate must be in [0, 1], got {self.error_rate}")
        if self.crash_after_calls < 0:
            raise FaultConfigError(f"crash_after_calls must be >= 0, got {self.crash_after_calls}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise FaultConfigError(f"seed must be in 0..2**64-1, got {self.seed}")

    @property
    def active(self) -> bool:
        """Whether any fault is configured."""
        return self.describe() != "none"

    def describe(self) -> str:
        """Summarise the faults in one line, e.g. "latency 20ms, jitter 5ms (normal), error rate 0.05"."""
        parts = []
        if self.latency_ms:
            parts.append(f"latency {self.latency_ms:g}ms")
        if self.jitter_ms:
            parts.append(f"jitter {self.jitter_ms:g}ms ({self.jitter_dist})")
        if self.bandwidth_bytes_per_second:
            parts.append(f"bandwidth {self.bandwidth_bytes_per_second:g} B/s")
        if self.error_rate:
            parts.append(f"error rate {self.error_rate:g}")
        if self.hang:
            parts.append("hang")
        if self.crash_after_calls:
            parts.append(f"crash after {self.crash_after_calls} calls")
        return ", ".join(parts) or "none"

    def to_proto(self) -> apb.FaultConfig:
        """Return the ``qpumesh.v1.FaultConfig`` message."""
        message = apb.FaultConfig(
            latency_ms=self.latency_ms,
            jitter_ms=self.jitter_ms,
            jitter_dist=self.jitter_dist,
            bandwidth_bytes_per_second=self.bandwidth_bytes_per_second,
            error_rate=self.error_rate,
            hang=self.hang,
            crash_after_calls=self.crash_after_calls,
        )
        if self.seed is not None:
            message.seed = self.seed
        return message

    @classmethod
    def from_proto(cls, message: apb.FaultConfig) -> FaultConfig:
        """Build a config from its message (empty ``jitter_dist`` = "normal").

        Raises:
            FaultConfigError: a field has a bad value.
        """
        return cls(
            latency_ms=message.latency_ms,
            jitter_ms=message.jitter_ms,
            jitter_dist=message.jitter_dist.strip().lower() or "normal",
            bandwidth_bytes_per_second=message.bandwidth_bytes_per_second,
            error_rate=message.error_rate,
            hang=message.hang,
            crash_after_calls=message.crash_after_calls,
            seed=message.seed if message.HasField("seed") else None,
        )


FaultOption = Option
"""One fault setting: its ``FaultConfig`` field, environment variable, flag and parser."""


FAULT_OPTIONS: tuple[FaultOption, ...] = (
    FaultOption("latency_ms", "QPUMESH_FAULT_LATENCY_MS", "--fault-latency", parse_duration_ms,
                "extra latency per QPUNode call, e.g. 20ms or 0.02s (bare number = ms)", "DURATION"),
    FaultOption("jitter_ms", "QPUMESH_FAULT_JITTER_MS", "--fault-jitter", parse_duration_ms,
                "random extra latency per call, e.g. 5ms (see --fault-jitter-dist)", "DURATION"),
    FaultOption("jitter_dist", "QPUMESH_FAULT_JITTER_DIST", "--fault-jitter-dist", parse_jitter_distribution,
                "jitter distribution: normal (|N(0, jitter)|) or exponential (mean jitter)",
                "|".join(JITTER_DISTRIBUTIONS)),
    FaultOption("bandwidth_bytes_per_second", "QPUMESH_FAULT_BANDWIDTH_BPS", "--fault-bandwidth",
                parse_bandwidth, "emulated link bandwidth, e.g. 1MB/s or 10Mbit/s (bare number = bytes/s)",
                "RATE"),
    FaultOption("error_rate", "QPUMESH_FAULT_ERROR_RATE", "--fault-error-rate", parse_probability,
                "probability that a call fails with UNAVAILABLE, e.g. 0.05", "P"),
    FaultOption("hang", "QPUMESH_FAULT_HANG", "--fault-hang", parse_bool,
                "true = never answer QPUNode calls (callers hit their deadline)", "BOOL"),
    FaultOption("crash_after_calls", "QPUMESH_FAULT_CRASH_AFTER", "--fault-crash-after", parse_count,
                "exit the process when Evaluate/ShiftGradient call N+1 arrives (0 = never)", "N"),
    FaultOption("seed", "QPUMESH_FAULT_SEED", "--fault-seed", parse_count,
                "seed of the jitter and error draws (default: random)", "N"),
)  # fmt: skip
ADMIN_TOKEN_ENV = "QPUMESH_ADMIN_TOKEN"
ADMIN_TOKEN_FLAG = "--admin-token"
_FLAG_PREFIX = "fault_"
"""argparse destinations of the ``--fault-*`` flags are ``fault_<FaultConfig field>``."""


@dataclass(frozen=True)
class FaultSettings:
    """Start-up fault settings of a node.

    Attributes:
        faults: the initial fault config.
        admin_token: the token NodeAdmin calls must carry; "" disables NodeAdmin.
    """

    faults: FaultConfig = field(default_factory=FaultConfig)
    admin_token: str = ""


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--fault-*`` and ``--admin-token`` flags; unset flags parse as None."""
    group = parser.add_argument_group("fault injection (see docs/faults.md)")
    add_arguments(group, FAULT_OPTIONS, dest_prefix=_FLAG_PREFIX)
    group.add_argument(
        ADMIN_TOKEN_FLAG,
        dest="admin_token",
        default=None,
        metavar="TOKEN",
        help=f"enable the NodeAdmin fault-control service with this token [env {ADMIN_TOKEN_ENV}]",
    )


def read_fault_settings(flags: Mapping[str, Any], environ: Mapping[str, str]) -> FaultSettings:
    """Combine ``--fault-*`` flags and ``QPUMESH_FAULT_*`` variables; flags win.

    Args:
        flags: parsed flags by destination (``vars(args)``); None or absent = not given.
        environ: the environment (empty variables count as unset).

    Raises:
        FaultConfigError: naming the variable or flag with a bad value.
    """
    given = given_flags(FAULT_OPTIONS, flags, dest_prefix=_FLAG_PREFIX)
    # A variable overridden by a flag is not even parsed.
    unset = [option for option in FAULT_OPTIONS if option.dest not in given]
    values = read_environment(unset, environ, FaultConfigError) | given
    token = flags.get("admin_token")
    if token is None:
        token = environ.get(ADMIN_TOKEN_ENV, "")
    try:
        faults = FaultConfig(**values)
    except FaultConfigError as error:
        raise FaultConfigError(f"fault injection: {error}") from None
    return FaultSettings(faults=faults, admin_token=str(token).strip())


# --------------------------------------------------------------------------- injector


@dataclass
class _Counters:
    calls: int = 0
    work_calls: int = 0
    delayed: int = 0
    injected_errors: int = 0
    hung: int = 0


@dataclass(frozen=True)
class _Plan:
    """What to do to one call, drawn under the injector's lock."""

    crash: bool
    hang: bool
    error: bool
    delay_seconds: float
    seconds_per_byte: float


def _exit_process() -> None:
    logger.critical("fault injection: crash_after_calls reached, exiting with status %d", CRASH_EXIT_STATUS)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(CRASH_EXIT_STATUS)


class FaultInjector:
    """A node's current fault config, its random draws and counters (thread-safe).

    Args:
        config: the initial faults.
        node_id: the node's name, for log lines and GetFaults.
        on_crash: called when ``crash_after_calls`` is reached; defaults to ending the
            process with ``os._exit(3)``. Tests pass a callable that stops an
            in-process server instead.
    """

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        node_id: str = "",
        on_crash: Callable[[], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self._on_crash = on_crash or _exit_process
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._config = config or FaultConfig()
        self._random = random.Random(self._config.seed)
        self._counters = _Counters()
        if self._config.active:
            logger.warning("fault injection on node %s: %s", node_id or "?", self._config.describe())

    @property
    def config(self) -> FaultConfig:
        """The faults in force."""
        with self._lock:
            return self._config

    def set_config(self, config: FaultConfig, *, source: str = "") -> None:
        """Replace the faults; applies to calls that arrive from now on and releases hung calls.

        Args:
            config: the new faults.
            source: who asked (e.g. the admin caller's address), for the log line.
        """
        with self._changed:
            previous, self._config = self._config, config
            self._random = random.Random(config.seed)
            self._changed.notify_all()
        logger.warning(
            "fault injection on node %s changed%s: %s -> %s",
            self.node_id or "?",
            f" by {source}" if source else "",
            previous.describe(),
            config.describe(),
        )

    def counters(self) -> apb.FaultCounters:
        """Return what the injector has done so far."""
        with self._lock:
            c = self._counters
            return apb.FaultCounters(
                calls=c.calls, work_calls=c.work_calls, delayed=c.delayed,
                injected_errors=c.injected_errors, hung=c.hung,
            )  # fmt: skip

    def _plan(self, method: str) -> _Plan:
        with self._lock:
            config, counters = self._config, self._counters
            counters.calls += 1
            crash = False
            if method in WORK_METHODS:
                counters.work_calls += 1
                crash = 0 < config.crash_after_calls < counters.work_calls
            error = config.error_rate > 0 and self._random.random() < config.error_rate
            jitter = 0.0
            if config.jitter_ms > 0:
                if config.jitter_dist == "exponential":
                    jitter = self._random.expovariate(1.0 / config.jitter_ms)
                else:
                    jitter = abs(self._random.gauss(0.0, config.jitter_ms))
            delay = (config.latency_ms + jitter) / 1000.0
            per_byte = 1.0 / config.bandwidth_bytes_per_second if config.bandwidth_bytes_per_second else 0.0
            if config.hang:
                counters.hung += 1
            elif error:
                counters.injected_errors += 1
            elif delay > 0 or per_byte > 0:
                counters.delayed += 1
            return _Plan(
                crash=crash, hang=config.hang, error=error, delay_seconds=delay, seconds_per_byte=per_byte
            )

    def _hang(self, context: grpc.ServicerContext) -> None:
        """Block while ``hang`` is set and the caller still waits."""
        with self._changed:
            while self._config.hang and context.is_active():
                self._changed.wait(timeout=0.05)

    def apply(
        self,
        method: str,
        request: Any,
        context: grpc.ServicerContext,
        call: Callable[[Any, grpc.ServicerContext], _Reply],
    ) -> _Reply:
        """Run ``call(request, context)`` with the faults in force for ``method``."""
        plan = self._plan(method)
        if plan.crash:
            self._on_crash()
            context.abort(grpc.StatusCode.UNAVAILABLE, f"injected fault: node {self.node_id} crashed")
        if plan.hang:
            self._hang(context)
            if not context.is_active():
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "injected fault: hang")
        if plan.error:
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"injected fault on node {self.node_id}: random error (error_rate)",
            )
        size = getattr(request, "ByteSize", None)
        request_bytes = int(size()) if callable(size) else 0
        _wait(context, plan.delay_seconds + request_bytes * plan.seconds_per_byte)
        reply = call(request, context)
        size = getattr(reply, "ByteSize", None)
        if plan.seconds_per_byte and callable(size):
            _wait(context, int(size()) * plan.seconds_per_byte)
        return reply


def _wait(context: grpc.ServicerContext, seconds: float) -> None:
    """Sleep ``seconds``, aborting early with CANCELLED when the caller goes away."""
    if seconds <= 0:
        return
    gone = threading.Event()
    context.add_callback(gone.set)
    deadline = time.monotonic() + seconds
    while not gone.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        gone.wait(min(remaining, 0.05))
        if not context.is_active():
            break
    context.abort(grpc.StatusCode.CANCELLED, "caller went away during an injected delay")


class FaultInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Applies a ``FaultInjector`` to the unary ``qpumesh.v1.QPUNode`` RPCs only."""

    def __init__(self, injector: FaultInjector) -> None:
        self.injector = injector

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        """Wrap the QPUNode handlers; pass every other service through untouched."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(QPU_NODE_PREFIX) or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        injector = self.injector

        def faulty(request: Any, context: grpc.ServicerContext) -> Any:
            return injector.apply(method, request, context, inner)

        return grpc.unary_unary_rpc_method_handler(
            faulty,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


# --------------------------------------------------------------------------- admin service


class NodeAdmin:
    """``qpumesh.v1.NodeAdmin``: read and replace a node's faults, guarded by a token.

    Args:
        injector: the node's fault injector.
        token: the secret callers must send as ``x-qpumesh-admin-token`` metadata;
            "" disables the service (every call gets FAILED_PRECONDITION).
    """

    def __init__(self, injector: FaultInjector, token: str) -> None:
        self._injector = injector
        self._token = token

    def _authorize(self, context: grpc.ServicerContext) -> None:
        if not self._token:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"fault administration is disabled on this node; start it with {ADMIN_TOKEN_ENV}=<secret> "
                f"(or {ADMIN_TOKEN_FLAG} <secret>) and send that token as '{ADMIN_TOKEN_METADATA}' metadata",
            )
        sent = [str(value) for key, value in context.invocation_metadata() if key == ADMIN_TOKEN_METADATA]
        if not sent:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"missing '{ADMIN_TOKEN_METADATA}' metadata (qpumesh fault --token, or {ADMIN_TOKEN_ENV})",
            )
        if not hmac.compare_digest(sent[0].encode(), self._token.encode()):
            logger.warning("NodeAdmin call from %s refused: wrong admin token", context.peer())
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "wrong admin token")

    def set_faults(
        self, request: apb.SetFaultsRequest, context: grpc.ServicerContext
    ) -> apb.SetFaultsResponse:
        """Replace the node's faults; an empty config clears them."""
        self._authorize(context)
        try:
            config = FaultConfig.from_proto(request.faults)
        except FaultConfigError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        self._injector.set_config(config, source=f"NodeAdmin.SetFaults from {context.peer()}")
        return apb.SetFaultsResponse(faults=config.to_proto(), counters=self._injector.counters())

    def get_faults(
        self, request: apb.GetFaultsRequest, context: grpc.ServicerContext
    ) -> apb.GetFaultsResponse:
        """Return the node's faults and counters."""
        self._authorize(context)
        return apb.GetFaultsResponse(
            faults=self._injector.config.to_proto(),
            counters=self._injector.counters(),
            node_id=self._injector.node_id,
        )

    def add_to_server(self, server: grpc.Server) -> None:
        """Register the service on ``server`` (before it starts)."""
        handlers = {
            "SetFaults": grpc.unary_unary_rpc_method_handler(
                self.set_faults,
                request_deserializer=apb.SetFaultsRequest.FromString,
                response_serializer=apb.SetFaultsResponse.SerializeToString,
            ),
            "GetFaults": grpc.unary_unary_rpc_method_handler(
                self.get_faults,
                request_deserializer=apb.GetFaultsRequest.FromString,
                response_serializer=apb.GetFaultsResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ADMIN_SERVICE_NAME, handlers),))


@dataclass(frozen=True)
class FaultHooks:
    """What ``create_server``/``serve`` need to run a node with fault injection.

    Pass as ``create_server(config, **hooks.server_kwargs())``.

    Attributes:
        injector: the node's injector (tests change faults through it directly).
        interceptors: the fault interceptor.
        extra_services: registers NodeAdmin.
        extra_service_names: ``qpumesh.v1.NodeAdmin``, for reflection.
    """

    injector: FaultInjector
    interceptors: tuple[grpc.ServerInterceptor, ...]  # type: ignore[type-arg]
    extra_services: tuple[Callable[[grpc.Server], None], ...]
    extra_service_names: tuple[str, ...]

    def server_kwargs(self) -> dict[str, Sequence[Any]]:
        """Return the keyword arguments of ``create_server``/``serve``."""
        return {
            "interceptors": self.interceptors,
            "extra_services": self.extra_services,
            "extra_service_names": self.extra_service_names,
        }


def fault_hooks(
    settings: FaultSettings | None = None,
    *,
    node_id: str = "",
    on_crash: Callable[[], None] | None = None,
) -> FaultHooks:
    """Build the injector, interceptor and admin service of one node.

    Args:
        settings: initial faults and admin token (default: no faults, admin disabled).
        node_id: the node's name, for logs and GetFaults.
        on_crash: see ``FaultInjector``.
    """
    settings = settings or FaultSettings()
    injector = FaultInjector(settings.faults, node_id=node_id, on_crash=on_crash)
    admin = NodeAdmin(injector, settings.admin_token)
    if not settings.admin_token:
        logger.info("NodeAdmin disabled (no %s)", ADMIN_TOKEN_ENV)
    return FaultHooks(
        injector=injector,
        interceptors=(FaultInterceptor(injector),),
        extra_services=(admin.add_to_server,),
        extra_service_names=(ADMIN_SERVICE_NAME,),
    )
