"""The toy unCLIP's networks, small enough to train on one CPU core in minutes.

- ``ImageEncoder``: pixels -> unit embedding [D]. Four stride-2 convolutions (64 -> 4 px)
  with group norm over RGB plus two coordinate channels (so where things are is as easy
  to read as what they are), then an MLP. The output is L2-normalised: the embedding
  lives on the sphere and a cosine is a dot product.
- ``ImageDecoder``: embedding -> 64 px picture, the way the toy world's pictures are
  made: a flat background colour, an object colour and a soft mask of where the object
  is; the mask is an intersection of regions bounded by lines and conics that the
  embedding places (see the class).
- ``TextTower``: tokens -> hidden states [T, D] (a bidirectional transformer; padding is
  masked out as keys but every position gets a state) and their masked mean, from which
  three heads read: the text embedding (CLIP's projection), the prior (caption -> the
  first frame's embedding) and, for training only, the last frame's embedding, which
  needs the motion words: the first frame alone does not say whether a shape will grow
  or shrink, or which way it will move.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nextframe.backbones.toy.recipe import Recipe

BASIS = ("1", "x", "y", "x^2", "y^2", "xy")  # the decoder's per-pixel inputs
REGION_SCALE = 4.0  # region coefficients start steep enough for edges a pixel or two wide


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


class ImageDecoder(nn.Module):
    """Embedding -> picture: a background colour, an object colour and the object's mask.

    The mask is a soft intersection of ``mask_units`` regions, each bounded by a line or a
    conic whose coefficients the embedding sets (a one-piece CvxNet): at pixel p,
    ``logit(p) = b - sum_u a_u softplus(c_u . (1, x, y, x^2, y^2, xy))``, so p is inside when
    it is inside every active region. Lines make polygons, conics make discs, and moving,
    turning or scaling the object is a smooth change of the coefficients.
    """

    def __init__(self, recipe: Recipe) -> None:
        super().__init__()
        self.size, self.units = recipe.size, recipe.mask_units
        self.trunk = nn.Sequential(nn.Linear(recipe.dim, recipe.hidden), nn.GELU())
        self.colors = nn.Linear(recipe.hidden, 6)  # background RGB, object RGB
        self.regions = nn.Linear(recipe.hidden, len(BASIS) * self.units)
        self.weights = nn.Linear(recipe.hidden, self.units + 1)  # a_u (before softplus), b
        x, y = coordinates(self.size).flatten(1)  # [P] each
        basis = torch.stack([torch.ones_like(x), x, y, x * x, y * y, x * y], dim=1)
        self.register_buffer("basis", basis, persistent=False)  # [P, 6]

    def forward(self, embeds: Tensor) -> Tensor:
        """[B, D] (any norm) -> [B, 3, S, S] pictures in [0, 1]."""
        background, color, logits = self.layers(embeds)
        return background + (color - background) * torch.sigmoid(logits)

    def layers(self, embeds: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[B, D] -> background and object colours [B, 3, 1, 1], mask logits [B, 1, S, S]."""
        hidden = self.trunk(F.normalize(embeds, dim=-1))  # [B, H]
        background, color = torch.sigmoid(self.colors(hidden))[:, :, None, None].split(3, dim=1)
        regions = self.regions(hidden).view(-1, len(BASIS), self.units) * REGION_SCALE
        weights = self.weights(hidden)
        strengths, bias = F.softplus(weights[:, : self.units]), weights[:, self.units :]
        outside = F.softplus(torch.matmul(self.basis, regions))  # [B, P, U]
        logits = bias[:, None, :] - (outside * strengths[:, None, :]).sum(-1, keepdim=True)
        return background, color, logits.view(-1, 1, self.size, self.size)


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
        self.last_frame = head(dim, recipe.hidden)

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
