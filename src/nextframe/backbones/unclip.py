"""One unCLIP backbone over Kandinsky 2.2's components, whatever their size.

The prior repository holds the CLIP text and image towers (with projections), the
tokenizer, the image processor and the diffusion prior; the decoder repository holds the
UNet, MoVQ and their scheduler. ``load_unclip`` loads both with ``from_pretrained`` from a
hub id or a local folder, and ``UnclipBackbone`` composes them behind the project's
interface (``base.Backbone``). The real repositories and the test fixture (random
components at toy size in the same folder layout, ``kandinsky_fixture``) differ only in
where the folders come from, so a test on the fixture runs every line the real one runs.

Randomness is per row, never per batch: the prior's noise for a caption comes from a
generator seeded by (seed, caption), and every decoded row gets a generator seeded by the
same seed. So an embedding never depends on which other rows shared its batch (changing
``backbone.batch_size`` changes no output), and decoded frames differ only by embedding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cached_property
from typing import Any

import torch
from diffusers import DiffusionPipeline, KandinskyV22Pipeline, KandinskyV22PriorPipeline
from PIL import Image
from torch import Tensor
from transformers import CLIPImageProcessorPil

from nextframe.backbones.base import TextEncoding
from nextframe.device import resolve_device, resolve_dtype
from nextframe.errors import UserError
from nextframe.store import EmbeddingInfo


def caption_seed(seed: int, caption: str) -> int:
    """A 63-bit seed from (seed, caption), the same in every process and on every machine."""
    digest = hashlib.sha256(f"{seed}\0{caption}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class UnclipBackbone:
    """Text and image encoders, prior and decoder of one unCLIP model."""

    def __init__(
        self,
        name: str,
        model_ids: dict[str, str],
        prior: KandinskyV22PriorPipeline,
        load_decoder: Callable[[], KandinskyV22Pipeline],
        *,
        prior_steps: int,
        prior_guidance: float,
        seed: int,
    ) -> None:
        self.name = name
        self.model_ids = model_ids
        self.prior = prior
        self._load_decoder = load_decoder
        self.prior_steps = prior_steps
        self.prior_guidance = prior_guidance
        self.seed = seed
        self.device = prior.text_encoder.device
        self.dtype = prior.text_encoder.dtype
        text_config = prior.text_encoder.config
        self.dim = int(text_config.projection_dim)
        self.text_length = int(prior.tokenizer.model_max_length)
        self.vocabulary = None  # CLIP's byte-level BPE reads any text
        self._check_dims(text_config.hidden_size, prior.image_encoder.config.projection_dim)
        prior.set_progress_bar_config(disable=True)

    def _check_dims(self, text_hidden: int, image_projection: int) -> None:
        if not text_hidden == image_projection == self.dim:
            raise UserError(
                f"backbone {self.name} ({self.model_ids['prior']}): expected the text hidden size, "
                f"text projection and image projection to share one dimension D, found "
                f"{text_hidden}, {self.dim} and {image_projection}; use an unCLIP prior "
                "whose towers match (kandinsky-2-2-prior does)"
            )

    @property
    def info(self) -> EmbeddingInfo:
        return EmbeddingInfo(backbone=self.name, model_ids=self.model_ids, dim=self.dim)

    @cached_property
    def decoder(self) -> KandinskyV22Pipeline:
        """Loaded on first use: the embed stage never needs it."""
        pipeline = self._load_decoder()
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def preprocess(self, images: list[Image.Image]) -> Tensor:
        """PIL images -> [N, 3, S, S] float32 pixels by the model's own image processor."""
        rgb = [image.convert("RGB") for image in images]
        return self.prior.image_processor(images=rgb, return_tensors="pt").pixel_values

    @torch.inference_mode()
    def encode_pixels(self, pixels: Tensor) -> Tensor:
        """[N, 3, S, S] preprocessed pixels -> [N, D] raw image embeddings (float32, CPU)."""
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        return self.prior.image_encoder(pixel_values=pixels).image_embeds.float().cpu()

    def encode_images(self, images: list[Image.Image]) -> Tensor:
        """PIL images -> [N, D] raw image embeddings (float32, CPU)."""
        return self.encode_pixels(self.preprocess(images))

    def count_tokens(self, caption: str) -> int:
        return len(self.prior.tokenizer(caption, verbose=False).input_ids)

    @torch.inference_mode()
    def encode_texts(self, captions: list[str]) -> TextEncoding:
        """Captions -> text projection, text hidden states and the prior's image embedding."""
        tokens = self.prior.tokenizer(
            captions,
            padding="max_length",
            max_length=self.text_length,
            truncation=True,
            return_tensors="pt",
        )
        # The call the prior pipeline makes itself, so hidden_states are what the prior sees.
        text = self.prior.text_encoder(tokens.input_ids.to(self.device))
        generators = [
            torch.Generator("cpu").manual_seed(caption_seed(self.seed, caption))
            for caption in captions
        ]
        prior_embed = self.prior(
            prompt=list(captions),
            num_inference_steps=self.prior_steps,
            guidance_scale=self.prior_guidance,
            generator=generators,
            output_type="pt",
        ).image_embeds
        return TextEncoding(
            text_embed=text.text_embeds.float().cpu(),  # [N, D]
            hidden_states=text.last_hidden_state.float().cpu(),  # [N, T, D]
            prior_embed=prior_embed.float().cpu(),  # [N, D]
        )

    @torch.inference_mode()
    def negative_embed(self) -> Tensor:
        """[D]: the embedding of an all-zero image, Kandinsky's unconditional image embedding."""
        return self.prior.get_zero_embed(batch_size=1, device=self.device)[0].float().cpu()

    @torch.inference_mode()
    def decode(
        self, image_embeds: Tensor, *, size: int, steps: int, guidance: float, seed: int
    ) -> list[Image.Image]:
        """[N, D] raw image embeddings -> N pictures of ``size`` x ``size``.

        Every row gets its own generator with the same seed, so rows start from the same
        latents and draw the same step noise: only the embedding differs between them.
        """
        count = len(image_embeds)
        negative = self.negative_embed().expand(count, -1)  # [N, D]
        images = self.decoder(
            image_embeds=image_embeds.to(device=self.device, dtype=self.dtype),
            negative_image_embeds=negative.to(device=self.device, dtype=self.dtype),
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=[torch.Generator("cpu").manual_seed(seed) for _ in range(count)],
            output_type="pil",
        ).images
        # The decoder works in multiples of its latent scale; give back exactly what was asked.
        return [
            image if image.size == (size, size) else image.resize((size, size), Image.BICUBIC)
            for image in images
        ]


