"""``qpumesh jobs | watch | predict | results | cancel | delete | nodes``: the user's side of the coordinator.

See ``cli_support`` for the coordinator flag and the exit codes, ``train_cli`` for
``qpumesh train``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpumesh.client.cli_support import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    add_coordinator_flag,
    add_show_faults_flag,
    connect,
    coordinator_address,
    format_r2,
    format_table,
    format_time,
    run_command,
)
from qpumesh.client.follow import follow
from qpumesh.client.progress import format_hardware

if TYPE_CHECKING:
    from qpumesh.v1 import coordinator_pb2 as cpb


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the job commands (all but ``train``) to the ``qpumesh`` command line."""
    jobs = subparsers.add_parser("jobs", help="list jobs on the coordinator")
    add_coordinator_flag(jobs)
    jobs.add_argument(
        "--state", default=None, help="only jobs in this state (queued, running, succeeded, ...)"
    )
    jobs.add_argument(
        "--limit", type=int, default=0, metavar="N", help="at most N jobs, newest first (default: all)"
    )
    jobs.set_defaults(func=_cmd_jobs)

    watch = subparsers.add_parser("watch", help="follow a job's progress until it ends")
    watch.add_argument("job_id", metavar="JOB")
    add_coordinator_flag(watch)
    watch.add_argument(
        "--after-seq", type=int, default=0, metavar="SEQ", help="only events after this sequence number"
    )
    add_show_faults_flag(watch)
    watch.set_defaults(func=_cmd_watch)

    predict = subparsers.add_parser(
        "predict",
        help="predict with a job's best checkpoint",
        description="Print one-step-ahead predictions (CSV: window,prediction) of a job's best checkpoint; "
        "prediction i follows series[i : i + window].",
    )
    predict.add_argument("job_id", metavar="JOB")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--series-csv", type=Path, metavar="F", help="CSV file holding the raw series")
    source.add_argument("--values", metavar="V1,V2,...", help="the raw series as comma-separated numbers")
    predict.add_argument(
        "--column",
        default=None,
        metavar="C",
        help="column of --series-csv (name or 0-based index; default last)",
    )
    add_coordinator_flag(predict)
    predict.set_defaults(func=_cmd_predict)

    results = subparsers.add_parser("results", help="show a job's results; write files and plots")
    results.add_argument("job_id", metavar="JOB")
    add_coordinator_flag(results)
    results.add_argument("--output", type=Path, metavar="DIR", help="write metrics.json and predictions.csv")
    results.add_argument(
        "--plot", type=Path, metavar="DIR", help="write loss.png, r2.png and predictions.png"
    )
    results.set_defaults(func=_cmd_results)

    cancel = subparsers.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id", metavar="JOB")
    add_coordinator_flag(cancel)
    cancel.set_defaults(func=_cmd_cancel)

    delete = subparsers.add_parser(
        "delete", help="delete a finished job (its records, events and checkpoints)"
    )
    delete.add_argument("job_id", metavar="JOB")
    add_coordinator_flag(delete)
    delete.set_defaults(func=_cmd_delete)

    nodes = subparsers.add_parser("nodes", help="show the coordinator's QPU nodes and their statistics")
    add_coordinator_flag(nodes)
    nodes.set_defaults(func=_cmd_nodes)


def _cmd_jobs(args: argparse.Namespace) -> int:
    def body() -> int:
        from qpumesh.client.coordinator_client import parse_state, state_name

        try:
            state = parse_state(args.state)
        except ValueError as error:
            raise UsageError(str(error)) from error
        with connect(args) as client:
            jobs = client.list(state=state, limit=args.limit)
        rows = [
            (
                job.id,
                job.spec.name or "-",
                state_name(job.state),
                job.spec.task,
                job.spec.model,
                f"{job.epochs_done}/{job.spec.epochs}",
                format_r2(job.final_test_r2) if job.epochs_done else "-",
                format_time(job.created_at),
            )
            for job in jobs
        ]
        if not rows:
            print("no jobs")
            return EXIT_OK
        print(format_table(("ID", "NAME", "STATE", "TASK", "MODEL", "EPOCHS", "TEST R²", "CREATED"), rows))
        return EXIT_OK

    return run_command("jobs", body)


def _cmd_watch(args: argparse.Namespace) -> int:
    def body() -> int:
        from qpumesh.client.coordinator_client import state_name
        from qpumesh.v1 import coordinator_pb2 as pb

        with connect(args) as client:
            job = follow(
                client, args.job_id, sys.stdout, after_seq=args.after_seq, show_faults=args.show_faults
            )
        print(f"job {job.id} {state_name(job.state)}: test R² = {format_r2(job.final_test_r2)}")
        if job.error:
            print(job.error, file=sys.stderr)
        return EXIT_OK if job.state == pb.JOB_STATE_SUCCEEDED else EXIT_FAILED

    return run_command("watch", body)


