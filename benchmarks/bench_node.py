"""Evaluations and parameter-shift Jacobians per second of each node engine.

    python benchmarks/bench_node.py [--quick] [--backends batched,qsim,cirq] [--markdown] [--torch-threads N]

The same benchmark runs as ``qpumesh node bench``; see ``qpumesh.node.bench`` for what
is measured. Results are recorded in docs/performance.md ("QPU node").
"""

from __future__ import annotations

import argparse
import logging

from qpumesh.node.bench import run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one small shape, fewer rows (a smoke run)")
    parser.add_argument("--backends", default="batched,qsim,cirq", help="comma-separated engines")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    backends = tuple(name.strip() for name in args.backends.split(",") if name.strip())
    run_benchmark(backends, quick=args.quick, markdown=args.markdown, torch_threads=args.torch_threads)


if __name__ == "__main__":
    main()
