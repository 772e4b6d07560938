"""The studies of ``docs/results.md`` as lists of ``Run``s, and how one run is trained.

- ``tables``: every row of the paper's Tables I (pendulum) and II (NARMA-2), the latter on
  both NARMA-2 series (the paper's formula, task ``narma2``; Chen's code family, task
  ``narma``), 5 seeds.
- ``scale``: centric vs distributed QLSTMs of width 4, 8, 12, 16 and a distributed one of
  width 32, the distributed ones cut into 4-qubit parts (width 4: the paper's 2 × 2).
- ``noise``: the paper's distributed model under shot noise, depolarizing noise, readout
  error, and with one noisy node among clean ones.
- ``zne``: the same model exact, under depolarizing noise, and under that noise with the
  node's zero-noise extrapolation (mitiq), to see how much of the R² loss ZNE recovers.
- ``hardware``: the same model on each hardware preset, exact and with 1,000 shots, to
  price an epoch on each kind of QPU (the cost model of `qpumesh.wire.hardware`).

Every run trains in this process on ``InProcessExecutor`` (the node's engines, no network).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import torch
from study_cache import Run, RunCache

from qpumesh.coordinator.executor import CircuitResult, CircuitTask, LocalExecutor
from qpumesh.coordinator.mesh.in_process import InProcessExecutor
from qpumesh.coordinator.training import Trainer
from qpumesh.node.core import NodeConfig
from qpumesh.node.mitigation import ZneConfig
from qpumesh.node.noise import NoiseConfig
from qpumesh.wire.hardware import PRESETS
from qpumesh.wire.job_spec import JobSpec

SEEDS_TABLES = (0, 1, 2, 3, 4)
SEEDS_STUDIES = (0, 1, 2)

TABLE_TASKS: dict[str, dict[str, Any]] = {
    "pendulum": {"task": "pendulum"},
    "narma2": {"task": "narma2", "series_length": 300},
    "narma2-chen": {"task": "narma", "narma_order": 2, "series_length": 300},
}
"""Row prefix -> JobSpec fields of the series."""

PAPER: dict[str, tuple[float, int]] = {
    "pendulum/centric-3": (0.9898, 81),
    "pendulum/centric-4": (0.9913, 68),
    "pendulum/centric-5": (0.9938, 38),
    "pendulum/centric-6": (0.9903, 27),
    "pendulum/distributed": (0.9936, 31),
    "narma2/centric-3": (0.5477, 2),
    "narma2/centric-4": (0.8611, 2),
    "narma2/centric-5": (0.2651, 2),
    "narma2/centric-6": (0.7799, 2),
    "narma2/distributed": (0.7523, 2),
}
"""The paper's single-run (R², convergence epoch) per row; Table II is NARMA-2."""

TABLE_MODELS: dict[str, dict[str, Any]] = {
    **{f"centric-{q}": {"model": "centric", "qubits": q} for q in (3, 4, 5, 6)},
    "distributed": {"model": "distributed", "qubits": 4, "partitions": 2},
    "classical": {"model": "classical", "qubits": 4},
}
"""The rows of each table: the paper's centric widths, its distributed model, a classical LSTM."""

MAIN_ROWS = ("centric-4", "distributed")
"""Rows whose seed-0 predictions are kept for the figures."""

NOISE_ROWS: dict[str, tuple[dict[str, Any], tuple[dict[str, Any], ...]]] = {
    "exact": ({}, ()),
    "shots 100": ({"shots": 100}, ()),
    "shots 1,000": ({"shots": 1000}, ()),
    "shots 10,000": ({"shots": 10_000}, ()),
    "depolarizing 1e-3": ({}, ({"depolarizing_1q": 1e-3, "depolarizing_2q": 1e-3},)),
    "depolarizing 1e-2": ({}, ({"depolarizing_1q": 1e-2, "depolarizing_2q": 1e-2},)),
    "readout 2 %": ({}, ({"readout_error": 0.02},)),
    "node 0 noisy (1e-2 + readout 2 %), node 1 clean": (
        {},
        ({"depolarizing_1q": 1e-2, "depolarizing_2q": 1e-2, "readout_error": 0.02}, {}),
    ),
}
"""Row -> (JobSpec fields, node noise) of the noise study (distributed, M = 2, pendulum)."""

