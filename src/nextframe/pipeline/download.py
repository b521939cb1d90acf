"""The download stage: run the chosen source and write ``data/raw/manifest.parquet``.

Every source module in ``nextframe.data`` exposes ``collect(params, out_dir) ->
SourceResult`` and only produces rows; this module writes the table (atomically), prunes
what no row names, counts statuses and turns them into metrics and a summary, so all
sources report the same way. Source modules are imported on use: the network sources
pull in HTTP and archive code the synthetic default never needs.
"""

from __future__ import annotations

import importlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nextframe.config import DownloadParams, Params
from nextframe.data.manifest import OK, VIDEO_DIR, SourceResult
from nextframe.errors import UserError
from nextframe.store import MANIFEST_SCHEMA, TRUTH_SCHEMA, write_dataframe

PARAMS = ("download",)
MANIFEST = "manifest.parquet"
TRUTH = "truth.parquet"  # always written (empty where a source knows no pose) for evaluate
SOURCE_MODULES = {
    "synthetic": "nextframe.data.synthetic",
    "folder": "nextframe.data.folder",
    "tgif": "nextframe.data.tgif",
    "ucf50": "nextframe.data.ucf50",
    "msrvtt": "nextframe.data.msrvtt",
    "ucf101": "nextframe.data.ucf101",
}
FAILED_PREFIX = "failed:"


@dataclass
class DownloadSummary:
    """What a download did, for the log line and the MLflow metrics."""

    source: str
    statuses: Counter[str]
    ok_per_split: Counter[str]
    seconds: float
    source_metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def clips_total(self) -> int:
        return sum(self.statuses.values())

    @property
    def failures(self) -> dict[str, int]:
        """Failed clips per reason, e.g. ``{"http_404": 3}``."""
        return {
            status.removeprefix(FAILED_PREFIX): count
            for status, count in sorted(self.statuses.items())
            if status != OK
        }

    def metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = dict(self.source_metrics)
        metrics.update(
            {
                "clips_total": self.clips_total,
                "clips_ok": self.statuses[OK],
                "seconds": self.seconds,
                "clips_per_s": self.clips_total / self.seconds if self.seconds > 0 else 0.0,
            }
        )
        metrics.update({f"failed.{reason}": count for reason, count in self.failures.items()})
        metrics.update({f"split.{name}": count for name, count in self.ok_per_split.items()})
        return metrics

    def describe(self) -> str:
        splits = ", ".join(f"{name} {n}" for name, n in sorted(self.ok_per_split.items()))
        failures = ", ".join(f"{reason}: {n}" for reason, n in self.failures.items()) or "none"
        text = (
            f"download ({self.source}): {self.statuses[OK]}/{self.clips_total} clips ok "
            f"({splits or 'no splits'}) in {self.seconds:.1f}s; failed: {failures}"
        )
        return text + "".join(f"; {note}" for note in self.notes)


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Run the source named by ``params.source``."""
    module = importlib.import_module(SOURCE_MODULES[params.source])
    return module.collect(params, out_dir)


def prune_unlisted(out_dir: Path, listed: set[str]) -> int:
    """Delete what no manifest row names under ``out_dir/videos``; returns how many entries.

    ``data/raw`` persists between runs (dvc.yaml ``persist: true``) so that verified
    downloads are not fetched again; without pruning, the clips of an earlier seed or
    sample would linger in the DVC output and be pushed to the remote with it. Only
    ``videos/``, where every source writes, is touched: anything else in ``out_dir`` is
    the user's. Links, FIFOs and devices go too (DVC would follow or hang on them), and
    links are never followed, so nothing outside ``videos/`` is ever removed.
    """
    keep = {out_dir / path for path in listed}
    pruned = 0
    for root, folders, files in os.walk(out_dir / VIDEO_DIR, topdown=False):
        here = Path(root)
        for name in files + [f for f in folders if (here / f).is_symlink()]:
            path = here / name
            if path not in keep or not path.is_file() or path.is_symlink():
                path.unlink()
                pruned += 1
        for name in folders:
            folder = here / name
            if not folder.is_symlink() and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return pruned


def run(out_dir: Path, params: Params) -> DownloadSummary:
    """Collect clips into ``out_dir`` and write ``out_dir/manifest.parquet``.

    The manifest is written even when no clip is usable, so the failures can be
    inspected; that case then raises a UserError with the counts per reason.
    """
    started = time.perf_counter()
    settings = params.download
    out_dir = Path(out_dir)
    result = collect(settings, out_dir)
    frame = result.frame()
    duplicated = sorted(set(frame.loc[frame["clip_id"].duplicated(), "clip_id"]))
    if duplicated:
        raise ValueError(f"source {settings.source!r} returned duplicate clip ids {duplicated[:5]}")
    write_dataframe(frame, MANIFEST_SCHEMA, out_dir / MANIFEST)
    truth = pd.DataFrame(result.truth, columns=TRUTH_SCHEMA.names)
    write_dataframe(truth, TRUTH_SCHEMA, out_dir / TRUTH)
    pruned = prune_unlisted(out_dir, {row.path for row in result.rows if row.path})
    summary = DownloadSummary(
        source=settings.source,
        statuses=result.status_counts(),
        ok_per_split=Counter(row.split for row in result.rows if row.status == OK),
        seconds=time.perf_counter() - started,
        source_metrics={**result.metrics, "files_pruned": pruned},
        notes=list(result.notes),
    )
    if summary.statuses[OK] == 0:
        reasons = ", ".join(f"{r}: {n}" for r, n in summary.failures.items()) or "no clips at all"
        raise UserError(
            f"download ({settings.source}): no usable clip out of {summary.clips_total} "
            f"({reasons}); see {out_dir / MANIFEST} and the download.{settings.source} params"
        )
    return summary
