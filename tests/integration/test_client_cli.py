"""The ``qpumesh`` job commands and ``LocalMesh`` against real node and coordinator processes.

Every mesh here is made of real ``python -m qpumesh.node serve`` and ``python -m
qpumesh.coordinator serve`` processes on free ports. Whether children survive is
checked by scanning ``/proc`` for command lines that mention the test's
temporary directory (every child's ``--port-file`` lives there).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from qpumesh.client.cli import main
from qpumesh.client.coordinator_client import CoordinatorClient
from qpumesh.client.local_mesh import LocalMesh, LocalMeshError
from qpumesh.v1 import coordinator_pb2 as pb
from qpumesh.wire.tls import client_tls_from_environment

pytestmark = pytest.mark.slow

REQUIRED_METRICS = (
    "test_r2",
    "convergence_epoch",
    "history",
    "spec",
    "wall_seconds",
    "rounds",
    "nodes",
    "faults",
)
HISTORY_KEYS = ("epoch", "train_loss", "test_loss", "test_r2")


def _processes_mentioning(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _tls_flags(mesh: LocalMesh) -> list[str]:
    """The client flags of a (mutual TLS) local mesh."""
    certs = mesh.certificates
    assert certs is not None, "the local mesh runs with TLS by default"
    return [
        *("--tls-ca", str(certs.ca)),
        *("--tls-cert", str(certs.client_cert)),
        *("--tls-key", str(certs.client_key)),
    ]


def _cli(args: Sequence[str], tmp: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``python -m qpumesh.client.cli ARGS`` with its temporary files under ``tmp``."""
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    env.pop("QPUMESH_COORDINATOR", None)
    return subprocess.run(
        [sys.executable, "-m", "qpumesh.client.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=tmp,
    )


def test_train_on_an_ephemeral_local_mesh(tmp_path: Path) -> None:
    out = tmp_path / "out"
    board = tmp_path / "tensorboard"
    result = _cli(
        [
            "train", "--task", "pendulum", "--model", "distributed", "--qubits", "4", "--partitions", "2",
            "--layers", "1", "--epochs", "2", "--series-length", "40", "--nodes", "2", "--output", str(out),
            "--tensorboard", str(board),
        ],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "dashboard: https://127.0.0.1:" in result.stderr
    assert "test R² = " in result.stdout
    assert "epoch 2/2 " in result.stdout  # one progress line per epoch when stdout is not a TTY

    metrics = json.loads((out / "metrics.json").read_text())
    for key in REQUIRED_METRICS:
        assert key in metrics, key
    assert math.isfinite(metrics["test_r2"])
    assert isinstance(metrics["convergence_epoch"], int)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    for entry in metrics["history"]:
        for key in HISTORY_KEYS:
            assert math.isfinite(entry[key]), (key, entry)
    assert metrics["history"][-1]["test_r2"] == metrics["test_r2"]
    assert metrics["rounds"] > 0
    assert metrics["spec"]["model"] == "distributed"
    assert metrics["spec"]["partitions"] == 2
    assert len(metrics["nodes"]) == 2

    with (out / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    windows = 40 - 4 - 1  # series_length - window - 1 (the paper: 240 points -> 235 windows)
    assert len(rows) == windows == metrics["windows"]
    assert sum(r["split"] == "train" for r in rows) == metrics["train_windows"]
    assert all(math.isfinite(float(r["target"])) and math.isfinite(float(r["prediction"])) for r in rows)

    # TensorBoard reads what --tensorboard wrote: one run per job, a scalar per epoch.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = board.iterdir()
    assert run.name == metrics["job_id"]
    events = EventAccumulator(str(run))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"loss/train", "loss/test", "r2/test", "epoch/seconds", "epoch/rounds"} <= set(tags)
    assert {"nodes/node-0/p95_latency_ms", "nodes/node-1/calls"} <= set(tags)
    for tag, key in (("loss/train", "train_loss"), ("r2/test", "test_r2")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([h[key] for h in metrics["history"]], rel=1e-6)

    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize(
    ("spec_text", "field"),
    [("task: pendulum\nqubitz: 4\n", "qubitz"), ("layers: two\n", "layers"), ("epochs: 0\n", "epochs")],
)
def test_a_bad_spec_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec_text: str, field: str
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_text)
    status = main(["train", "--spec", str(spec), "--coordinator", "127.0.0.1:1"])
    assert status == 2
    assert f"field '{field}'" in capsys.readouterr().err


def test_results_plot_then_no_children_after_an_exception(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plots = tmp_path / "plots"
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), LocalMesh(nodes=1, log_dir=tmp_path / "logs") as mesh:
        pids = mesh.pids
        assert len(pids) == 2
        assert _processes_mentioning(str(tmp_path))
        with CoordinatorClient(mesh.coordinator_address, tls=mesh.client_tls) as client:
            job_id = client.submit(
                {"model": "centric", "qubits": 3, "layers": 1, "epochs": 2, "series_length": 24}
            )
            assert client.wait(job_id, timeout=120).state == pb.JOB_STATE_SUCCEEDED
        address = mesh.coordinator_address
        status = main(["results", job_id, "--coordinator", address, "--plot", str(plots), *_tls_flags(mesh)])
        assert status == 0
        assert "final test R²" in capsys.readouterr().out
        # The local mesh's coordinator serves its dashboard and /metrics, over HTTPS with
        # the mesh's certificate (a client without the mesh's CA does not trust it).
        assert mesh.dashboard_url.startswith("https://127.0.0.1:")
        assert mesh.certificates is not None
        trusting = ssl.create_default_context(cafile=str(mesh.certificates.ca))
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(mesh.dashboard_url, timeout=10)
        with urllib.request.urlopen(mesh.dashboard_url, timeout=10, context=trusting) as page:
            assert mesh.node_addresses[0] in page.read().decode()
        with urllib.request.urlopen(mesh.dashboard_url + "metrics", timeout=10, context=trusting) as scrape:
            assert f'qpumesh_job_epochs_done{{job_id="{job_id}",name=""}} 2.0' in scrape.read().decode()
        raise RuntimeError("boom")
    for name in ("loss.png", "r2.png", "predictions.png"):
        assert (plots / name).stat().st_size > 1000, name
    assert _processes_mentioning(str(tmp_path)) == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_child_that_fails_to_start_is_reported_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(LocalMeshError, match="unrecognized arguments: --no-such-flag"):
        LocalMesh(nodes=1, node_args=["--no-such-flag"], log_dir=tmp_path).start()
    assert _processes_mentioning(str(tmp_path)) == []


@contextlib.contextmanager
def _mesh_up(tmp_path: Path, nodes: int) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """Run ``qpumesh mesh up --nodes N`` until it has printed its exports; kill it on the way out.

    Yields the process and the ``export NAME=value`` lines it printed (coordinator address and
    the client's TLS files), which is what a user pastes into their shell.
    """
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "qpumesh.client.cli", "mesh", "up", "--nodes", str(nodes)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 180
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = value
            if "QPUMESH_TLS_KEY" in exports:
                break
            assert time.monotonic() < deadline
        assert exports.get("QPUMESH_COORDINATOR"), process.stderr.read()
        yield process, exports
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_mesh_up_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    with _mesh_up(tmp_path, nodes=1) as (process, exports):
        address = exports["QPUMESH_COORDINATOR"]
        # The exported variables are what a client needs: without them, the mesh refuses it.
        tls = [exports["QPUMESH_TLS_CA"], exports["QPUMESH_TLS_CERT"], exports["QPUMESH_TLS_KEY"]]
        flags = ["--tls-ca", tls[0], "--tls-cert", tls[1], "--tls-key", tls[2]]
        assert main(["nodes", "--coordinator", address, *flags]) == 0
        assert main(["nodes", "--coordinator", address, "--timeout", "3"]) == 1
        assert len(_processes_mentioning(str(tmp_path))) == 2
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    assert _processes_mentioning(str(tmp_path)) == []


def test_watch_follows_a_job_across_a_coordinator_restart(tmp_path: Path) -> None:
    epochs = 15
    with (
        LocalMesh(nodes=0, log_dir=tmp_path / "logs") as mesh,
        CoordinatorClient(mesh.coordinator_address, tls=mesh.client_tls) as client,
    ):
        job_id = client.submit(
            {"model": "centric", "qubits": 3, "layers": 1, "epochs": epochs, "series_length": 30}
        )
        seen: list[int] = []
        seqs: list[int] = []
        restart: threading.Thread | None = None
        try:
            for event in client.watch(job_id):
                seqs.append(event.seq)
                if event.WhichOneof("kind") == "epoch":
                    seen.append(event.epoch.epoch)
                    if restart is None:  # restart while the stream is open; watch must ride it out
                        restart = threading.Thread(target=mesh.restart_coordinator)
                        restart.start()
        finally:
            if restart is not None:
                restart.join()
        assert restart is not None
        job = client.get(job_id)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    assert seqs == sorted(set(seqs))  # nothing delivered twice, in order
    assert set(seen) == set(range(1, epochs + 1))
    assert "received SIGTERM" in (tmp_path / "logs" / "coordinator.log").read_text()


def test_defect_10_mesh_up_restarts_a_sigkilled_node_and_the_job_finishes(tmp_path: Path) -> None:
    # Issue 9, defect 10: one node killed with SIGKILL took the whole `mesh up` down.
    with _mesh_up(tmp_path, nodes=2) as (process, exports):
        tls = client_tls_from_environment(exports)
        spec = {
            "model": "distributed",
            "qubits": 4,
            "partitions": 2,
            "layers": 1,
            "epochs": 6,
            "series_length": 40,
        }
        with CoordinatorClient(exports["QPUMESH_COORDINATOR"], timeout=30, tls=tls) as client:
            before = {n.node_id: n.address for n in client.nodes()}
            job_id = client.submit(spec)
            killed = 0
            for event in client.watch(job_id):
                if event.WhichOneof("kind") == "epoch" and event.epoch.epoch == 2 and not killed:
                    (killed,) = [
                        p for p in _processes_mentioning(str(tmp_path)) if _mentions(p, "node-0.port")
                    ]
                    os.kill(killed, signal.SIGKILL)
            job = client.get(job_id)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
            assert job.epochs_done == 6
            # The node came back on its port with its identity, and the mesh is still up.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                nodes = client.nodes()
                if all(n.healthy for n in nodes):
                    break
                time.sleep(1)
            assert {n.node_id: n.address for n in nodes} == before and all(n.healthy for n in nodes)
        assert process.poll() is None and process.stderr is not None
        assert killed and not _alive(killed)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert "restarted node-0 (killed by signal 9)" in process.stderr.read()
    assert _processes_mentioning(str(tmp_path)) == []


def _mentions(pid: int, marker: str) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
