"""The composite loss on the change from start to target.

True change ``d = start - target``, predicted change ``d' = start - prediction``:

    w_mse * MSE(d, d') + w_cos * (1 - cos(d, d')) + w_rot * |(R - I) u|^2,  R = rot(d -> d')

The seed's cosine term was ``CosineEmbeddingLoss`` with target -1, which pushes the two
changes *apart* while its MSE pulls them together; here ``1 - cos`` pulls the predicted
change towards the true one, and the rotation term (with a fixed probe ``u``) adds a
penalty that grows with the angle between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nextframe.config import LossWeights
from nextframe.model import rotation

TERMS = ("mse", "cos", "rot")


def probe_vector(dim: int, seed: int = 0) -> Tensor:
    """The fixed unit probe ``u`` [D] for the rotation term: the same for every run at this D."""
    generator = torch.Generator().manual_seed(seed)
    probe = torch.randn(dim, generator=generator, dtype=torch.float64)
    return (probe / probe.norm()).float()


@dataclass(frozen=True)
class LossTerms:
    """Each term (mean over the batch) and their weighted sum; scalars."""

    mse: Tensor
    cos: Tensor
    rot: Tensor
    total: Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: getattr(self, name).item() for name in (*TERMS, "total")}


def change_loss(
    start: Tensor, prediction: Tensor, target: Tensor, weights: LossWeights, probe: Tensor
) -> LossTerms:
    """The composite loss for a batch: start, prediction, target [B, D]; probe [D].

    ``mse`` is the batch's squared error relative to the targets' squared norm,
    ``sum |d - d'|^2 / sum |target|^2``: a mean over B x D entries would shrink with D
    (unit embeddings have entries of size 1/sqrt(D)) and vanish beside ``cos`` and ``rot``,
    so that the size of the change is never learned; relative, it weighs the same at
    D = 128 as at D = 1280."""
    true_change = start - target  # [B, D]
    predicted_change = start - prediction  # [B, D]
    if weights.scale == "row":
        mse = row_scaled_error(true_change, predicted_change, weights.floor)
    else:
        error = (true_change - predicted_change).square().sum()
        mse = error / target.square().sum().clamp(min=1e-12)
    cos = (1 - rotation.cosine(true_change, predicted_change)).mean()
    rot = rotation.rotation_loss(true_change, predicted_change, probe).mean()
    total = weights.mse * mse + weights.cos * cos + weights.rot * rot
    return LossTerms(mse=mse, cos=cos, rot=rot.to(mse.dtype), total=total)


def row_scaled_error(true_change: Tensor, predicted_change: Tensor, floor: float) -> Tensor:
    """Mean over rows of ``|d - d'|^2 / max(|d|^2, floor * mean_B |d|^2)`` ([B, D] -> scalar).

    Rotations and size changes move a unit embedding 10-100x less than translations; relative
    to the batch's total they vanish from the error and the model learns translation alone.
    Relative to each row's own change, every row asks for its own direction and size. The
    floor keeps rows with next to no change (a tiny rise) from dominating instead."""
    size = true_change.square().sum(dim=-1)  # [B]
    scale = torch.maximum(size, (floor * size.mean()).clamp(min=1e-12))  # [B]
    return ((true_change - predicted_change).square().sum(dim=-1) / scale).mean()


def change_cosine(start: Tensor, prediction: Tensor, target: Tensor) -> Tensor:
    """Per-row cosine between the predicted and the true change ([B, D] -> [B]); 0 for no change."""
    return rotation.cosine(start - target, start - prediction)


def stack_terms(terms: list[dict[str, float]], sizes: list[int]) -> dict[str, float]:
    """Size-weighted mean of per-batch loss terms."""
    total = sum(sizes)
    return {
        name: sum(t[name] * n for t, n in zip(terms, sizes, strict=True)) / total
        for name in terms[0]
    }
