"""The surface every method has, what fitting gets, and the rollouts of every method at once.

A method is a class with

- ``name``: its registry name;
- ``fit(data: FitData, params: Params) -> method`` (a classmethod): learn from the training
  split (and val, for early stopping or choosing a regularisation); never the test split;
- ``save(directory)`` / ``load(directory, device)`` (a classmethod): safetensors and JSON
  only, written atomically;
- ``rollout(cond, kind, context) -> Rolled``: embeddings [B, n, D] and/or pictures
  [B, n, S, S, 3] for every caption of ``cond`` at its rises (``kind``: step or chain).

Methods that predict one embedding from (caption tokens, start, rise) subclass
``PredictorMethod`` and get both rollouts from ``model/rollout.py`` for free. The train
stage fits ``generate.methods`` into ``models/<name>/``, generate rolls them out, evaluate
scores whatever they made; none of the stages names a method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from nextframe.model.rollout import ROLLOUT_BATCH, Anchor, Conditioning, Rollout, rollout

if TYPE_CHECKING:
    from nextframe.config import Params
    from nextframe.model.clips import ClipSet, ClipSource
    from nextframe.model.training import EpochCallback


@dataclass
class FitData:
    """What a method may learn from: the train and val splits, never test.

    ``train`` and ``val`` read their vectors from the embedding tables batch by batch;
    ``in_memory`` gathers a whole split once (frames, captions' embeddings, no hidden
    states) for methods that fit in closed form.
    """

    train: ClipSource
    val: ClipSource
    captions: dict[str, str]  # clip_id -> caption, every clip of train and val
    on_epoch: EpochCallback | None = None
    frames_path: Path | None = None  # data/frames/frames.parquet, for methods in pixels
    _gathered: dict[str, ClipSet] = field(default_factory=dict, repr=False)

    def in_memory(self, split: str) -> ClipSet:
        """The whole ``split`` ("train" or "val") as one padded ClipSet on the CPU."""
        if split not in self._gathered:
            source = {"train": self.train, "val": self.val}[split]
            self._gathered[split] = source.gather(np.arange(len(source)), hidden_states=False)
        return self._gathered[split]


@dataclass(frozen=True)
class RolloutContext:
    """What a rollout may need besides the conditioning."""

    blend_q: float  # the token rotation's blend exponent (train.blend_q)
    anchor: Anchor  # chain: rotate the original tokens (fixed) or the previous step's
    # [B, S, S, 3] uint8 pictures of the starts, for methods that work in pixels; a callable
    # because it may cost a decoding pass that embedding methods never need
    start_pictures: Callable[[], np.ndarray] | None = None
    captions: list[str] | None = None  # the rollout's captions, row by row (privileged methods)


@dataclass(frozen=True)
class Rolled:
    """What a rollout made: embeddings [B, n, D], pictures [B, n, S, S, 3] uint8, or both."""

    embeddings: Tensor | None = None
    frames: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.embeddings is None and self.frames is None:
            raise ValueError("a rollout must give embeddings, frames or both")


class Method(Protocol):
    name: ClassVar[str]

    @classmethod
    def fit(cls, data: FitData, params: Params) -> Method: ...

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> Method: ...

    def save(self, directory: Path) -> None: ...

    def rollout(self, cond: Conditioning, kind: Rollout, context: RolloutContext) -> Rolled: ...


class PredictorMethod:
    """A method that predicts the embedding at a rise from (tokens, start, rise, text):
    ``predict`` is all it defines; step and chain rollouts come from ``model/rollout.py``,
    ``ROLLOUT_BATCH`` captions per call."""

    name: ClassVar[str]

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        """hidden_states [B, T, D] (rotated to follow the start), start [B, D], rise [B],
        text_embed [B, D] -> the predicted embedding at that rise [B, D]."""
        raise NotImplementedError

    def to(self, device: str | torch.device) -> PredictorMethod:
        return self

    def rollout(self, cond: Conditioning, kind: Rollout, context: RolloutContext) -> Rolled:
        parts = [
            rollout(
                self,
                cond.subset(slice(first, first + ROLLOUT_BATCH)),
                kind,
                context.blend_q,
                context.anchor,
            )
            for first in range(0, len(cond), ROLLOUT_BATCH)
        ]
        return Rolled(embeddings=torch.cat(parts))  # [B, n, D]
