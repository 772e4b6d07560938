"""The prose of ``docs/results.md`` around the generated tables (``study_report``).

The statements that depend on numbers are computed here from the runs (or, for the NARMA-2
ceiling, from the series), so the regenerated document never contradicts its tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from study_cache import Run
from study_runs import (
    PAPER,
    SEEDS_STUDIES,
    VJP_EPOCHS,
    VJP_WORKER_MINUTES,
    Budget,
    scale_runs,
    vjp_budget_epochs,
)
from study_tables import aggregate, format_mean_std, r2_at_epoch

from qpumesh.coordinator.data import narma2_paper_series
from qpumesh.coordinator.metrics import r2_score


def narma2_oracle_r2(length: int = 300, window: int = 4, train_fraction: float = 0.67) -> float:
    """Test R² of the best predictor of the paper's NARMA-2 that sees only past y.

    E[y_{t+1} | y_t, y_{t-1}, ...] = 0.4 y_t + 0.4 y_t y_{t-1} + 0.6 E[u³] + 0.1, with
    E[u³] = 0.5³ / 4 for u ~ U[0, 0.5]: u_t is independent of the past, so no model reading
    windows of y can beat this on the same test windows.
    """
    y = narma2_paper_series(length)
    n = length - window - 1
    target = np.arange(n) + window
    oracle = 0.4 * y[target - 1] + 0.4 * y[target - 1] * y[target - 2] + 0.6 * 0.5**3 / 4 + 0.1
    split = int(n * train_fraction)
    return r2_score(y[target][split:], oracle[split:])


def _r2(stats: Mapping[str, Any], row: str) -> str:
    item = stats.get(row)
    return "–" if item is None else f"{item.r2[0]:.4f}"


def _scale_note(stats: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    """Centric vs distributed at each width both ran, on each series: R² at the same epoch, time per epoch.

    The rows of a width may train different epochs (centric 16: fewer); the runs' per-epoch
    histories give both rows' test R² after the epochs the shorter one trained.
    """
    parts = []
    for task in ("pendulum", "narma2"):
        for width in (4, 8, 12, 16):
            centric = stats.get(f"{task}/centric-{width}")
            distributed = stats.get(f"{task}/distributed-{width}")
            if centric is None or distributed is None:
                continue
            epoch = min(centric.epochs, distributed.epochs)
            at = [r2_at_epoch(results, f"{task}/{k}-{width}", epoch) for k in ("centric", "distributed")]
            cells = [format_mean_std(*item[0], 4) if item else "–" for item in at]
            parts.append(
                f"{task} width {width}, R² after epoch {epoch}: {cells[0]} centric vs "
                f"{cells[1]} distributed; "
                f"{centric.seconds_per_epoch:.1f} vs {distributed.seconds_per_epoch:.1f} s/epoch"
            )
    if not parts:
        return "No width has both a centric and a distributed row yet."
    return (
        "Side by side at the same epoch (mean ± std over the seeds of each run's per-epoch test R², "
        "from the saved histories): " + "; ".join(parts) + "."
    )


def _long_note(stats: Mapping[str, Any], tasks: Sequence[str]) -> str:
    """Distributed vs centric-4 on the long schedule, each series, the paper's values beside."""
    parts = []
    for task in tasks:
        centric, distributed = stats.get(f"{task}/centric-4"), stats.get(f"{task}/distributed")
        if centric is None or distributed is None:
            continue
        paper = "narma2" if task.startswith("narma2") else task
        parts.append(
            f"{task}: distributed {distributed.r2[0]:.4f} ± {distributed.r2[1]:.4f} "
            f"({len(distributed.seeds)} seeds) vs centric-4 {centric.r2[0]:.4f} ± {centric.r2[1]:.4f} "
            f"({len(centric.seeds)} seeds); paper {PAPER[f'{paper}/distributed'][0]:.4f} vs "
            f"{PAPER[f'{paper}/centric-4'][0]:.4f}"
        )
    if not parts:
        return "No long run has finished yet."
    return "Headline: " + "; ".join(parts) + "."