ZNE_NOISE: dict[str, Any] = {"depolarizing_1q": 0.02, "depolarizing_2q": 0.04}
"""The gate noise of the ZNE study: strong enough that the R² loss shows after 10 epochs."""

ZNE_ROWS: dict[str, tuple[dict[str, Any], ...]] = {
    "exact": (),
    "depolarizing 0.02 / 0.04": (ZNE_NOISE,),
    "+ ZNE Richardson (1, 3, 5)": (
        {**ZNE_NOISE, "zne": {"scale_factors": (1.0, 3.0, 5.0), "extrapolation": "richardson"}},
    ),
    "+ ZNE linear (1, 3)": ({**ZNE_NOISE, "zne": {"scale_factors": (1.0, 3.0), "extrapolation": "linear"}},),
}
"""Row -> node settings of the ZNE study (global folding; superconducting timings)."""

HARDWARE_SHOTS: dict[str, int] = {"exact": 0, "1,000 shots": 1000}
"""Column of the hardware study -> JobSpec shots."""

STUDY_MAX_REQUEST_COST = 10**11
"""The in-process nodes' ``max_request_cost`` (amplitude operations per request).

A served node refuses requests over 1e10 by default to bound a call's seconds; the studies
run one job in this process and must run their widest row, the centric width-16 model,
whose gradient requests on NARMA-2 (40 rows x 32 passes x 2^16 amplitudes) cost about
2.5e10. A bound, not a number: it does not enter a run's key.
"""


@dataclass(frozen=True)
class Budget:
    """Epochs per study (decided before the runs start, from timed single runs)."""

    tables: int
    long_epochs: int
    """Epochs of the "long" study: the paper's schedule for the series of ``long_tasks``."""
    long_tasks: tuple[str, ...]
    scale: Mapping[int, int]
    """Width -> epochs of the scale study's distributed rows at that width."""
    scale_centric: Mapping[int, int]
    """Width -> epochs of the scale study's centric rows (a state of 2^width amplitudes)."""
    scale_centric_seeds: Mapping[int, int]
    """Width -> seeds of the centric rows, where fewer than 3 fit the time."""
    noise: int
    noise_series_length: int
    hardware: int = 2
    """Epochs of the hardware study (an epoch's hardware time is the same at every epoch)."""
    scale_centric_gradient: Mapping[int, str] = field(default_factory=dict)
    """Width -> ``JobSpec.gradient_mode`` of the centric rows at that width; absent: "jacobian".

    A mode other than the default enters the runs' JobSpec fields, hence their keys: a VJP-mode
    row never reads a Jacobian-mode run's file (the gradients agree to ~1e-10, not bit for bit).
    """
    vjp_seconds_per_epoch: float | None = None
    """The measured VJP-mode centric-16 epoch (s) the epochs of the VJP rows were decided from."""


VJP_WORKER_MINUTES = 100.0
"""Worker-minutes the lead gave the VJP-mode centric-16 rows (session 4, 2026-11-27)."""
VJP_EPOCHS = (2, 8)
"""Fewest and most epochs of the VJP-mode centric-16 rows (the same decision)."""


def vjp_budget_epochs(seconds_per_epoch: float, runs: int) -> int:
    """Epochs of the VJP-mode centric-16 rows: the lead's rule of session 4.

    E is the largest E <= 8 with runs · E · t <= 100 worker-minutes (t: the measured VJP-mode
    epoch), but at least 2 (two epochs say more than one whatever they cost).

    Args:
        seconds_per_epoch: t, the measured seconds of one VJP-mode centric-16 epoch.
        runs: how many runs share the budget (2 series x 3 seeds: 6).

    Raises:
        ValueError: for a non-positive time or number of runs.
    """
    if not seconds_per_epoch > 0 or runs < 1:
        raise ValueError(
            f"need a positive epoch time and run count; got t={seconds_per_epoch!r}, runs={runs!r}"
        )
    fewest, most = VJP_EPOCHS
    for epochs in range(most, fewest, -1):
        if runs * epochs * seconds_per_epoch <= VJP_WORKER_MINUTES * 60:
            return epochs
    return fewest


