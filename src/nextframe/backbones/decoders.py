"""Embeddings back to pictures: the retrieval decoder and the backbone's own.

- ``retrieval``: the training frame whose embedding is nearest by cosine. The index is
  the training split's image embeddings, L2-normalised once into one ``[N, D]`` tensor;
  a batch of queries is one matrix product and an argmax. Instant and offline, and a
  readable preview of what a predicted embedding "means" even when the backbone's own
  decoder draws noise (the kandinsky22 test fixture).
- ``backbone``: the backbone's own decoder (Kandinsky's diffusion decoder, with the same
  seed and initial latents for every row, so only the embedding changes between the
  frames of a video; the toy's deterministic mask decoder).

Both return ``[N, size, size, 3]`` uint8 frames, ready for ``render.write_videos``.
``decode_distinct`` decodes a set of rollouts and re-encodes the pictures with the backbone
(so pictures can be scored without a model), each distinct embedding once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F

from nextframe.errors import UserError
from nextframe.progress import progress_bar
from nextframe.render import to_array
from nextframe.store import ImageEmbeddings


class Decoder(Protocol):
    name: str

    def decode(self, embeddings: Tensor) -> np.ndarray:
        """[N, D] raw embeddings -> [N, size, size, 3] uint8 RGB."""
        ...


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
class BackboneDecoder:
    """The backbone's own decoder, same seed (so same initial latents) for every row."""

    backbone: object  # nextframe.backbones.Backbone
    size: int
    steps: int
    guidance: float
    seed: int
    batch_size: int = 16
    name: str = "backbone"

    def decode(self, embeddings: Tensor) -> np.ndarray:
        pictures: list[np.ndarray] = []
        for chunk in embeddings.float().split(self.batch_size):
            images = self.backbone.decode(
                chunk, size=self.size, steps=self.steps, guidance=self.guidance, seed=self.seed
            )
            pictures.extend(to_array(image, self.size) for image in images)
        return np.stack(pictures)


def encode_pictures(backbone, pictures: np.ndarray, batch_size: int) -> Tensor:
    """[N, H, W, 3] uint8 -> [N, D] backbone image embeddings, in batches."""
    parts = []
    for first in range(0, len(pictures), batch_size):
        images = [Image.fromarray(frame) for frame in pictures[first : first + batch_size]]
        parts.append(backbone.encode_images(images).float().cpu())
    return torch.cat(parts)


def decode_distinct(
    decoder: Decoder,
    predicted: dict[tuple[str, str], Tensor],
    backbone,
    batch_size: int,
    progress: bool,
) -> tuple[dict[tuple[str, str], np.ndarray], dict[tuple[str, str], Tensor]]:
    """Decode and re-encode every distinct predicted embedding once.

    Many rollouts repeat each other (a baseline's chain and step rollouts are the same
    vectors, and every method starts from the same frame), and every row of one video
    is decoded from the same seed, so a row's picture depends on its embedding alone:
    decoding each distinct vector once saves about a third of the decoding time.
    Returns, per (method, rollout), the pictures [C, n, S, S, 3] and their re-encodings
    [C, n, D].
    """
    keys = list(predicted)
    stacked = torch.cat([predicted[key].reshape(-1, predicted[key].shape[-1]) for key in keys])
    distinct, inverse = torch.unique(stacked, dim=0, return_inverse=True)
    chunks = distinct.split(batch_size)
    decoded = np.concatenate(
        [
            decoder.decode(chunk)
            for chunk in progress_bar(chunks, desc=f"decode {decoder.name}", disable=not progress)
        ]
    )  # [U, S, S, 3]
    embedded = encode_pictures(backbone, decoded, batch_size)  # [U, D]
    pictures: dict[tuple[str, str], np.ndarray] = {}
    reencoded: dict[tuple[str, str], Tensor] = {}
    offset = 0
    for key in keys:
        count, steps = predicted[key].shape[:2]
        rows = inverse[offset : offset + count * steps]
        offset += count * steps
        pictures[key] = decoded[rows.numpy()].reshape(count, steps, *decoded.shape[1:])
        reencoded[key] = embedded[rows].reshape(count, steps, -1)
    return pictures, reencoded
