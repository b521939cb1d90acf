"""What every data source hands back: one row per clip of ``data/raw/manifest.parquet``.

Sources only produce rows; ``pipeline.download`` writes the table, so every source gets the
same atomic write, the same status counting and the same metrics for free.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import pandas as pd

OK = "ok"
VIDEO_DIR = "videos"  # every source writes its clips below out_dir/videos


def failed(reason: str) -> str:
    """The status of a clip that could not be used, e.g. ``failed:http_404``."""
    return f"failed:{reason}"


@dataclass(frozen=True)
class ManifestRow:
    """One clip. ``path`` is relative to the manifest's folder (empty when nothing landed)."""

    clip_id: str
    source: str
    caption: str
    label: str
    split: str  # train | val | test
    path: str
    url: str
    status: str = OK


@dataclass
class SourceResult:
    """Rows plus what the source wants said about the run (e.g. "sample exhausted")."""

    rows: list[ManifestRow]
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # the object's true pose per source frame (store.TRUTH_SCHEMA rows), where a source
    # knows it (synthetic); empty for real footage
    truth: list[dict] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        columns = list(ManifestRow.__dataclass_fields__)
        return pd.DataFrame([asdict(row) for row in self.rows], columns=columns)

    def status_counts(self) -> Counter[str]:
        return Counter(row.status for row in self.rows)
