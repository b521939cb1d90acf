"""Plane rotations between embeddings, applied in O(D) without ever forming a D x D matrix.

The rotation taking a's direction to b's acts only in the plane spanned by
``n1 = a / |a|`` and ``n2 = unit(b - (n1.b) n1)``:

    R = I + (n2 n1^T - n1 n2^T) sin(angle) + (n1 n1^T + n2 n2^T)(cos(angle) - 1)

so ``R x = x + n2 (n1.x) sin - n1 (n2.x) sin + (n1 (n1.x) + n2 (n2.x))(cos - 1)``: two dot
products and a few axpys per vector. The seed built ``R`` as a B x D x D tensor and
multiplied row vectors as ``x @ R``, which applies ``R^T`` and rotates the wrong way; every
function here computes ``R x``.

Everything broadcasts over leading dimensions (``x``, ``a``, ``b`` are ``[..., D]``) and is
safe at the edges, with finite values and gradients:

- ``a = 0`` or ``b = 0`` (no direction to rotate from or to): ``R = I``.
- ``b`` parallel to ``a``: angle 0, ``R = I``.
- ``b`` antiparallel to ``a``: every plane through ``a`` works; we pick a deterministic one,
  ``n2`` = the standard basis vector on which ``|n1|`` is smallest, made orthogonal to
  ``n1`` (ties go to the lowest index), and rotate by pi in it.
- tiny norms: vectors are rescaled by their largest entry before normalising, so only
  exact zeros (or subnormals) count as zero.
- float16 / bfloat16 inputs are computed in float32 and returned in the input dtype;
  float64 stays float64.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Plane(NamedTuple):
    """The rotation plane and angle taking a's direction to b's."""

    n1: Tensor  # [..., D] unit a
    n2: Tensor  # [..., D] unit, orthogonal to n1, towards b
    angle: Tensor  # [..., 1] in [0, pi]; 0 where a or b is zero
    defined: Tensor  # [..., 1] bool: False where a or b is zero (then R = I)


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half precision is too coarse here)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _unit(v: Tensor) -> tuple[Tensor, Tensor]:
    """``(v / |v|, is_zero)``, scale-safe: divide by the largest entry first.

    Zero rows get a placeholder direction *before* any division so that neither the value
    nor the gradient is NaN; callers mask them with ``is_zero`` ([..., 1] bool).
    """
    scale = v.abs().amax(dim=-1, keepdim=True)  # [..., 1]
    is_zero = scale <= torch.finfo(v.dtype).tiny
    placeholder = torch.ones_like(v)
    safe = torch.where(is_zero, placeholder, v)
    safe = safe / torch.where(is_zero, torch.ones_like(scale), scale)
    unit = safe / torch.linalg.vector_norm(safe, dim=-1, keepdim=True)
    return unit, is_zero


def _fallback_perpendicular(n1: Tensor) -> Tensor:
    """A unit vector orthogonal to unit ``n1``, the same every time for the same ``n1``."""
    index = n1.abs().argmin(dim=-1, keepdim=True)  # [..., 1]
    basis = torch.zeros_like(n1).scatter(-1, index, 1.0)  # [..., D]
    perpendicular = basis - n1.gather(-1, index) * n1
    return perpendicular / torch.linalg.vector_norm(perpendicular, dim=-1, keepdim=True)


def plane(a: Tensor, b: Tensor) -> Plane:
    """The plane basis (n1, n2) and the angle between ``a`` and ``b`` ([..., D] each)."""
    if a.shape[-1] < 2:
        raise ValueError(f"rotations need at least 2 dimensions, got D = {a.shape[-1]}")
    dtype = compute_dtype(a, b)
    a, b = torch.broadcast_tensors(a.to(dtype), b.to(dtype))
    n1, a_zero = _unit(a)
    b_unit, b_zero = _unit(b)
    cos_ab = (n1 * b_unit).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)  # [..., 1]
    residual = b_unit - cos_ab * n1  # [..., D], length sin(angle)
    sin_ab = torch.linalg.vector_norm(residual, dim=-1, keepdim=True)
    # Below this the residual is rounding noise: b is (anti)parallel to a.
    degenerate = sin_ab <= 100 * torch.finfo(dtype).eps
    fallback = _fallback_perpendicular(n1)
    safe_residual = torch.where(degenerate, fallback, residual)
    n2 = safe_residual / torch.linalg.vector_norm(safe_residual, dim=-1, keepdim=True)
    angle = torch.atan2(torch.where(degenerate, torch.zeros_like(sin_ab), sin_ab), cos_ab)
    defined = ~(a_zero | b_zero)
    angle = torch.where(defined, angle, torch.zeros_like(angle))
    return Plane(n1=n1, n2=n2, angle=angle, defined=defined)


def apply(rotation: Plane, x: Tensor, angle: Tensor | None = None) -> Tensor:
    """``R x`` for the plane's rotation, by ``angle`` ([..., 1]) instead of its own if given."""
    out_dtype = x.dtype
    dtype = compute_dtype(x, rotation.n1)
    x = x.to(dtype)
    theta = rotation.angle if angle is None else angle.to(dtype)
    n1, n2 = rotation.n1, rotation.n2
    along_n1 = (n1 * x).sum(dim=-1, keepdim=True)  # [..., 1]
    along_n2 = (n2 * x).sum(dim=-1, keepdim=True)
    sin = torch.sin(theta)
    cos_minus_one = -2.0 * torch.sin(theta / 2) ** 2  # exact for small angles, unlike cos - 1
    rotated = (
        x + (n2 * along_n1 - n1 * along_n2) * sin + (n1 * along_n1 + n2 * along_n2) * cos_minus_one
    )
    return rotated.to(out_dtype)


