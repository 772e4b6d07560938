from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from qpumesh.coordinator.config import ConfigError, CoordinatorConfig, add_arguments, build_config
from qpumesh.coordinator.mesh.options import PoolOptions


def _flags(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(list(argv)))


def test_environment_is_parsed_into_the_config() -> None:
    config = build_config(
        _flags(),
        {
            "QPUMESH_PORT": "6000",
            "QPUMESH_HOST": "127.0.0.1",
            "QPUMESH_DATA_DIR": "/tmp/q",
            "QPUMESH_NODES": "dns:qpu:50051",
            "QPUMESH_RPC_TIMEOUT": "2.5",
            "QPUMESH_HEDGE_AFTER_MS": "150",
            "QPUMESH_MAX_ATTEMPTS": "3",
            "QPUMESH_UNRELATED": "x",
        },
    )
    assert config == CoordinatorConfig(
        port=6000,
        host="127.0.0.1",
        data_dir=Path("/tmp/q"),
        nodes="dns:qpu:50051",
        pool=PoolOptions(timeout_seconds=2.5, hedge_after_seconds=0.15, max_attempts=3),
    )
    assert config.db_path == Path("/tmp/q/jobs.db") and config.checkpoint_dir == Path("/tmp/q/checkpoints")


def test_flags_win_over_the_environment() -> None:
    config = build_config(
        _flags("--port", "0", "--in-process", "--data-dir", "d"),
        {"QPUMESH_PORT": "6000", "QPUMESH_NODES": "a:1"},
    )
    assert config.port == 0 and config.in_process and config.nodes == "" and config.data_dir == Path("d")
    config = build_config(_flags("--nodes", "b:2"), {"QPUMESH_IN_PROCESS": "1"})
    assert config.nodes == "b:2" and not config.in_process
    assert build_config(_flags(), {"QPUMESH_IN_PROCESS": "yes", "QPUMESH_NODES": ""}).in_process


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"QPUMESH_PORT": "http", "QPUMESH_IN_PROCESS": "1"}, "QPUMESH_PORT: expected an integer"),
        ({"QPUMESH_PORT": "70000", "QPUMESH_IN_PROCESS": "1"}, "QPUMESH_PORT: expected an integer 0..65535"),
        ({"QPUMESH_IN_PROCESS": "maybe"}, "QPUMESH_IN_PROCESS: expected 1/true"),
        ({"QPUMESH_NODES": "a:1", "QPUMESH_RPC_TIMEOUT": "0"}, "QPUMESH_RPC_TIMEOUT: expected a number > 0"),
        ({"QPUMESH_NODES": "a:1", "QPUMESH_HEDGE_AFTER_MS": "-1"}, "QPUMESH_HEDGE_AFTER_MS: expected a"),
        ({"QPUMESH_NODES": "a:1", "QPUMESH_MAX_ATTEMPTS": "0"}, "QPUMESH_MAX_ATTEMPTS: expected an"),
        ({}, "no QPU nodes: set QPUMESH_NODES"),
        ({"QPUMESH_NODES": "localhost"}, "QPUMESH_NODES: node target 'localhost' has no port"),
        ({"QPUMESH_NODES": "a:1", "QPUMESH_IN_PROCESS": "1"}, "either nodes"),
    ],
)
def test_bad_settings_fail_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(_flags(), environ)


def test_bad_flag_values_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _flags("--port", "-1")
    assert "--port: expected an integer 0..65535" in capsys.readouterr().err


def test_security_settings_from_the_environment(tmp_path: Path) -> None:
    from qpumesh.client.certs import make_certificates

    certs = make_certificates(tmp_path / "certs")
    tokens = tmp_path / "tokens"
    tokens.write_text("a-token-of-sixteen-chars alice\n")
    (tmp_path / "data").mkdir()
    config = build_config(
        _flags(),
        {
            "QPUMESH_IN_PROCESS": "1",
            "QPUMESH_TLS_CERT": str(certs.server_cert),
            "QPUMESH_TLS_KEY": str(certs.server_key),
            "QPUMESH_TLS_CA": str(certs.ca),
            "QPUMESH_TLS_CLIENT_AUTH": "optional",
            "QPUMESH_AUTH_TOKENS": str(tokens),
            "QPUMESH_DATA_ROOT": str(tmp_path / "data"),
            "QPUMESH_MAX_STREAMS": "7",
        },
    )
    assert config.tls is not None and config.tls.ca is not None and not config.tls.mutual
    assert config.auth is not None and len(config.auth) == 1
    assert config.data_root == tmp_path / "data" and config.max_streams == 7


def test_defaults_bind_this_machine_only_without_tls_or_tokens() -> None:
    # Defect 3: every interface ([::]) by default. Containers set QPUMESH_HOST=0.0.0.0 explicitly.
    config = build_config(_flags(), {"QPUMESH_IN_PROCESS": "1"})
    assert config.host == "127.0.0.1"
    assert config.tls is None and config.auth is None and config.data_root is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"QPUMESH_AUTH_TOKENS": "/nonexistent/tokens"}, "cannot read the token file /nonexistent/tokens"),
        ({"QPUMESH_TLS_CERT": "/nonexistent.pem"}, "--tls-cert (QPUMESH_TLS_CERT) needs --tls-key"),
        ({"QPUMESH_DATA_ROOT": "/nonexistent/dir"}, "data root /nonexistent/dir is not a directory"),
        ({"QPUMESH_MAX_STREAMS": "0"}, "QPUMESH_MAX_STREAMS: expected an integer 1..1000000"),
    ],
)
def test_bad_security_settings_fail_naming_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(_flags(), {"QPUMESH_IN_PROCESS": "1", **environ})
