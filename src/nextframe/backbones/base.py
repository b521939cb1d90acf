"""The one interface every backbone offers (DESIGN.md, "Backbones").

Later stages call ``load_backbone(params.backbone)`` and then only what ``Backbone`` lists,
so ``backbone.name`` can change without touching them:

- embed: ``preprocess`` (in a loader thread) and ``encode_pixels``, ``encode_texts``; the
  attributes ``info`` (written into every embedding table), ``dtype``, ``text_length``,
  ``prior_steps``, ``prior_guidance`` and ``seed`` (recorded so a rerun knows whether old
  rows were made the same way),
- generate and sample: ``encode_texts`` (prompts), ``encode_images`` (decoded frames) and
  ``decode``; ``name`` and ``dim`` to check the tables were made by this backbone,
- sample: ``vocabulary`` and ``count_tokens``, to tell a person which words of a caption
  the text tower never learned and how much of it is cut off.

Embeddings are returned raw, as float32 CPU tensors: decoders need them raw; metrics
normalise where they need to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from PIL import Image
from torch import Tensor

from nextframe.store import EmbeddingInfo


@dataclass(frozen=True)
class TextEncoding:
    """What the backbone makes of a batch of captions (CPU tensors)."""

    text_embed: Tensor  # [N, D] float32, the text tower's projection (CLIP's text embedding)
    hidden_states: Tensor  # [N, T, D] float32, the text tower's last hidden state per token
    prior_embed: Tensor  # [N, D] float32, the prior's image embedding for the caption


@runtime_checkable
class Backbone(Protocol):
    """Text and image towers in one space, a prior and a decoder."""

    name: str  # backbone.name: toy | kandinsky22
    dim: int  # D
    text_length: int  # T: tokens per caption (captions are padded or truncated to it)
    vocabulary: frozenset[str] | None  # the words the text tower learned; None: open (any text)
    model_ids: dict[str, str]  # what the weights are (written into the tables' metadata)
    device: torch.device
    dtype: torch.dtype
    prior_steps: int  # the prior's sampling settings (0, 0.0 for a deterministic prior)
    prior_guidance: float
    seed: int

    @property
    def info(self) -> EmbeddingInfo:
        """What an embedding from this backbone means, for the tables' schema metadata."""
        ...

    def preprocess(self, images: list[Image.Image]) -> Tensor:
        """PIL images -> [N, 3, S, S] float32 pixels, ready for ``encode_pixels``."""
        ...

    def encode_pixels(self, pixels: Tensor) -> Tensor:
        """[N, 3, S, S] preprocessed pixels -> [N, D] raw image embeddings (float32, CPU)."""
        ...

    def encode_images(self, images: list[Image.Image]) -> Tensor:
        """PIL images -> [N, D] raw image embeddings (float32, CPU)."""
        ...

    def encode_texts(self, captions: list[str]) -> TextEncoding:
        """Captions (any text: padded or truncated to T tokens) -> their ``TextEncoding``."""
        ...

    def count_tokens(self, caption: str) -> int:
        """Tokens ``caption`` takes before truncation to ``text_length``, BOS and EOS included."""
        ...

    def decode(
        self, image_embeds: Tensor, *, size: int, steps: int, guidance: float, seed: int
    ) -> list[Image.Image]:
        """[N, D] raw image embeddings -> N RGB pictures of ``size`` x ``size``."""
        ...
