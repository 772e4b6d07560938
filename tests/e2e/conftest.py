"""Fixtures for the end-to-end tests: the Compose mesh (and the Swarm stack) on a real Docker engine.

The engine, the images and these fixtures are shared by ``test_compose_mesh.py`` and the
Swarm tests (``test_swarm_stack.py``, ``test_swarm_two_hosts.py``: their stack fixtures
live with them, see ``e2e_swarm.py``).

``tests/e2e/run_e2e.sh`` starts the engine, builds the images and runs ``pytest -m e2e
tests/e2e`` with ``QPUMESH_E2E_REQUIRED=1``; then a missing engine or image is an error.
Run without it (a plain ``pytest``), the tests are skipped when there is no engine.

Environment (all optional):
    COMPOSE_PROJECT_NAME   compose project of the test mesh (default ``qpumesh-e2e``)
    QPUMESH_TAG            image tag to run (default ``e2e``, as run_e2e.sh builds)
    QPUMESH_E2E_STATE      where compose logs are written (default ``/tmp/qpumesh-e2e``)
    QPUMESH_E2E_KEEP=1     leave the mesh running after the tests (for debugging)
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_compose import COMPOSE_FILE, NOTES, REPLICAS, TIMINGS, Compose, Mesh, free_port


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the measured durations of the e2e steps."""
    if TIMINGS:
        terminalreporter.section("e2e timings")
        for what, seconds in TIMINGS:
            terminalreporter.write_line(f"{what:<48} {seconds:7.1f} s")
    for line in NOTES:
        terminalreporter.write_line(line)


def _required() -> bool:
    return os.environ.get("QPUMESH_E2E_REQUIRED", "") == "1"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker SDK client; skips (or fails under run_e2e.sh) when there is no engine."""
    try:
        import docker
    except ImportError:  # pragma: no cover - the dev extra installs it
        pytest.skip("the docker SDK is not installed (pip install -e '.[dev]')")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as err:
        if _required():
            pytest.fail(f"no Docker engine: {err} (tests/e2e/docker_engine.sh start)")
        pytest.skip(f"no Docker engine ({err}); run bash tests/e2e/run_e2e.sh")
    yield client
    client.close()


def _state_dir() -> Path:
    return Path(os.environ.get("QPUMESH_E2E_STATE", "/tmp/qpumesh-e2e"))


@pytest.fixture(scope="session")
def bearer_token() -> str:
    """The coordinator's bearer token for the tests (an admin), written to a token file."""
    return secrets.token_hex(24)


@pytest.fixture(scope="session")
def compose_env(bearer_token: str) -> dict[str, str]:
    """Environment for ``docker compose``: image tag, a free port, admin and bearer tokens.

    The token file holds the token's SHA-256 only (readable by the containers' uid 10001).
    """
    import hashlib

    env = dict(os.environ)
    env.setdefault("QPUMESH_TAG", "e2e")
    env["QPUMESH_PORT"] = str(free_port())
    env["QPUMESH_HTTP_PORT"] = str(free_port())  # the dashboard's published port
    env["QPUMESH_ADMIN_TOKEN"] = secrets.token_hex(16)
    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    tokens = state / f"tokens-{env.get('COMPOSE_PROJECT_NAME', 'qpumesh-e2e')}"
    digest = hashlib.sha256(bearer_token.encode()).hexdigest()
    tokens.write_text(f"# e2e bearer tokens\nsha256:{digest} e2e admin\n")
    tokens.chmod(0o644)
    env["QPUMESH_AUTH_TOKENS_FILE"] = str(tokens)
    env["QPUMESH_REPLICAS"] = str(REPLICAS)
    # A call stuck on a vanished container fails over after this many seconds.
    env.setdefault("QPUMESH_RPC_TIMEOUT", "10")
    return env


@pytest.fixture(scope="session")
def images(docker_client: Any, compose_env: dict[str, str]) -> None:
    """Check that run_e2e.sh built the images this run uses."""
    tag = compose_env["QPUMESH_TAG"]
    missing = []
    for name in (f"qpumesh-node:{tag}", f"qpumesh-coordinator:{tag}"):
        try:
            docker_client.images.get(name)
        except Exception:
            missing.append(name)
    if missing:
        message = f"images {missing} not built; run bash tests/e2e/run_e2e.sh"
        if _required():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def mesh(docker_client: Any, compose_env: dict[str, str], images: None, bearer_token: str) -> Iterator[Mesh]:
    """``docker compose up`` with 4 nodes and the coordinator, all healthy; torn down after.

    The client's certificates are fetched as docs/security.md says:
    ``docker compose cp certs:/certs DIR``.
    """
    compose = Compose(
        project=os.environ.get("COMPOSE_PROJECT_NAME", "qpumesh-e2e"),
        files=[COMPOSE_FILE],
        env=compose_env,
        docker=docker_client,
    )
    compose.down()  # leftovers of an interrupted run
    started = time.monotonic()
    try:
        compose.run(
            "up", "--detach", "--no-build", "--scale", f"qpu={REPLICAS}",
            # Generous: on a loaded 2-core host four nodes compiling their kernels take minutes.
            "--wait", "--wait-timeout", "600",
            timeout=660,
        )
        TIMINGS.append(("compose up (4 nodes + coordinator healthy)", time.monotonic() - started))
        from qpumesh.wire.tls import load_tls

        certs = _state_dir() / f"certs-{compose.project}"
        shutil.rmtree(certs, ignore_errors=True)
        compose.run("cp", "certs:/certs", str(certs), timeout=60)
        yield Mesh(
            compose=compose,
            coordinator=f"127.0.0.1:{compose_env['QPUMESH_PORT']}",
            admin_token=compose_env["QPUMESH_ADMIN_TOKEN"],
            tls=load_tls(certs / "client.crt", certs / "client.key", certs / "ca.crt"),
            token=bearer_token,
            certs_dir=certs,
        )
    finally:
        compose.save_logs(_state_dir() / f"{compose.project}.log")
        if os.environ.get("QPUMESH_E2E_KEEP", "") != "1":
            started = time.monotonic()
            compose.down()
            TIMINGS.append(("compose down -v", time.monotonic() - started))

