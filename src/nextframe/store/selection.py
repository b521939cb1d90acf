"""The clips of a split that every table has (``select_clips``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from nextframe.store.images import ImageEmbeddings
from nextframe.store.texts import TextEmbeddings


@dataclass(frozen=True)
class ClipSelection:
    """The clips of one split that every table has, and why the others were left out."""

    clip_ids: list[str]  # sorted
    skipped: dict[str, int]  # reason -> clips: not_ok, no_embeddings, under_2_frames


def select_clips(
    manifest: pd.DataFrame, images: ImageEmbeddings, texts: TextEmbeddings, split: str
) -> ClipSelection:
    """The ``ok`` clips of ``split`` with a caption encoding and at least 2 embedded frames."""
    slices, text_rows = images.clip_slices(), texts.index()
    of_split = manifest[manifest["split"] == split]
    ok = of_split[of_split["status"] == "ok"]
    skipped = {"not_ok": len(of_split) - len(ok), "no_embeddings": 0, "under_2_frames": 0}
    chosen = []
    for clip_id in ok["clip_id"]:
        if clip_id not in slices or clip_id not in text_rows:
            skipped["no_embeddings"] += 1
        elif slices[clip_id].stop - slices[clip_id].start < 2:
            skipped["under_2_frames"] += 1
        else:
            chosen.append(clip_id)
    return ClipSelection(sorted(chosen), skipped)
