"""Evaluations and parameter-shift Jacobians per second of each node engine, in process and through gRPC.

    python benchmarks/bench_node.py [--quick] [--backends batched,qsim,cirq] [--markdown] [--torch-threads N]

For every engine a ``NodeCore`` in this process and a real gRPC node server on a free
port of this process (with its own core, as on a mesh) are timed in alternation; see
``qpumesh.client.node_bench`` for what is measured. ``qpumesh node bench`` measures
the gRPC side only, on node processes it starts. Results are recorded in
docs/performance.md ("QPU node").
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator

from qpumesh.client.node_bench import BENCH_MAX_QUBITS, BenchNode, run_benchmark
from qpumesh.client.node_cli import add_bench_arguments, backends_of
from qpumesh.node.config import ServerConfig
from qpumesh.node.core import NodeConfig, NodeCore
from qpumesh.node.server import create_server


@contextlib.contextmanager
def in_process_node(backend: str) -> Iterator[BenchNode]:
    """A node server on a free local port of this process, and a separate core of the same engine."""
    node = NodeConfig(node_id=f"bench-{backend}", backend=backend, max_qubits=BENCH_MAX_QUBITS)
    server, port = create_server(ServerConfig(node=node, host="127.0.0.1", port=0))
    try:
        yield BenchNode(f"127.0.0.1:{port}", local=NodeCore(node))
    finally:
        server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_bench_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_benchmark(
        backends_of(args),
        quick=args.quick,
        markdown=args.markdown,
        torch_threads=args.torch_threads,
        node_for=in_process_node,
    )


if __name__ == "__main__":
    main()
