"""Roll a caption's embedding forward in time, two ways, for every method.

Both rollouts start from one embedding per clip (``params.generate.start``: the prior's
embedding of the caption, or the clip's first true frame) and return one embedding per
entry of ``Conditioning.rises``, the start included as step 0:

- ``step`` (one-shot): frame i is predicted straight from the start at rise ``rises[i]``;
  errors do not accumulate, but nothing ties frame i to frame i - 1.
- ``chain`` (prediction from prediction, the training ``diff`` mode at inference): frame i
  is predicted from frame i - 1 at rise ``rises[i] - rises[i - 1]``, after the text tokens
  are rotated toward it, ``h' = blend(h, cos(p, t), rot(anchor -> last prediction))``.
  With a ``fixed`` anchor the original tokens are rotated by ``rot(p -> last)`` every step;
  with a ``moving`` anchor the previous step's tokens are rotated by ``rot(previous start
  -> last)``, so the rotations compose along the path the video took.

The rises are times in seconds as fractions of the clip's span: for a held-out clip,
``(t_i - t_0) / (t_last - t_0)`` of its true frames (so step i and true frame i are the
same moment and ``cos@h`` compares like with like); for a free prompt, ``i / (n - 1)``
(the video spans one training clip's worth of motion).
Every predictor call covers all clips of a batch (``ROLLOUT_BATCH`` captions) at once: one
call per step (``methods.base.PredictorMethod`` batches them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from nextframe.model.rotation import cosine, follow

Rollout = Literal["chain", "step"]
Anchor = Literal["fixed", "moving"]
ROLLOUT_BATCH = 256  # captions per predictor call


class Predictor(Protocol):
    """Anything that predicts a target embedding from the caption, a start and a rise."""

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        """hidden_states [B, T, D] (the caption's tokens, rotated to follow the start),
        start [B, D], rise [B], text_embed [B, D] (the caption's CLIP text projection,
        untouched) -> predicted target [B, D]."""
        ...


@dataclass(frozen=True)
class Conditioning:
    """Everything a rollout needs for a batch of B captions."""

    hidden_states: Tensor  # [B, T, D] text tokens
    prior_embed: Tensor  # [B, D] p, the anchor of the token rotation
    text_embed: Tensor  # [B, D] t; cos(p, t) weighs how far the tokens follow the start
    start: Tensor  # [B, D] the embedding of step 0
    rises: Tensor  # [B, n] each step's rise from the start; rises[:, 0] = 0

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def subset(self, rows: slice) -> Conditioning:
        return Conditioning(
            hidden_states=self.hidden_states[rows],
            prior_embed=self.prior_embed[rows],
            text_embed=self.text_embed[rows],
            start=self.start[rows],
            rises=self.rises[rows],
        )

    def concat(self, other: Conditioning) -> Conditioning:
        return Conditioning(
            *(
                torch.cat([getattr(self, name), getattr(other, name)])
                for name in Conditioning.__dataclass_fields__
            )
        )


def even_rises(count: int, n_frames: int) -> Tensor:
    """[count, n_frames] rises of evenly spaced frames over one span: 0, 1/(n-1), ..., 1."""
    return torch.linspace(0.0, 1.0, n_frames).expand(count, n_frames).clone()


def _predict(
    predictor: Predictor, tokens: Tensor, start: Tensor, rise: Tensor, text: Tensor
) -> Tensor:
    with torch.inference_mode():
        return predictor.predict(tokens, start, rise, text).detach().to("cpu", torch.float32)


def step_rollout(predictor: Predictor, cond: Conditioning, blend_q: float) -> Tensor:
    """One-shot: frame i = f(h', start, rises[i]) -> [B, n, D]."""
    weight = cosine(cond.prior_embed, cond.text_embed)  # [B]
    tokens = follow(cond.hidden_states, weight, cond.prior_embed, cond.start, blend_q)  # [B, T, D]
    frames = [cond.start.float()]
    for index in range(1, cond.rises.shape[1]):
        rise = cond.rises[:, index]
        frames.append(_predict(predictor, tokens, cond.start, rise, cond.text_embed))
    return torch.stack(frames, dim=1)


def chain_rollout(
    predictor: Predictor, cond: Conditioning, blend_q: float, anchor: Anchor
) -> Tensor:
    """Prediction from prediction: frame i = f(h_i, frame i-1, rises[i] - rises[i-1])
    -> [B, n, D]."""
    weight = cosine(cond.prior_embed, cond.text_embed)  # [B]
    last = cond.start.float()  # [B, D]
    tokens, anchor_embed = cond.hidden_states, cond.prior_embed
    frames = [last]
    for index in range(1, cond.rises.shape[1]):
        rotated = follow(tokens, weight, anchor_embed, last, blend_q)  # [B, T, D]
        if anchor == "moving":
            tokens, anchor_embed = rotated, last
        rise = cond.rises[:, index] - cond.rises[:, index - 1]  # [B]
        last = _predict(predictor, rotated, last, rise, cond.text_embed)
        frames.append(last)
    return torch.stack(frames, dim=1)


def rollout(
    predictor: Predictor,
    cond: Conditioning,
    kind: Rollout,
    blend_q: float,
    anchor: Anchor = "fixed",
) -> Tensor:
    """``kind`` rollout of every caption -> [B, n, D], n = ``cond.rises.shape[1]``."""
    if kind == "step":
        return step_rollout(predictor, cond, blend_q)
    if kind == "chain":
        return chain_rollout(predictor, cond, blend_q, anchor)
    raise ValueError(f"unknown rollout {kind!r}; expected 'chain' or 'step'")