def _long_narma2_note(
    short: Mapping[str, Any],
    long: Mapping[str, Any],
    long_runs: Sequence[Mapping[str, Any]],
    ceiling: float,
) -> str:
    """What 100 epochs do on the paper's NARMA-2 formula, against the 20-epoch rows and the ceiling."""
    rows = [name for name in long if name.startswith("narma2/")]
    if not rows:
        return ""
    changes = [
        f"{name.split('/')[1]} {short[name].r2[0]:.4f} → {long[name].r2[0]:.4f}"
        for name in rows
        if name in short
    ]
    best = max(rows, key=lambda name: long[name].r2[0])
    means = "stays under" if long[best].r2[0] < ceiling else "reaches"
    seeds = [(r["summary"]["test_r2"], r["run"]["row"], r["run"]["seed"]) for r in long_runs]
    top, top_row, top_seed = max(s for s in seeds if s[1] in rows)
    above = sum(1 for value, row, _ in seeds if row in rows and value > ceiling)
    single = (
        f"{above} of {sum(1 for _, row, _ in seeds if row in rows)} single runs end above it (highest: "
        f"{top_row.split('/')[1]} seed {top_seed}, {top:.4f}): the ceiling bounds the expected R², and on "
        f"{_narma2_test_windows()} test windows a predictor can beat the conditional mean by chance"
        if above
        else "so does every single run"
    )
    return (
        f"On `narma2` (the paper's formula) the best row mean {means} the ceiling of {ceiling:.4f} "
        f"(the best predictor from past y; \"On NARMA-2\" above): {best.split('/')[1]} at "
        f"{long[best].r2[0]:.4f}, against the paper's 0.27–0.86; {single}. Mean final R², "
        f"{_epochs_of(short, rows)} → {_epochs_of(long, rows)} epochs: {'; '.join(changes)}.\n"
    )


def _narma2_test_windows(length: int = 300, window: int = 4, train_fraction: float = 0.67) -> int:
    """Test windows of the 300-point NARMA-2 series (as ``narma2_oracle_r2`` splits them)."""
    n = length - window - 1
    return n - int(n * train_fraction)


def _epochs_of(stats: Mapping[str, Any], rows: Sequence[str]) -> str:
    epochs = sorted({stats[name].epochs for name in rows if name in stats})
    return "/".join(map(str, epochs)) or "–"


def _vjp_note(
    scale: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], earlier: Sequence[Mapping[str, Any]]
) -> str:
    """The scale rows trained in VJP mode: what that means, and their epoch against the Jacobian-mode one."""
    rows = sorted({r["run"]["row"] for r in runs if r["run"]["fields"].get("gradient_mode") == "vjp"})
    if not rows:
        return ""
    old = {r["run"]["row"]: r["summary"]["total_seconds"] / r["run"]["epochs"] for r in earlier}
    times = [
        f"{row}: {scale[row].seconds_per_epoch / 60:.1f} min per epoch"
        + (f" (Jacobian mode, session 3: {old[row] / 60:.1f} min)" if row in old else "")
        for row in rows
    ]
    return (
        "Rows marked *VJP rounds* trained with `gradient_mode = \"vjp\"`: their forward rounds "
        "ask values only and each backward time step sends one round of vector-Jacobian products "
        "(docs/model.md, \"Gradient modes\"); their gradients are those of Jacobian mode to "
        "~1e-10, not bit-identical, and their circuit executions are counted the same way. "
        "Epoch times (machine shared, different loads): " + "; ".join(times) + "."
        + _first_epoch_agreement(runs, earlier)
        + "\n"
    )


def _first_epoch_agreement(runs: Sequence[Mapping[str, Any]], earlier: Sequence[Mapping[str, Any]]) -> str:
    """How far the VJP runs' first epoch is from the Jacobian-mode run of the same row and seed."""
    parts = []
    for old in earlier:
        row, seed = old["run"]["row"], old["run"]["seed"]
        new = next(
            (
                r
                for r in runs
                if (r["run"]["row"], r["run"]["seed"]) == (row, seed)
                and r["run"]["fields"].get("gradient_mode") == "vjp"
            ),
            None,
        )
        if new is None:
            continue
        a, b = old["summary"]["history"][0], new["summary"]["history"][0]
        gap = max(abs(a[k] - b[k]) / abs(a[k]) for k in ("train_loss", "test_loss"))
        parts.append(f"{row} seed {seed}: {gap:.1e}")
    if not parts:
        return ""
    return (
        " The same seed's first epoch in the two modes (largest relative difference of its train "
        "and test loss): " + "; ".join(parts) + "."
    )


def _mode_caveat(budget: Budget) -> str:
    """Say which centric widths ran in another gradient mode, whose times are not on the same curve."""
    other = sorted(w for w, mode in budget.scale_centric_gradient.items() if mode != "jacobian")
    if not other:
        return ""
    return (
        f" (width {', '.join(map(str, other))} in VJP mode, the others in Jacobian mode: a "
        "request's VJP costs one weighted reverse sweep of the state where its Jacobian costs "
        "about K = width − 1, so the widths' times are not on one curve)"
    )


