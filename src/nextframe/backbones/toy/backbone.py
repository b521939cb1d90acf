"""The toy backbone behind the ``Backbone`` interface, and its weights file.

The weights ship with the package (``backbones/weights/toy.safetensors``, float32). The
file's metadata holds the digest of the recipe that made it; loading checks it against
the code's recipe, so weights from another version of the build code are refused with the
command that rebuilds them rather than silently used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.nn import functional as F

from nextframe.backbones.base import TextEncoding
from nextframe.backbones.toy.model import ToyModel
from nextframe.backbones.toy.recipe import RECIPE, Recipe
from nextframe.backbones.vocabulary import build_tokenizer
from nextframe.data.synthetic_captions import caption_words
from nextframe.errors import UserError
from nextframe.store import EmbeddingInfo, atomic_path

WEIGHTS_FILE = "backbones/weights/toy.safetensors"  # package data, relative to nextframe/
WEIGHTS = Path(__file__).resolve().parents[2] / WEIGHTS_FILE
BUILD_COMMAND = "nextframe backbone build toy"
FORMAT = "nextframe-toy"
METADATA_KEY = "nextframe"  # one key: safetensors writes several in a random order


def write_weights(model: ToyModel, recipe: Recipe, path: Path) -> None:
    """Save ``model`` with the recipe (and its digest) in the file's metadata, atomically."""
    record = {"format": FORMAT, "recipe_digest": recipe.digest(), "recipe": recipe.to_dict()}
    metadata = {METADATA_KEY: json.dumps(record, sort_keys=True)}
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
        tmp.chmod(0o644)  # a package file: readable by all (temporary files are private)


def read_metadata(path: Path) -> dict:
    """The record ``write_weights`` stored in the file ({} if it holds none)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else {}
    except FileNotFoundError:
        raise UserError(
            f"{path}: no toy backbone weights there; build them with `{BUILD_COMMAND}` "
            "(or reinstall the package, which ships them)"
        ) from None
    except Exception as exc:  # safetensors raises its own error types on a corrupt header
        raise UserError(
            f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc}); "
            f"rebuild it with `{BUILD_COMMAND}`"
        ) from exc


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class ToyBackbone:
    """The toy unCLIP: image and text towers in one space, a prior and a decoder.

    Everything is deterministic: the prior is a regression (no sampling), and ``decode``
    draws one picture per embedding, so its ``steps``, ``guidance`` and ``seed`` are
    accepted for the interface's sake and ignored.
    """

    name = "toy"

    def __init__(
        self, model: ToyModel, recipe: Recipe, model_ids: dict[str, str], device: torch.device
    ) -> None:
        self.model = model.to(device).eval()
        self.recipe = recipe
        self.model_ids = model_ids
        self.device = device
        self.dtype = torch.float32
        self.dim = recipe.dim
        self.text_length = recipe.text_length
        self.size = recipe.size
        self.tokenizer = build_tokenizer(recipe.text_length)
        self.vocabulary = caption_words()  # it learned from synthetic captions alone
        self.prior_steps, self.prior_guidance, self.seed = 0, 0.0, 0  # a deterministic prior

    @property
    def info(self) -> EmbeddingInfo:
        return EmbeddingInfo(backbone=self.name, model_ids=self.model_ids, dim=self.dim)

    def preprocess(self, images: list[Image.Image]) -> Tensor:
        """PIL images -> [N, 3, S, S] float32 in [0, 1] (resized bicubically to S if needed)."""
        side = (self.size, self.size)
        arrays = [
            np.asarray(
                image.convert("RGB")
                if image.size == side
                else image.convert("RGB").resize(side, Image.Resampling.BICUBIC),
                dtype=np.uint8,
            )
            for image in images
        ]
        if not arrays:
            return torch.zeros(0, 3, *side)
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # [N, 3, S, S] uint8
        return pixels.float() / 255.0

    @torch.inference_mode()
    def encode_pixels(self, pixels: Tensor) -> Tensor:
        return self.model.encoder(pixels.to(self.device, torch.float32)).float().cpu()

    def encode_images(self, images: list[Image.Image]) -> Tensor:
        return self.encode_pixels(self.preprocess(images))

    def count_tokens(self, caption: str) -> int:
        return len(self.tokenizer(caption, verbose=False).input_ids)

    @torch.inference_mode()
    def encode_texts(self, captions: list[str]) -> TextEncoding:
        tokens = self.tokenizer(
            list(captions),
            padding="max_length",
            max_length=self.text_length,
            truncation=True,
            return_tensors="pt",
        )
        text = self.model.text
        hidden, pooled = text(
            tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        )
        return TextEncoding(
            text_embed=F.normalize(text.projection(pooled), dim=-1).float().cpu(),  # [N, D]
            hidden_states=hidden.float().cpu(),  # [N, T, D]
            prior_embed=F.normalize(text.prior(pooled), dim=-1).float().cpu(),  # [N, D]
        )

    @torch.inference_mode()
    def decode(
        self, image_embeds: Tensor, *, size: int, steps: int, guidance: float, seed: int
    ) -> list[Image.Image]:
        """[N, D] embeddings (any norm) -> N pictures; ``steps``/``guidance``/``seed`` unused."""
        pictures = self.model.decoder(image_embeds.to(self.device, torch.float32))
        arrays = (pictures.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        images = [Image.fromarray(array) for array in arrays.cpu().numpy()]
        return [
            image if image.size == (size, size) else image.resize((size, size), Image.BICUBIC)
            for image in images
        ]


def load_toy(
    path: Path | None = None, recipe: Recipe = RECIPE, device: str | torch.device = "cpu"
) -> ToyBackbone:
    """The toy backbone from its weights file (the shipped one by default).

    Fails, naming the command that rebuilds it, if the file was made by another recipe.
    """
    path = Path(path) if path is not None else WEIGHTS
    metadata = read_metadata(path)
    found, expected = metadata.get("recipe_digest"), recipe.digest()
    if metadata.get("format") != FORMAT or found != expected:
        raise UserError(
            f"{path}: toy backbone weights made by recipe {found!r}, but this code's recipe is "
            f"{expected!r} (the build code or its settings changed since); rebuild them with "
            f"`{BUILD_COMMAND}`"
        )
    model = ToyModel(recipe, vocab_size=len(build_tokenizer(recipe.text_length)))
    model.load_state_dict(load_file(str(path)))
    model_ids = {"recipe": expected, "weights": file_digest(path)}
    return ToyBackbone(model, recipe, model_ids, torch.device(device))
