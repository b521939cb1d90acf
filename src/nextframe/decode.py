"""Embeddings back to pictures: the retrieval and diffusion decoders, and contact sheets.

- ``retrieval``: the training frame whose embedding is nearest by cosine. The index is
  the training split's image embeddings, L2-normalised once into one ``[N, D]`` tensor;
  a batch of queries is one matrix product and an argmax. Instant and offline, and a
  readable preview of what a predicted embedding "means" even when the backbone's own
  decoder draws noise (the tiny backbone).
- ``diffusion``: the backbone's unCLIP decoder, with the same seed and initial latents
  for every row, so only the embedding changes between the frames of a video.

Both return ``[N, size, size, 3]`` uint8 frames, ready for ``data.video.write_video``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.nn import functional as F

from nextframe.errors import UserError
from nextframe.store import ImageEmbeddings


class Decoder(Protocol):
    name: str

    def decode(self, embeddings: Tensor) -> np.ndarray:
        """[N, D] raw embeddings -> [N, size, size, 3] uint8 RGB."""
        ...


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """A picture as [size, size, 3] uint8 RGB (resized if it is not that size already)."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


@dataclass
class RetrievalDecoder:
    """Nearest training frame by cosine; frame pictures are read once and kept."""

    index: Tensor  # [N, D] unit rows
    paths: list[Path]  # picture of row i
    size: int
    name: str = "retrieval"
    batch_size: int = 4096

    def __post_init__(self) -> None:
        self._pictures: dict[int, np.ndarray] = {}

    @classmethod
    def from_tables(
        cls,
        images: ImageEmbeddings,
        frames: pd.DataFrame,
        frames_root: Path,
        clip_ids: Sequence[str],
        size: int,
    ) -> RetrievalDecoder:
        """Index the frames of ``clip_ids`` (the training split); paths from frames.parquet."""
        wanted = set(clip_ids)
        rows = [row for row, clip_id in enumerate(images.clip_ids) if clip_id in wanted]
        if not rows:
            raise UserError(
                "the retrieval decoder needs training frames, found none in images.parquet "
                f"for the {len(wanted)} training clips; rerun embed, or drop 'retrieval' from "
                "generate.decoders"
            )
        path_of = {
            (clip_id, int(k)): frames_root / path
            for clip_id, k, path in zip(frames["clip_id"], frames["k"], frames["path"], strict=True)
        }
        keys = [(images.clip_ids[row], int(images.k[row])) for row in rows]
        missing = [key for key in keys if key not in path_of]
        if missing:
            raise UserError(
                f"{len(missing)} embedded frames have no row in frames.parquet (first: "
                f"{missing[0]}); the embeddings and frames tables are out of step: rerun dvc repro"
            )
        index = F.normalize(images.embeddings[rows].float(), dim=-1)  # [N, D]
        return cls(index=index, paths=[path_of[key] for key in keys], size=size)

    def nearest(self, embeddings: Tensor) -> Tensor:
        """Row of the nearest indexed frame for every query, [Q, D] -> [Q] int64."""
        queries = F.normalize(embeddings.float(), dim=-1)
        return torch.cat(
            [(chunk @ self.index.T).argmax(dim=1) for chunk in queries.split(self.batch_size)]
        )

    def picture(self, row: int) -> np.ndarray:
        if row not in self._pictures:
            path = self.paths[row]
            try:
                with Image.open(path) as image:
                    self._pictures[row] = to_array(image, self.size)
            except OSError as exc:
                raise UserError(
                    f"cannot read frame picture {path}: {exc}; rerun select_frames"
                ) from exc
        return self._pictures[row]

    def decode(self, embeddings: Tensor) -> np.ndarray:
        rows = self.nearest(embeddings).tolist()
        return np.stack([self.picture(row) for row in rows])


@dataclass
class DiffusionDecoder:
    """The backbone's unCLIP decoder, same seed (so same initial latents) for every row."""

    backbone: object  # nextframe.backbones.Backbone
    size: int
    steps: int
    guidance: float
    seed: int
    batch_size: int = 16
    name: str = "diffusion"

    def decode(self, embeddings: Tensor) -> np.ndarray:
        pictures: list[np.ndarray] = []
        for chunk in embeddings.float().split(self.batch_size):
            images = self.backbone.decode(
                chunk, size=self.size, steps=self.steps, guidance=self.guidance, seed=self.seed
            )
            pictures.extend(to_array(image, self.size) for image in images)
        return np.stack(pictures)


def contact_sheet(rows: Sequence[tuple[str, np.ndarray]], label_width: int = 96) -> Image.Image:
    """One labelled row of frames per entry ``(label, [n, H, W, 3])``, frames left to right."""
    height, width = rows[0][1].shape[1:3]
    columns = max(len(frames) for _, frames in rows)
    sheet = Image.new("RGB", (label_width + columns * width, len(rows) * height), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (label, frames) in enumerate(rows):
        top = index * height
        draw.text((4, top + height // 2 - 5), label, fill="black")
        strip = np.concatenate(list(frames), axis=1)  # [H, n * W, 3]
        sheet.paste(Image.fromarray(strip), (label_width, top))
    return sheet
