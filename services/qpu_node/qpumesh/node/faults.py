"""A node's faults at start-up, and the pieces a server needs to inject them.

``FaultSettings`` (the initial ``FaultConfig`` and the admin token) come from
``QPUMESH_FAULT_*`` / ``QPUMESH_ADMIN_TOKEN`` or ``qpumesh node serve --fault-* /
--admin-token`` (flags win); ``fault_hooks`` builds the node's ``FaultInjector``, its
interceptor and the ``NodeAdmin`` service for ``create_server``/``serve``. docs/faults.md
is the user reference.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client.registry import Collector

from qpumesh.node.fault_injection import FaultCollector, FaultInjector, FaultInterceptor
from qpumesh.node.node_admin import NodeAdmin
from qpumesh.wire.fault_config import (
    ADMIN_SERVICE,
    ADMIN_TOKEN_ENV,
    ADMIN_TOKEN_FLAG,
    FAULT_OPTIONS,
    FaultConfig,
    FaultConfigError,
)
from qpumesh.wire.settings import add_arguments, given_flags, read_environment

logger = logging.getLogger(__name__)

_DEST_PREFIX = "fault_"
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
    add_arguments(group, FAULT_OPTIONS, dest_prefix=_DEST_PREFIX)
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
    given = given_flags(FAULT_OPTIONS, flags, dest_prefix=_DEST_PREFIX)
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


@dataclass(frozen=True)
class FaultHooks:
    """What ``create_server``/``serve`` need to run a node with fault injection.

    Pass as ``create_server(config, **hooks.server_kwargs())``.

    Attributes:
        injector: the node's injector (tests change faults through it directly).
        interceptors: the fault interceptor.
        extra_services: registers NodeAdmin.
        extra_service_names: ``qpumesh.v1.NodeAdmin``, for reflection.
        collectors: the injector's metrics (``FaultCollector``), for the node's registry.
    """

    injector: FaultInjector
    interceptors: tuple[grpc.ServerInterceptor, ...]  # type: ignore[type-arg]
    extra_services: tuple[Callable[[grpc.Server], None], ...]
    extra_service_names: tuple[str, ...]
    collectors: tuple[Collector, ...] = ()

    def server_kwargs(self) -> dict[str, Sequence[Any]]:
        """Return the keyword arguments of ``create_server``/``serve``."""
        return {
            "interceptors": self.interceptors,
            "extra_services": self.extra_services,
            "extra_service_names": self.extra_service_names,
            "collectors": self.collectors,
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
        extra_service_names=(ADMIN_SERVICE.full_name,),
        collectors=(FaultCollector(injector),),
    )
