"""Kandinsky 2.2 at its published size (random weights, meta device): shapes and sizes."""

from __future__ import annotations

import pytest
import torch

from nextframe.backbones import kandinsky22_configs as k22


@pytest.fixture(scope="module")
def built() -> k22.RealSize:
    return k22.build("meta")


def test_the_project_backbone_reads_d_1280_and_t_77_from_the_real_configs() -> None:
    backbone = k22.real_size_backbone("meta", torch.float32)
    assert (backbone.dim, backbone.text_length) == (1280, 77)
    assert backbone.prior.text_encoder.device.type == "meta"


def test_real_size_components_give_the_published_shapes(built: k22.RealSize) -> None:
    shapes = k22.meta_shapes(built, batch=2, latent_side=64)
    assert shapes == {
        "image_embeds": [2, 1280],
        "text_embeds": [2, 1280],
        "hidden_states": [2, 77, 1280],
        "prior_embed": [2, 1280],
        "unet_output": [2, 8, 64, 64],  # noise mean and variance
        "movq_pictures": [2, 3, 512, 512],
    }


def test_parameter_counts_are_the_published_ones(built: k22.RealSize) -> None:
    counts = built.parameters()
    # The two CLIP towers are open_clip's ViT-bigG-14 exactly (model_profile.csv, in M).
    assert round(counts["image_encoder"] / 1e6, 2) == 1844.91
    assert round(counts["text_encoder"] / 1e6, 2) == 694.66
    # The model card rounds: prior "1B", UNet "1.22B", MoVQ "67M" (2.2's image projection
    # of 1280 instead of 2.1's 1024 adds to the UNet).
    for name in ("prior", "unet", "movq"):
        assert counts[name] == pytest.approx(k22.PUBLISHED_PARAMETERS[name], rel=0.03), name
