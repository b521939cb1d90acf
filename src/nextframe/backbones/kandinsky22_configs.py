"""Kandinsky 2.2 at its published size, with random weights: shapes, memory and speed at
real scale without the weights (which cannot be downloaded here).

The configurations, and where each comes from:

- CLIP ViT-bigG/14 (the prior repository's ``text_encoder`` and ``image_encoder``): open_clip's
  ``model_configs/ViT-bigG-14.json`` (embed_dim 1280; vision 48 layers of width 1664, head
  width 104, MLP ratio 4.9231 = 8192 / 1664, patch 14, 224 px; text 32 layers of width
  1280, 20 heads, 77 tokens, 49408 words) in transformers' CLIP classes with projection.
- The diffusion prior: diffusers' ``PriorTransformer`` defaults (20 layers, 32 heads of 64:
  "num_layers=20, num_heads=32 and hidden_size=2048" in the Kandinsky model card; the
  conversion script ``scripts/convert_kandinsky_to_diffusers.py`` builds it from the
  defaults) with ``embedding_dim`` 1280, bigG's projection, instead of ViT-L's 768.
- The decoder UNet: the conversion script's ``UNET_CONFIG`` (blocks 384, 768, 1152, 1536;
  3 layers per block; simple cross-attention, 64-channel heads) with Kandinsky 2.2's
  image-only conditioning: ``addition_embed_type="image"``, ``encoder_hid_dim_type=
  "image_proj"`` and ``encoder_hid_dim=1280`` (2.1's ``text_image`` over 1024 otherwise).
- MoVQ: the conversion script's ``MOVQ_CONFIG``, as in the decoder repository's
  ``movq/config.json`` (blocks 128, 256, 256, 512; 16384 codes of 4).
- Schedulers and the image processor: as in the two repositories (the same values the
  Kandinsky test fixture uses).

``PUBLISHED_PARAMETERS`` are the sizes the authors give, to compare the builds against:
open_clip's ``docs/model_profile.csv`` for the two towers (1844.91M and 694.66M) and the
Kandinsky model cards for the prior (1B), UNet (1.22B) and MoVQ (67M). The tokenizer is the
project's own (``vocabulary.build_tokenizer``, 77 tokens): CLIP's BPE files are not shipped
with transformers; the embedding table keeps CLIP's 49408 rows, so sizes are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

from nextframe.backbones.kandinsky22_assembly import (
    assemble_decoder,
    assemble_prior,
    clip_image_processor,
)
from nextframe.backbones.kandinsky_fixture import DECODER_SCHEDULER_CONFIG, PRIOR_SCHEDULER_CONFIG
from nextframe.backbones.unclip import UnclipBackbone
from nextframe.backbones.vocabulary import build_tokenizer

DIM = 1280  # D: bigG's projection, the text tower's width and the prior's embedding
TEXT_LENGTH = 77  # T
IMAGE_SIZE = 224

TEXT_CONFIG = {
    "vocab_size": 49408,
    "hidden_size": DIM,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": TEXT_LENGTH,
    "projection_dim": DIM,
    "hidden_act": "gelu",
}
VISION_CONFIG = {
    "hidden_size": 1664,
    "intermediate_size": 8192,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,  # 1664 / head width 104
    "image_size": IMAGE_SIZE,
    "patch_size": 14,
    "projection_dim": DIM,
    "hidden_act": "gelu",
}
IMAGE_PROCESSOR_CONFIG = clip_image_processor(IMAGE_SIZE)
PRIOR_CONFIG = {
    "num_attention_heads": 32,
    "attention_head_dim": 64,
    "num_layers": 20,
    "embedding_dim": DIM,
    "num_embeddings": TEXT_LENGTH,
    "additional_embeddings": 4,
}
UNET_CONFIG = {
    "act_fn": "silu",
    "addition_embed_type": "image",
    "addition_embed_type_num_heads": 64,
    "attention_head_dim": 64,
    "block_out_channels": [384, 768, 1152, 1536],
    "class_embed_type": None,
    "cross_attention_dim": 768,
    "down_block_types": [
        "ResnetDownsampleBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "SimpleCrossAttnDownBlock2D",
    ],
    "encoder_hid_dim": DIM,
    "encoder_hid_dim_type": "image_proj",
    "in_channels": 4,
    "layers_per_block": 3,
    "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 8,  # mean and variance
    "resnet_time_scale_shift": "scale_shift",
    "sample_size": 64,
    "up_block_types": [
        "SimpleCrossAttnUpBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "ResnetUpsampleBlock2D",
    ],
}
MOVQ_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "down_block_types": [
        "DownEncoderBlock2D",
        "DownEncoderBlock2D",
        "DownEncoderBlock2D",
        "AttnDownEncoderBlock2D",
    ],
    "up_block_types": [
        "AttnUpDecoderBlock2D",
        "UpDecoderBlock2D",
        "UpDecoderBlock2D",
        "UpDecoderBlock2D",
    ],
    "num_vq_embeddings": 16384,
    "block_out_channels": [128, 256, 256, 512],
    "vq_embed_dim": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "norm_type": "spatial",
}
PUBLISHED_PARAMETERS = {  # component -> parameters, as published (module doc)
    "image_encoder": 1844.91e6,
    "text_encoder": 694.66e6,
    "prior": 1.0e9,
    "unet": 1.22e9,
    "movq": 67e6,
}


@dataclass
class RealSize:
    """Kandinsky 2.2's two pipelines at full size, random weights."""

    prior: KandinskyV22PriorPipeline
    decoder: KandinskyV22Pipeline

    def components(self) -> dict[str, torch.nn.Module]:
        return {
            "image_encoder": self.prior.image_encoder,
            "text_encoder": self.prior.text_encoder,
            "prior": self.prior.prior,
            "unet": self.decoder.unet,
            "movq": self.decoder.movq,
        }

    def parameters(self) -> dict[str, int]:
        return {
            name: sum(p.numel() for p in module.parameters())
            for name, module in self.components().items()
        }


