"""Where every gRPC channel and server option of qpumesh comes from.

One factory for the blocking channels (``open_channel``: ``NodeClient``,
``CoordinatorClient``, the CLI, health checks) and the asyncio channels
(``open_aio_channel``: the coordinator's node mesh), and one set of server options
(``server_options``: node and coordinator). Transport security, when it comes, is
added here and nowhere else: a test fails on any channel opened elsewhere.

Channels impose no message-size limit of their own (each server enforces its limit
and says so in the error); servers take theirs from their configuration.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor

MAX_MESSAGE_BYTES = 2**31 - 1
"""The largest message gRPC can express (its channel arguments are C ints)."""

ChannelOptions = list[tuple[str, Any]]


def channel_options(
    *, reconnect_max_ms: int | None = None, retry_unavailable: ServiceDescriptor | None = None
) -> ChannelOptions:
    """Return the options of a qpumesh channel.

    Args:
        reconnect_max_ms: reconnect to a server that went away after 200 ms, backing off to
            at most this many ms (gRPC's default backoff grows to 120 s, too slow to notice a
            restarted node or coordinator); None keeps gRPC's defaults.
        retry_unavailable: retry calls of this service that never reached a server
            (UNAVAILABLE) up to 3 times, declared in the service config as gRPC recommends;
            INVALID_ARGUMENT & co. are never retried.
    """
    options: ChannelOptions = [
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
    ]
    if reconnect_max_ms is not None:
        options += [
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", reconnect_max_ms),
        ]
    if retry_unavailable is not None:
        policy = {
            "maxAttempts": 3,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        config = {
            "methodConfig": [{"name": [{"service": retry_unavailable.full_name}], "retryPolicy": policy}]
        }
        options += [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(config))]
    return options


def open_channel(
    address: str, *, reconnect_max_ms: int | None = None, retry_unavailable: ServiceDescriptor | None = None
) -> grpc.Channel:
    """Open a blocking channel to ``host:port`` (see ``channel_options`` for the arguments)."""
    options = channel_options(reconnect_max_ms=reconnect_max_ms, retry_unavailable=retry_unavailable)
    return grpc.insecure_channel(address, options=options)


def open_aio_channel(address: str, *, reconnect_max_ms: int | None = None) -> grpc.aio.Channel:
    """Open an asyncio channel to ``host:port``; call it on the event loop that will use it."""
    return grpc.aio.insecure_channel(address, options=channel_options(reconnect_max_ms=reconnect_max_ms))


def server_options(max_message_bytes: int) -> ChannelOptions:
    """Return the options of a qpumesh server that accepts and sends messages up to ``max_message_bytes``."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Never share a port with another process: port 0 must mean a port of our own.
        ("grpc.so_reuseport", 0),
    ]


def listen_address(host: str, port: int) -> str:
    """Return the ``host:port`` a server listens on (port 0: any free port).

    Raises:
        ValueError: the port is outside 0..65535 or the host is empty.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    if not host:
        raise ValueError("host must not be empty; use [::] to listen on every interface")
    return f"{host}:{port}"


def bind(server: grpc.Server, address: str) -> int:
    """Listen on ``host:port`` (port 0: any free port) and return the bound port.

    Raises:
        OSError: the address cannot be bound.
    """
    try:
        port = int(server.add_insecure_port(address))
    except RuntimeError as error:
        raise OSError(f"cannot listen on {address}: {error}") from error
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port
