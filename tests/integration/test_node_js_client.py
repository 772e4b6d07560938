"""A client in another language: examples/node/client.mjs (@grpc/grpc-js) against a real node and coordinator.

The Node.js client writes its circuit as Cirq JSON by hand, orders Pauli letters the way
Cirq sorts qubits, encodes tensors, sends the circuit then its hash alone, submits a job
with only some fields, follows it, fetches results and a prediction. The test compares
every number with the exact answer or with what the Python client gets.
"""

from __future__ import annotations

import json
import math
import subprocess
from typing import Any

import numpy as np
from external_tools import ROOT, require

from qpumesh.client import CoordinatorClient
from qpumesh.wire.job_spec import JobSpec

EXAMPLE = ROOT / "examples" / "node"


def test_node_js_client_calls_a_node_and_a_coordinator(node_server: Any, coordinator_server: Any) -> None:
    node_binary = require("node", "apt-get install nodejs")
    require(EXAMPLE / "node_modules" / "@grpc" / "grpc-js", "npm ci --prefix examples/node")
    node, _ = node_server(node_id="js-target")
    coordinator, _ = coordinator_server(nodes=node)
    run = subprocess.run(
        [str(node_binary), str(EXAMPLE / "client.mjs"), "--node", node, "--coordinator", coordinator],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])

    seen = out["node"]
    assert seen["node_id"] == "js-target"
    # NamedQubit order is natural (q2 before q10): Z on q10 is the second letter.
    assert seen["qubit_order"] == ["q2", "q10"]
    assert seen["paulis"] == ["IZ", "ZI"]
    thetas = np.array(seen["thetas"])
    exact = np.stack([np.cos(thetas), -np.ones_like(thetas)], axis=1)
    np.testing.assert_allclose(seen["expectations"], exact, atol=1e-12)
    assert seen["expectations_by_hash"] == seen["expectations"]
    np.testing.assert_allclose(seen["jacobian"], np.stack([-np.sin(thetas), 0 * thetas], axis=1), atol=1e-12)
    assert seen["gradient_method"] == "GRADIENT_METHOD_PARAMETER_SHIFT"
    assert seen["shift_rule_executions"] == str(len(thetas) * 3)  # uint64 as a string: 2 shifts + value
    assert seen["empty_request"]["code"] == "INVALID_ARGUMENT"
    assert seen["empty_request"]["details"].startswith("circuit.hash: missing")

    job = out["coordinator"]
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["epochs_done"] == 2
    defaults = JobSpec()
    assert job["spec"] == {
        "layers": defaults.layers, "ansatz": defaults.ansatz, "window": defaults.window, "lr": defaults.lr
    }  # fmt: skip
    assert job["events"][0] == "state JOB_STATE_QUEUED" and job["events"][-1] == "state JOB_STATE_SUCCEEDED"
    assert job["events"].count("epoch") == 2
    assert all(math.isfinite(m["train_loss"]) for m in job["history"])
    assert job["targets"] == job["predictions"] > job["train_size"] > 0
    with CoordinatorClient(coordinator) as client:
        expected = client.predict(job["job_id"], job["series"])
    assert job["prediction"] == expected.tolist()
    assert len(job["prediction"]) == len(job["series"]) - defaults.window + 1
    assert job["nan_series"] == {
        "code": "INVALID_ARGUMENT",
        "details": "series: value 1 is nan; every value must be a finite number",
    }