def _session4_budget(
    budget: Budget, results: Sequence[Mapping[str, Any]], earlier: Sequence[Mapping[str, Any]]
) -> str:
    """The budget paragraph of session 4: narma2 on the long schedule, the VJP-mode centric-16 rows."""
    long_narma2 = [
        r["summary"]["total_seconds"]
        for r in results
        if r["run"]["study"] == "long" and r["run"]["row"].startswith("narma2/")
    ]
    minutes = sum(long_narma2) / 60
    took = f"; the {len(long_narma2)} saved runs took {minutes:.0f} worker-minutes" if long_narma2 else ""
    text = (
        "**Budget of 2026-11-27, session 4 (decided by the lead before the runs):** the long study "
        "adds `narma2`, the paper's NARMA-2 formula (30 runs: 6 rows × 5 seeds × "
        f"{budget.long_epochs} epochs; estimated from the saved long runs' times at about 20 "
        f"worker-minutes{took}), one worker at `nice 19` (the machine was shared with two "
        "helpers' benchmarks)."
    )
    vjp = sorted(w for w, mode in budget.scale_centric_gradient.items() if mode == "vjp")
    if not vjp:
        return text + (
            " The centric-16 rows stay the Jacobian-mode runs of session 3 (1 epoch × 1 seed): "
            "the VJP gradient mode that was to make more epochs affordable was not on main in time.\n"
        )
    seeds = {w: budget.scale_centric_seeds.get(w, len(SEEDS_STUDIES)) for w in vjp}
    runs = 2 * sum(seeds.values())
    t = budget.vjp_seconds_per_epoch
    rule = (
        f"with t = {t:.0f} s the measured VJP-mode centric-16 epoch, E is the largest E ≤ "
        f"{VJP_EPOCHS[1]} with {runs} · E · t ≤ {VJP_WORKER_MINUTES:.0f} worker-minutes, but at least "
        f"{VJP_EPOCHS[0]}: E = {vjp_budget_epochs(t, runs)}"
        if t is not None
        else "E from the measured VJP-mode epoch"
    )
    old = ", ".join(
        f"{r['summary']['total_seconds'] / 60:.0f} min for {r['run']['row']}"
        for r in sorted(earlier, key=lambda r: r["run"]["row"])
    )
    return text + (
        f" The centric rows of width {', '.join(map(str, vjp))} train in **VJP mode** "
        f"(`JobSpec.gradient_mode = \"vjp\"`: the forward rounds ask values only, and backward "
        "sends one vector-Jacobian-product round per time step instead of asking each forward "
        "round for the K = 15-output Jacobian; the gradients agree with Jacobian mode to ~1e-10, "
        "not bit for bit, so these runs have their own keys), "
        + ", ".join(f"width {w}: {budget.scale_centric[w]} epochs × {seeds[w]} seeds per series" for w in vjp)
        + f" ({rule}). They replace the Jacobian-mode rows of session 3 (1 epoch × 1 seed"
        + (f"; an epoch took {old}" if old else "")
        + ").\n"
    )


def _missing(runs: Sequence[Run], results: Sequence[Mapping[str, Any]]) -> str:
    """The runs of a study's budget that have no saved result (time ran out), by row, or nothing."""
    done = {(r["run"]["row"], r["run"]["seed"], r["run"]["epochs"]) for r in results}
    seeds: dict[str, list[int]] = {}
    for run in runs:
        if (run.row, run.seed, run.epochs) not in done:
            seeds.setdefault(run.row, []).append(run.seed)
    if not seeds:
        return "Every run of this study's budget finished.\n"
    rows = [f"{row} (seed {', '.join(map(str, s))})" for row, s in sorted(seeds.items())]
    return "**Not run (did not fit the time): " + "; ".join(rows) + ".**\n"


def _noise_note(stats: Mapping[str, Any]) -> str:
    """Each noisy condition's R² change against the exact row (same epochs and seeds)."""
    exact = stats.get("exact")
    if exact is None:
        return "The exact row has not run yet."
    changes = [f"{name} {row.r2[0] - exact.r2[0]:+.4f}" for name, row in stats.items() if name != "exact"]
    clear = [
        name
        for name, row in stats.items()
        if name != "exact" and abs(row.r2[0] - exact.r2[0]) > math.hypot(row.r2[1], exact.r2[1])
    ]
    verdict = (
        "Changes larger than the two rows' standard deviations combined (√(s₁² + s₂²)): "
        f"{', '.join(clear)}; every other condition stays within it (3 seeds: a rough test)."
        if clear
        else "No condition moves the R² by more than the two rows' standard deviations combined."
    )
    return (
        f"Change of the mean final R² against the exact row ({exact.r2[0]:.4f}): "
        + "; ".join(changes)
        + f". {verdict}"
    )


