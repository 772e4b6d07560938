"""Adjoint differentiation gives the shift rule's numbers, deterministically, when it may run.

Users rely on: the same gradients whichever method a node picks (the tolerance is 1e-10 in
float64), bit-identical results for the same request whatever node, thread or memory
grouping runs it (the training's fault-tolerance invariant), the method and the shift
rule's hardware cost reported honestly, and a clear error when adjoint cannot run.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import cirq
import numpy as np
import pytest
import sympy
import torch
from node_engine_helpers import as_request

from qpumesh.node.backends import BatchedBackend
from qpumesh.node.backends import compiled as compiled_engine
from qpumesh.node.circuits import SUPPORTED_GATES, compile_circuit
from qpumesh.node.core import InvalidRequest, NodeConfig, NodeCore, PreconditionFailed
from qpumesh.node.noise import NoiseConfig

#: Adjoint and the shift rule agree to this (both float64).
ATOL = 1e-10

S = sympy.symbols("s0:4")
A, B, C, D = S

GateFactory = Callable[[sympy.Expr], cirq.Gate]

#: One entry per name of SUPPORTED_GATES: (qubits, factory of the gate from an angle
#: expression, or None for gates that only take numeric parameters).
EVERY_GATE: dict[str, tuple[int, GateFactory | None, cirq.Gate | None]] = {
    "XPowGate": (1, lambda e: cirq.X ** (e / np.pi), cirq.X**0.3),
    "YPowGate": (1, lambda e: cirq.Y ** (0.5 * e), cirq.Y**-0.7),
    "ZPowGate": (1, lambda e: cirq.Z**e, cirq.Z**0.25),
    "HPowGate": (1, lambda e: cirq.H ** (e / 3), cirq.H**0.4),
    "CXPowGate": (2, lambda e: cirq.CX ** (e / np.pi), cirq.CX**0.7),
    "CZPowGate": (2, lambda e: cirq.CZ**e, cirq.CZ**0.4),
    "SwapPowGate": (2, lambda e: cirq.SWAP**e, cirq.SWAP**0.5),
    "ISwapPowGate": (2, None, cirq.ISWAP**0.3),
    "XXPowGate": (2, lambda e: cirq.XX**e, cirq.XX**0.2),
    "YYPowGate": (2, lambda e: cirq.YY ** (e + 0.1), cirq.YY**0.6),
    "ZZPowGate": (2, lambda e: cirq.ZZ ** (e / 2), cirq.ZZ**0.9),
    "CCXPowGate": (3, None, cirq.CCX**0.5),
    "CCZPowGate": (3, None, cirq.CCZ**0.3),
    "PhasedXPowGate": (
        1,
        lambda e: cirq.PhasedXPowGate(phase_exponent=0.3, exponent=e),
        cirq.PhasedXPowGate(phase_exponent=0.2, exponent=0.7),
    ),
    "PhasedXZGate": (1, None, cirq.PhasedXZGate(x_exponent=0.3, z_exponent=0.1, axis_phase_exponent=0.6)),
    "FSimGate": (2, None, cirq.FSimGate(theta=0.3, phi=0.5)),
    "IdentityGate": (2, None, cirq.IdentityGate(2)),
    "MatrixGate": (
        2,
        None,
        cirq.MatrixGate(
            cirq.unitary(cirq.CZ**0.3) @ np.kron(cirq.unitary(cirq.ry(0.4)), cirq.unitary(cirq.H))
        ),
    ),
    "Rx": (1, cirq.rx, cirq.rx(0.9)),
    "Ry": (1, lambda e: cirq.ry(2 * e - 0.3), cirq.ry(-0.4)),
    "Rz": (1, lambda e: cirq.rz(e / 2 + 1), cirq.rz(1.3)),
    "X": (1, None, cirq.X),
    "Y": (1, None, cirq.Y),
    "Z": (1, None, cirq.Z),
    "H": (1, None, cirq.H),
    "S": (1, None, cirq.S),
    "T": (1, None, cirq.T),
    "CNOT": (2, lambda e: cirq.CNOT**e, cirq.CNOT),
    "CX": (2, None, cirq.CX),
    "CZ": (2, None, cirq.CZ),
    "SWAP": (2, None, cirq.SWAP),
    "ISWAP": (2, None, cirq.ISWAP),
    "CCX": (3, None, cirq.CCX),
    "CCZ": (3, None, cirq.CCZ),
    "I": (1, None, cirq.I),
    "GlobalPhaseGate": (0, None, cirq.GlobalPhaseGate(1j)),
}


def test_every_supported_gate_is_covered() -> None:
    assert set(EVERY_GATE) == set(SUPPORTED_GATES)


def random_circuit(seed: int, n: int, length: int) -> tuple[cirq.Circuit, list[str]]:
    """Random gates of the whole supported set, symbolic where possible, symbols shared."""
    rng = np.random.default_rng(seed)
    qubits = cirq.LineQubit.range(n)
    ops: list[cirq.Operation] = [cirq.H(q) for q in qubits]
    names = sorted(EVERY_GATE)
    for _ in range(length):
        width, factory, fixed = EVERY_GATE[names[rng.integers(len(names))]]
        if width > n:
            continue
        targets = [qubits[i] for i in rng.permutation(n)[:width]]
        if factory is not None and rng.random() < 0.7:
            symbol = S[rng.integers(len(S))]
            expression = float(rng.uniform(0.5, 2)) * symbol + float(rng.uniform(-1, 1))
            ops.append(factory(expression).on(*targets))
        elif fixed is not None:
            ops.append(fixed.on(*targets))
    ops.append(cirq.ry(A - 0.2).on(qubits[-1]))  # at least one symbol
    circuit = cirq.Circuit(ops)
    return circuit, sorted(cirq.parameter_names(circuit))


def random_observables(seed: int, n: int, count: int) -> list[list[tuple[float, str]]]:
    rng = np.random.default_rng(seed + 1000)
    return [
        [(float(rng.normal()), "".join(rng.choice(list("IXYZ"), n))) for _ in range(rng.integers(1, 4))]
        for _ in range(count)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_adjoint_equals_the_shift_rule_on_random_circuits_of_every_gate(seed: int) -> None:
    n = 1 + seed % 5
    circuit, symbols = random_circuit(seed, n, length=6 + 2 * n)
    observables = random_observables(seed, n, count=1 + seed % 3)
    values = np.random.default_rng(seed).uniform(-np.pi, np.pi, size=(3, len(symbols)))
    cotangents = np.random.default_rng(seed + 1).normal(size=(3, len(observables)))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    kwargs = {"include_values": True}
    adjoint = core.shift_gradient(
        circuit_hash, text, observables, symbols, values, method="adjoint", **kwargs
    )
    shift = core.shift_gradient(
        circuit_hash, None, observables, symbols, values, method="parameter_shift", **kwargs
    )
    assert (adjoint.method, shift.method) == ("adjoint", "parameter_shift")
    assert adjoint.jacobian.shape == shift.jacobian.shape == (3, len(observables), len(symbols))
    np.testing.assert_allclose(adjoint.jacobian, shift.jacobian, atol=ATOL, rtol=0)
    assert adjoint.expectations is not None and shift.expectations is not None
    np.testing.assert_allclose(adjoint.expectations, shift.expectations, atol=ATOL, rtol=0)
    # Values come from the same forward pass as Evaluate: bit-identical.
    evaluated = core.evaluate(circuit_hash, None, observables, symbols, values)
    np.testing.assert_array_equal(adjoint.expectations, evaluated.expectations)
    # The VJP form, with a subset of symbols in another order.
    wrt = symbols[::-1][: max(1, len(symbols) - 1)]
    vjp = core.shift_gradient(
        circuit_hash, None, observables, symbols, values, wrt=wrt, cotangents=cotangents, method="adjoint"
    )
    columns = [symbols.index(s) for s in wrt]
    expected = np.einsum("ro,row->rw", cotangents, shift.jacobian[:, :, columns])
    np.testing.assert_allclose(vjp.jacobian, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("n", [7, 9])
def test_adjoint_on_registers_above_the_dense_fusion_limit(n: int) -> None:
    """Wide registers run gate by gate (gathers, local matrices, k-qubit rotations)."""
    circuit, symbols = random_circuit(100 + n, n, length=30)
    observables = random_observables(n, n, count=2)
    values = np.random.default_rng(n).uniform(-np.pi, np.pi, size=(2, len(symbols)))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    adjoint = core.shift_gradient(circuit_hash, text, observables, symbols, values, method="adjoint")
    shift = core.shift_gradient(circuit_hash, None, observables, symbols, values, method="parameter_shift")
    np.testing.assert_allclose(adjoint.jacobian, shift.jacobian, atol=ATOL, rtol=0)


def test_shared_symbols_and_affine_angles_use_the_chain_rule() -> None:
    q = cirq.LineQubit.range(3)
    circuit = cirq.Circuit(
        cirq.H.on_each(*q),
        cirq.rx(A).on(q[0]),
        cirq.ry(2 * A - 0.5).on(q[1]),
        cirq.CNOT(q[0], q[1]),
        cirq.Z(q[2]) ** (B / 2),
        cirq.CZ(q[1], q[2]) ** A,
        cirq.XX(q[0], q[2]) ** (0.7 * B + 0.1),
        cirq.ry(-3 * A).on(q[2]),
    )
    observables = [[(1.0, "ZII")], [(0.5, "XZI"), (-0.25, "IYY")]]
    values = np.array([[0.3, -1.1], [2.0, 0.4]])
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    adjoint = core.shift_gradient(circuit_hash, text, observables, ["s0", "s1"], values)
    assert adjoint.method == "adjoint"
    h = 1e-5
    for k in range(2):
        step = np.zeros_like(values)
        step[:, k] = h
        plus = core.evaluate(circuit_hash, None, observables, ["s0", "s1"], values + step).expectations
        minus = core.evaluate(circuit_hash, None, observables, ["s0", "s1"], values - step).expectations
        np.testing.assert_allclose(adjoint.jacobian[:, :, k], (plus - minus) / (2 * h), atol=1e-8)


def test_the_same_request_gives_bit_identical_results_on_any_core_and_thread() -> None:
    circuit, symbols = random_circuit(7, 4, length=16)
    observables = random_observables(7, 4, count=3)
    values = np.random.default_rng(3).uniform(-3, 3, size=(25, len(symbols)))
    circuit_hash, text = as_request(circuit)

    def run() -> np.ndarray:
        core = NodeCore(NodeConfig())
        result = core.shift_gradient(circuit_hash, text, observables, symbols, values, include_values=True)
        assert result.expectations is not None
        return np.concatenate([result.jacobian.ravel(), result.expectations.ravel()])

    first = run()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        others = list(pool.map(lambda _: run(), range(8)))
    for other in others:
        np.testing.assert_array_equal(other, first)


def test_observable_groups_under_the_memory_bound_do_not_change_the_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    circuit, symbols = random_circuit(11, 5, length=20)
    observables = random_observables(11, 5, count=6)
    values = np.random.default_rng(4).uniform(-3, 3, size=(4, len(symbols)))
    circuit_hash, text = as_request(circuit)
    whole = NodeCore(NodeConfig()).shift_gradient(circuit_hash, text, observables, symbols, values)
    tape = BatchedBackend().compiled.tape(compile_circuit(circuit, 20))
    assert compiled_engine.costates_per_pass(tape, 6) == 6
    # Room for the state, its scratch row and one co-state with its own: six groups of one.
    monkeypatch.setattr(compiled_engine, "STATE_BUDGET_BYTES", 4 * tape.dim * np.dtype(tape.dtype).itemsize)
    assert compiled_engine.costates_per_pass(tape, 6) == 1
    grouped = NodeCore(NodeConfig()).shift_gradient(circuit_hash, text, observables, symbols, values)
    np.testing.assert_array_equal(grouped.jacobian, whole.jacobian)


def test_auto_picks_adjoint_only_for_exact_requests_and_reports_the_shift_rule_cost() -> None:
    q = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.ry(A).on(q[0]), cirq.ry(2 * A).on(q[1]), cirq.CNOT(*q), cirq.rz(B).on(q[1]))
    observables = [[(1.0, "ZI")], [(1.0, "IZ"), (0.5, "II")]]  # two measured terms, one identity
    values = np.tile([[0.4, 0.9]], (5, 1))
    circuit_hash, text = as_request(circuit)
    core = NodeCore(NodeConfig())
    exact = core.shift_gradient(circuit_hash, text, observables, ["s0", "s1"], values, include_values=True)
    assert exact.method == "adjoint"
    # 3 slots (s0 drives two gates) x 2 shifts + 1 unshifted, per row; no shots.
    assert exact.shift_rule_executions == 5 * (2 * 3 + 1)
    assert exact.shift_rule_shots == 0
    sampled = core.shift_gradient(circuit_hash, None, observables, ["s0", "s1"], values, shots=100, seed=1)
    assert sampled.method == "parameter_shift"
    assert sampled.shift_rule_executions == 5 * 2 * 3
    assert sampled.shift_rule_shots == 5 * 2 * 3 * 100 * 2
    only_b = core.shift_gradient(circuit_hash, None, observables, ["s0", "s1"], values, wrt=["s1"])
    assert only_b.shift_rule_executions == 5 * 2 * 1
    forced = core.shift_gradient(
        circuit_hash, None, observables, ["s0", "s1"], values, method="parameter_shift"
    )
    assert forced.method == "parameter_shift"
    np.testing.assert_allclose(forced.jacobian, exact.jacobian, atol=ATOL, rtol=0)


def test_adjoint_refuses_shots_noise_and_other_engines_with_the_reason() -> None:
    circuit = cirq.Circuit(cirq.rx(A).on(cirq.LineQubit(0)))
    circuit_hash, text = as_request(circuit)
    args = (circuit_hash, text, [[(1.0, "Z")]], ["s0"], np.array([[0.3]]))
    with pytest.raises(InvalidRequest, match=r"method 'adjoint' needs exact expectations.*100 shots"):
        NodeCore(NodeConfig()).shift_gradient(*args, shots=100, method="adjoint")
    with pytest.raises(InvalidRequest, match="unknown gradient method 'backprop'"):
        NodeCore(NodeConfig()).shift_gradient(*args, method="backprop")
    for noise in (NoiseConfig(readout_error=0.01), NoiseConfig(depolarizing_1q=0.01)):
        noisy = NodeCore(NodeConfig(noise=noise))
        with pytest.raises(PreconditionFailed, match=r"simulates noise.*noise-free"):
            noisy.shift_gradient(*args, method="adjoint")
        assert noisy.shift_gradient(*args).method == "parameter_shift"
    reference = NodeCore(NodeConfig(backend="cirq"))
    with pytest.raises(PreconditionFailed, match=r"batched engine.*'cirq'"):
        reference.shift_gradient(*args, method="adjoint")
    auto = reference.shift_gradient(*args)
    assert (auto.method, auto.backend) == ("parameter_shift", "cirq")


def test_single_precision_nodes_still_differentiate_in_double() -> None:
    circuit, symbols = random_circuit(5, 3, length=10)
    observables = random_observables(5, 3, count=2)
    values = np.random.default_rng(5).uniform(-3, 3, size=(3, len(symbols)))
    circuit_hash, text = as_request(circuit)
    single = NodeCore(NodeConfig(precision="single")).shift_gradient(
        circuit_hash, text, observables, symbols, values, method="adjoint"
    )
    double = NodeCore(NodeConfig()).shift_gradient(
        circuit_hash, text, observables, symbols, values, method="parameter_shift"
    )
    np.testing.assert_allclose(single.jacobian, double.jacobian, atol=ATOL, rtol=0)


@pytest.mark.parametrize("seed", range(12))
def test_compiled_kernels_agree_with_the_torch_program(seed: int) -> None:
    """Both paths of the batched engine give the same expectations (1e-10, float64)."""
    n = 1 + seed % 7
    circuit, _ = random_circuit(200 + seed, n, length=4 + 2 * n)
    compiled = compile_circuit(circuit, 20)
    terms = ["".join(t) for t in np.random.default_rng(seed).choice(list("IXYZ"), (4, n))]
    angles = np.random.default_rng(seed).uniform(-4, 4, size=(6, len(compiled.slots)))
    engine = BatchedBackend()
    kernel = engine.compiled.expectations(compiled, terms, angles)
    torch_values = engine.program(compiled).run(torch.from_numpy(angles), tuple(terms)).numpy()
    np.testing.assert_allclose(kernel, torch_values, atol=ATOL, rtol=0)


def test_no_request_compiles_a_kernel_after_warm_up() -> None:
    """A node compiles its kernels before serving; no request may pause for a compilation."""
    from qpumesh.node.backends import adjoint_kernels, kernels

    core = NodeCore(NodeConfig())
    core.warm_up()
    before = (len(kernels.expectations.signatures), len(adjoint_kernels.adjoint.signatures))
    assert before == (2, 2)  # float64 (real circuits) and complex128
    for circuit, symbols in (random_circuit(1, 3, 8), random_circuit(2, 2, 6)):
        circuit_hash, text = as_request(circuit)
        observables = random_observables(3, len(circuit.all_qubits()), count=2)
        values = np.random.default_rng(0).uniform(-2, 2, size=(4, len(symbols)))
        read_only = values.copy()
        read_only.flags.writeable = False
        for table in (values, read_only, np.asfortranarray(values)):
            core.evaluate(circuit_hash, text, observables, symbols, table)
            core.shift_gradient(circuit_hash, text, observables, symbols, table, include_values=True)
            core.shift_gradient(circuit_hash, text, observables, symbols, table, cotangents=np.ones((4, 2)))
    after = (len(kernels.expectations.signatures), len(adjoint_kernels.adjoint.signatures))
    assert after == before
