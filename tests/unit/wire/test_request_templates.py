"""``node_calls.RequestTemplates``: a request copied from a prototype is the request built afresh."""

import numpy as np
import pytest

from qpumesh.wire import node_calls

Parts = tuple[list[list[tuple[float, str]]], tuple[str, ...]]


@pytest.fixture
def parts() -> Parts:
    observables = [[(1.0, "ZI")], [(0.5, "IZ"), (-0.25, "XX")]]
    return observables, ("a0", "a1", "w0")


def test_shift_gradient_requests_from_templates_are_the_same_bytes(parts: Parts) -> None:
    observables, symbols = parts
    templates = node_calls.RequestTemplates()
    rng = np.random.default_rng(3)
    for _ in range(3):  # the second and third come from the cached prototype
        values = rng.normal(size=(5, 3))
        cotangents = rng.normal(size=(5, 2))
        for kwargs in (
            {"wrt": symbols, "include_values": True, "shots": 0, "seed": None},
            {"wrt": symbols, "cotangents": cotangents, "shots": 100, "seed": 7},
        ):
            fresh = node_calls.shift_gradient_request(
                observables, node_calls.parameter_batch(symbols, values), **kwargs
            )
            copied = templates.shift_gradient(observables, symbols, values, **kwargs)
            assert copied.SerializeToString(deterministic=True) == fresh.SerializeToString(deterministic=True)


def test_evaluate_requests_from_templates_are_the_same_bytes(parts: Parts) -> None:
    observables, symbols = parts
    templates = node_calls.RequestTemplates()
    for seed in (None, 1, 1):
        values = np.arange(6.0).reshape(2, 3) + (seed or 0)
        params = node_calls.parameter_batch(symbols, values)
        fresh = node_calls.evaluate_request(observables, params, seed=seed)
        copied = templates.evaluate(observables, symbols, values, seed=seed)
        assert copied.SerializeToString(deterministic=True) == fresh.SerializeToString(deterministic=True)


def test_templates_follow_new_observables_and_stay_bounded(parts: Parts) -> None:
    symbols = parts[1]
    templates = node_calls.RequestTemplates(size=2)
    values = np.zeros((1, 3))
    for k in range(5):  # new observable lists every time: a prototype each, the cache starts over
        changed = [[(float(k), "ZZ")]]
        request = templates.evaluate(changed, symbols, values)
        assert request.observables[0].terms[0].coefficient == float(k)
        assert len(templates._prototypes) <= 2


def test_templates_refuse_what_the_wire_cannot_carry(parts: Parts) -> None:
    observables, symbols = parts
    with pytest.raises(ValueError, match="shots must be in"):
        node_calls.RequestTemplates().shift_gradient(observables, symbols, np.zeros((1, 3)), shots=-1)
