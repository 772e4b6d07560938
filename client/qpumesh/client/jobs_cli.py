"""``qpumesh train | jobs | watch | predict | results | cancel | nodes``: the user's side of the coordinator.

Every command talks to a coordinator given by ``--coordinator HOST:PORT`` or the
``QPUMESH_COORDINATOR`` environment variable. ``qpumesh train`` without either
starts an ephemeral local mesh (``LocalMesh``: N node processes and a
coordinator), trains, writes the results and stops the mesh.

Exit codes: 0 success; 1 the job failed or was cancelled, or an RPC failed;
2 bad usage or a job spec the client or coordinator refused (the message names
the field); 130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from qpumesh.client.coordinator_client import CoordinatorClient
    from qpumesh.coordinator.spec import JobSpec
    from qpumesh.v1 import coordinator_pb2 as pb

ENV_COORDINATOR = "QPUMESH_COORDINATOR"
"""Environment variable holding the default coordinator address."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Flag destination -> JobSpec field, for every spec flag of ``qpumesh train``.
_SPEC_FLAGS: dict[str, str] = {
    "name": "name",
    "task": "task",
    "narma_order": "narma_order",
    "csv": "csv_path",
    "csv_column": "csv_column",
    "model": "model",
    "qubits": "qubits",
    "partitions": "partitions",
    "layers": "layers",
    "ansatz": "ansatz",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "window": "window",
    "lr": "lr",
    "optimizer": "optimizer",
    "seed": "seed",
    "shots": "shots",
    "train_fraction": "train_fraction",
    "series_length": "series_length",
}


class UsageError(Exception):
    """A command cannot run as asked; the message says why (exit status 2)."""


