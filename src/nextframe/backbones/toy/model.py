"""The toy unCLIP's networks, small enough to train on one CPU core in minutes.

- ``ImageEncoder``: pixels -> unit embedding [D]. Four stride-2 convolutions (64 -> 4 px)
  with group norm over RGB plus two coordinate channels (so where things are is as easy
  to read as what they are), then an MLP. The output is L2-normalised: the embedding
  lives on the sphere and a cosine is a dot product.
- ``ImageDecoder``: embedding -> 64 px picture, the way the toy world's pictures are
  made: a flat background colour, an object colour and the coverage of a circle, square
  or triangle that the embedding places, sizes and turns (see the class), so the three
  shapes and a rotation are visible in what it draws.
- ``TextTower``: tokens -> hidden states [T, D] (a bidirectional transformer; padding is
  masked out as keys but every position gets a state) and their masked mean, from which
  two heads read, as in unCLIP: the text embedding (CLIP's projection) and the prior
  (caption -> the embedding of its clip's first frame). Nothing maps a caption to a later
  frame: the prior's target is the first frame, and the text embedding is trained only
  contrastively against single frames, the way CLIP pairs a caption with an image.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nextframe.backbones.toy.recipe import Recipe
from nextframe.data.synthetic import SHAPES


def coordinates(size: int) -> Tensor:
    """[2, S, S]: x and y of every pixel centre, in [-1, 1]."""
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x, y])


class ImageEncoder(nn.Module):
    def __init__(self, recipe: Recipe) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 5  # RGB + x, y
        for width in recipe.encoder_channels:
            layers += [
                nn.Conv2d(channels, width, 3, stride=2, padding=1),
                nn.GroupNorm(4, width),
                nn.GELU(),
            ]
            channels = width
        self.convs = nn.Sequential(*layers)
        side = recipe.size // 2 ** len(recipe.encoder_channels)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * side * side, recipe.hidden),
            nn.GELU(),
            nn.Linear(recipe.hidden, recipe.dim),
        )
        self.register_buffer("grid", coordinates(recipe.size), persistent=False)

    def forward(self, pixels: Tensor) -> Tensor:
        """[B, 3, S, S] in [0, 1] -> [B, D] unit vectors."""
        grid = self.grid.expand(len(pixels), -1, -1, -1)  # [B, 2, S, S]
        features = self.convs(torch.cat([(pixels - 0.5) * 4, grid], dim=1))
        return F.normalize(self.head(features), dim=-1)


class Drawing(NamedTuple):
    """What the decoder reads from an embedding, for a batch of B pictures."""

    colors: Tensor  # [B, 6] in [0, 1]: background RGB, object RGB
    shape_logits: Tensor  # [B, 3], in SHAPES' order
    centre: Tensor  # [B, 2]: x, y in [-1, 1] (the frame spans [-1, 1])
    log_radius: Tensor  # [B]: log circumradius, in the same units
    turns: Tensor  # [B, 4]: (cos 4a, sin 4a) of a square, (cos 3a, sin 3a) of a triangle


class ImageDecoder(nn.Module):
    """Embedding -> picture, drawn the way the toy world draws one: a background colour,
    an object colour and the object's soft coverage of every pixel.

    The embedding sets the object's parameters: which shape (a softmax over the three),
    its centre, its circumradius and, for the square and the triangle, its orientation,
    read as ``(cos k angle, sin k angle)`` with k the shape's symmetry order (the way the
    image code holds it, so a turn by a symmetry is no change). Each shape's coverage is a
    sigmoid of the pixel's signed distance to its outline, in pixels, at a learned edge
    sharpness; the mask is the shapes' coverages weighted by the softmax. An embedding
    between two shapes draws a blend of them; one that does not say which way the shape
    is turned (a prior's) draws some orientation.
    """

    def __init__(self, recipe: Recipe) -> None:
        super().__init__()
        self.size = recipe.size
        self.trunk = nn.Sequential(
            nn.Linear(recipe.dim, recipe.hidden),
            nn.GELU(),
            nn.Linear(recipe.hidden, recipe.hidden),
            nn.GELU(),
        )
        self.colors = nn.Linear(recipe.hidden, 6)  # background RGB, object RGB
        self.shapes = nn.Linear(recipe.hidden, len(SHAPES))  # logits, in SHAPES' order
        self.pose = nn.Linear(recipe.hidden, 3)  # centre x, y (tanh: [-1, 1]), log radius
        self.turns = nn.Linear(recipe.hidden, 4)  # (cos 4a, sin 4a) square, (cos 3a, sin 3a)
        self.log_sharpness = nn.Parameter(torch.tensor(0.5))  # sigmoid slope per pixel
        self.register_buffer("grid", coordinates(self.size).flatten(1).T, persistent=False)

    def forward(self, embeds: Tensor) -> Tensor:
        """[B, D] (any norm) -> [B, 3, S, S] pictures in [0, 1]."""
        background, color, shapes, coverage = self.layers(self.describe(embeds))
        return background + (color - background) * (shapes * coverage).sum(1, keepdim=True)

    def describe(self, embeds: Tensor) -> Drawing:
        """[B, D] (any norm) -> the object's parameters (training also fits them directly)."""
        hidden = self.trunk(F.normalize(embeds, dim=-1))  # [B, H]
        pose = self.pose(hidden)
        return Drawing(
            colors=torch.sigmoid(self.colors(hidden)),
            shape_logits=self.shapes(hidden),
            centre=torch.tanh(pose[:, :2]),
            log_radius=pose[:, 2] - 1.5,  # a radius of about a fifth of the half side at first
            turns=self.turns(hidden),
        )

    def layers(self, drawing: Drawing) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The drawing's background and object colours [B, 3, 1, 1], shape probabilities
        [B, 3, 1, 1] and each shape's coverage [B, 3, S, S]."""
        background, color = drawing.colors[:, :, None, None].split(3, dim=1)
        shapes = torch.softmax(drawing.shape_logits, dim=-1)[:, :, None, None]
        centre, radius = drawing.centre[:, None], drawing.log_radius.exp()[:, None]  # [B, 1, .]
        turns = drawing.turns
        square = torch.atan2(turns[:, 1], turns[:, 0]) / 4  # [B]
        triangle = torch.atan2(turns[:, 3], turns[:, 2]) / 3
        offset = self.grid - centre  # [B, P, 2], coordinates in [-1, 1]
        distances = torch.stack(
            [
                radius - offset.norm(dim=-1),  # circle
                radius / math.sqrt(2) - rotated(offset, square).abs().amax(-1),  # square
                radius / 2 - edge_offsets(offset, triangle).amax(-1),  # triangle
            ],
            dim=1,
        )  # [B, 3, P]: inside > 0
        pixels = self.size / 2  # pixels per unit of the [-1, 1] coordinates
        coverage = torch.sigmoid(distances * pixels * self.log_sharpness.exp())
        return background, color, shapes, coverage.view(-1, len(SHAPES), self.size, self.size)


def rotated(offset: Tensor, angle: Tensor) -> Tensor:
    """[B, P, 2] points in the frame of a shape turned by ``angle`` [B] (the generator's u, v)."""
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    x, y = offset.unbind(-1)
    return torch.stack([x * cos + y * sin, -x * sin + y * cos], dim=-1)


def edge_offsets(offset: Tensor, angle: Tensor) -> Tensor:
    """[B, P, 3]: how far [B, P, 2] points lie along each edge normal of a triangle turned
    by ``angle`` [B] (inside where all three are below the inradius)."""
    normals = angle[:, None] + math.pi / 2 + 2 * math.pi * torch.arange(3) / 3  # [B, 3]
    directions = torch.stack([torch.cos(normals), torch.sin(normals)], dim=-1)  # [B, 3, 2]
    return offset @ directions.transpose(1, 2)


class TextTower(nn.Module):
    def __init__(self, recipe: Recipe, vocab_size: int) -> None:
        super().__init__()
        dim = recipe.dim
        self.tokens = nn.Embedding(vocab_size, dim)
        # as large as the token embeddings (N(0, 1)): word order must count from the start,
        # or 'from left to right' and 'from right to left' look alike
        self.positions = nn.Parameter(torch.randn(recipe.text_length, dim))
        layer = nn.TransformerEncoderLayer(
            dim,
            recipe.text_heads,
            dim_feedforward=2 * dim,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, recipe.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.projection = nn.Linear(dim, dim)
        self.prior = head(dim, recipe.hidden)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T] tokens -> hidden states [B, T, D] and their masked mean [B, D]."""
        states = self.tokens(input_ids) + self.positions  # [B, T, D]
        states = self.layers(states, src_key_padding_mask=attention_mask == 0)
        hidden = self.norm(states)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        return hidden, pooled


def head(dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class ToyModel(nn.Module):
    """All four parts; one state dict, one weights file."""

    def __init__(self, recipe: Recipe, vocab_size: int) -> None:
        super().__init__()
        self.encoder = ImageEncoder(recipe)
        self.decoder = ImageDecoder(recipe)
        self.text = TextTower(recipe, vocab_size)