def table_runs(epochs: int, *, study: str = "tables", tasks: Sequence[str] = tuple(TABLE_TASKS)) -> list[Run]:
    """Tables I and II: 6 rows per series, 5 seeds; seed-major so early seeds finish first.

    ``study="long"`` is the same rows on the paper's schedule for ``tasks``; they run after
    the short tables, the noise and the scale studies of the same seed.
    """
    runs = []
    offset = 0 if study == "tables" else 14
    for seed in SEEDS_TABLES:
        for prefix in tasks:
            task = TABLE_TASKS[prefix]
            for name, model in TABLE_MODELS.items():
                runs.append(
                    Run(
                        study,
                        f"{prefix}/{name}",
                        seed,
                        epochs,
                        {**task, **model},
                        keep_predictions=seed == 0 and name in MAIN_ROWS,
                        priority=10 * seed + offset,
                    )
                )
    return runs


def scale_runs(budget: Budget) -> list[Run]:
    """Centric and distributed (4-qubit parts; width 4: 2 x 2) rows of the budget's widths."""
    runs = []
    for seed in SEEDS_STUDIES:
        for prefix in ("pendulum", "narma2"):
            task = TABLE_TASKS[prefix]
            for width, n_epochs in budget.scale_centric.items():
                if seed < budget.scale_centric_seeds.get(width, len(SEEDS_STUDIES)):
                    model: dict[str, Any] = {"model": "centric", "qubits": width}
                    mode = budget.scale_centric_gradient.get(width, "jacobian")
                    if mode != "jacobian":  # the default stays out of the fields: old keys hold
                        model["gradient_mode"] = mode
                    # The widest centric rows cost the most and run last, cheapest first:
                    # an epoch grows with 2^width amplitudes (width 12 ~1 min, 16 ~30 min).
                    priority = 100 + width if width >= 12 else 10 * seed + 13
                    runs.append(
                        Run(
                            "scale",
                            f"{prefix}/centric-{width}",
                            seed,
                            n_epochs,
                            {**task, **model},
                            priority=priority,
                        )
                    )
            for width, n_epochs in budget.scale.items():
                parts = 2 if width == 4 else width // 4
                model = {"model": "distributed", "qubits": width, "partitions": parts}
                runs.append(
                    Run(
                        "scale",
                        f"{prefix}/distributed-{width}",
                        seed,
                        n_epochs,
                        {**task, **model},
                        priority=10 * seed + 13,
                    )
                )
    return runs


def jacobian_centric16_runs() -> list[Run]:
    """The session-3 centric-16 runs in Jacobian mode (1 epoch, seed 0, each series).

    The VJP-mode rows replace them in the scale table; the document still quotes their epoch
    time, the cost that the VJP rounds cut. Never trained by ``results.py``: only read.
    """
    return [
        Run("scale", f"{prefix}/centric-16", 0, 1, {**TABLE_TASKS[prefix], "model": "centric", "qubits": 16})
        for prefix in ("pendulum", "narma2")
    ]


def noise_runs(epochs: int, series_length: int) -> list[Run]:
    """The noise study's rows on the pendulum, distributed model (M = 2), 3 seeds."""
    runs = []
    for seed in SEEDS_STUDIES:
        for row, (fields, nodes) in NOISE_ROWS.items():
            spec = {"task": "pendulum", "series_length": series_length, "model": "distributed", **fields}
            runs.append(Run("noise", row, seed, epochs, spec, nodes, priority=10 * seed + 12))
    return runs


def zne_runs(epochs: int, series_length: int) -> list[Run]:
    """The ZNE study's rows on the pendulum, distributed model (M = 2), 3 seeds, seed-major."""
    spec = {"task": "pendulum", "series_length": series_length, "model": "distributed"}
    return [
        Run("zne", row, seed, epochs, spec, nodes, priority=10 * seed + 1)
        for seed in SEEDS_STUDIES
        for row, nodes in ZNE_ROWS.items()
    ]


