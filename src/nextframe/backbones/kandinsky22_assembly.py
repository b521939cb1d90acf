"""Kandinsky 2.2's two pipelines assembled from component configs, with random weights.

The published-size build (``kandinsky22_configs``) and the toy-size test fixture
(``kandinsky_fixture``) differ only in their configs, device and dtype: this is the one
place that turns configs into pipelines, so both go through the same construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers import (
    DDPMScheduler,
    KandinskyV22Pipeline,
    KandinskyV22PriorPipeline,
    PriorTransformer,
    UnCLIPScheduler,
    UNet2DConditionModel,
    VQModel,
)
from transformers import (
    CLIPImageProcessorPil,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    PreTrainedTokenizerBase,
)

Config = dict[str, Any]


def clip_image_processor(size: int) -> Config:
    """CLIP's image preprocessing at ``size`` px: resize the short side, centre-crop,
    normalise with CLIP's mean and std, bicubic resampling."""
    return {
        "do_resize": True,
        "size": {"shortest_edge": size},
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3,  # bicubic
    }


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create parameters directly in ``dtype``: a bf16 build never holds a float32 copy."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def assemble_prior(
    tokenizer: PreTrainedTokenizerBase,
    text: Config,
    vision: Config,
    prior: Config,
    scheduler: Config,
    image_processor: Config,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> KandinskyV22PriorPipeline:
    """The prior pipeline (CLIP towers, tokenizer, prior, scheduler); on ``device``
    ``"meta"`` only shapes, no memory."""
    torch.manual_seed(seed)
    text_config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **text,
    )
    with torch.device(device), default_dtype(dtype):
        text_encoder = CLIPTextModelWithProjection(text_config)
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**vision))
        prior_model = PriorTransformer(**prior)
    if device != "meta":
        # The prior de-standardises its output with clip_mean / clip_std, which start at 0:
        # left there, every prior embedding would be exactly zero.
        with torch.no_grad():
            prior_model.clip_std.fill_(1.0)
    return KandinskyV22PriorPipeline(
        prior=prior_model.eval(),
        image_encoder=image_encoder.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=UnCLIPScheduler(**scheduler),
        image_processor=CLIPImageProcessorPil(**image_processor),
    )


def assemble_decoder(
    unet: Config,
    movq: Config,
    scheduler: Config,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> KandinskyV22Pipeline:
    """The decoder pipeline (UNet, MoVQ, scheduler)."""
    torch.manual_seed(seed)
    with torch.device(device), default_dtype(dtype):
        unet_model = UNet2DConditionModel(**unet)
        movq_model = VQModel(**movq)
    return KandinskyV22Pipeline(
        unet=unet_model.eval(), scheduler=DDPMScheduler(**scheduler), movq=movq_model.eval()
    )
