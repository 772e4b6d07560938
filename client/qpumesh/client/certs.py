"""A private certificate authority for one mesh: ``ca.crt``, ``server.crt/.key``, ``client.crt/.key``.

``make_certificates(directory, hosts)`` writes, with the ``cryptography`` library:

=============== ===========================================================================
``ca.crt``      the mesh's CA (give it to every process as ``--tls-ca``)
``ca.key``      its key: only needed to issue more certificates; keep it offline
``server.crt``  the certificate of every server (nodes, coordinator), for ``hosts``; it is
                also valid as a client certificate, which the coordinator presents to nodes
``server.key``  its key
``client.crt``  a client certificate for people and tools (CLI, ``CoordinatorClient``)
``client.key``  its key
=============== ===========================================================================

Keys are ECDSA P-256 (fast handshakes, supported by gRPC's BoringSSL), written with mode
0600; certificates 0644. ``qpumesh certs init`` is the command, the local mesh calls it for
its temporary directory, and the compose file runs it once into a volume
(docs/security.md).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Names a server certificate is always valid for (a process on this machine)."""
CA_DAYS = 3650
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
FILES = ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key")


@dataclass(frozen=True)
class MeshCertificates:
    """Paths of the files ``make_certificates`` wrote."""

    directory: Path

    @property
    def ca(self) -> Path:
        """The CA certificate (``--tls-ca``)."""
        return self.directory / "ca.crt"

    @property
    def server_cert(self) -> Path:
        """Every server's certificate (``--tls-cert`` of nodes and coordinator)."""
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        """Its key (``--tls-key``)."""
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        """The clients' certificate (``--tls-cert`` of the CLI)."""
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        """Its key."""
        return self.directory / "client.key"

    def exists(self) -> bool:
        """Whether every file is there."""
        return all((self.directory / name).is_file() for name in FILES)


def make_certificates(
    directory: str | os.PathLike[str],
    hosts: Sequence[str] = (),
    *,
    days: int = 365,
    overwrite: bool = False,
) -> MeshCertificates:
    """Create a CA and a server and a client certificate signed by it, in ``directory``.

    Args:
        directory: created if needed.
        hosts: DNS names and IP addresses the servers are reached by, besides
            ``DEFAULT_HOSTS`` (e.g. ``qpu``, ``coordinator``, ``node1.example.org``).
        days: validity of the server and client certificates (the CA's: ten years).
        overwrite: replace existing files (otherwise an existing file is an error).

    Raises:
        ValueError: a host name is empty or ``days`` < 1.
        FileExistsError: a file exists and ``overwrite`` is off.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    names = list(dict.fromkeys([*DEFAULT_HOSTS, *(h.strip() for h in hosts)]))
    if any(not name for name in names):
        raise ValueError("a host name is empty")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    result = MeshCertificates(out)
    existing = [name for name in FILES if (out / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {', '.join(existing)} (overwrite them with --force)")

    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qpumesh mesh CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(result.ca, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(out / "ca.key", _key_pem(ca_key), private=True)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    issuer = _Issuer(ca_cert, ca_key, now, days)
    issuer.issue(result.server_cert, result.server_key, "qpumesh server", names, usages)
    client_usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    issuer.issue(result.client_cert, result.client_key, "qpumesh client", (), client_usages)
    return result


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=days))
    )


@dataclass(frozen=True)
class _Issuer:
    """The CA signing leaf certificates valid from ``now`` for ``days``."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    now: datetime.datetime
    days: int

    def issue(
        self,
        cert_path: Path,
        key_path: Path,
        common_name: str,
        hosts: Sequence[str],
        usages: list[x509.ObjectIdentifier],
    ) -> None:
        """Write a leaf certificate for ``hosts`` (none: a client) and its key."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        builder = (
            _builder(subject, self.cert.subject, key.public_key(), self.now, self.days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(authority, critical=False)
        )
        if hosts:
            names = x509.SubjectAlternativeName([_general_name(h) for h in hosts])
            builder = builder.add_extension(names, critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
        _write(key_path, _key_pem(key), private=True)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write ``data`` to ``path`` (mode 0600 for keys, 0644 otherwise), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
