"""The Swarm stack file's wiring, checked without Docker (the e2e test deploys it for real).

These are the mistakes that ``docker stack deploy`` accepts silently and that only show
on a running swarm: a node class the coordinator does not look for, a class with a
virtual IP (the coordinator would see one node), a class placed on no label, a secret
that is declared but not mounted where the entry point reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
STACK_FILE = ROOT / "deploy" / "swarm" / "qpumesh-stack.yml"


def _stack() -> dict[str, Any]:
    return dict(yaml.safe_load(STACK_FILE.read_text()))


def _node_services(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in stack["services"].items() if name != "coordinator"}


def test_file_is_in_the_format_stack_deploy_reads() -> None:
    stack = _stack()
    assert str(stack["version"]).startswith("3.")
    assert "name" not in stack  # "Additional property name is not allowed"
    for name, service in stack["services"].items():
        assert "build" not in service, name  # ignored by stack deploy: images must exist
        assert "depends_on" not in service, name  # ignored; the coordinator waits itself


def test_coordinator_looks_for_every_node_class_by_dns_round_robin() -> None:
    stack = _stack()
    targets = stack["services"]["coordinator"]["environment"]["QPUMESH_NODES"].split(",")
    nodes = _node_services(stack)
    assert targets == [f"dns:{name}:50051" for name in nodes]
    for name, service in nodes.items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        assert service["environment"]["QPUMESH_PORT"] == "50051", name


def test_every_class_is_placed_by_its_own_label() -> None:
    stack = _stack()
    constraints = {
        name: service["deploy"]["placement"]["constraints"] for name, service in stack["services"].items()
    }
    assert constraints["coordinator"] == ["node.labels.qpumesh.coordinator == true"]
    for name in _node_services(stack):
        assert constraints[name] == [f"node.labels.qpumesh.{name} == true"]
    # Every label is documented in the file's header.
    header = STACK_FILE.read_text().split("version:")[0]
    for name in constraints:
        label = "qpumesh.coordinator" if name == "coordinator" else f"qpumesh.{name}"
        assert label in header, label


def test_coordinator_port_is_published_in_host_mode_with_its_volume() -> None:
    coordinator = _stack()["services"]["coordinator"]
    assert [(p["target"], p["mode"]) for p in coordinator["ports"]] == [(50050, "host"), (8080, "host")]
    assert coordinator["environment"]["QPUMESH_HTTP_PORT"] == "8080"
    assert coordinator["volumes"] == ["coordinator-data:/data"]
    assert coordinator["environment"]["QPUMESH_DATA_DIR"] == "/data"
    assert coordinator["deploy"]["update_config"]["order"] == "stop-first"


def test_nodes_read_the_admin_token_from_the_mounted_secret() -> None:
    stack = _stack()
    assert stack["secrets"]["qpumesh_admin_token"]["external"] is True
    for name, service in _node_services(stack).items():
        assert service["secrets"] == ["qpumesh_admin_token"], name
        env = service["environment"]
        assert env["QPUMESH_ADMIN_TOKEN_FILE"] == "/run/secrets/qpumesh_admin_token", name
        assert "QPUMESH_ADMIN_TOKEN" not in env, name


def test_nodes_are_replaced_and_updated_without_shrinking_the_pool() -> None:
    for name, service in _node_services(_stack()).items():
        deploy = service["deploy"]
        assert deploy["restart_policy"]["condition"] == "any", name
        assert deploy["update_config"]["order"] == "start-first", name
        assert deploy["update_config"]["failure_action"] == "rollback", name
        assert service["healthcheck"]["test"][-1] == "/usr/local/bin/qpumesh-healthcheck", name
