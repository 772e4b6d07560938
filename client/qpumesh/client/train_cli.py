"""``qpumesh train``: submit a training job, follow it to the end, write its results.

Without ``--coordinator`` (or ``QPUMESH_COORDINATOR``) an ephemeral local mesh
(``LocalMesh``: N node processes and a coordinator, with mutual TLS between all of them
and certificates made for the run) is started, the job trains on it, the results are
written and the mesh is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpumesh.client.cli_support import (
    ENV_COORDINATOR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    add_coordinator_flag,
    add_show_faults_flag,
    client_tls,
    client_token,
    error,
    format_r2,
    run_command,
)
from qpumesh.client.follow import follow
from qpumesh.client.progress import format_hardware
from qpumesh.client.spec_flags import add_spec_flags, build_spec

if TYPE_CHECKING:
    from qpumesh.client.coordinator_client import CoordinatorClient
    from qpumesh.client.local_mesh import LocalMesh
    from qpumesh.v1 import coordinator_pb2 as pb


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``qpumesh train`` to the command line."""
    train = subparsers.add_parser(
        "train",
        help="train a (distributed) QLSTM and show its progress",
        description="Submit a training job and follow it to the end. Spec flags override the values "
        "of --spec FILE.yaml; unset ones take the coordinator's defaults. Without --coordinator "
        f"(or ${ENV_COORDINATOR}) an ephemeral local mesh is started and stopped afterwards.",
    )
    add_spec_flags(train.add_argument_group("job spec"))
    run = train.add_argument_group("run")
    add_coordinator_flag(run, local_default=True)
    run.add_argument(
        "--nodes",
        type=int,
        default=4,
        metavar="N",
        help="nodes of the local mesh; 0 runs circuits inside the coordinator (default %(default)s)",
    )
    run.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the local mesh's nodes (repeatable, e.g. --node-arg=--max-qubits=3)",
    )
    run.add_argument(
        "--node-arg-at",
        action="append",
        default=[],
        metavar="I:ARG",
        help="extra argument for node I only (repeatable; a heterogeneous mesh, "
        "e.g. --node-arg-at=0:--depolarizing-1q=0.01)",
    )
    run.add_argument("--output", type=Path, metavar="DIR", help="write metrics.json and predictions.csv")
    run.add_argument("--plot", type=Path, metavar="DIR", help="also write loss.png, r2.png, predictions.png")
    run.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help="write TensorBoard scalars (loss, R², node latencies) to DIR/<job id> while the job trains",
    )
    run.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    add_show_faults_flag(run)
    train.set_defaults(func=_cmd_train, parser=train)


def _cmd_train(args: argparse.Namespace) -> int:
    return run_command("train", lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    from qpumesh.client.coordinator_client import CoordinatorClient
    from qpumesh.client.local_mesh import LocalMesh, parse_node_args_at
    from qpumesh.client.mesh_cli import terminate_on_sigterm

    spec = build_spec(args)
    address = args.coordinator or os.environ.get(ENV_COORDINATOR, "")
    if args.no_wait and not address:
        raise UsageError("--no-wait needs a long-lived coordinator (--coordinator or $QPUMESH_COORDINATOR)")
    job_id = ""
    mesh: LocalMesh | None = None
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(terminate_on_sigterm())
            if not address:
                what = f"{args.nodes} nodes + coordinator" if args.nodes else "in-process coordinator"
                print(f"starting a local mesh ({what}) ...", file=sys.stderr, flush=True)
                try:
                    per_node = parse_node_args_at(args.node_arg_at)
                    mesh = LocalMesh(nodes=args.nodes, node_args=args.node_arg, node_args_at=per_node)
                except ValueError as error:
                    raise UsageError(str(error)) from error
                stack.enter_context(mesh)
                address = mesh.coordinator_address
                nodes = ", ".join(mesh.node_addresses) or "none (circuits run in the coordinator)"
                print(f"local mesh up: coordinator {address}, nodes {nodes}", file=sys.stderr, flush=True)
                if mesh.dashboard_url:
                    print(f"dashboard: {mesh.dashboard_url}", file=sys.stderr, flush=True)
            if mesh is not None:
                tls, token = mesh.client_tls, None
            else:
                tls, token = client_tls(args), client_token(args)
            client = stack.enter_context(
                CoordinatorClient(address, timeout=args.timeout, tls=tls, token=token)
            )
            started = time.monotonic()
            job_id = client.submit(spec)
            if args.no_wait:
                print(job_id)
                return EXIT_OK
            print(f"job {job_id} submitted to {address}", file=sys.stderr, flush=True)
            on_epoch = None
            if args.tensorboard is not None:
                from qpumesh.client.tensorboard_log import TensorBoardLog

                board = TensorBoardLog(args.tensorboard, job_id)
                stack.callback(board.close)
                on_epoch = board.epoch
                print(f"TensorBoard scalars in {board.run_dir}", file=sys.stderr, flush=True)
            job = follow(client, job_id, sys.stdout, show_faults=args.show_faults, on_epoch=on_epoch)
            return _finish(client, job, args, time.monotonic() - started, address)
    except KeyboardInterrupt:
        if job_id and mesh is None:
            print(
                f"\ninterrupted; job {job_id} keeps running on {address} "
                f"(qpumesh watch {job_id} / qpumesh cancel {job_id})",
                file=sys.stderr,
            )
        else:
            print("\ninterrupted; local mesh stopped", file=sys.stderr)
        return EXIT_INTERRUPTED


def _finish(
    client: CoordinatorClient, job: pb.Job, args: argparse.Namespace, wall: float, address: str
) -> int:
    """Report a finished job; write its files when it succeeded."""
    from qpumesh.client.coordinator_client import state_name
    from qpumesh.client.outputs import METRICS_FILE, job_metrics, write_files, write_metrics
    from qpumesh.v1 import coordinator_pb2 as pb

    extra = {"coordinator": address}
    if job.state != pb.JOB_STATE_SUCCEEDED:
        if args.output is not None:
            metrics = job_metrics(job, client_wall_seconds=wall)
            metrics.update(extra)
            write_metrics(args.output / METRICS_FILE, metrics)
        reason = f": {job.error}" if job.error else ""
        error("train", f"job {job.id} {state_name(job.state)}{reason}")
        return EXIT_FAILED
    results = client.results(job.id)
    write_files(results, args.output, args.plot, extra=extra, client_wall_seconds=wall)
    job = results.job
    convergence = job.convergence_epoch if job.convergence_epoch >= 0 else "not reached"
    print(
        f"job {job.id} succeeded in {wall:.1f} s: {job.epochs_done} epochs, "
        f"{sum(m.rounds for m in job.history)} rounds, convergence epoch {convergence}"
    )
    print(f"test R² = {format_r2(job.final_test_r2)}")
    hardware = sum(m.hardware_seconds for m in job.history)
    if hardware > 0:
        print(f"estimated on the nodes' hardware: {format_hardware(hardware)} (docs/hardware.md)")
    return EXIT_OK
