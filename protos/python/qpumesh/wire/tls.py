"""Transport security: the PEM files of a server or a client, read once, and their settings.

Every qpumesh server and client takes the same three files (``--tls-cert``, ``--tls-key``,
``--tls-ca`` or ``QPUMESH_TLS_CERT``, ``QPUMESH_TLS_KEY``, ``QPUMESH_TLS_CA``):

- a **server** (node, coordinator) with a certificate and its key serves TLS only; with a
  CA too it requires every client to present a certificate signed by that CA (mutual
  TLS). The coordinator may relax that to ``--tls-client-auth optional`` (its users then
  authenticate with bearer tokens; its node connections stay mutual TLS).
- a **client** (CLI, ``NodeClient``, ``CoordinatorClient``, the coordinator's node mesh)
  with a CA verifies the server's certificate against it (without one: the system's
  roots); with a certificate and key it presents them (mutual TLS).
  ``--tls-server-name`` / ``QPUMESH_TLS_SERVER_NAME`` names the host the server's
  certificate must be for when the address is not (an IP outside the certificate).

The files are read and checked once, when the settings are read (a missing file, a key
that is not the certificate's, or a file that is not PEM stops start-up with a message
naming the flag or variable), so a bad file is never a handshake failure at the first
call. ``qpumesh.wire.channels`` is the only place that uses a ``TlsConfig``'s gRPC
credentials (grpc and cryptography are imported only when needed, so command lines that
merely declare these flags stay fast). ``qpumesh certs init`` (the client) makes a private CA and these files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpumesh.wire.settings import Option, choice, given_flags, nonempty, read_environment

if TYPE_CHECKING:
    import grpc

CLIENT_AUTH_MODES = ("require", "optional")
"""With a CA, whether a server requires client certificates or only checks those it gets."""


class TlsError(ValueError):
    """A TLS file cannot be used; the message names the flag or variable to fix."""


def _path(text: str) -> Path:
    return Path(nonempty(text)).expanduser()


# fmt: off
CERT_OPTION = Option("tls_cert", "QPUMESH_TLS_CERT", "--tls-cert", _path,
                     "PEM certificate (chain) this process presents; with --tls-key", "FILE")
KEY_OPTION = Option("tls_key", "QPUMESH_TLS_KEY", "--tls-key", _path,
                    "PEM private key of --tls-cert", "FILE")
CA_OPTION = Option("tls_ca", "QPUMESH_TLS_CA", "--tls-ca", _path,
                   "PEM CA certificate(s) the peer's certificate must be signed by", "FILE")
SERVER_NAME_OPTION = Option("tls_server_name", "QPUMESH_TLS_SERVER_NAME", "--tls-server-name", nonempty,
                            "host name the server's certificate must be for (default: the address's host)",
                            "NAME")
CLIENT_AUTH_OPTION = Option("tls_client_auth", "QPUMESH_TLS_CLIENT_AUTH", "--tls-client-auth",
                            choice(*CLIENT_AUTH_MODES),
                            "with --tls-ca: require client certificates (default) or accept clients "
                            "without one (they authenticate with tokens)", "|".join(CLIENT_AUTH_MODES))
# fmt: on

SERVER_OPTIONS: tuple[Option, ...] = (CERT_OPTION, KEY_OPTION, CA_OPTION)
"""A node's TLS settings (a CA given = clients must present a certificate it signed)."""
CLIENT_OPTIONS: tuple[Option, ...] = (CA_OPTION, CERT_OPTION, KEY_OPTION, SERVER_NAME_OPTION)
"""A client's TLS settings (CLI, ``NodeClient``, ``CoordinatorClient``)."""
COORDINATOR_OPTIONS: tuple[Option, ...] = (CERT_OPTION, KEY_OPTION, CA_OPTION, CLIENT_AUTH_OPTION)
"""The coordinator's: its server's, which its node connections use too."""

TLS_DESTS = frozenset(o.dest for o in (*SERVER_OPTIONS, *CLIENT_OPTIONS, CLIENT_AUTH_OPTION))
"""Every ``dest`` of the TLS settings (config builders take them out of their values)."""