def read_series_csv(path: Path, column: str | None = None) -> list[float]:
    """Read one numeric column of a CSV file (a non-numeric first row is a header).

    Args:
        path: the CSV file.
        column: a header name or a 0-based index; default: the last column.

    Raises:
        UsageError: the file cannot be read, the column does not exist, or a
            value is not a finite number.
    """
    from qpumesh.client.spec_flags import read_series

    return read_series(path, column or "")


def _parse_values(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as error:
        raise UsageError(f"--values: {error}") from error


def _cmd_predict(args: argparse.Namespace) -> int:
    def body() -> int:
        if args.series_csv is not None:
            series = read_series_csv(args.series_csv, args.column)
        else:
            series = _parse_values(args.values)
        with connect(args) as client:
            predictions = client.predict(args.job_id, series)
        print("window,prediction")
        for i, value in enumerate(predictions.tolist()):
            print(f"{i},{value!r}")
        return EXIT_OK

    return run_command("predict", body)


def _cmd_results(args: argparse.Namespace) -> int:
    def body() -> int:
        from qpumesh.client.coordinator_client import state_name
        from qpumesh.client.outputs import write_files
        from qpumesh.client.plots import job_title

        with connect(args) as client:
            results = client.results(args.job_id)
        job = results.job
        print(job_title(job))
        print(f"state              {state_name(job.state)}")
        print(f"epochs             {job.epochs_done}/{job.spec.epochs}")
        print(f"final test R²      {format_r2(job.final_test_r2)}")
        convergence = job.convergence_epoch if job.convergence_epoch >= 0 else "not reached"
        print(f"convergence epoch  {convergence}")
        print(f"windows            {len(results.targets)} ({results.train_size} train)")
        if job.history:
            rows = [
                (
                    m.epoch,
                    f"{m.train_loss:.4e}",
                    f"{m.test_loss:.4e}",
                    format_r2(m.test_r2),
                    f"{m.wall_seconds:.2f}",
                    f"{m.hardware_seconds:.4g}",
                    m.rounds,
                )
                for m in job.history
            ]
            print()
            print(
                format_table(
                    ("EPOCH", "TRAIN LOSS", "TEST LOSS", "TEST R²", "SECONDS", "HARDWARE SECONDS", "ROUNDS"),
                    rows,
                )
            )
            emulated = sum(m.wall_seconds for m in job.history)
            hardware = format_hardware(sum(m.hardware_seconds for m in job.history))
            print(f"\nwall time          {emulated:.2f} s emulated, {hardware} on hardware (estimate)")
        write_files(results, args.output, args.plot, extra={"coordinator": coordinator_address(args)})
        return EXIT_OK

    return run_command("results", body)


def _cmd_delete(args: argparse.Namespace) -> int:
    def body() -> int:
        with connect(args) as client:
            client.delete(args.job_id)
        print(f"job {args.job_id}: deleted")
        return EXIT_OK

    return run_command("delete", body)


def _cmd_cancel(args: argparse.Namespace) -> int:
    def body() -> int:
        from qpumesh.client.coordinator_client import state_name

        with connect(args) as client:
            job = client.cancel(args.job_id)
        print(f"job {job.id}: {state_name(job.state)}")
        return EXIT_OK

    return run_command("cancel", body)


NODE_COLUMNS: tuple[tuple[str, Callable[[cpb.NodeStats], object]], ...] = (
    ("NODE", lambda n: n.node_id or "-"),
    ("ADDRESS", lambda n: n.address),
    ("HEALTHY", lambda n: "yes" if n.healthy else "NO"),
    ("QUBITS", lambda n: n.max_qubits),
    ("BACKEND", lambda n: n.backend or "-"),
    ("IN FLIGHT", lambda n: n.in_flight),
    ("CALLS", lambda n: n.calls),
    ("FAILURES", lambda n: n.failures),
    ("RETRIES", lambda n: n.retries),
    ("HEDGES", lambda n: n.hedges),
    ("MEAN MS", lambda n: f"{n.mean_latency_ms:.1f}"),
    ("P95 MS", lambda n: f"{n.p95_latency_ms:.1f}"),
)
"""The columns of ``qpumesh nodes``: a header and how to show one ``NodeStats`` field."""


def _cmd_nodes(args: argparse.Namespace) -> int:
    def body() -> int:
        with connect(args) as client:
            nodes = client.nodes()
        if not nodes:
            print("no nodes (the coordinator runs circuits in process)")
            return EXIT_OK
        header = [name for name, _ in NODE_COLUMNS]
        print(format_table(header, [[cell(node) for _, cell in NODE_COLUMNS] for node in nodes]))
        return EXIT_OK

    return run_command("nodes", body)
