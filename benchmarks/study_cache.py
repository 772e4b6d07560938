"""The runs of the studies in ``benchmarks/results.py`` and their resumable on-disk cache.

A ``Run`` is everything that decides one training run's numbers: the JobSpec fields, the seed,
the epochs and the noise of the emulated node(s). Its ``key`` is a hash of those, and its
result is one JSON file named after the study, row, seed and key; a run whose file exists is
not run again, so a killed ``results.py`` continues where it stopped, and changing a run's
definition (more epochs, another noise level) makes a new key instead of reusing stale numbers.
Files are written to a temporary name and renamed, so a kill never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Run:
    """One training run of a study.

    Attributes:
        study: "tables", "long", "scale", "noise", "zne" or "hardware".
        row: the table row it belongs to (runs of a row differ only by seed).
        seed: the JobSpec seed (initial weights; shot sampling).
        epochs: epochs trained.
        fields: other JobSpec fields (task, model, qubits, partitions, shots, ...).
        nodes: settings of the emulated nodes, one mapping per node: ``NoiseConfig`` fields,
            optionally ``zne`` (``ZneConfig`` fields) and ``hardware`` (a preset name);
            partition m runs on node m mod len(nodes). Empty: one noise-free node.
        keep_predictions: also store the predictions over all windows (for the figures).
    """

    study: str
    row: str
    seed: int
    epochs: int
    fields: Mapping[str, Any]
    nodes: tuple[Mapping[str, Any], ...] = ()
    keep_predictions: bool = False
    priority: int = field(default=0, compare=False)
    """Lower runs first; not part of the key (the order does not change the numbers)."""

    @property
    def key(self) -> str:
        """Hash of everything that decides the run's numbers (16 hex digits)."""
        decided = asdict(self)
        decided.pop("priority")
        text = json.dumps(decided, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def file_name(self) -> str:
        """``{study}-{row}-s{seed}-{key}.json`` with the row made file-name safe."""
        row = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.row)
        return f"{self.study}-{row}-s{self.seed}-{self.key}.json"


class RunCache:
    """A directory of finished runs, one JSON file each.

    Args:
        directory: where the files live; created on the first ``save``.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, run: Run) -> Path:
        """The file holding ``run``'s result."""
        return self.directory / run.file_name

    def load(self, run: Run) -> dict[str, Any] | None:
        """The saved result of ``run``, or None if it has not finished."""
        path = self.path(run)
        if not path.is_file():
            return None
        with path.open(encoding="utf-8") as handle:
            result: dict[str, Any] = json.load(handle)
        return result

    def save(self, run: Run, result: Mapping[str, Any]) -> Path:
        """Write ``result`` atomically (temporary file, then rename) and return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(run)
        temporary = path.with_name(path.name + f".tmp{os.getpid()}")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(dict(result), handle, indent=None, separators=(",", ":"))
        temporary.replace(path)
        return path

    def stale(self, runs: list[Run]) -> list[Path]:
        """Saved run files that no run of ``runs`` owns, sorted by name.

        They are what an earlier budget ran (a run's file name holds the key of what decides
        its numbers): the document never reads them, so they can be deleted.
        """
        owned = {run.file_name for run in runs}
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.json") if p.name not in owned)

    def missing(self, runs: list[Run]) -> list[Run]:
        """The runs without a saved result, in priority order (stable)."""
        return sorted((r for r in runs if not self.path(r).is_file()), key=lambda r: r.priority)