def render(
    sections: Mapping[str, str],
    budget: Budget,
    results: Sequence[Mapping[str, Any]],
    earlier: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The whole document; ``earlier``: runs of an earlier budget quoted in the prose."""
    tables = aggregate(r for r in results if r["run"]["study"] == "tables")
    scale = aggregate(r for r in results if r["run"]["study"] == "scale")
    long = aggregate(r for r in results if r["run"]["study"] == "long")
    long_tasks = ", ".join(f"`{t}`" for t in budget.long_tasks)
    noise = aggregate(r for r in results if r["run"]["study"] == "noise")
    ceiling = narma2_oracle_r2()
    scale_widths = ", ".join(f"{w}: {e}" for w, e in budget.scale.items())
    centric_widths = ", ".join(f"{w}: {e}" for w, e in budget.scale_centric.items())
    centric_seeds = ", ".join(f"width {w}: {s}" for w, s in budget.scale_centric_seeds.items())
    if centric_seeds:
        centric_seeds = (
            f", with fewer seeds where a centric state of 2^width amplitudes did not fit ({centric_seeds})"
        )
    return f"""# Results: Tables I and II over seeds; scale, noise, error-mitigation and hardware-time studies

Generated by **`python benchmarks/results.py`** (this whole file and `docs/images/results/`):
it trains every run that `docs/results/runs/` lacks (2 worker processes, niced), one JSON file
per run saved as soon as it finishes, then writes this document from all saved runs. A killed
command continues where it stopped; `--render-only` rewrites the document from the saved runs;
delete `docs/results/runs/` to start from scratch. The single-seed 100-epoch runs and the
ablations that chose the defaults are in [results-single-runs.md](results-single-runs.md).

All runs: in process (`InProcessExecutor`, the node's engines, no network), exact expectations
unless a noise row says otherwise, float64, torch on 1 thread, the `JobSpec` defaults
(ansatz `chen2020`, L = 3 layers, batch 10, window 4, RMSprop lr 0.01, first 67 % of the windows
train, no shuffling). **R² is the test R² at the final epoch** (no model selection on the test
set); "conv. epoch" is the first epoch from which the test R² stays within 0.01 of its final
value (docs/model.md); with short schedules a convergence epoch equal (or close) to the
number of epochs means the R² was still moving at the end. Every cell is mean ± sample
standard deviation over the seeds (the `seeds` column says how many); the seed sets the
initial weights (and the shot sampling).

## How long it takes, and on what

{sections["timing"]}
**Budget (decided before the runs, from one timed run of each kind, to fit the afternoon on a
2-core machine shared with five other jobs):** Tables I and II train **{budget.tables} epochs**,
not the paper's 100; the scale study's distributed rows train (width: epochs) {scale_widths},
its centric rows {centric_widths}{centric_seeds}; the noise study trains {budget.noise} epochs on the
{budget.noise_series_length}-point pendulum. Every number below is therefore an
**early-training** figure wherever the epochs are below 100 — the paper's convergence epochs
on the pendulum are 27–81, so Table I's R² here are lower than after 100 epochs
(results-single-runs.md has 100-epoch single runs: 0.9963 centric-4, 0.9970 distributed).
The section after the tables trains the same rows on the paper's schedule
({budget.long_epochs} epochs) for {long_tasks}, as far as the time allowed.

**Scale study budget of 2026-11-27, session 3 (decided by the lead before the runs; its
centric-16 rows are replaced by session 4's, next paragraph):** distributed rows
at every width train 8 epochs (before: 3 at widths 12, 16 and 32); centric rows of width 4,
8 and 12 train 8 epochs × 3 seeds (before: width 12 one epoch, one seed; an epoch takes about
a minute); centric 16 stays at 1 epoch × 1 seed (an epoch is about 30 min: K = 15 adjoint
sweeps of a 2^16-amplitude state), and the NARMA-2 centric-16 row runs last, only if
everything else had finished by 18:15 UTC. The runs go cheapest first (`results.py` orders
them), each worker at `nice 19` on the shared machine, and no run was started after
18:50 UTC. The runs of the earlier budget were deleted from `docs/results/runs/` (the
document reads only the runs of its budget; `results.py --list` names such stale files).
The rows of width 4 and 8 (unchanged budget) were trained again in the same session so that
the scale table's times come from one session: every re-run was bit-identical to the saved
run in R², losses and circuit counts; only the times changed. The pendulum centric-16 run
(1 epoch, seed 0, about 31 min) is the earlier session's, kept as its budget did not change:
its time was measured under another load. The NARMA-2 centric-16 run needed the in-process
node's request bound raised (`study_runs.STUDY_MAX_REQUEST_COST`: its gradient requests cost
2.5e10 amplitude operations, over a served node's default 1e10).

{_session4_budget(budget, results, earlier)}
## Tables I and II, 5 seeds

The paper reports single runs; its values stand beside ours. Bold rows are the paper's main
comparison (centric 4-qubit vs distributed 2 × 2-qubit). The figures show seed 0's
predictions over all windows (dotted line: first test window) and the loss per epoch, mean
over the seeds with a ± 1 std band.

{sections["tables"]}
**On NARMA-2.** Two series: `narma2` is the paper's formula with u_t ~ U[0, 0.5] i.i.d. (the
paper does not state its input; docs/model.md), `narma2-chen` is Chen's code family (sine
input) at order 2. On `narma2` the model reads only y, and u_t is independent of the past,
so no predictor of y_{{t+1}} from past y beats the conditional mean
0.4 y_t + 0.4 y_t y_{{t−1}} + 0.6·E[u³] + 0.1 in expectation: its test R² on the same test
windows is **{ceiling:.4f}** — the ceiling for every row of that table (up to chance on
{_narma2_test_windows()} test windows). The paper's NARMA-2 R² (0.27–0.86) exceed it by far,
so the paper's input cannot have been this one (a smoother or partly predictable input would
explain both its higher R² and its epoch-2 convergence); with the Chen sine input every
model gets far higher R² than the paper's. Neither series reproduces the paper's numbers;
what carries over is the comparison: distributed vs centric-4 on `narma2` is
{_r2(tables, "narma2/distributed")} vs {_r2(tables, "narma2/centric-4")}, on `narma2-chen`
{_r2(tables, "narma2-chen/distributed")} vs {_r2(tables, "narma2-chen/centric-4")}
(pendulum: {_r2(tables, "pendulum/distributed")} vs {_r2(tables, "pendulum/centric-4")}).