# ---------------------------------------------------------------------- registration


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the job commands to the ``qpumesh`` command line."""
    _register_train(subparsers)

    jobs = subparsers.add_parser("jobs", help="list jobs on the coordinator")
    _add_coordinator_flag(jobs)
    jobs.add_argument(
        "--state", default=None, help="only jobs in this state (queued, running, succeeded, ...)"
    )
    jobs.add_argument("--limit", type=int, default=0, metavar="N", help="at most N jobs, newest first")
    jobs.set_defaults(func=_cmd_jobs)

    watch = subparsers.add_parser("watch", help="follow a job's progress until it ends")
    watch.add_argument("job_id", metavar="JOB")
    _add_coordinator_flag(watch)
    watch.add_argument(
        "--after-seq", type=int, default=0, metavar="SEQ", help="only events after this sequence number"
    )
    _add_show_faults_flag(watch)
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
    _add_coordinator_flag(predict)
    predict.set_defaults(func=_cmd_predict)

    results = subparsers.add_parser("results", help="show a job's results; write files and plots")
    results.add_argument("job_id", metavar="JOB")
    _add_coordinator_flag(results)
    results.add_argument("--output", type=Path, metavar="DIR", help="write metrics.json and predictions.csv")
    results.add_argument(
        "--plot", type=Path, metavar="DIR", help="write loss.png, r2.png and predictions.png"
    )
    results.set_defaults(func=_cmd_results)

    cancel = subparsers.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id", metavar="JOB")
    _add_coordinator_flag(cancel)
    cancel.set_defaults(func=_cmd_cancel)

    nodes = subparsers.add_parser("nodes", help="show the coordinator's QPU nodes and their statistics")
    _add_coordinator_flag(nodes)
    nodes.set_defaults(func=_cmd_nodes)


def _add_coordinator_flag(parser: argparse._ActionsContainer, *, local_default: bool = False) -> None:
    where = "start a local mesh" if local_default else "required"
    parser.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help=f"coordinator address (default: ${ENV_COORDINATOR}; if unset: {where})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="deadline of each call (default %(default)s s)",
    )


def _add_show_faults_flag(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--show-faults",
        action="store_true",
        help="print every node fault event (default: count them on the progress line)",
    )


def _partitions(value: str) -> int:
    if value == "auto":
        return 0
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {value!r}") from None


def _register_train(subparsers: argparse._SubParsersAction[Any]) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a (distributed) QLSTM and show its progress",
        description="Submit a training job and follow it to the end. Spec flags override the values "
        "of --spec FILE.yaml; unset ones take the coordinator's defaults. Without --coordinator "
        f"(or ${ENV_COORDINATOR}) an ephemeral local mesh is started and stopped afterwards.",
    )
    spec = train.add_argument_group("job spec")
    spec.add_argument("--spec", type=Path, metavar="FILE.yaml", help="YAML mapping of JobSpec fields")
    spec.add_argument("--name", help="label shown in job listings")
    spec.add_argument("--task", choices=("pendulum", "narma", "csv"), help="benchmark series")
    spec.add_argument("--narma-order", type=int, metavar="N", help="n of NARMA-n (task narma)")
    spec.add_argument("--csv", metavar="PATH", help="CSV file with the series (task csv)")
    spec.add_argument("--csv-column", metavar="C", help="column of the CSV file (default: the last)")
    spec.add_argument("--model", choices=("centric", "distributed", "classical"))
    spec.add_argument("--qubits", type=int, metavar="Q", help="width of [h; x] (d_h = Q - 1)")
    spec.add_argument(
        "--partitions", type=_partitions, metavar="M|auto", help="sub-circuits per gate (distributed)"
    )
    spec.add_argument("--layers", type=int, metavar="L", help="variational layers per circuit")
    spec.add_argument("--ansatz", choices=("v0", "chen2020"))
    spec.add_argument("--epochs", type=int, metavar="E")
    spec.add_argument("--batch-size", type=int, metavar="B")
    spec.add_argument("--window", type=int, metavar="W", help="values seen per prediction")
    spec.add_argument("--lr", type=float, help="learning rate")
    spec.add_argument("--optimizer", choices=("rmsprop", "adam"))
    spec.add_argument("--seed", type=int, metavar="S")
    spec.add_argument("--shots", type=int, help="shots per observable term (0 = exact)")
    spec.add_argument(
        "--train-fraction", type=float, metavar="F", help="leading fraction of windows to train on"
    )
    spec.add_argument("--series-length", type=int, metavar="N", help="points of the generated series")

    run = train.add_argument_group("run")
    _add_coordinator_flag(run, local_default=True)
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
    run.add_argument("--output", type=Path, metavar="DIR", help="write metrics.json and predictions.csv")
    run.add_argument("--plot", type=Path, metavar="DIR", help="also write loss.png, r2.png, predictions.png")
    run.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    _add_show_faults_flag(run)
    train.set_defaults(func=_cmd_train, parser=train)


# ---------------------------------------------------------------------- spec


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a YAML job spec: a mapping of ``JobSpec`` fields.

    A relative ``csv_path`` is taken relative to the file's directory.

    Raises:
        UsageError: the file is missing, not YAML, or not a mapping.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read spec file {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"spec file {path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise UsageError(
            f"spec file {path} must hold a mapping of job spec fields, not {type(data).__name__}"
        )
    values = {str(key).replace("-", "_"): value for key, value in data.items()}
    csv_path = values.get("csv_path")
    if isinstance(csv_path, str) and csv_path:
        values["csv_path"] = _local_path(csv_path, path.parent)
    return values


def _local_path(value: str, base: Path) -> str:
    """Absolute path of ``value`` (relative to ``base``) if that file exists here, else ``value``.

    The coordinator reads the CSV file; a local mesh runs in another working
    directory, so local relative paths are made absolute. A path that does not
    exist here is left alone: it may name a file on the coordinator's machine.
    """
    candidate = (base / value).expanduser()
    return str(candidate.resolve()) if candidate.exists() else value


def build_spec(args: argparse.Namespace) -> JobSpec:
    """Merge ``--spec FILE`` with the spec flags (flags win) and validate the result.

    Raises:
        UsageError: the spec file cannot be used.
        SpecError: a field is unknown or has an unusable value (names the field).
    """
    from qpumesh.coordinator.spec import JobSpec

    values: dict[str, Any] = load_spec_file(args.spec) if args.spec is not None else {}
    for flag, field_name in _SPEC_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values[field_name] = _local_path(value, Path.cwd()) if field_name == "csv_path" else value
    return JobSpec.from_dict(values)


# ---------------------------------------------------------------------- helpers


def _address(args: argparse.Namespace) -> str:
    address = args.coordinator or os.environ.get(ENV_COORDINATOR, "")
    if not address:
        raise UsageError(f"no coordinator: pass --coordinator HOST:PORT or set {ENV_COORDINATOR}")
    return str(address)


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[CoordinatorClient]:
    from qpumesh.client.coordinator_client import CoordinatorClient

    with CoordinatorClient(_address(args), timeout=args.timeout) as client:
        yield client


def _error(prog: str, message: str) -> None:
    print(f"qpumesh {prog}: {message}", file=sys.stderr)


def _run(prog: str, body: Callable[[], int]) -> int:
    """Run a command body, mapping expected errors to messages and exit codes."""
    from qpumesh.client.errors import QpuMeshError
    from qpumesh.client.mesh import MeshError
    from qpumesh.coordinator.spec import SpecError

    try:
        return body()
    except UsageError as error:
        _error(prog, str(error))
        return EXIT_USAGE
    except SpecError as error:
        reason = str(error).removeprefix(f"{error.field}: ")
        _error(prog, f"invalid job spec: field '{error.field}': {reason}")
        return EXIT_USAGE
    except QpuMeshError as error:
        import grpc

        _error(prog, f"{error.code.name}: {error.details}")
        return EXIT_USAGE if error.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED
    except MeshError as error:
        _error(prog, f"local mesh failed: {error}")
        return EXIT_FAILED


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return a plain left-aligned text table (two spaces between columns)."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def _r2(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "-"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp > 0 else "-"


def _event_text(event: pb.JobEvent) -> str | None:
    """Describe a non-epoch event in one line (None for epoch events)."""
    from qpumesh.client.coordinator_client import state_name

    kind = event.WhichOneof("kind")
    if kind == "state":
        return f"[job {event.job_id}] state: {state_name(event.state)}"
    if kind == "log":
        return f"[job {event.job_id}] {event.log}"
    if kind == "fault":
        fault = event.fault
        detail = f": {fault.detail}" if fault.detail else ""
        return f"[job {event.job_id}] fault on {fault.node or '?'}: {fault.kind}{detail}"
    return None


def follow(
    client: CoordinatorClient,
    job_id: str,
    stream: TextIO,
    *,
    after_seq: int = 0,
    tty: bool | None = None,
    show_faults: bool = False,
) -> pb.Job:
    """Show a job's progress on ``stream`` until it reaches a final state; return the final job.

    Node faults are counted on the progress line, or printed one per line with
    ``show_faults``.
    """
    from qpumesh.client.coordinator_client import job_finished
    from qpumesh.client.progress import ProgressDisplay

    job = client.get(job_id)
    display = ProgressDisplay(stream, job.spec.epochs, tty=tty, show_faults=show_faults)
    for metrics in job.history:
        display.epoch(metrics)
    if not job_finished(job) and not job.history:
        display.start()
    last_seq = after_seq
    try:
        while not job_finished(job):
            for event in client.watch(job_id, after_seq=last_seq):
                last_seq = event.seq
                kind = event.WhichOneof("kind")
                if kind == "epoch":
                    display.epoch(event.epoch)
                elif kind == "fault":
                    display.fault(event.fault.kind, _event_text(event) or "")
                else:
                    text = _event_text(event)
                    if text:
                        display.note(text)
            job = client.get(job_id)
            if not job_finished(job):
                time.sleep(0.5)  # the stream ended early (coordinator shutting down); follow again
    finally:
        display.close()
    return job


# ---------------------------------------------------------------------- train


def _cmd_train(args: argparse.Namespace) -> int:
    return _run("train", lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    from qpumesh.client.coordinator_client import CoordinatorClient
    from qpumesh.client.mesh import LocalMesh, terminate_on_sigterm

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
                mesh = stack.enter_context(LocalMesh(nodes=args.nodes, node_args=args.node_arg))
                address = mesh.coordinator_address
                nodes = ", ".join(mesh.node_addresses) or "none (circuits run in the coordinator)"
                print(f"local mesh up: coordinator {address}, nodes {nodes}", file=sys.stderr, flush=True)
            client = stack.enter_context(CoordinatorClient(address, timeout=args.timeout))
            started = time.monotonic()
            job_id = client.submit(spec)
            if args.no_wait:
                print(job_id)
                return EXIT_OK
            print(f"job {job_id} submitted to {address}", file=sys.stderr, flush=True)
            job = follow(client, job_id, sys.stdout, show_faults=args.show_faults)
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
    from qpumesh.client.outputs import METRICS_FILE, job_metrics, write_metrics, write_results
    from qpumesh.client.plots import plot_results
    from qpumesh.v1 import coordinator_pb2 as pb

    extra = {"coordinator": address}
    if job.state != pb.JOB_STATE_SUCCEEDED:
        if args.output is not None:
            metrics = job_metrics(job, client_wall_seconds=wall)
            metrics.update(extra)
            write_metrics(args.output / METRICS_FILE, metrics)
        reason = f": {job.error}" if job.error else ""
        _error("train", f"job {job.id} {state_name(job.state)}{reason}")
        return EXIT_FAILED
    results = client.results(job.id)
    if args.output is not None:
        for path in write_results(args.output, results, client_wall_seconds=wall, extra=extra):
            print(f"wrote {path}", file=sys.stderr)
    if args.plot is not None:
        for path in plot_results(results, args.plot):
            print(f"wrote {path}", file=sys.stderr)
    job = results.job
    convergence = job.convergence_epoch if job.convergence_epoch >= 0 else "not reached"
    print(
        f"job {job.id} succeeded in {wall:.1f} s: {job.epochs_done} epochs, "
        f"{sum(m.rounds for m in job.history)} rounds, convergence epoch {convergence}"
    )
    print(f"test R² = {_r2(job.final_test_r2)}")
    return EXIT_OK


# ---------------------------------------------------------------------- other commands


def _cmd_jobs(args: argparse.Namespace) -> int:
    def body() -> int:
        from qpumesh.client.coordinator_client import parse_state, state_name

        try:
            state = parse_state(args.state)
        except ValueError as error:
            raise UsageError(str(error)) from error
        with _client(args) as client:
            jobs = client.list(state=state, limit=args.limit)
        rows = [
            (
                job.id,
                job.spec.name or "-",
                state_name(job.state),
                job.spec.task,
                job.spec.model,
                f"{job.epochs_done}/{job.spec.epochs}",
                _r2(job.final_test_r2) if job.epochs_done else "-",
                _when(job.created_at),
            )
            for job in jobs
        ]
        if not rows:
            print("no jobs")
            return EXIT_OK
        print(format_table(("ID", "NAME", "STATE", "TASK", "MODEL", "EPOCHS", "TEST R²", "CREATED"), rows))
        return EXIT_OK

    return _run("jobs", body)


def _cmd_watch(args: argparse.Namespace) -> int:
    def body() -> int:
        from qpumesh.client.coordinator_client import state_name
        from qpumesh.v1 import coordinator_pb2 as pb

        with _client(args) as client:
            job = follow(
                client, args.job_id, sys.stdout, after_seq=args.after_seq, show_faults=args.show_faults
            )
        print(f"job {job.id} {state_name(job.state)}: test R² = {_r2(job.final_test_r2)}")
        if job.error:
            print(job.error, file=sys.stderr)
        return EXIT_OK if job.state == pb.JOB_STATE_SUCCEEDED else EXIT_FAILED

    return _run("watch", body)


def read_series_csv(path: Path, column: str | None = None) -> list[float]:
    """Read one numeric column of a CSV file (a non-numeric first row is a header).

    Args:
        path: the CSV file.
        column: a header name or a 0-based index; default: the last column.

    Raises:
        UsageError: the file cannot be read, the column does not exist, or a
            value is not a number.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from error
    if not rows:
        raise UsageError(f"{path} holds no rows")
    header: list[str] | None = None
    try:
        [float(cell) for cell in rows[0]]
    except ValueError:
        header, rows = [cell.strip() for cell in rows[0]], rows[1:]
    if column is None:
        index = -1
    elif header is not None and column in header:
        index = header.index(column)
    elif column.lstrip("-").isdigit():
        index = int(column)
    else:
        raise UsageError(
            f"{path} has no column {column!r}" + (f" (columns: {', '.join(header)})" if header else "")
        )
    values: list[float] = []
    for line, row in enumerate(rows, start=2 if header else 1):
        try:
            values.append(float(row[index]))
        except IndexError:
            raise UsageError(f"{path}:{line}: no column {column!r}") from None
        except ValueError:
            raise UsageError(f"{path}:{line}: {row[index]!r} is not a number") from None
    return values


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
        with _client(args) as client:
            predictions = client.predict(args.job_id, series)
        print("window,prediction")
        for i, value in enumerate(predictions.tolist()):
            print(f"{i},{value!r}")
        return EXIT_OK

    return _run("predict", body)