def hardware_runs(epochs: int) -> list[Run]:
    """The paper's distributed model (pendulum, JobSpec defaults) on each preset, exact and 1,000 shots.

    One seed: the hardware time of an epoch depends on the circuits, their number and their
    shots, not on the weights.
    """
    return [
        Run(
            "hardware",
            f"{preset} / {column}",
            0,
            epochs,
            {"task": "pendulum", "model": "distributed", "shots": shots},
            ({"hardware": preset},),
        )
        for preset in PRESETS
        for column, shots in HARDWARE_SHOTS.items()
    ]


class NodesExecutor(LocalExecutor):
    """Several in-process nodes, possibly with different noise: partition m runs on node m mod N.

    This is the heterogeneous local mesh of the noise study without the network: each task's
    key ``"{gate}/{m}"`` names its partition, as the mesh executor's routing does.
    """

    def __init__(self, nodes: Sequence[InProcessExecutor]) -> None:
        super().__init__()
        if not nodes:
            raise ValueError("NodesExecutor needs at least one node")
        self.nodes = list(nodes)

    def run_round(self, tasks: Sequence[CircuitTask]) -> list[CircuitResult]:
        """Run each task on its partition's node, counting the round once (its critical path too)."""
        results = [self.nodes[_partition(task.key) % len(self.nodes)].run_round([task])[0] for task in tasks]
        self.stats.record_round(results)
        self.stats.record_hardware(results)
        return results


def _partition(key: str) -> int:
    _, _, part = key.partition("/")
    if not part.isdigit():
        raise ValueError(f"task key {key!r} does not name a partition ('gate/m')")
    return int(part)


def make_executor(run: Run, model: str) -> LocalExecutor | None:
    """The executor a run trains on: none (classical), one node, or one node per noise entry."""
    if model == "classical":
        return None
    if not run.nodes:
        return InProcessExecutor(NodeConfig(node_id="local", max_request_cost=STUDY_MAX_REQUEST_COST))
    nodes = [InProcessExecutor(node_config(f"node-{i}", settings)) for i, settings in enumerate(run.nodes)]
    return nodes[0] if len(nodes) == 1 else NodesExecutor(nodes)


def node_config(node_id: str, settings: Mapping[str, Any]) -> NodeConfig:
    """A node of ``Run.nodes``: ``NoiseConfig`` fields, optional ``zne`` (``ZneConfig`` fields)
    and ``hardware`` (a preset name; default the node's)."""
    noise = dict(settings)
    zne_fields: dict[str, Any] = dict(noise.pop("zne", {}))
    if "scale_factors" in zne_fields:  # a list once read back from JSON
        zne_fields["scale_factors"] = tuple(zne_fields["scale_factors"])
    zne = ZneConfig(**zne_fields)
    hardware = noise.pop("hardware", None)
    config = NodeConfig(
        node_id=node_id, noise=NoiseConfig(**noise), zne=zne, max_request_cost=STUDY_MAX_REQUEST_COST
    )
    return config if hardware is None else replace(config, hardware=PRESETS[hardware])


def machine() -> dict[str, Any]:
    """Where a run ran: host, CPU model and count, load average (the machine is shared)."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cpus": os.cpu_count(), "load": list(os.getloadavg())}


def execute(run: Run, cache: RunCache) -> dict[str, Any]:
    """Train ``run`` (torch on one thread) and save its result in ``cache``."""
    torch.set_num_threads(1)
    spec = JobSpec.from_dict({**run.fields, "seed": run.seed, "epochs": run.epochs, "name": run.row})
    trainer = Trainer(spec, make_executor(run, spec.model))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    before = machine()
    clock = time.perf_counter()
    for _ in range(run.epochs):
        trainer.train_epoch()
    summary = trainer.summary()
    summary["total_seconds"] = time.perf_counter() - clock
    decided = asdict(run)
    decided.pop("priority")
    result: dict[str, Any] = {
        "run": decided,
        "key": run.key,
        "summary": summary,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**before, "load_after": list(os.getloadavg())},
    }
    if run.keep_predictions:
        result["predictions"] = {k: v.tolist() for k, v in trainer.predictions().items()}
    cache.save(run, result)
    return result
