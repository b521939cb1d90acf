"""What generate rolls out: held-out clips at their true frames' times, and free prompts.

Held-out clips are the manifest's ``test`` split (never val: it chose the early-stopping
epoch), sorted by clip_id; their rollouts step through the true frames' times, so step i
and true frame i are the same moment (a clip with fewer frames continues at its mean frame
gap). Prompts have no truth; they rise evenly over one training clip's span.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from nextframe.errors import UserError
from nextframe.model.rollout import Conditioning
from nextframe.outputs import HELD_OUT_SPLIT
from nextframe.store import ImageEmbeddings, TextEmbeddings, select_clips


@dataclass(frozen=True)
class Clips:
    """The captions to generate for, with their conditioning, in one batch."""

    clip_ids: list[str]
    captions: list[str]
    split: list[str]
    cond: Conditioning

    def __add__(self, other: Clips) -> Clips:
        return Clips(
            self.clip_ids + other.clip_ids,
            self.captions + other.captions,
            self.split + other.split,
            self.cond.concat(other.cond),
        )


def held_out_clips(
    manifest: pd.DataFrame, images: ImageEmbeddings, texts: TextEmbeddings, max_clips: int
) -> list[str]:
    """The test clips to generate and score, the first ``max_clips`` (0: all)."""
    clip_ids = select_clips(manifest, images, texts, HELD_OUT_SPLIT).clip_ids
    if not clip_ids:
        raise UserError(
            "no test clips: the manifest has no ok test clip with embeddings and >= 2 frames, "
            "and the validation split cannot stand in (it chose the early-stopping epoch); set "
            "download.split.test above 0 (or give the folder source's CSV a split column with "
            "test rows) and rerun dvc repro"
        )
    return clip_ids[: max_clips or None]


def clip_rises(times: Tensor, n_steps: int) -> Tensor:
    """[K] frame times in seconds -> [n_steps] rises (t_i - t_0) / (t_last - t_0); steps past
    the clip's last frame continue at its mean frame gap."""
    span = times[-1] - times[0]
    if span <= 0:
        raise UserError(f"a held-out clip's frames all have the time {float(times[0])} s")
    rises = (times - times[0]) / span  # [K]
    if len(rises) >= n_steps:
        return rises[:n_steps]
    gap = 1.0 / (len(rises) - 1)
    extra = 1.0 + gap * torch.arange(1, n_steps - len(rises) + 1, dtype=rises.dtype)
    return torch.cat([rises, extra])


def clip_batch(
    clip_ids: list[str],
    split: str,
    images: ImageEmbeddings,
    texts: TextEmbeddings,
    start: str,
    n_steps: int,
) -> Clips:
    """Conditioning of held-out clips from the tables, rising through their frames' times."""
    slices, text_rows = images.clip_slices(), texts.index()
    rows = torch.tensor([text_rows[c] for c in clip_ids], dtype=torch.int64)
    prior = texts.prior_embed[rows].float()  # [C, D]
    if start == "first_frame":
        start_embed = images.embeddings[[slices[c].start for c in clip_ids]].float()
    else:
        start_embed = prior
    rises = torch.stack(
        [clip_rises(images.t_seconds[slices[c]].float(), n_steps) for c in clip_ids]
    )  # [C, n]
    cond = Conditioning(
        hidden_states=texts.hidden_states[rows].float(),
        prior_embed=prior,
        text_embed=texts.text_embed[rows].float(),
        start=start_embed,
        rises=rises,
    )
    return Clips(
        list(clip_ids), [texts.captions[r] for r in rows.tolist()], [split] * len(clip_ids), cond
    )


def true_embeddings(images: ImageEmbeddings, clip_ids: list[str], n_steps: int) -> Tensor:
    """[C, n_steps, D] the clips' true frame embeddings, the last one repeated past the end."""
    slices = images.clip_slices()
    rows = []
    for clip_id in clip_ids:
        clip = images.embeddings[slices[clip_id]]  # [K, D]
        index = torch.arange(n_steps).clamp(max=len(clip) - 1)
        rows.append(clip[index])
    if not rows:
        return torch.zeros(0, n_steps, images.info.dim)
    return torch.stack(rows).float()