def _cmd_results(args: argparse.Namespace) -> int:
    def body() -> int:
        from qpumesh.client.coordinator_client import state_name
        from qpumesh.client.outputs import write_results
        from qpumesh.client.plots import job_title, plot_results

        with _client(args) as client:
            results = client.results(args.job_id)
        job = results.job
        print(job_title(job))
        print(f"state              {state_name(job.state)}")
        print(f"epochs             {job.epochs_done}/{job.spec.epochs}")
        print(f"final test R²      {_r2(job.final_test_r2)}")
        convergence = job.convergence_epoch if job.convergence_epoch >= 0 else "not reached"
        print(f"convergence epoch  {convergence}")
        print(f"windows            {len(results.targets)} ({results.train_size} train)")
        if job.history:
            rows = [
                (
                    m.epoch,
                    f"{m.train_loss:.4e}",
                    f"{m.test_loss:.4e}",
                    _r2(m.test_r2),
                    f"{m.wall_seconds:.2f}",
                    m.rounds,
                )
                for m in job.history
            ]
            print()
            print(format_table(("EPOCH", "TRAIN LOSS", "TEST LOSS", "TEST R²", "SECONDS", "ROUNDS"), rows))
        if args.output is not None:
            for path in write_results(args.output, results, extra={"coordinator": _address(args)}):
                print(f"wrote {path}", file=sys.stderr)
        if args.plot is not None:
            for path in plot_results(results, args.plot):
                print(f"wrote {path}", file=sys.stderr)
        return EXIT_OK

    return _run("results", body)


