"""TLS settings: PEM files read and checked once, errors naming the flag (qpumesh.wire.tls)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from qpumesh.client.certs import make_certificates
from qpumesh.client.cli import main
from qpumesh.wire.tls import TlsError, client_tls, load_tls


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_certificates(tmp_path_factory.mktemp("certs"), ["qpu", "10.0.0.7"])


def test_server_and_client_configs(certs) -> None:  # type: ignore[no-untyped-def]
    server = load_tls(certs.server_cert, certs.server_key, certs.ca)
    assert server is not None and server.mutual and server.cert == certs.server_cert.read_bytes()
    optional = load_tls(certs.server_cert, certs.server_key, certs.ca, client_auth="optional")
    assert optional is not None and not optional.mutual
    only_ca = load_tls(ca=certs.ca, server_name="qpu")
    assert only_ca is not None and only_ca.cert is None and only_ca.server_name == "qpu"
    assert load_tls() is None
    assert "BEGIN" not in repr(server)  # never print key material


def test_flags_win_over_variables(certs) -> None:  # type: ignore[no-untyped-def]
    environ = {"QPUMESH_TLS_CA": str(certs.ca), "QPUMESH_TLS_CERT": "/nonexistent", "QPUMESH_TLS_KEY": "/x"}
    flags = {"tls_cert": certs.client_cert, "tls_key": certs.client_key}
    tls = client_tls(flags, environ)
    assert tls is not None and tls.cert == certs.client_cert.read_bytes() and tls.ca == certs.ca.read_bytes()
    assert client_tls({}, {}) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cert": "server_cert"}, "--tls-cert (QPUMESH_TLS_CERT) needs --tls-key (QPUMESH_TLS_KEY) too"),
        ({"key": "server_key"}, "--tls-key (QPUMESH_TLS_KEY) needs --tls-cert"),
        ({"cert": "server_cert", "key": "client_key"}, "is not the key of the certificate"),
        ({"ca": "missing"}, "--tls-ca (QPUMESH_TLS_CA): cannot read"),
        ({"ca": "not_pem"}, "is not a PEM file"),
        ({"cert": "server_key", "key": "server_key"}, "not a PEM certificate"),
    ],
)
def test_unusable_files_are_refused_naming_the_flag(certs, tmp_path: Path, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "not.pem").write_text("hello")
    paths = {
        "server_cert": certs.server_cert,
        "server_key": certs.server_key,
        "client_key": certs.client_key,
        "missing": tmp_path / "missing.pem",
        "not_pem": tmp_path / "not.pem",
    }
    with pytest.raises(TlsError, match=re.escape(message)):
        load_tls(**{name: paths[value] for name, value in kwargs.items()})


def test_certs_init_writes_a_ca_and_keys_only_the_owner_can_read(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "certs"
    assert main(["certs", "init", str(out), "--hosts", "qpu,coordinator,192.168.1.5"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ca.crt", "ca.key", "client.crt", "client.key", "server.crt", "server.key"]
    for key in ("ca.key", "server.key", "client.key"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600
    from cryptography import x509

    server = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"qpu", "coordinator", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert "192.168.1.5" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    server.verify_directly_issued_by(ca)
    # A second init refuses to overwrite, --if-missing keeps the files, --force replaces them.
    before = (out / "ca.crt").read_bytes()
    assert main(["certs", "init", str(out)]) == 2
    assert "already holds" in capsys.readouterr().err
    assert main(["certs", "init", str(out), "--if-missing"]) == 0
    assert (out / "ca.crt").read_bytes() == before
    assert main(["certs", "init", str(out), "--force"]) == 0
    assert (out / "ca.crt").read_bytes() != before
