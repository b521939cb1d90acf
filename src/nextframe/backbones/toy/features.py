"""What a frame shows, as the vector the image tower is taught to output.

The toy world has five things to tell frames apart by: the background colour, the object's
colour, its shape, where it is, how big it is and which way it is turned. Each is coded
as a small block of the vector, every block of unit norm times the square root of its
weight (the weights sum to 1, so the whole vector has unit norm):

- colours and shape: one-hot (two frames share it or they do not),
- position: Gaussian bumps on an 8 x 8 grid over the frame, normalised, so the cosine of
  two frames' position blocks falls smoothly with the distance between the objects
  (about ``exp(-d^2 / (2 sigma^2))``, sigma ``position_sigma_px``),
- size: Gaussian bumps along the log of the radius (``size_sigma_log``),
- orientation: ``(cos k angle, sin k angle)`` in the slot of the shape (k its symmetry
  order: 4 for a square, 3 for a triangle; a circle has a constant),

and the vector is turned by a fixed random rotation into ``D`` dimensions, so every
coordinate of the embedding carries a mix of everything. The cosine of two frames' codes
is then the weighted sum of per-thing similarities: moving the object a few pixels
changes the embedding a little, across the frame a lot, and changing its colour more than
any motion does. This is the geometry the splitter needs (motion is a smooth path) and
the decoder needs (every thing it must draw is in the vector).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from nextframe.backbones.toy.recipe import Recipe

POSITION_GRID = 8  # bumps per side
SIZE_BUMPS = 16
LOG_RADIUS_RANGE = (0.6, 3.3)  # radii of about 1.8 to 27 px: every synthetic size fits
N_COLORS, N_SHAPES = 9, 3


def bumps(values: Tensor, centres: Tensor, width: float) -> Tensor:
    """[B, K] unit rows: Gaussian bumps of ``width`` at ``centres`` [K, C] for values [B, C]."""
    distance2 = torch.cdist(values, centres).square()
    return F.normalize(torch.exp(-distance2 / (2 * width**2)), dim=-1)


ANGLE_SIZE = 5  # circle's constant, square's (cos, sin), triangle's (cos, sin)


def code_size() -> int:
    return 2 * N_COLORS + N_SHAPES + POSITION_GRID**2 + SIZE_BUMPS + ANGLE_SIZE


def without_angle(codes: Tensor) -> Tensor:
    """Codes [B, M] with the orientation block zeroed: what a caption (which never states the
    orientation) can at best say about a frame."""
    return torch.cat([codes[:, :-ANGLE_SIZE], torch.zeros_like(codes[:, -ANGLE_SIZE:])], dim=1)


def frame_code(
    poses: Tensor, attributes: dict[str, Tensor], symmetry: Tensor, recipe: Recipe
) -> Tensor:
    """[B, M] unit vectors: poses [B, 4] (centre x, centre y, radius in px, angle),
    attributes name -> [B] class index (background, color, shape), symmetry [B]."""
    size = recipe.size
    spacing = size / POSITION_GRID
    axis = (torch.arange(POSITION_GRID, dtype=torch.float32) + 0.5) * spacing
    grid = torch.cartesian_prod(axis, axis)  # [G*G, 2]
    # Two bump codes of width s have cosine exp(-d^2 / (4 s^2)) (dense bumps): s = sigma / sqrt 2.
    position = bumps(poses[:, :2], grid, recipe.position_sigma_px / math.sqrt(2))
    log_radii = torch.linspace(*LOG_RADIUS_RANGE, SIZE_BUMPS)[:, None]  # [K, 1]
    scale = bumps(poses[:, 2:3].log(), log_radii, recipe.size_sigma_log / math.sqrt(2))
    angles, order = poses[:, 3], symmetry
    turn = torch.zeros(len(poses), ANGLE_SIZE)
    is_circle, is_square = order == 0, order == 4
    turn[is_circle, 0] = 1.0
    slot = torch.where(is_square, 1, 3)[~is_circle]  # squares in 1-2, triangles in 3-4
    rows = torch.nonzero(~is_circle).squeeze(1)
    turn[rows, slot] = torch.cos(order[rows] * angles[rows])
    turn[rows, slot + 1] = torch.sin(order[rows] * angles[rows])
    blocks = [
        (recipe.weight_background, F.one_hot(attributes["background"], N_COLORS).float()),
        (recipe.weight_color, F.one_hot(attributes["color"], N_COLORS).float()),
        (recipe.weight_shape, F.one_hot(attributes["shape"], N_SHAPES).float()),
        (recipe.weight_position, position),
        (recipe.weight_size, scale),
        (recipe.weight_angle, turn),
    ]
    return torch.cat([math.sqrt(weight) * block for weight, block in blocks], dim=1)


def rotation(recipe: Recipe) -> Tensor:
    """[M, D] orthonormal rows' transpose: a fixed random rotation of the code into D dims."""
    generator = torch.Generator().manual_seed(recipe.seed)
    gaussian = torch.randn(recipe.dim, code_size(), generator=generator, dtype=torch.float64)
    basis, _ = torch.linalg.qr(gaussian)  # [D, M], orthonormal columns
    return basis.T.float().contiguous()  # [M, D]
