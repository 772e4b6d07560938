"""Where every gRPC channel and server option of qpumesh comes from.

One factory for the blocking channels (``open_channel``: ``NodeClient``,
``CoordinatorClient``, the CLI, health checks) and the asyncio channels
(``open_aio_channel``: the coordinator's node mesh), and one set of server options
(``server_options``, ``bind``: node and coordinator). Transport security is added here
and nowhere else (a test fails on any channel opened elsewhere): given a
``qpumesh.wire.tls.TlsConfig`` a channel is TLS (mutual when it holds a certificate)
and a server port serves TLS only (requiring client certificates when it holds a CA);
without one, both are plaintext.

Channels impose no message-size limit of their own (each server enforces its limit
and says so in the error); servers take theirs from their configuration.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor

from qpumesh.wire.tls import TlsConfig

MAX_MESSAGE_BYTES = 2**31 - 1
"""The largest message gRPC can express (its channel arguments are C ints)."""

ChannelOptions = list[tuple[str, Any]]


def channel_options(
    *,
    reconnect_max_ms: int | None = None,
    retry_unavailable: ServiceDescriptor | None = None,
    tls_server_name: str = "",
) -> ChannelOptions:
    """Return the options of a qpumesh channel.

    Args:
        reconnect_max_ms: reconnect to a server that went away after 200 ms, backing off to
            at most this many ms (gRPC's default backoff grows to 120 s, too slow to notice a
            restarted node or coordinator); None keeps gRPC's defaults.
        retry_unavailable: retry calls of this service that never reached a server
            (UNAVAILABLE) up to 3 times, declared in the service config as gRPC recommends;
            INVALID_ARGUMENT & co. are never retried.
        tls_server_name: check the server's certificate for this host name instead of the
            address's host (a node found by DNS is dialled by IP).
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
    if tls_server_name:
        options.append(("grpc.ssl_target_name_override", tls_server_name))
    return options


def open_channel(
    address: str,
    *,
    tls: TlsConfig | None = None,
    reconnect_max_ms: int | None = None,
    retry_unavailable: ServiceDescriptor | None = None,
) -> grpc.Channel:
    """Open a blocking channel to ``host:port``: TLS with ``tls``, else plaintext.

    See ``channel_options`` for the other arguments; ``tls.server_name`` overrides the
    name checked in the server's certificate.
    """
    options = channel_options(
        reconnect_max_ms=reconnect_max_ms,
        retry_unavailable=retry_unavailable,
        tls_server_name=tls.server_name if tls is not None else "",
    )
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, tls.channel_credentials(), options=options)


def open_aio_channel(
    address: str,
    *,
    tls: TlsConfig | None = None,
    tls_server_name: str = "",
    reconnect_max_ms: int | None = None,
) -> grpc.aio.Channel:
    """Open an asyncio channel to ``host:port``; call it on the event loop that will use it.

    Args:
        address: the server.
        tls: TLS (mutual with a certificate), or None for plaintext.
        tls_server_name: check the server's certificate for this name (default:
            ``tls.server_name``, else the address's host).
        reconnect_max_ms: see ``channel_options``.
    """
    name = tls_server_name or (tls.server_name if tls is not None else "")
    options = channel_options(reconnect_max_ms=reconnect_max_ms, tls_server_name=name if tls else "")
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, tls.channel_credentials(), options=options)


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


def bind(server: grpc.Server | grpc.aio.Server, address: str, tls: TlsConfig | None = None) -> int:
    """Listen on ``host:port`` (port 0: any free port) and return the bound port.

    With ``tls`` the port serves TLS only, and requires client certificates signed by
    ``tls.ca`` when it holds one (unless ``tls.require_client_cert`` is off).

    Raises:
        OSError: the address cannot be bound.
    """
    try:
        if tls is None:
            port = int(server.add_insecure_port(address))
        else:
            port = int(server.add_secure_port(address, tls.server_credentials()))
    except RuntimeError as error:
        raise OSError(f"cannot listen on {address}: {error}") from error
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port