## Tables I and II on the paper's schedule ({budget.long_epochs} epochs)

The same rows trained {budget.long_epochs} epochs, for the series {long_tasks}. These ran
last, after the short tables and the other studies, so a row may hold fewer seeds than 5
(see `seeds`).
{_long_note(long, budget.long_tasks)}

{_long_narma2_note(tables, long, [r for r in results if r["run"]["study"] == "long"], ceiling)}

{sections["long"]}
## Scale study: centric vs distributed, widths 4–32

Width = qubits of [h; x] (d_h = width − 1). Distributed models cut every gate's circuit into
4-qubit parts (width 4: the paper's 2 × 2). The centric model's state has 2^width amplitudes;
the distributed one's largest circuit stays at 4 qubits whatever the width, so its cost per
epoch grows with the number of parts, not exponentially. "circuit executions / epoch" counts
what a QPU would run (parameter-shift accounting, `ExecutorStats`), whichever engine computed
the gradient.

{sections["scale"]}
{_vjp_note(scale, [r for r in results if r["run"]["study"] == "scale"], earlier)}
{_scale_note(scale, [r for r in results if r["run"]["study"] == "scale"])}

{_missing(scale_runs(budget), [r for r in results if r["run"]["study"] == "scale"])}
Final R² of rows with different epochs are not comparable with each other (epochs per width:
distributed {scale_widths}; centric {centric_widths}); the same-epoch comparison above is. The
scale study shows what each width reaches on the same short schedule and what it costs, not
converged accuracy. The centric model's time per epoch grows with 2^width{_mode_caveat(budget)};
the distributed model's with the number of 4-qubit parts. Circuit executions
per epoch grow linearly with the width for both (parameter-shift accounting: more symbols
per circuit for centric, more circuits for distributed).

## Noise study: the paper's distributed model on noisy QPUs

Pendulum, distributed model (M = 2, 2 × 2 qubits), 3 seeds. Shots: per Pauli term, sampled
with the run's seed. Depolarizing p: `depolarize(p)` after every one-qubit gate and the
two-qubit depolarizing channel with the same p after every CNOT, on the node's exact batched
density-matrix engine. Readout: symmetric bit flip of each measured qubit. The heterogeneous
row routes partition 0's circuits (gates f/0, i/0, g/0, o/0) to a noisy node and partition 1's
to a clean one, as a 2-node mesh with one noisy node does
(`qpumesh train --nodes 2 --node-arg-at=0:--depolarizing-1q=0.01 ...`; here in process,
`study_runs.NodesExecutor`).

{sections["noise"]}
{_noise_note(noise)}

The noise study trains {budget.noise} epochs only (noisy engines are 4–10× slower per epoch
here), so it measures how noise changes early training, not the converged R². Depolarizing
and symmetric readout noise shrink every <Z> towards 0 by a nearly uniform factor, which the
trained gates and the linear head can partly absorb; shot noise adds variance to every
gradient instead. That may be why 100 shots cost more R² here than 1 % depolarizing noise.

## Error mitigation: how much of the noise's R² loss zero-noise extrapolation recovers

Pendulum, distributed model (M = 2), {budget.noise} epochs, 3 seeds, as the noise study, with
stronger gate noise so that the loss shows: depolarizing p = 0.02 after every one-qubit gate
and 0.04 (two-qubit channel) after every CNOT. The ZNE rows run the same noise with the node's
mitiq zero-noise extrapolation (`--zne-scale-factors 1,3,5 --zne-extrapolation richardson`,
and `1,3` linear; global folding; docs/node.md "Error mitigation"), which runs every circuit
once per scale factor λ; a circuit folded to λ times its length has about λ times the gate
angles to shift (parameter-shift rule), so an epoch's executions grow by about the sum of the
factors (≈ 9× for 1, 3, 5; ≈ 4× for 1, 3), and its hardware time with them. "R² loss recovered" is
(R²_ZNE − R²_noisy) / (R²_exact − R²_noisy) of the row means; it is marked "loss within noise"
when R²_exact − R²_noisy is not larger than the two rows' standard deviations combined.
Circuit executions count what a QPU would run (each scale factor's circuits included);
hardware seconds price them on the `superconducting` preset (every circuit at 1,000 shots
when the run is exact, docs/hardware.md); emulation s / epoch is this machine's wall time.
The ZNE rows were trained again after main's commit 81e6d34 (2026-11-27), which counts an
evaluation's executions as the node reports them: before it, the values-only evaluation
rounds counted one execution per row, not one per folded circuit (the training rounds'
counts came from the node and were right already).

{sections["zne"]}
## Hardware time: the paper's distributed model on each preset

The paper's distributed model (pendulum, 240 points, M = 2, 2 × 2 qubits, L = 3) trained
{budget.hardware} epochs with one node set to each hardware preset (`--hardware`), exact and
with 1,000 shots per Pauli term, seed 0 only: an epoch's hardware time depends on the
circuits, their number and their shots, not on the weights or the seed, and it is the same
at every epoch, so the {budget.long_epochs}-epoch column (the paper's schedule) is the
measured per-epoch time × {budget.long_epochs}. An exact request is costed at 1,000 shots per
circuit (hardware cannot run zero shots), so the exact and 1,000-shot rows of a preset cost
the same on hardware; they differ in the emulation time and in what the model learns.
Per-node sums in process: one node runs every circuit one after another (no network time and
no parallel nodes; a 2-node mesh runs the two partitions' circuits side by side, docs/hardware.md).

**On the presets (docs/hardware.md "Presets and their sources" gives each number's source):**
the superconducting timings (IBM `ibm_sherbrooke` backend properties) and the trapped-ion gate
times (IonQ Aria, Azure Quantum's provider page) were checked against their sources and
needed no correction; the trapped-ion readout and reset agree with secondary sources only;
the neutral-atom numbers are unverified orders of magnitude (its 200 ms per shot dominates
its row); the per-circuit overheads are assumptions. Real devices drift by tens of percent,
so read the hardware columns as orders of magnitude, and pass a JSON profile
(`--hardware FILE`) with your device's calibration data for a real estimate.

{sections["hardware"]}
## Commands

```
python benchmarks/results.py                       # everything missing, then this document
python benchmarks/results.py --studies tables      # Tables I and II only
python benchmarks/results.py --studies zne hardware --workers 1   # the ZNE and hardware tables
python benchmarks/results.py --render-only         # rewrite this document from docs/results/runs/
python benchmarks/results.py --list                # which runs are saved
```
"""
