"""Per-node arguments of the local mesh: a heterogeneous mesh (one noisy node among clean ones)."""

from __future__ import annotations

import pytest

from qpumesh.client.local_mesh import LocalMesh, parse_node_args_at


def test_node_args_at_go_to_their_node_only_and_after_the_common_ones() -> None:
    mesh = LocalMesh(
        nodes=3,
        node_args=["--max-qubits=4"],
        node_args_at=parse_node_args_at(["1:--depolarizing-1q=0.01", "1:--readout-error=0.02"]),
    )
    noisy = mesh.node_command(1)
    assert noisy[-3:] == ["--max-qubits=4", "--depolarizing-1q=0.01", "--readout-error=0.02"]
    assert "--node-id" in noisy and noisy[noisy.index("--node-id") + 1] == "node-1"
    for clean in (0, 2):
        command = mesh.node_command(clean)
        assert command[-1] == "--max-qubits=4"
        assert not any("depolarizing" in a or "readout" in a for a in command)


@pytest.mark.parametrize("item", ["--readout-error=0.02", "x:--readout-error=0.02", "0:", "-1:--a"])
def test_malformed_node_arg_at_says_the_form(item: str) -> None:
    with pytest.raises(ValueError, match="INDEX:ARG"):
        parse_node_args_at([item])


def test_node_args_at_for_a_missing_node_is_refused() -> None:
    with pytest.raises(ValueError, match=r"node\(s\) \[2\]; the mesh has nodes 0..1"):
        LocalMesh(nodes=2, node_args_at={2: ["--readout-error=0.02"]})