def load_pipeline(
    pipeline_class: type[DiffusionPipeline],
    model: str,
    key: str,
    revision: str | None,
    dtype: torch.dtype,
    **components: Any,
) -> DiffusionPipeline:
    """``pipeline_class.from_pretrained`` with an error that says which key to fix and how."""
    try:
        return pipeline_class.from_pretrained(model, revision=revision, dtype=dtype, **components)
    except (OSError, ValueError) as exc:
        raise loading_error(key, model, revision, exc) from exc


def loading_error(key: str, model: str, revision: str | None, exc: Exception) -> UserError:
    return UserError(
        f"could not load {key}={model!r} (revision {revision!r}): {exc}. Expected a Hugging "
        "Face hub id or a local folder laid out like the hub repository. Without hub access, "
        f"copy the repository elsewhere (huggingface-cli download {model} --local-dir DIR) "
        f"and set {key}: DIR in params.yaml"
    )


def load_image_processor(model: str, revision: str | None) -> CLIPImageProcessorPil:
    try:
        return CLIPImageProcessorPil.from_pretrained(
            model, subfolder="image_processor", revision=revision
        )
    except (OSError, ValueError) as exc:
        raise loading_error("backbone.prior_model", model, revision, exc) from exc


def load_unclip(
    name: str,
    prior_model: str,
    decoder_model: str,
    *,
    revision: str | None,
    device: str,
    dtype: str,
    prior_steps: int,
    prior_guidance: float,
    seed: int,
    model_ids: dict[str, str] | None = None,
) -> UnclipBackbone:
    """Load the prior now and the decoder on first ``decode``; both on ``device`` in ``dtype``."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    prior = load_pipeline(
        KandinskyV22PriorPipeline,
        prior_model,
        "backbone.prior_model",
        revision,
        torch_dtype,
        # The PIL image processor everywhere: the same pixels, hence the same embeddings,
        # whether or not torchvision happens to be installed.
        image_processor=load_image_processor(prior_model, revision),
    ).to(torch_device)

    def load_decoder() -> KandinskyV22Pipeline:
        return load_pipeline(
            KandinskyV22Pipeline, decoder_model, "backbone.decoder_model", revision, torch_dtype
        ).to(torch_device)

    return UnclipBackbone(
        name,
        model_ids or {"prior": prior_model, "decoder": decoder_model, "revision": revision},
        prior,
        load_decoder,
        prior_steps=prior_steps,
        prior_guidance=prior_guidance,
        seed=seed,
    )
