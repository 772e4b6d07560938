"""`qpumesh node bench` measures a node through gRPC and says which engine answered."""

from __future__ import annotations

from typing import Any

import pytest

from qpumesh.client.cli import main
from qpumesh.client.node_bench import existing_node, run_benchmark


def test_the_benchmark_measures_a_running_node_through_grpc(
    node_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    address, _ = node_server(backend="qsim", max_qubits=8)
    (row,) = run_benchmark(("qsim",), quick=True, node_for=existing_node(address))
    assert (row.backend, row.engine, row.n_qubits, row.depth) == ("qsim", "qsim", 4, 2)
    assert row.eval_grpc > 0 and row.jac_grpc > 0
    assert row.eval_local is None and row.jac_local is None  # no engine in this process
    table = capsys.readouterr().out.splitlines()
    assert table[-1].split()[:3] == ["qsim", "qsim", "4"] and " - " in table[-1]


def test_bench_of_an_unreachable_node_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "bench", "--node", "127.0.0.1:1", "--quick"]) == 1
    assert "qpumesh node bench: 127.0.0.1:1: UNAVAILABLE" in capsys.readouterr().err
