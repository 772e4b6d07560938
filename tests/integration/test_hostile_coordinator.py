"""Hostile-input suite against a real coordinator server: 1,000+ generated requests per run.

Requests come from ``hostile_requests.coordinator_requests``: job specs with hostile field
values (huge, non-finite, unicode, long, unknown choices, CSV files that are not UTF-8, too
wide, not numbers, directories, missing), job ids (unknown, long, unicode, real ones),
list filters with unknown states, prediction series with NaN or 50 000 values, and the
bytes of any request truncated or random. Properties, for every request:

* never INTERNAL or UNKNOWN, and a unary call is answered within ``DEADLINE`` seconds (a
  WatchJob stream of a job that is not final may outlive its deadline: that is a stream);
* afterwards the coordinator is healthy, lists the suite's jobs and runs nothing it should not.

The job worker of this coordinator is stopped before the suite, so accepted jobs stay queued
rather than train: the suite attacks the service's edge (validation, status mapping,
storage), not training throughput. Jobs are cancelled now and then by the generated requests.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hostile_requests import KNOWN_JOB, SUMMARY, coordinator_requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qpumesh.v1 import coordinator_pb2 as cpb
from qpumesh.v1 import coordinator_pb2_grpc as cpb_grpc
from qpumesh.wire.channels import open_channel

DEADLINE = 20.0
EXAMPLES = 1000
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
STATUSES: Counter[str] = Counter()
JOB_IDS: list[str] = []


class _BytesChannel:
    """A channel whose multicallables send and return bytes (the stub's paths, no serializers)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_unary(method, _registered_method=True)  # type: ignore[call-arg]

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(method, _registered_method=True)  # type: ignore[call-arg]


def csv_files(root: Path) -> list[str]:
    """CSV files an attacker might point a job at (relative to the data root), and a few fine ones.

    Also paths out of the root (absolute, ``..``, the process's environment), which must be
    refused like missing files.
    """
    files = {
        "good.csv": b"value\n" + b"".join(f"{i * 0.1}\n".encode() for i in range(40)),
        "latin1.csv": b"value\n1.0\n\xe9\xe8\n" + b"2.0\n" * 40,
        "nan.csv": b"value\n" + b"nan\n" * 40,
        "inf.csv": b"1e400\n" * 40,
        "wide_field.csv": b'"' + b"x" * 200_000 + b'"\n' + b"1.0\n" * 40,
        "empty.csv": b"",
        "header_only.csv": b"a,b,c\n",
        "ragged.csv": b"a,b\n1\n2,3,4\n" * 20,
        "nul.csv": b"value\n1.0\x00\n" * 40,
    }
    for name, content in files.items():
        (root / name).write_bytes(content)
    (root / "a_directory.csv").mkdir()
    outside = ["/etc/passwd", "/proc/self/environ", "../outside.csv", str(root / "good.csv")]
    return [*files, "a_directory.csv", "missing.csv", *outside]


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, list[str]]]:
    from qpumesh.coordinator.config import CoordinatorConfig
    from qpumesh.coordinator.server import create_server

    data = tmp_path_factory.mktemp("hostile-coordinator")
    root = tmp_path_factory.mktemp("hostile-csv")
    files = csv_files(root)
    config = CoordinatorConfig(host="127.0.0.1", port=0, data_dir=data, in_process=True, data_root=root)
    server, port = create_server(config)
    server.manager.stop()  # accepted jobs stay queued: the suite attacks the service, not training
    address = f"127.0.0.1:{port}"
    channel = open_channel(address)
    stubs = (cpb_grpc.CoordinatorStub(channel), cpb_grpc.CoordinatorStub(_BytesChannel(channel)))  # type: ignore[no-untyped-call]
    start = time.monotonic()
    yield address, stubs, files
    SUMMARY.append(
        f"hostile coordinator requests: {sum(STATUSES.values())} in {time.monotonic() - start:.0f} s; "
        + ", ".join(f"{k} {v}" for k, v in STATUSES.most_common())
    )
    channel.close()
    server.stop(None)


def with_known_job(request: Any) -> Any:
    """Put a submitted job's id where the generator asked for one."""
    job_id = getattr(request, "job_id", "")
    if isinstance(job_id, str) and job_id.startswith(KNOWN_JOB):
        k = int(job_id[len(KNOWN_JOB) :])
        request.job_id = JOB_IDS[-1 - k % len(JOB_IDS)] if JOB_IDS else "no-such-job"
    return request


def send(stubs: Any, method: str, request: Any) -> None:
    stub, raw = stubs
    request = request if isinstance(request, bytes) else with_known_job(request)
    call = getattr(raw if isinstance(request, bytes) else stub, method)
    try:
        if method == "WatchJob":
            for count, _ in enumerate(call(request, timeout=0.3)):  # a live job streams on
                if count >= 20:
                    break
        else:
            reply = call(request, timeout=DEADLINE)
            if method == "SubmitJob" and not isinstance(request, bytes):
                JOB_IDS.append(reply.job_id)
    except grpc.RpcError as error:
        code = error.code()
        STATUSES[code.name] += 1
        assert code not in FORBIDDEN, f"{method} answered {code.name}: {error.details()}"
        assert method == "WatchJob" or code != grpc.StatusCode.DEADLINE_EXCEEDED, f"{method} timed out"
        return
    STATUSES["OK"] += 1


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_hostile_requests_to_the_coordinator(
    coordinator: tuple[str, Any, list[str]], data: st.DataObject
) -> None:
    _, stubs, files = coordinator
    method, request = data.draw(coordinator_requests(files))
    send(stubs, method, request)


def test_the_coordinator_still_serves_afterwards(coordinator: tuple[str, Any, list[str]]) -> None:
    address, (stub, _), _ = coordinator
    assert sum(STATUSES.values()) >= EXAMPLES
    with open_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    listed = stub.ListJobs(cpb.ListJobsRequest(page_size=5), timeout=DEADLINE)
    assert len(listed.jobs) == min(5, len(JOB_IDS))
    job_id = stub.SubmitJob(
        cpb.SubmitJobRequest(spec=cpb.JobSpec(task="pendulum", epochs=1)), timeout=DEADLINE
    ).job_id
    assert stub.GetJob(cpb.GetJobRequest(job_id=job_id), timeout=DEADLINE).spec.task == "pendulum"
    assert (
        stub.CancelJob(cpb.CancelJobRequest(job_id=job_id), timeout=DEADLINE).state == cpb.JOB_STATE_CANCELLED
    )
