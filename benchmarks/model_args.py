"""The model options the mesh benchmarks share, and the job spec they describe.

``--model``, ``--qubits``, ``--partitions`` (default: the default distributed model) and,
where a benchmark can run it, ``--gradient-mode``; ``model_spec`` turns them into the
``JobSpec`` to train for a number of epochs.
"""

from __future__ import annotations

import argparse

from qpumesh.wire.job_spec import GRADIENT_MODES, JobSpec


def add_model_arguments(parser: argparse.ArgumentParser, *, gradient_mode: bool = True) -> None:
    """Add the model options to ``parser`` (``--gradient-mode`` only with ``gradient_mode``)."""
    parser.add_argument("--model", default="distributed")
    parser.add_argument("--qubits", type=int, default=4)
    parser.add_argument("--partitions", type=int, default=2)
    if gradient_mode:
        parser.add_argument("--gradient-mode", choices=GRADIENT_MODES, default="jacobian")


def model_spec(args: argparse.Namespace, epochs: int) -> JobSpec:
    """The job spec of the parsed model options, trained for ``epochs``."""
    return JobSpec(
        model=args.model,
        qubits=args.qubits,
        partitions=args.partitions,
        epochs=epochs,
        gradient_mode=getattr(args, "gradient_mode", "jacobian"),
    )
