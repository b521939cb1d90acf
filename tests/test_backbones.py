"""The kandinsky22 code path on its test fixture: shapes, determinism, no collapse, decoding.

The fixture (``backbones.kandinsky_fixture``) is Kandinsky 2.2's classes at toy size with
random weights, saved in the hub's folder layout; loaded with ``backbone.name:
kandinsky22`` and the folders as ``prior_model`` / ``decoder_model``, it runs every line
the real Kandinsky 2.2 backbone runs. The toy backbone has its own tests (test_toy.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nextframe.backbones import Backbone, kandinsky_fixture, load_backbone
from nextframe.backbones.kandinsky_fixture import DIM, TEXT_LENGTH
from nextframe.backbones.unclip import UnclipBackbone
from nextframe.config import BackboneParams, SyntheticParams
from nextframe.data.synthetic import make_specs, render_clip
from nextframe.device import resolve_device, resolve_dtype
from nextframe.errors import UserError

CPU = {"device": "cpu", "prior_steps": 3}
CAPTIONS = [
    "a red circle moves from left to right on a gray background",
    "a blue square grows on a black background",
    "a green triangle rotates clockwise",
]


def scene(background: tuple, colour: tuple, centre: tuple[int, int], shape: str) -> Image.Image:
    """A 64 px synthetic-like frame: one filled shape on a flat background."""
    pixels = np.empty((64, 64, 3), np.uint8)
    pixels[:] = background
    rows, cols = np.mgrid[:64, :64]
    x, y = centre
    if shape == "circle":
        mask = (cols - x) ** 2 + (rows - y) ** 2 < 100
    else:
        mask = (abs(cols - x) < 10) & (abs(rows - y) < 10)
    pixels[mask] = colour
    return Image.fromarray(pixels)


SCENES = [
    scene((128, 128, 128), (255, 0, 0), (16, 32), "circle"),
    scene((128, 128, 128), (0, 0, 255), (48, 32), "square"),
    scene((20, 20, 20), (0, 255, 0), (32, 16), "circle"),
    scene((240, 240, 200), (255, 255, 0), (32, 48), "square"),
    scene((0, 0, 128), (255, 128, 0), (20, 40), "square"),
    scene((60, 120, 60), (255, 255, 255), (44, 20), "circle"),
]


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return load_backbone(kandinsky_fixture.backbone_params(**CPU))


def test_fixture_is_built_once_and_reused(backbone: Backbone, monkeypatch) -> None:
    first = kandinsky_fixture.ensure_fixture()

    def fail() -> None:
        raise AssertionError("ensure_fixture rebuilt components that were already cached")

    monkeypatch.setattr(kandinsky_fixture, "build_prior", fail)
    monkeypatch.setattr(kandinsky_fixture, "build_decoder", fail)
    assert kandinsky_fixture.ensure_fixture() == first
    assert first[0].parent == kandinsky_fixture.fixture_dir()
    assert not [path for path in first[0].parent.parent.iterdir() if path.name.startswith(".")]


def test_interface_shapes_and_info(backbone: Backbone) -> None:
    assert isinstance(backbone, UnclipBackbone) and isinstance(backbone, Backbone)
    assert (backbone.name, backbone.dim, backbone.text_length) == ("kandinsky22", DIM, TEXT_LENGTH)
    assert backbone.info.backbone == "kandinsky22" and backbone.info.dim == DIM
    assert backbone.model_ids["prior"] == str(kandinsky_fixture.fixture_dir() / "prior")
    assert not backbone.info.normalized
    image_embeds = backbone.encode_images(SCENES)
    assert image_embeds.shape == (len(SCENES), DIM)
    assert image_embeds.dtype == torch.float32 and torch.isfinite(image_embeds).all()
    encoding = backbone.encode_texts(CAPTIONS)
    assert encoding.text_embed.shape == (3, DIM)
    assert encoding.hidden_states.shape == (3, TEXT_LENGTH, DIM)
    assert encoding.prior_embed.shape == (3, DIM)
    for tensor in (encoding.text_embed, encoding.hidden_states, encoding.prior_embed):
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all()
    assert backbone.negative_embed().shape == (DIM,)


def test_prior_embed_is_alive_and_follows_the_caption(backbone: Backbone) -> None:
    encoding = backbone.encode_texts(CAPTIONS)
    prior_embed = encoding.prior_embed  # [3, D]
    # the prior's own output, not the text projection passed through
    assert not torch.allclose(prior_embed, encoding.text_embed, atol=1e-3)
    assert (prior_embed.norm(dim=1) > 1e-3).all()
    unit = torch.nn.functional.normalize(prior_embed, dim=1)
    cosines = unit @ unit.T
    assert (cosines[~torch.eye(3, dtype=torch.bool)] < 0.99).all()


def test_caption_encoding_does_not_depend_on_its_batch(backbone: Backbone) -> None:
    together = backbone.encode_texts(CAPTIONS)
    alone = backbone.encode_texts(CAPTIONS[1:2])
    torch.testing.assert_close(alone.prior_embed[0], together.prior_embed[1])
    torch.testing.assert_close(alone.hidden_states[0], together.hidden_states[1])


def test_two_loads_give_identical_embeddings(backbone: Backbone) -> None:
    again = load_backbone(kandinsky_fixture.backbone_params(**CPU))
    assert torch.equal(again.encode_images(SCENES), backbone.encode_images(SCENES))
    assert torch.equal(
        again.encode_texts(CAPTIONS).prior_embed, backbone.encode_texts(CAPTIONS).prior_embed
    )


def test_image_embeddings_do_not_collapse(backbone: Backbone) -> None:
    """DESIGN.md: at the default initialisation every frame maps to one direction (0.997)."""
    unit = torch.nn.functional.normalize(backbone.encode_images(SCENES), dim=1)
    cosines = (unit @ unit.T)[~torch.eye(len(SCENES), dtype=torch.bool)]
    assert cosines.mean() < 0.9
    assert cosines.max() < 0.99


def test_decode_size_and_determinism(backbone: Backbone) -> None:
    image_embeds = backbone.encode_images(SCENES[:2])
    settings = {"size": 32, "steps": 2, "guidance": 4.0, "seed": 7}
    first = backbone.decode(image_embeds, **settings)
    again = backbone.decode(image_embeds, **settings)
    assert [image.size for image in first] == [(32, 32), (32, 32)]
    assert all(isinstance(image, Image.Image) for image in first)
    pixels = [np.asarray(image) for image in first]
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(pixels, again, strict=True))
    assert not np.array_equal(pixels[0], pixels[1])


def test_unknown_model_offline_names_the_key(tmp_path) -> None:
    params = BackboneParams(name="kandinsky22", prior_model="nextframe-tests/no-such-prior", **CPU)
    with pytest.raises(UserError, match=r"backbone\.prior_model"):
        load_backbone(params)
    missing_folder = BackboneParams(
        name="kandinsky22", prior_model=str(tmp_path / "missing"), **CPU
    )
    with pytest.raises(UserError, match=r"backbone\.prior_model"):
        load_backbone(missing_folder)


def test_dtype_and_device_resolution(backbone: Backbone) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("auto", cuda) == torch.float16
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_device("cpu") == cpu
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert backbone.device == cpu and backbone.dtype == torch.float32


@pytest.fixture(scope="module")
def synthetic_clips() -> list:
    """12 clips of the synthetic source at its defaults (seed 0), as specs."""
    return make_specs(SyntheticParams(), seed=0)[:12]


def test_synthetic_frames_separate_clips(backbone: Backbone, synthetic_clips: list) -> None:
    """4 frames (first, last, two between) of 12 default synthetic clips. Measured:
    cross-clip mean cosine 0.31, same-clip mean 0.84 (bound: cross < 0.9, same > cross)."""
    images, clip_of = [], []
    for index, spec in enumerate(synthetic_clips):
        frames = render_clip(spec)  # [F, H, W, 3] uint8
        for f in np.linspace(0, len(frames) - 1, 4).round().astype(int):
            images.append(Image.fromarray(frames[f]))
            clip_of.append(index)
    unit = torch.nn.functional.normalize(backbone.encode_images(images), dim=1)
    cosines = unit @ unit.T
    clip_of = torch.tensor(clip_of)
    same = clip_of[:, None] == clip_of[None, :]
    cross_mean = cosines[~same].mean()
    same_mean = cosines[same & ~torch.eye(len(images), dtype=torch.bool)].mean()
    assert cross_mean < 0.9
    assert same_mean > cross_mean


def test_synthetic_captions_do_not_collapse(backbone: Backbone, synthetic_clips: list) -> None:
    """The 12 default synthetic captions (all different). Measured mean pairwise cosine:
    text_embed 0.47, prior_embed 0.87 (prior_steps 3 or 25 alike). The prior's output has a
    large shared direction, so its bound is 0.9, the "collapsed" line DESIGN.md draws for
    images (a collapsed tower gives about 0.997); text_embed gets a tighter 0.75."""
    captions = [spec.caption() for spec in synthetic_clips]
    assert len(set(captions)) == len(captions)
    encoding = backbone.encode_texts(captions)
    off_diagonal = ~torch.eye(len(captions), dtype=torch.bool)
    for name, bound in (("text_embed", 0.75), ("prior_embed", 0.9)):
        unit = torch.nn.functional.normalize(getattr(encoding, name), dim=1)
        assert (unit @ unit.T)[off_diagonal].mean() < bound, name
