"""A split read from the embedding tables batch by batch, for training on more than fits in RAM."""

from __future__ import annotations

import numpy as np
import torch

from nextframe.model.clips import ClipSet, Plan, rises_from_times
from nextframe.store import FrameIndex, TextEmbeddings, TextTable


class MappedClipSet:
    """One split read from the embedding tables batch by batch (a ``training.ClipSource``).

    In memory: frame counts [C], rises [C, F] and where each clip's frames and caption are
    in the tables (a few hundred bytes a clip). ``batch`` reads the frames and caption
    encodings of just the clips of a batch, in place, and makes them float32 on the
    device: the numbers a ``ClipSet`` of the whole split would hold, so training from
    either gives the same weights.
    """

    def __init__(
        self,
        clip_ids: list[str],
        frame_starts: np.ndarray,
        n_frames: torch.Tensor,
        rises: torch.Tensor,
        caption_rows: np.ndarray,
        images: FrameIndex,
        texts: TextTable,
        device: torch.device | str = "cpu",
    ) -> None:
        self.clip_ids = clip_ids
        self.frame_starts = frame_starts  # [C] int64 first row of each clip in images.parquet
        self.n_frames = n_frames  # [C] int64
        self.rises = rises  # [C, F] float32
        self.caption_rows = caption_rows  # [C] int64 row of each clip's caption in texts.parquet
        self.images = images
        self.texts = texts
        self.device = torch.device(device)

    @classmethod
    def of(cls, clip_ids: list[str], images: FrameIndex, texts: TextEmbeddings) -> MappedClipSet:
        slices, text_rows = images.clip_slices(), texts.index()
        starts = np.array([slices[c].start for c in clip_ids], dtype=np.int64)
        counts = torch.tensor([slices[c].stop - slices[c].start for c in clip_ids])
        times = torch.zeros(len(clip_ids), int(counts.max()), dtype=torch.float64)  # [C, F]
        for row, clip_id in enumerate(clip_ids):
            times[row, : counts[row]] = torch.from_numpy(images.t_seconds[slices[clip_id]])
        caption_rows = texts.caption_rows[[text_rows[c] for c in clip_ids]]
        rises = rises_from_times(times, counts).float()
        return cls(list(clip_ids), starts, counts, rises, caption_rows, images, texts.table)

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def dim(self) -> int:
        return self.images.info.dim

    @property
    def text_length(self) -> int:
        return self.texts.columns["hidden_states"].shape[0]

    def to(self, device: torch.device | str) -> MappedClipSet:
        return MappedClipSet(
            self.clip_ids,
            self.frame_starts,
            self.n_frames,
            self.rises,
            self.caption_rows,
            self.images,
            self.texts,
            device,
        )

    def gather(self, clips: np.ndarray, hidden_states: bool = True) -> ClipSet:
        """The clips at positions ``clips`` as a ClipSet on the device (without their hidden
        states, [n, 0, D], if not ``hidden_states``)."""
        counts = self.n_frames[clips]  # [n]
        width = int(counts.max())
        rows = np.concatenate(
            [
                np.arange(start, start + count)
                for start, count in zip(self.frame_starts[clips], counts.tolist(), strict=True)
            ]
        )
        frames = torch.zeros(len(clips), width, self.dim)  # [n, F, D]
        frames[torch.arange(width) < counts.unsqueeze(1)] = torch.from_numpy(
            self.images.embeddings.read(rows)
        )
        caption_rows = self.caption_rows[clips]
        hidden = (
            self.texts.read("hidden_states", caption_rows).float()  # [n, T, D]
            if hidden_states
            else torch.zeros(len(clips), 0, self.dim)
        )
        return ClipSet(
            clip_ids=[self.clip_ids[c] for c in clips],
            hidden_states=hidden,
            prior_embed=self.texts.read("prior_embed", caption_rows),
            text_embed=self.texts.read("text_embed", caption_rows),
            frames=frames,
            n_frames=counts,
            rises=self.rises[clips, :width],
        ).to(self.device)

    def batch(self, plan: Plan) -> tuple[ClipSet, Plan]:
        clips, local = torch.unique(plan.clip.cpu(), return_inverse=True)
        gathered = self.gather(clips.numpy())
        return gathered, Plan(local.to(plan.clip.device), plan.base, plan.target, plan.mode)