def build_prior(device: str = "meta", dtype: torch.dtype = torch.float32, seed: int = 0):
    """The prior pipeline (CLIP towers, tokenizer, prior, scheduler) at full size."""
    return assemble_prior(
        build_tokenizer(TEXT_LENGTH),
        TEXT_CONFIG,
        VISION_CONFIG,
        PRIOR_CONFIG,
        PRIOR_SCHEDULER_CONFIG,
        IMAGE_PROCESSOR_CONFIG,
        device=device,
        dtype=dtype,
        seed=seed,
    )


def build_decoder(device: str = "meta", dtype: torch.dtype = torch.float32, seed: int = 0):
    """The decoder pipeline (UNet, MoVQ, scheduler) at full size."""
    return assemble_decoder(
        UNET_CONFIG, MOVQ_CONFIG, DECODER_SCHEDULER_CONFIG, device=device, dtype=dtype, seed=seed
    )


def build(device: str = "meta", dtype: torch.dtype = torch.float32, seed: int = 0) -> RealSize:
    return RealSize(build_prior(device, dtype, seed), build_decoder(device, dtype, seed))


def real_size_backbone(
    device: str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    *,
    prior_steps: int = 2,
    prior_guidance: float = 4.0,
    seed: int = 0,
) -> UnclipBackbone:
    """The project's ``UnclipBackbone`` over full-size random components (decoder built on
    first ``decode``), so its encode and decode code runs at real shapes."""
    return UnclipBackbone(
        "kandinsky22-random",
        {"prior": "random:kandinsky-2-2-prior", "decoder": "random:kandinsky-2-2-decoder"},
        build_prior(device, dtype, seed),
        lambda: build_decoder(device, dtype, seed),
        prior_steps=prior_steps,
        prior_guidance=prior_guidance,
        seed=seed,
    )


@torch.no_grad()
def meta_shapes(built: RealSize, batch: int, latent_side: int) -> dict[str, list[int]]:
    """Output shapes of every component's forward pass on the meta device (``build()``):
    ``batch`` frames and captions, latents of ``latent_side`` (pictures 8 times larger)."""
    prior = built.prior
    meta = torch.device("meta")
    pixels = torch.zeros(batch, 3, IMAGE_SIZE, IMAGE_SIZE, device=meta)
    tokens = torch.zeros(batch, TEXT_LENGTH, dtype=torch.long, device=meta)
    image = prior.image_encoder(pixel_values=pixels)
    text = prior.text_encoder(tokens)
    predicted = prior.prior(
        torch.zeros(batch, DIM, device=meta),
        timestep=torch.zeros(batch, dtype=torch.long, device=meta),
        proj_embedding=text.text_embeds,
        encoder_hidden_states=text.last_hidden_state,
        attention_mask=torch.ones(batch, TEXT_LENGTH, dtype=torch.bool, device=meta),
    ).predicted_image_embedding
    latents = torch.zeros(batch, 4, latent_side, latent_side, device=meta)
    noise = built.decoder.unet(
        latents,
        torch.zeros(batch, dtype=torch.long, device=meta),
        encoder_hidden_states=None,
        added_cond_kwargs={"image_embeds": image.image_embeds},
    ).sample
    pictures = built.decoder.movq.decode(latents, force_not_quantize=True).sample
    return {
        "image_embeds": list(image.image_embeds.shape),
        "text_embeds": list(text.text_embeds.shape),
        "hidden_states": list(text.last_hidden_state.shape),
        "prior_embed": list(predicted.shape),
        "unet_output": list(noise.shape),
        "movq_pictures": list(pictures.shape),
    }
