"""The partition planner: sizes, limits, balance, and clear refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qpumesh.coordinator.planner import format_plan, plan_partitions, split_evenly


def test_paper_distributed_4_qubits_in_2_parts() -> None:
    plan = plan_partitions(1, 3, 2, [4, 4])
    assert plan.input_sizes == (2, 2) and plan.output_sizes == (1, 2)
    assert plan.keys == ("part/0", "part/1")
    assert plan.sub_circuits == ("f/0", "f/1", "i/0", "i/1", "g/0", "g/1", "o/0", "o/1")
    assert plan.node_loads() == [1, 1]


def test_auto_picks_smallest_fitting_m() -> None:
    assert plan_partitions(1, 5, 0, [3, 2]).partitions == 2
    assert plan_partitions(1, 5, 0, [6]).partitions == 1
    assert plan_partitions(1, 3, 0).partitions == 1


def test_too_wide_partition_names_the_fix() -> None:
    message = r"largest node has 3 qubits but partition 0 needs 4; use --partitions >= 2"
    with pytest.raises(ValueError, match=message):
        plan_partitions(1, 3, 1, [3, 2])


def test_too_many_partitions_for_hidden_size() -> None:
    with pytest.raises(ValueError, match="exceed the hidden size"):
        plan_partitions(1, 3, 4)


def test_auto_impossible() -> None:
    with pytest.raises(ValueError, match="largest node has 1 qubits"):
        plan_partitions(1, 3, 0, [1, 1])


def test_format_plan_lists_nodes() -> None:
    text = format_plan(plan_partitions(1, 3, 2, [4, 2, 2]))
    assert "M = 2 partition(s), 8 sub-circuits" in text
    assert "node" in text and "part/0" in text
    assert "in process" in format_plan(plan_partitions(1, 3, 2))


@settings(max_examples=200, deadline=None)
@given(
    d_h=st.integers(1, 12),
    d_x=st.integers(1, 3),
    partitions=st.integers(0, 12),
    nodes=st.lists(st.integers(1, 10), min_size=1, max_size=6),
)
def test_plan_properties(d_h: int, d_x: int, partitions: int, nodes: list[int]) -> None:
    total = d_x + d_h
    try:
        plan = plan_partitions(d_x, d_h, partitions, nodes)
    except ValueError as error:
        m = partitions or 1
        # Impossible only when M exceeds d_h or some part is wider than every node.
        assert partitions > d_h or -(-total // m) > max(nodes) or partitions == 0, str(error)
        assert str(error)
        return
    assert sum(plan.input_sizes) == total and sum(plan.output_sizes) == d_h
    assert all(1 <= o <= w for o, w in zip(plan.output_sizes, plan.input_sizes, strict=True))
    assert max(plan.input_sizes) - min(plan.input_sizes) <= 1
    # x_t reaches every hidden unit: part m >= 1 writes from a unit that part m - 1 reads.
    for m in range(1, plan.partitions):
        assert sum(plan.output_sizes[:m]) < sum(plan.input_sizes[:m])
    assert set(plan.assignment) == set(plan.keys) and len(plan.keys) == plan.partitions
    for key, node in plan.assignment.items():
        assert plan.width(key) <= nodes[node]
    if partitions == 0:
        smaller = plan.partitions - 1
        assert smaller == 0 or -(-total // smaller) > max(nodes)
    if all(cap >= max(plan.input_sizes) for cap in nodes):
        loads = plan.node_loads()
        assert max(loads) - min(loads) <= 1


@given(total=st.integers(0, 100), parts=st.integers(1, 20))
def test_split_evenly(total: int, parts: int) -> None:
    sizes = split_evenly(total, parts)
    assert sum(sizes) == total and len(sizes) == parts
    assert max(sizes) - min(sizes) <= 1 and list(sizes) == sorted(sizes, reverse=True)


def test_64_qubits_spread_over_16_small_nodes_one_part_each() -> None:
    plan = plan_partitions(1, 63, 0, [4] * 16)
    assert plan.partitions == 16 and plan.input_sizes == (4,) * 16
    assert sorted(plan.assignment.values()) == list(range(16))


def test_1024_qubits_in_256_parts() -> None:
    plan = plan_partitions(1, 1023, 256, [4] * 64 + [8] * 4)
    assert plan.input_sizes == (4,) * 256 and max(plan.node_loads()) - min(plan.node_loads()) <= 1


def test_wide_model_on_small_nodes_names_the_fix() -> None:
    with pytest.raises(
        ValueError, match=r"largest node has 4 qubits but partition 0 needs 32; use --partitions >= 16"
    ):
        plan_partitions(1, 63, 2, [4] * 16)
