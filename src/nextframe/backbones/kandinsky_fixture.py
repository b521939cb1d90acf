"""A test fixture: Kandinsky 2.2's components at toy size, random but fixed weights.

It keeps the ``kandinsky22`` code path exercised offline: the components (CLIP text and
vision towers with projections, the unCLIP prior and its scheduler, the decoder UNet,
MoVQ and its scheduler, a tokenizer over a vocabulary the project generates) are built
from small configs with a fixed seed and saved with ``save_pretrained`` into two folders
laid out exactly like the hub repositories ``kandinsky-2-2-prior`` and
``kandinsky-2-2-decoder``; tests point ``backbone.prior_model`` and
``backbone.decoder_model`` at them and load them with ``backbone.name: kandinsky22``, by
the very code that loads the real ones (``unclip.load_unclip``). It is not a backbone a
user picks: its decoder paints noise by construction (``toy`` is the offline default).

Random towers at the default initialisation map every synthetic frame to nearly one
direction (mean pairwise cosine 0.997 between frames of different clips), which would
make the fixture's outputs useless for testing that embeddings follow pixels;
``INIT_FACTOR`` scales the initialisation up until they do.

The folder name carries a digest of everything that goes into the build, so changing a
config here builds a new folder instead of silently reusing a stale one; it lives in
``$NEXTFRAME_CACHE``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

from nextframe.backbones.kandinsky22_assembly import (
    assemble_decoder,
    assemble_prior,
    clip_image_processor,
)
from nextframe.backbones.vocabulary import WORDS, build_tokenizer
from nextframe.cache import cache_root
from nextframe.config import BackboneParams

SEED = 0
DIM = 64  # D: text hidden size == projection dim == image projection dim
TEXT_LENGTH = 32  # T: tokens per caption, BOS and EOS included
IMAGE_SIZE = 64  # the vision tower's input side (the frames are 64 px by default)
PATCH_SIZE = 8
INIT_FACTOR = 4.0  # CLIP's initializer_factor; 1.0 collapses all frames to one direction
INIT_RANGE = 0.2  # CLIP's initializer_range (patch and position embeddings)

TEXT_CONFIG = {
    "hidden_size": DIM,
    "projection_dim": DIM,
    "intermediate_size": 4 * DIM,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": TEXT_LENGTH,
    "initializer_factor": INIT_FACTOR,
    "initializer_range": INIT_RANGE,
}
VISION_CONFIG = {
    "hidden_size": DIM,
    "projection_dim": DIM,
    "intermediate_size": 4 * DIM,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH_SIZE,
    "initializer_factor": INIT_FACTOR,
    "initializer_range": INIT_RANGE,
}
IMAGE_PROCESSOR_CONFIG = clip_image_processor(IMAGE_SIZE)
PRIOR_CONFIG = {
    "num_attention_heads": 2,
    "attention_head_dim": DIM // 2,
    "num_layers": 2,
    "embedding_dim": DIM,
    "num_embeddings": TEXT_LENGTH,
    "additional_embeddings": 4,
}
PRIOR_SCHEDULER_CONFIG = {  # as in kandinsky-2-2-prior
    "variance_type": "fixed_small_log",
    "prediction_type": "sample",
    "num_train_timesteps": 1000,
    "clip_sample": True,
    "clip_sample_range": 10.0,
}
UNET_CONFIG = {  # the Kandinsky 2.2 decoder UNet's layout at toy width
    "in_channels": 4,
    "out_channels": 8,  # mean and variance
    "addition_embed_type": "image",
    "down_block_types": ["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
    "up_block_types": ["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
    "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "encoder_hid_dim": DIM,
    "encoder_hid_dim_type": "image_proj",
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "resnet_time_scale_shift": "scale_shift",
    "class_embed_type": None,
}
MOVQ_CONFIG = {
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
    "up_block_types": ["AttnUpDecoderBlock2D", "UpDecoderBlock2D"],
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "norm_type": "spatial",
    "num_vq_embeddings": 12,
    "vq_embed_dim": 4,
}
DECODER_SCHEDULER_CONFIG = {  # as in kandinsky-2-2-decoder
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "thresholding": False,
}
BUILD_FORMAT = 2  # bump when the build procedure (not a config above) changes


def version() -> str:
    """Digest of everything the build depends on; names the cache folder."""
    spec = {
        "format": BUILD_FORMAT,
        "seed": SEED,
        "words": WORDS,
        "configs": [
            TEXT_CONFIG,
            VISION_CONFIG,
            IMAGE_PROCESSOR_CONFIG,
            PRIOR_CONFIG,
            PRIOR_SCHEDULER_CONFIG,
            UNET_CONFIG,
            MOVQ_CONFIG,
            DECODER_SCHEDULER_CONFIG,
        ],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def fixture_dir() -> Path:
    return cache_root() / f"kandinsky22-fixture-{version()}"


def build_prior() -> KandinskyV22PriorPipeline:
    tokenizer = build_tokenizer(TEXT_LENGTH)
    return assemble_prior(
        tokenizer,
        {**TEXT_CONFIG, "vocab_size": len(tokenizer)},
        VISION_CONFIG,
        PRIOR_CONFIG,
        PRIOR_SCHEDULER_CONFIG,
        IMAGE_PROCESSOR_CONFIG,
        seed=SEED,
    )


def build_decoder() -> KandinskyV22Pipeline:
    return assemble_decoder(UNET_CONFIG, MOVQ_CONFIG, DECODER_SCHEDULER_CONFIG, seed=SEED)


def ensure_fixture() -> tuple[Path, Path]:
    """The (prior, decoder) folders, built and saved on first use.

    Built into a private temporary folder and renamed into place, so two processes that
    start at once (two DVC stages, parallel tests) never see a half-written folder: the
    loser of the rename race throws its copy away and uses the winner's.
    """
    target = fixture_dir()
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            with torch.random.fork_rng():
                build_prior().save_pretrained(staging / "prior")
                build_decoder().save_pretrained(staging / "decoder")
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target / "prior", target / "decoder"


def backbone_params(**settings) -> BackboneParams:
    """``backbone`` params that load the fixture as ``kandinsky22`` (built on first use)."""
    prior_dir, decoder_dir = ensure_fixture()
    return BackboneParams(
        name="kandinsky22", prior_model=str(prior_dir), decoder_model=str(decoder_dir), **settings
    )