@dataclass(frozen=True, repr=False)
class TlsConfig:
    """PEM data of one process's side of its TLS connections (read once, at start-up).

    Attributes:
        cert: certificate chain presented to the peer (None: none).
        key: its private key.
        ca: CA certificates the peer's certificate is checked against (None: a client uses
            the system's roots; a server does not ask for client certificates).
        require_client_cert: a server with ``ca`` refuses clients without a certificate.
        server_name: a client checks the server's certificate for this host name instead
            of the address's host ("": the address's).
        source: where the files came from, for messages and logs.
    """

    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None
    require_client_cert: bool = True
    server_name: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise TlsError("a certificate needs its key, and a key its certificate (--tls-cert, --tls-key)")
        if self.cert is None and self.ca is None:
            raise TlsError("TLS needs a certificate and key, or a CA (--tls-cert/--tls-key, --tls-ca)")

    def __repr__(self) -> str:  # never print key material
        return f"TlsConfig({self.describe()})"

    @property
    def mutual(self) -> bool:
        """A server that requires client certificates (a CA given and client auth required)."""
        return self.ca is not None and self.require_client_cert

    def describe(self) -> str:
        """One line for logs: what is on, and from which files."""
        parts = []
        if self.cert is not None:
            parts.append("certificate")
        if self.ca is not None:
            parts.append("CA" + ("" if self.require_client_cert else " (client certificates optional)"))
        if self.server_name:
            parts.append(f"server name {self.server_name}")
        where = f" from {self.source}" if self.source else ""
        return ", ".join(parts) + where

    def server_credentials(self) -> grpc.ServerCredentials:
        """Return the credentials of a server port.

        Raises:
            TlsError: there is no certificate (a server needs one).
        """
        import grpc

        if self.cert is None or self.key is None:
            raise TlsError("a TLS server needs a certificate and its key (--tls-cert, --tls-key)")
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.ca,
            require_client_auth=self.ca is not None and self.require_client_cert,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Return the credentials of a client channel."""
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def load_tls(
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    ca: str | os.PathLike[str] | None = None,
    *,
    client_auth: str = "require",
    server_name: str = "",
) -> TlsConfig | None:
    """Read and check TLS files; None when none is given (plaintext).

    Args:
        cert: PEM certificate (chain).
        key: PEM private key of ``cert``.
        ca: PEM CA certificate(s).
        client_auth: "require" or "optional" (servers with a CA).
        server_name: see ``TlsConfig.server_name``.

    Raises:
        TlsError: a file is missing or unreadable, is not PEM, the key is not the
            certificate's, or only one of certificate and key is given (names the flag).
    """
    if cert is None and key is None and ca is None:
        if server_name:
            raise TlsError(f"{SERVER_NAME_OPTION.flag} needs TLS: give {CA_OPTION.flag} (or a certificate)")
        return None
    if (cert is None) != (key is None):
        given, missing = (CERT_OPTION, KEY_OPTION) if key is None else (KEY_OPTION, CERT_OPTION)
        raise TlsError(f"{given.flag} ({given.env}) needs {missing.flag} ({missing.env}) too")
    if client_auth not in CLIENT_AUTH_MODES:
        raise TlsError(f"{CLIENT_AUTH_OPTION.flag}: expected one of {', '.join(CLIENT_AUTH_MODES)}")
    cert_pem = _read(cert, CERT_OPTION)
    key_pem = _read(key, KEY_OPTION)
    ca_pem = _read(ca, CA_OPTION)
    _check_pem(cert_pem, key_pem, ca_pem)
    sources = ", ".join(str(p) for p in (cert, key, ca) if p is not None)
    return TlsConfig(
        cert=cert_pem,
        key=key_pem,
        ca=ca_pem,
        require_client_cert=client_auth == "require",
        server_name=server_name,
        source=sources,
    )


def tls_from_values(values: Mapping[str, Any]) -> TlsConfig | None:
    """Build a ``TlsConfig`` from settings by ``dest`` (``tls_cert``, ...); None without any.

    Raises:
        TlsError: see ``load_tls``.
    """
    return load_tls(
        values.get("tls_cert"),
        values.get("tls_key"),
        values.get("tls_ca"),
        client_auth=values.get("tls_client_auth") or "require",
        server_name=values.get("tls_server_name") or "",
    )


def client_tls(flags: Mapping[str, Any], environ: Mapping[str, str]) -> TlsConfig | None:
    """Return a client's TLS from its ``--tls-*`` flags (parsed, by ``dest``) and ``QPUMESH_TLS_*``.

    A flag replaces its variable; None when neither gives anything (plaintext).

    Raises:
        TlsError: a file is unusable (naming the flag or variable).
    """
    values = read_environment(CLIENT_OPTIONS, environ, TlsError) | given_flags(CLIENT_OPTIONS, flags)
    return tls_from_values(values)


def client_tls_from_environment(environ: Mapping[str, str]) -> TlsConfig | None:
    """Return a client's TLS from ``QPUMESH_TLS_*`` alone (None when none is set).

    Raises:
        TlsError: a variable names an unusable file.
    """
    return tls_from_values(read_environment(CLIENT_OPTIONS, environ, TlsError))


def _read(given: str | os.PathLike[str] | None, option: Option) -> bytes | None:
    if given is None:
        return None
    path = Path(given)
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise TlsError(f"{option.flag} ({option.env}): cannot read {path}: {reason}") from None
    if b"-----BEGIN " not in data:
        raise TlsError(f"{option.flag} ({option.env}): {path} is not a PEM file")
    return data


def _check_pem(cert: bytes | None, key: bytes | None, ca: bytes | None) -> None:
    """Parse the PEM data, and check that the key belongs to the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificate = x509.load_pem_x509_certificate(cert) if cert is not None else None
    except ValueError:
        raise TlsError(f"{CERT_OPTION.flag} ({CERT_OPTION.env}): not a PEM certificate") from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None) if key is not None else None
    except (ValueError, TypeError):
        raise TlsError(f"{KEY_OPTION.flag} ({KEY_OPTION.env}): not an unencrypted PEM private key") from None
    if ca is not None:
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise TlsError(f"{CA_OPTION.flag} ({CA_OPTION.env}): not PEM CA certificate(s)") from None
    if certificate is not None and private_key is not None:
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        encoding = serialization.Encoding.DER
        if certificate.public_key().public_bytes(encoding, public) != private_key.public_key().public_bytes(
            encoding, public
        ):
            raise TlsError(
                f"{KEY_OPTION.flag} ({KEY_OPTION.env}) is not the key of the certificate {CERT_OPTION.flag}"
            )
