"""HTTPS for the HTTP sides (the coordinator's dashboard, a node's ``/metrics``) with the gRPC TLS files.

A server with a ``TlsConfig`` serves its HTTP side over TLS with the same certificate.
A node's ``/metrics`` checks client certificates as its gRPC port does (mutual TLS: only
holders of a certificate from its CA, e.g. Prometheus, read it). The coordinator's
dashboard asks for none: browsers rarely hold one, and its users authenticate with
bearer tokens (``--auth-tokens``; ``qpumesh.coordinator.web.access``).

The handshake runs in the connection's own thread (``TlsServerMixin.finish_request``),
bounded by ``HANDSHAKE_SECONDS``, never in the accepting thread: a client that connects
and stays silent holds one thread for a few seconds, not the whole server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

from qpumesh.wire.tls import TlsConfig, TlsError

logger = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 10.0
"""How long a client may take to finish the TLS handshake."""


def ssl_server_context(tls: TlsConfig, client_certs: bool = True) -> ssl.SSLContext:
    """Return an ``ssl`` server context of ``tls`` (TLS 1.2 or newer).

    Args:
        tls: the certificate, key and CA.
        client_certs: check client certificates as the gRPC port does (``tls.ca`` and
            ``tls.require_client_cert``); False: ask for none.

    Raises:
        TlsError: ``tls`` has no certificate (a server needs one).
    """
    if tls.cert is None or tls.key is None:
        raise TlsError("an HTTPS server needs a certificate and its key (--tls-cert, --tls-key)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads a key only from a file: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="qpumesh-tls-") as directory:
        cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
        for path, data in ((cert, tls.cert), (key, tls.key)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
        context.load_cert_chain(cert, key)
    if tls.ca is not None and client_certs:
        context.load_verify_locations(cadata=tls.ca.decode("ascii"))
        context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return context


class TlsServerMixin:
    """Mix into a ``socketserver`` threading server (first) to serve TLS on accepted connections.

    Set ``ssl_context`` on the class or instance before serving.
    """

    ssl_context: ssl.SSLContext

    def get_request(self) -> tuple[Any, Any]:
        """Accept a connection and wrap it; the handshake waits for ``finish_request``."""
        connection, address = self.socket.accept()  # type: ignore[attr-defined]
        wrapped = self.ssl_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Finish the handshake (bounded) in the connection's thread, then handle the request."""
        assert isinstance(request, ssl.SSLSocket)
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            request.do_handshake()
        except (OSError, ssl.SSLError) as error:  # a client that cannot or will not do TLS
            logger.debug("TLS handshake with %s failed: %s", client_address, error)
            return
        request.settimeout(None)
        super().finish_request(request, client_address)  # type: ignore[misc]

    def shutdown_request(self, request: Any) -> None:
        """Close the connection (a failed handshake leaves nothing to shut down)."""
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
        request.close()


def tls_server_class(base: type[Any], tls: TlsConfig | None, client_certs: bool = True) -> type[Any]:
    """Return ``base`` serving TLS of ``tls`` (``base`` itself when ``tls`` is None).

    ``client_certs``: see ``ssl_server_context``.

    Raises:
        TlsError: ``tls`` has no certificate.
    """
    if tls is None:
        return base
    return type(
        f"Tls{base.__name__}", (TlsServerMixin, base), {"ssl_context": ssl_server_context(tls, client_certs)}
    )