def rotate(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``R x`` with R the rotation taking a's direction to b's."""
    return apply(plane(a, b), x)


def rotate_fraction(x: Tensor, a: Tensor, b: Tensor, fraction: Tensor | float) -> Tensor:
    """Rotate ``x`` by ``fraction`` of the a-to-b angle in the same plane (negative: backwards).

    ``fraction`` broadcasts against the leading dimensions ([...] or a float).
    """
    rotation = plane(a, b)
    fraction = torch.as_tensor(fraction, dtype=rotation.angle.dtype, device=rotation.angle.device)
    if fraction.dim() > 0:
        fraction = fraction.unsqueeze(-1)
    return apply(rotation, x, rotation.angle * fraction)


def rotate_by(x: Tensor, a: Tensor, b: Tensor, angle: Tensor | float) -> Tensor:
    """Rotate ``x`` by ``angle`` radians ([...] or a float) in the plane from a towards b."""
    rotation = plane(a, b)
    angle = torch.as_tensor(angle, dtype=rotation.angle.dtype, device=rotation.angle.device)
    if angle.dim() > 0:
        angle = angle.unsqueeze(-1)
    # Where a or b is zero there is no plane: stay put.
    return apply(rotation, x, torch.where(rotation.defined, angle, torch.zeros_like(angle)))


def cosine(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine similarity over the last axis ([..., D] -> [...]); 0 when either is zero."""
    dtype = compute_dtype(a, b)
    a_unit, a_zero = _unit(a.to(dtype))
    b_unit, b_zero = _unit(b.to(dtype))
    value = (a_unit * b_unit).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    return torch.where(a_zero | b_zero, torch.zeros_like(value), value).squeeze(-1)


def blend(x: Tensor, cos: Tensor | float, a: Tensor, b: Tensor, q: float) -> Tensor:
    """The seed's partial rotation ``(1 - c^q) x + c^q R x`` with R = rot(a -> b).

    ``cos`` ([...] or a float) is clamped to [0, 1] first: a negative cosine (unrelated
    vectors) means no rotation rather than a complex power.
    """
    rotated = rotate(x, a, b)
    dtype = compute_dtype(x, rotated)
    weight = torch.as_tensor(cos, dtype=dtype, device=x.device).clamp(0.0, 1.0) ** q
    if weight.dim() > 0:
        weight = weight.unsqueeze(-1)
    blended = (1 - weight) * x.to(dtype) + weight * rotated.to(dtype)
    return blended.to(x.dtype)


def follow(tokens: Tensor, weight: Tensor, anchor: Tensor, towards: Tensor, q: float) -> Tensor:
    """Blend-rotate every token ([B, T, D]) by rot(anchor -> towards) ([B, D]), weight [B]:
    how the caption's tokens follow the start, in training and in both rollouts."""
    return blend(tokens, weight.unsqueeze(1), anchor.unsqueeze(1), towards.unsqueeze(1), q)


def rotation_loss(a: Tensor, b: Tensor, probe: Tensor) -> Tensor:
    """``|(R - I) u|^2`` for R = rot(a -> b) and probe u ([..., D] each -> [...]).

    ``(R - I) u`` lies in the rotation plane with coordinates
    ``(alpha (c - 1) - beta s, alpha s + beta (c - 1))`` for ``alpha = n1.u``,
    ``beta = n2.u``, so its squared length is ``(alpha^2 + beta^2) * 4 sin^2(angle / 2)``:
    zero when a and b point the same way, largest when they are opposite.
    """
    rotation = plane(a, b)
    probe = probe.to(rotation.n1.dtype)
    alpha = (rotation.n1 * probe).sum(dim=-1)  # [...]
    beta = (rotation.n2 * probe).sum(dim=-1)
    half_chord = torch.sin(rotation.angle.squeeze(-1) / 2)
    return (alpha**2 + beta**2) * 4 * half_chord**2
