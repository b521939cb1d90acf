"""The splits as the training loop sees them: padded clip tensors (``ClipSet``), anything
that assembles such batches (``ClipSource``), rows as indices (``Plan``), and each frame's
rise from its time in seconds (DESIGN.md, the rise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


@dataclass(frozen=True)
class ClipSet:
    """One split's clips as padded tensors; frames of clip c are ``frames[c, :n_frames[c]]``."""

    clip_ids: list[str]
    hidden_states: Tensor  # [C, T, D] float32
    prior_embed: Tensor  # [C, D]
    text_embed: Tensor  # [C, D]
    frames: Tensor  # [C, F, D], zero after n_frames
    n_frames: Tensor  # [C] int64, >= 2
    rises: Tensor  # [C, F] frame times as fractions of the clip's span: 0 first, 1 last

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def dim(self) -> int:
        return self.frames.shape[-1]

    @property
    def text_length(self) -> int:
        return self.hidden_states.shape[1]

    def to(self, device: torch.device | str) -> ClipSet:
        return ClipSet(
            clip_ids=self.clip_ids,
            hidden_states=self.hidden_states.to(device),
            prior_embed=self.prior_embed.to(device),
            text_embed=self.text_embed.to(device),
            frames=self.frames.to(device),
            n_frames=self.n_frames.to(device),
            rises=self.rises.to(device),
        )

    def batch(self, plan: Plan) -> tuple[ClipSet, Plan]:
        """The clips a batch of rows needs and the rows pointing into them: here, all of them."""
        return self, plan


class ClipSource(Protocol):
    """Where batches come from: a ``ClipSet`` in memory, or a split read from the embedding
    tables batch by batch (``pipeline.train.MappedClipSet``); both give the same batches."""

    clip_ids: list[str]
    n_frames: Tensor  # [C] int64

    @property
    def dim(self) -> int: ...

    @property
    def text_length(self) -> int: ...

    def __len__(self) -> int: ...

    def to(self, device: torch.device | str) -> ClipSource: ...

    def batch(self, plan: Plan) -> tuple[ClipSet, Plan]:
        """A ClipSet (float32, on the device) holding the clips of ``plan``'s rows, and
        ``plan`` with its clip indices pointing into it."""
        ...


def rises_from_times(times: Tensor, n_frames: Tensor) -> Tensor:
    """[C, F] seconds (padded) -> each frame's rise from the first, (t - t_0) / (t_last - t_0).

    Padding past a clip's last frame gets the rise of its last frame.
    """
    first = times[:, :1]  # [C, 1]
    last = times.gather(1, (n_frames - 1).unsqueeze(1))  # [C, 1]
    span = last - first
    if (span <= 0).any():
        raise ValueError("every clip needs frames at two different times to define its rises")
    positions = torch.arange(times.shape[1], device=times.device).unsqueeze(0)
    rises = (times - first) / span
    return torch.where(positions < n_frames.unsqueeze(1), rises, torch.ones_like(rises))


@dataclass(frozen=True)
class Plan:
    """Training rows as indices: start from frame ``base`` (or its stand-in), predict ``target``."""

    clip: Tensor  # [N] int64
    base: Tensor  # [N] int64 frame position the rise is measured from
    target: Tensor  # [N] int64 frame position to predict
    mode: Tensor  # [N] int64 index into MODES

    def __len__(self) -> int:
        return len(self.clip)

    def subset(self, index: Tensor) -> Plan:
        return Plan(self.clip[index], self.base[index], self.target[index], self.mode[index])