def _cmd_cancel(args: argparse.Namespace) -> int:
    def body() -> int:
        from qpumesh.client.coordinator_client import state_name

        with _client(args) as client:
            job = client.cancel(args.job_id)
        print(f"job {job.id}: {state_name(job.state)}")
        return EXIT_OK

    return _run("cancel", body)


def _cmd_nodes(args: argparse.Namespace) -> int:
    def body() -> int:
        with _client(args) as client:
            nodes = client.nodes()
        if not nodes:
            print("no nodes (the coordinator runs circuits in process)")
            return EXIT_OK
        rows = [
            (
                n.node_id or "-",
                n.address,
                "yes" if n.healthy else "NO",
                n.max_qubits,
                n.backend or "-",
                n.in_flight,
                n.calls,
                n.failures,
                n.retries,
                n.hedges,
                f"{n.mean_latency_ms:.1f}",
                f"{n.p95_latency_ms:.1f}",
            )
            for n in nodes
        ]
        header = (
            "NODE",
            "ADDRESS",
            "HEALTHY",
            "QUBITS",
            "BACKEND",
            "IN FLIGHT",
            "CALLS",
            "FAILURES",
            "RETRIES",
            "HEDGES",
            "MEAN MS",
            "P95 MS",
        )
        print(format_table(header, rows))
        return EXIT_OK

    return _run("nodes", body)
