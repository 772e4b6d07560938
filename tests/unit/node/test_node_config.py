"""Node server settings from flags and environment variables (qpumesh.node.config)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from qpumesh.client.certs import make_certificates
from qpumesh.node.config import OPTIONS, ConfigError, ServerConfig, add_arguments, build_config
from qpumesh.node.core import NodeConfig


def parse_flags(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(list(argv)))


def test_defaults_without_flags_or_environment() -> None:
    config = build_config({}, {})
    # Only this machine unless told otherwise (containers set QPUMESH_HOST=0.0.0.0).
    assert (config.port, config.host, config.workers) == (50051, "127.0.0.1", 1)
    assert config.tls is None
    assert config.node.node_id == socket.gethostname()
    assert config.node.backend == NodeConfig(node_id="x").backend
    assert not config.node.noise.is_noisy


def test_every_environment_variable_reaches_the_config(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    environ = {
        "QPUMESH_TLS_CERT": str(certs.server_cert),
        "QPUMESH_TLS_KEY": str(certs.server_key),
        "QPUMESH_TLS_CA": str(certs.ca),
        "QPUMESH_PORT": "6000",
        "QPUMESH_HOST": "0.0.0.0",
        "QPUMESH_NODE_ID": "qpu-3",
        "QPUMESH_BACKEND": "qsim",
        "QPUMESH_MAX_QUBITS": "12",
        "QPUMESH_DEPOLARIZING_1Q": "0.001",
        "QPUMESH_DEPOLARIZING_2Q": "0.01",
        "QPUMESH_READOUT_ERROR": "0.02",
        "QPUMESH_NOISE_METHOD": "trajectories",
        "QPUMESH_TRAJECTORIES": "50",
        "QPUMESH_DEFAULT_SHOTS": "1000",
        "QPUMESH_MAX_BATCH_ROWS": "5000",
        "QPUMESH_MAX_MESSAGE_BYTES": "16MiB",
        "QPUMESH_PRECISION": "single",
        "QPUMESH_CIRCUIT_CACHE_SIZE": "32",
        "QPUMESH_WORKERS": "3",
        "QPUMESH_GRACE_SECONDS": "2.5",
        "QPUMESH_TORCH_THREADS": "2",
        "QPUMESH_PORT_FILE": "/tmp/node.port",
        "QPUMESH_MAX_CIRCUIT_BYTES": "1MiB",
        "QPUMESH_MAX_CIRCUIT_OPERATIONS": "500",
        "QPUMESH_MAX_REQUEST_COST": "2.5e9",
        "QPUMESH_MAX_QUEUED_REQUESTS": "7",
        "QPUMESH_METRICS_PORT": "9100",
        "QPUMESH_HARDWARE": "trapped-ion",
        "QPUMESH_ZNE_SCALE_FACTORS": "1,2,3",
        "QPUMESH_ZNE_FOLDING": "gates_at_random",
        "QPUMESH_ZNE_EXTRAPOLATION": "linear",
    }
    config = build_config({}, environ)
    node, noise = config.node, config.node.noise
    assert (config.port, config.host, config.workers, config.grace_seconds) == (6000, "0.0.0.0", 3, 2.5)
    assert config.torch_threads == 2 and str(config.port_file) == "/tmp/node.port"
    assert config.metrics_port == 9100
    assert (node.node_id, node.backend, node.max_qubits, node.precision) == ("qpu-3", "qsim", 12, "single")
    assert (node.default_shots, node.max_batch_rows, node.max_message_bytes) == (1000, 5000, 16 * 2**20)
    assert node.circuit_cache_size == 32
    assert node.hardware.name == "trapped-ion"
    zne = node.zne
    assert (zne.scale_factors, zne.folding, zne.extrapolation) == ((1, 2, 3), "gates_at_random", "linear")
    assert (node.max_circuit_bytes, node.max_circuit_operations) == (2**20, 500)
    assert node.max_request_cost == 2_500_000_000
    assert config.max_queued_requests == 7
    assert (noise.depolarizing_1q, noise.depolarizing_2q, noise.readout_error) == (0.001, 0.01, 0.02)
    assert (noise.method, noise.trajectories) == ("trajectories", 50)
    assert config.tls is not None and config.tls.mutual and config.tls.cert == certs.server_cert.read_bytes()
    assert {option.env for option in OPTIONS} == set(environ)


def test_flags_override_the_environment() -> None:
    flags = parse_flags("--port", "0", "--backend", "cirq", "--shots", "10", "--depolarizing-1q", "0.05")
    environ = {"QPUMESH_PORT": "7000", "QPUMESH_BACKEND": "qsim", "QPUMESH_NODE_ID": "env-node"}
    config = build_config(flags, environ)
    assert config.port == 0
    assert config.node.backend == "cirq"
    assert config.node.default_shots == 10
    assert config.node.noise.depolarizing_1q == 0.05
    assert config.node.node_id == "env-node"  # not given as a flag: the environment's


def test_empty_environment_variables_count_as_unset() -> None:
    assert build_config({}, {"QPUMESH_PORT": "", "QPUMESH_BACKEND": "  "}).port == 50051


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("QPUMESH_PORT", "http", "expected an integer"),
        ("QPUMESH_PORT", "70000", "in 0..65535"),
        ("QPUMESH_WORKERS", "0", "in 1..1024"),
        ("QPUMESH_BACKEND", "gpu", "expected one of batched, qsim, cirq"),
        ("QPUMESH_DEPOLARIZING_1Q", "1.5", "probability in [0, 1)"),
        ("QPUMESH_READOUT_ERROR", "nan", "probability in [0, 1)"),
        ("QPUMESH_NOISE_METHOD", "exact", "density_matrix, trajectories"),
        ("QPUMESH_MAX_MESSAGE_BYTES", "64 parsecs", "byte count"),
        ("QPUMESH_MAX_MESSAGE_BYTES", "4GiB", "a gRPC limit"),
        ("QPUMESH_DEFAULT_SHOTS", "-1", "integer >= 0"),
        ("QPUMESH_GRACE_SECONDS", "inf", "finite number of seconds"),
    ],
)
def test_a_bad_environment_variable_fails_loudly_naming_it(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({}, {variable: value})
    message = str(caught.value)
    assert message.startswith(f"environment variable {variable}:")
    assert expected in message


def test_a_bad_flag_is_an_argparse_error_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_flags("--max-qubits", "lots")
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--max-qubits" in err and "expected an integer, got 'lots'" in err


def test_server_config_validates_its_own_fields() -> None:
    node = NodeConfig(node_id="n")
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        ServerConfig(node=node, workers=0)
    with pytest.raises(ConfigError, match=r"port must be in 0\.\.65535"):
        ServerConfig(node=node, port=-1)
    assert ServerConfig(node=node, host="127.0.0.1", port=0).bind_address == "127.0.0.1:0"


def test_every_option_has_a_distinct_flag_and_variable() -> None:
    assert len({o.flag for o in OPTIONS}) == len({o.env for o in OPTIONS}) == len(OPTIONS)
    assert all(o.env.startswith("QPUMESH_") for o in OPTIONS)


def test_a_tls_node_needs_its_certificate_key_and_ca(tmp_path: Path) -> None:
    # "When TLS is on, nodes accept only clients with a certificate from the CA."
    certs = make_certificates(tmp_path)
    with pytest.raises(ConfigError, match="a TLS node needs --tls-cert, --tls-key and --tls-ca"):
        build_config(
            {}, {"QPUMESH_TLS_CERT": str(certs.server_cert), "QPUMESH_TLS_KEY": str(certs.server_key)}
        )
    with pytest.raises(ConfigError, match="a TLS node needs"):
        build_config({}, {"QPUMESH_TLS_CA": str(certs.ca)})
    with pytest.raises(
        ConfigError, match="--tls-key \\(QPUMESH_TLS_KEY\\) is not the key of the certificate"
    ):
        build_config(
            {}, {"QPUMESH_TLS_CERT": str(certs.server_cert), "QPUMESH_TLS_KEY": str(certs.client_key)}
        )
