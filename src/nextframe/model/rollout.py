"""Roll a caption's embedding forward in time, two ways, for every method.

Both rollouts start from one embedding per clip (``params.generate.start``: the prior's
embedding of the caption, or the clip's first true frame) and return ``n_frames``
embeddings per clip, the start included as step 0:

- ``step`` (one-shot): frame i is predicted straight from the start with rise
  ``i * rise_step``; errors do not accumulate, but nothing ties frame i to frame i - 1.
- ``chain`` (prediction from prediction, the training ``diff`` mode at inference): frame i
  is predicted from frame i - 1 with a rise of one step, after the text tokens are rotated
  toward it, ``h' = blend(h, cos(p, t), rot(anchor -> last prediction))``. With a
  ``fixed`` anchor the original tokens are rotated by ``rot(p -> last)`` every step; with
  a ``moving`` anchor the previous step's tokens are rotated by ``rot(previous start ->
  last)``, so the rotations compose along the path the video took.

``rise_step`` is the rise of one frame: ``1 / (K - 1)`` for a held-out clip with K true
frames (so step i lines up with true frame i and ``cos@h`` compares like with like) and
``1 / (n_frames - 1)`` for a prompt (the video spans one training clip's worth of motion).
Every predictor call covers all clips of a batch (``ROLLOUT_BATCH`` captions) at once: one
call per step. The generate stage and ``nextframe sample`` both go through ``roll_out_all``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from nextframe.model import Predictor
from nextframe.model.rotation import blend, cosine

if TYPE_CHECKING:
    from nextframe.backbones import TextEncoding

Rollout = Literal["chain", "step"]
Anchor = Literal["fixed", "moving"]
ROLLOUT_BATCH = 256  # captions per predictor call


@dataclass(frozen=True)
class Conditioning:
    """Everything a rollout needs for a batch of B captions."""

    hidden_states: Tensor  # [B, T, D] text tokens
    prior_embed: Tensor  # [B, D] p, the anchor of the token rotation
    text_embed: Tensor  # [B, D] t; cos(p, t) weighs how far the tokens follow the start
    start: Tensor  # [B, D] the embedding of step 0
    rise_step: Tensor  # [B] rise of one frame

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def subset(self, rows: slice) -> Conditioning:
        return Conditioning(
            hidden_states=self.hidden_states[rows],
            prior_embed=self.prior_embed[rows],
            text_embed=self.text_embed[rows],
            start=self.start[rows],
            rise_step=self.rise_step[rows],
        )

    @classmethod
    def from_prior(cls, encoding: TextEncoding, n_frames: int) -> Conditioning:
        """Free captions (no true frames): start at the prior, ``n_frames`` span one clip."""
        prior = encoding.prior_embed.float()
        return cls(
            hidden_states=encoding.hidden_states.float(),
            prior_embed=prior,
            text_embed=encoding.text_embed.float(),
            start=prior,
            rise_step=torch.full((len(prior),), 1.0 / (n_frames - 1)),
        )

    def concat(self, other: Conditioning) -> Conditioning:
        return Conditioning(
            *(
                torch.cat([getattr(self, name), getattr(other, name)])
                for name in Conditioning.__dataclass_fields__
            )
        )


def follow(tokens: Tensor, weight: Tensor, anchor: Tensor, towards: Tensor, q: float) -> Tensor:
    """Blend-rotate every token ([B, T, D]) by rot(anchor -> towards) ([B, D]), weight [B]."""
    return blend(tokens, weight.unsqueeze(1), anchor.unsqueeze(1), towards.unsqueeze(1), q)


def _predict(predictor: Predictor, tokens: Tensor, start: Tensor, rise: Tensor) -> Tensor:
    with torch.inference_mode():
        return predictor.predict(tokens, start, rise).detach().to("cpu", torch.float32)


def step_rollout(predictor: Predictor, cond: Conditioning, n_frames: int, blend_q: float) -> Tensor:
    """One-shot: frame i = f(h', start, i * rise_step) -> [B, n_frames, D]."""
    weight = cosine(cond.prior_embed, cond.text_embed)  # [B]
    tokens = follow(cond.hidden_states, weight, cond.prior_embed, cond.start, blend_q)  # [B, T, D]
    frames = [cond.start.float()]
    for index in range(1, n_frames):
        frames.append(_predict(predictor, tokens, cond.start, cond.rise_step * index))
    return torch.stack(frames, dim=1)


def chain_rollout(
    predictor: Predictor, cond: Conditioning, n_frames: int, blend_q: float, anchor: Anchor
) -> Tensor:
    """Prediction from prediction: frame i = f(h_i, frame i-1, rise_step) -> [B, n_frames, D]."""
    weight = cosine(cond.prior_embed, cond.text_embed)  # [B]
    last = cond.start.float()  # [B, D]
    tokens, anchor_embed = cond.hidden_states, cond.prior_embed
    frames = [last]
    for _ in range(1, n_frames):
        rotated = follow(tokens, weight, anchor_embed, last, blend_q)  # [B, T, D]
        if anchor == "moving":
            tokens, anchor_embed = rotated, last
        last = _predict(predictor, rotated, last, cond.rise_step)
        frames.append(last)
    return torch.stack(frames, dim=1)


def rollout(
    predictor: Predictor,
    cond: Conditioning,
    kind: Rollout,
    n_frames: int,
    blend_q: float,
    anchor: Anchor = "fixed",
) -> Tensor:
    """``kind`` rollout of ``n_frames`` embeddings per caption -> [B, n_frames, D]."""
    if kind == "step":
        return step_rollout(predictor, cond, n_frames, blend_q)
    if kind == "chain":
        return chain_rollout(predictor, cond, n_frames, blend_q, anchor)
    raise ValueError(f"unknown rollout {kind!r}; expected 'chain' or 'step'")


def roll_out_all(
    predictors: dict[str, Predictor],
    cond: Conditioning,
    kinds: list[str],
    n_frames: int,
    blend_q: float,
    anchor: Anchor,
) -> dict[tuple[str, str], Tensor]:
    """(method, rollout) -> [C, n_frames, D] for every predictor and rollout kind."""
    results: dict[tuple[str, str], Tensor] = {}
    for method, predictor in predictors.items():
        for kind in kinds:
            parts = [
                rollout(
                    predictor,
                    cond.subset(slice(first, first + ROLLOUT_BATCH)),
                    kind,
                    n_frames,
                    blend_q,
                    anchor,
                )
                for first in range(0, len(cond), ROLLOUT_BATCH)
            ]
            results[(method, kind)] = torch.cat(parts)
    return results
