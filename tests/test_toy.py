"""The toy backbone: the shipped weights against the bars of issue 9 at small scale, its
interface, the build's determinism, and the weights file's checks.

Clips here come from a seed neither the toy's corpus nor the pipeline's defaults use, and
half go through the MP4 codec as the pipeline's do. Each bound is well inside what the
shipped weights measure (in the comments) and far from what a broken part gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from typer.testing import CliRunner

import nextframe.backbones.toy as toy_package
from nextframe.backbones import Backbone, load_backbone
from nextframe.backbones.toy import RECIPE, Recipe, ToyBackbone, load_toy
from nextframe.backbones.toy.build import build_weights, train
from nextframe.backbones.toy.corpus import SYMMETRY, corpus_specs, through_mp4
from nextframe.backbones.toy.probes import (
    centroid,
    described_colors,
    match_shape,
    object_mask,
    psnr,
)
from nextframe.cli import app
from nextframe.config import BackboneParams, DownloadParams, SyntheticParams
from nextframe.data.synthetic import (
    BACKBONE,
    TRANSLATIONS,
    ClipSpec,
    _pose,
    caption_side,
    make_specs,
    render_clip,
    synthetic_splits,
)
from nextframe.errors import UserError

SEED = 4242  # neither RECIPE.corpus_seed nor download.seed
TINY = Recipe(  # a build in about a second: the code path, not the quality
    n_clips=4,
    image_steps=3,
    image_clips_per_batch=2,
    image_frames_per_clip=2,
    text_steps=3,
    text_batch=4,
)


@pytest.fixture(scope="module")
def backbone() -> ToyBackbone:
    return load_backbone(BackboneParams())


@pytest.fixture(scope="module")
def clips() -> list[tuple[ClipSpec, np.ndarray]]:
    """24 clips [F, 64, 64, 3], the even ones as the MP4 writer and reader give them back."""
    specs = make_specs(SyntheticParams(n_clips=24), seed=SEED)
    rendered = [render_clip(spec) for spec in specs]
    for index, decoded in zip(range(0, 24, 2), through_mp4(rendered[::2], 8.0), strict=True):
        rendered[index] = decoded
    return list(zip(specs, rendered, strict=True))


def pictures(frames: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(frame) for frame in frames]


def unit(vectors: torch.Tensor) -> torch.Tensor:
    return F.normalize(vectors, dim=-1)


def test_shipped_toy_is_the_default_and_offers_the_interface(backbone: ToyBackbone) -> None:
    assert isinstance(backbone, ToyBackbone) and isinstance(backbone, Backbone)
    assert (backbone.name, backbone.dim, backbone.text_length) == ("toy", 128, 20)
    assert backbone.info.backbone == "toy" and backbone.info.dim == 128
    assert backbone.model_ids["recipe"] == RECIPE.digest()
    assert backbone.dtype == torch.float32 and backbone.device.type == "cpu"
    frame = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
    big = frame.resize((96, 96))  # other sizes are resized
    image_embeds = backbone.encode_images([frame, big])
    assert image_embeds.shape == (2, 128) and image_embeds.dtype == torch.float32
    captions = ["a blue square moves up", "", "word " * 40]  # any text: padded or truncated
    encoding = backbone.encode_texts(captions)
    assert encoding.text_embed.shape == encoding.prior_embed.shape == (3, 128)
    assert encoding.hidden_states.shape == (3, 20, 128)
    for tensor in (image_embeds, *vars(encoding).values()):
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all()
    decoded = backbone.decode(image_embeds, size=48, steps=1, guidance=0.0, seed=3)
    assert [image.size for image in decoded] == [(48, 48)] * 2
    again = backbone.decode(image_embeds, size=48, steps=9, guidance=4.0, seed=0)
    assert all(
        np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(decoded, again, strict=True)
    )


def test_decoder_redraws_held_out_frames(backbone: ToyBackbone, clips: list) -> None:
    """Bar: PSNR >= 25 dB, centroid within 3 px in >= 90% of frames. Shipped: about 25.6 dB
    and 99%; a decoder that loses the position draws at the centre: about 40%."""
    scores, errors = [], []
    for spec, frames in clips:
        chosen = frames[[0, 8, 16, 23]]  # [4, 64, 64, 3]
        embeds = backbone.encode_images(pictures(chosen))
        drawn = backbone.decode(embeds, size=64, steps=1, guidance=0.0, seed=0)
        for index, truth, picture in zip([0, 8, 16, 23], chosen, drawn, strict=True):
            picture = np.asarray(picture)
            scores.append(psnr(picture, truth))
            centre_x, centre_y, _, _ = _pose(spec, index / (spec.n_frames - 1))
            found = centroid(object_mask(picture, spec.background, spec.color))
            true_centre = np.array([centre_x, centre_y]) * spec.size
            errors.append(np.inf if found is None else np.hypot(*(np.array(found) - true_centre)))
    assert np.mean(scores) >= 25.0
    assert np.mean(np.array(errors) <= 3.0) >= 0.9


def test_embedding_follows_translation(backbone: ToyBackbone, clips: list) -> None:
    """Bar: first vs last frame of translating clips <= 0.9, frames 3 apart (8 fps, about
    the gap between frames top_diff keeps) >= 0.95. Shipped: about 0.74 and 0.98."""
    first_last, adjacent = [], []
    for spec, frames in clips:
        if spec.motion not in TRANSLATIONS:
            continue
        embeds = unit(backbone.encode_images(pictures(frames[::3])))  # [8, D]
        first_last.append(float(embeds[0] @ embeds[-1]))
        adjacent.append(float((embeds[:-1] * embeds[1:]).sum(-1).mean()))
    assert len(first_last) >= 5
    assert np.mean(first_last) <= 0.9
    assert np.mean(adjacent) >= 0.95


def test_towers_do_not_collapse_and_share_one_space(backbone: ToyBackbone, clips: list) -> None:
    """Frames of different clips and different captions are far apart (a collapsed tower
    gives cosines near 1), and each caption's text embedding is nearest its own clip's mean
    frame among the 24 clips (CLIP's retrieval). Shipped: 0.34, 0.03 and 23/24."""
    frame_embeds = unit(
        torch.stack([backbone.encode_images(pictures(frames[::6])) for _, frames in clips])
    )  # [24, 4, D]
    firsts = frame_embeds[:, 0]
    off_diagonal = ~torch.eye(len(clips), dtype=torch.bool)
    assert (firsts @ firsts.T)[off_diagonal].mean() < 0.4
    text_embeds = unit(backbone.encode_texts([spec.caption() for spec, _ in clips]).text_embed)
    assert (text_embeds @ text_embeds.T)[off_diagonal].mean() < 0.5
    clip_embeds = unit(frame_embeds.mean(dim=1))  # [24, D]
    retrieved = (text_embeds @ clip_embeds.T).argmax(dim=1)
    assert (retrieved == torch.arange(len(clips))).float().mean() >= 0.9


def test_prior_follows_the_caption(backbone: ToyBackbone, clips: list) -> None:
    """Bar: the prior ranks its clip's first frame in the top 20% (median) and its decoded
    picture has the caption's colours for >= 80% of captions. Shipped: rank 0 (first),
    colours 24/24. A prior that ignores the caption ranks at about 50%."""
    encoding = backbone.encode_texts([spec.caption() for spec, _ in clips])
    firsts = unit(backbone.encode_images([Image.fromarray(frames[0]) for _, frames in clips]))
    scores = unit(encoding.prior_embed) @ firsts.T  # [24, 24]
    ranks = (scores > scores.diag()[:, None]).float().mean(dim=1)
    assert ranks.median() <= 0.2
    drawn = backbone.decode(encoding.prior_embed, size=64, steps=1, guidance=0.0, seed=0)
    right = [
        described_colors(np.asarray(picture)) == (spec.background, spec.color)
        for (spec, _), picture in zip(clips, drawn, strict=True)
    ]
    assert np.mean(right) >= 0.8


def test_prior_draws_what_each_word_says(backbone: ToyBackbone) -> None:
    """Change one word of a caption and the prior's picture changes that, and only that."""
    template = "a large {color} circle moves slowly from left to right on a {background} background"
    cases = [("red", "gray"), ("blue", "gray"), ("red", "yellow"), ("white", "black")]
    encoding = backbone.encode_texts([template.format(color=c, background=b) for c, b in cases])
    drawn = backbone.decode(encoding.prior_embed, size=64, steps=1, guidance=0.0, seed=0)
    assert [described_colors(np.asarray(picture)) for picture in drawn] == [
        (background, color) for color, background in cases
    ]
    left = backbone.encode_texts(
        ["a small green square moves quickly from right to left on a white background"]
    )
    right = backbone.encode_texts(
        ["a small green square moves quickly from left to right on a white background"]
    )
    starts = backbone.decode(
        torch.cat([left.prior_embed, right.prior_embed]), size=64, steps=1, guidance=0, seed=0
    )
    (left_x, _), (right_x, _) = (
        centroid(object_mask(np.asarray(picture), "white", "green")) for picture in starts
    )
    assert left_x - right_x > 16  # moving left starts on the right (x 0.75 vs 0.25 of 64 px)


def test_text_knows_the_motion(backbone: ToyBackbone) -> None:
    """Captions that differ only in their motion words get different hidden states, and
    the prior, which maps a caption to its clip's first frame, starts each translation
    where it begins: the motion words reach the hidden states the splitter reads."""
    subject, background = "a large orange square", "on a purple background"
    motions = {
        "moves_right": "moves quickly from left to right",
        "moves_left": "moves quickly from right to left",
        "moves_up": "moves quickly from bottom to top",
        "moves_down": "moves quickly from top to bottom",
        "grows": "grows quickly",
        "shrinks": "shrinks quickly",
    }
    captions = [f"{subject} {words} {background}" for words in motions.values()]
    encoding = backbone.encode_texts(captions)
    pooled = unit(encoding.hidden_states.mean(dim=1))  # [6, D]
    off_diagonal = ~torch.eye(len(captions), dtype=torch.bool)
    assert (pooled @ pooled.T)[off_diagonal].max() < 0.99
    firsts = [
        render_clip(
            ClipSpec(
                "square", "orange", "purple", motion, "quickly", "large", 0.0, 0.3, 24, 64, 8.0
            )
        )[0]
        for motion in list(motions)[:4]
    ]
    first_embeds = unit(backbone.encode_images(pictures(np.stack(firsts))))  # [4, D]
    nearest = (unit(encoding.prior_embed[:4]) @ first_embeds.T).argmax(dim=1)
    assert torch.equal(nearest, torch.arange(4))


def test_no_parameter_maps_text_to_a_later_frame(backbone: ToyBackbone, clips: list) -> None:
    """The text tower has only CLIP's parts and unCLIP's prior (no last-frame head), and
    the prior lands nearer a translating clip's first frame than its last."""
    assert {name for name, _ in backbone.model.text.named_children()} == {
        "tokens", "layers", "norm", "projection", "prior"
    }  # fmt: skip
    assert {name for name, _ in backbone.model.text.named_parameters(recurse=False)} == {
        "positions"
    }
    moving = [(spec, frames) for spec, frames in clips if spec.motion in TRANSLATIONS]
    prior = unit(backbone.encode_texts([spec.caption() for spec, _ in moving]).prior_embed)
    ends = unit(
        torch.stack([backbone.encode_images(pictures(frames[[0, -1]])) for _, frames in moving])
    )  # [M, 2, D]
    first_cos, last_cos = (prior * ends[:, 0]).sum(-1), (prior * ends[:, 1]).sum(-1)
    assert len(moving) >= 5 and (first_cos > last_cos).float().mean() >= 0.8


@pytest.mark.parametrize("download_seed", [0, 7])
def test_corpus_has_no_caption_the_pipeline_holds_out(download_seed: int) -> None:
    """The toy corpus and the synthetic source's val and test splits share no caption, at
    the default size and at the benchmark's sizes; without the caption partition the
    same corpus seed would share some (so this checks the partition, not luck)."""
    corpus = {spec.caption() for spec in corpus_specs(RECIPE)}
    assert len(corpus_specs(RECIPE)) == RECIPE.n_clips
    assert all(caption_side(caption) == BACKBONE for caption in corpus)
    unfiltered = make_specs(SyntheticParams(n_clips=RECIPE.n_clips), RECIPE.corpus_seed)
    for n_clips in (48, 300, 1600):
        params = DownloadParams(seed=download_seed, synthetic=SyntheticParams(n_clips=n_clips))
        specs = make_specs(params.synthetic, download_seed)
        clip_ids = [f"syn{index:04d}-{spec.digest()}" for index, spec in enumerate(specs)]
        splits = synthetic_splits(clip_ids, specs, params.split, download_seed)
        held_out = {
            spec.caption()
            for clip_id, spec in zip(clip_ids, specs, strict=True)
            if splits[clip_id] != "train"
        }
        assert len(held_out) >= 0.2 * n_clips  # val and test: about 30% of the clips
        assert not held_out & corpus
        if n_clips == 1600:
            assert held_out & {spec.caption() for spec in unfiltered}


def shapes_named(backbone: ToyBackbone, clips: list) -> tuple[float, float]:
    """(decoded, true): the share of frames 0, 8, 16 and 23 of each clip whose decoded true
    embedding, and whose true frame, the template matcher names as the clip's shape."""
    named, truth_named = [], []
    for spec, frames in clips:
        chosen = frames[[0, 8, 16, 23]]
        drawn = backbone.decode(
            backbone.encode_images(pictures(chosen)), size=64, steps=1, guidance=0.0, seed=0
        )
        for truth, picture in zip(chosen, drawn, strict=True):
            for found, out in ((np.asarray(picture), named), (truth, truth_named)):
                match = match_shape(object_mask(found, spec.background, spec.color))
                out.append(match is not None and match[0] == spec.shape)
    return float(np.mean(named)), float(np.mean(truth_named))


def test_shape_probe_names_true_frames(backbone: ToyBackbone, clips: list) -> None:
    """The template matcher names the shape of nearly every true frame, MP4 round trips
    included (98%), so the bar below measures the decoder, not the probe."""
    _, truth_named = shapes_named(backbone, clips)
    assert truth_named >= 0.95


@pytest.mark.xfail(
    strict=True,
    reason="issue 20's shape bar is not met: the shipped decoder can draw squares and "
    "triangles, but the image tower does not encode which shape it saw reliably (40% here, "
    "51% on benchmarks/toy_backbone.py)",
)
def test_decoder_draws_the_three_shapes(backbone: ToyBackbone, clips: list) -> None:
    """Bar: the template matcher names the right shape in >= 90% of the decoded pictures
    of held-out frames (a decoder that draws round blobs scores the circles' share, 50%)."""
    named, _ = shapes_named(backbone, clips)
    assert named >= 0.9


def test_shape_probe_reads_the_shape_and_its_turn() -> None:
    """The template matcher names each shape at any size and turn, recovers the turn of
    squares and triangles to a few degrees, and calls a disc a circle whatever the
    caption said: a blob is not a square."""
    errors = []
    for shape, angle, scale in [
        ("square", 0.3, "large"), ("square", 1.2, "small"),
        ("triangle", 0.5, "large"), ("triangle", 2.0, "small"), ("circle", 0.0, "large"),
    ]:  # fmt: skip
        spec = ClipSpec(shape, "red", "gray", "rotates", "slowly", scale, 0.05, angle, 24, 64, 8.0)
        found = match_shape(object_mask(render_clip(spec)[0], "gray", "red"))
        assert found is not None and found[0] == shape
        if shape != "circle":
            period = 2 * np.pi / SYMMETRY[shape]
            error = (found[1] - angle) % period
            errors.append(min(error, period - error))
    assert max(errors) < np.radians(8)
    disc = ClipSpec("circle", "red", "gray", "grows", "slowly", "large", 0.0, 0.0, 24, 64, 8.0)
    assert match_shape(object_mask(render_clip(disc)[0], "gray", "red"))[0] == "circle"
    assert match_shape(np.zeros((64, 64), bool)) is None


def test_small_builds_are_identical_and_load_like_the_shipped_file(tmp_path: Path) -> None:
    first = build_weights(TINY, tmp_path / "first.safetensors", progress=False)
    second = build_weights(TINY, tmp_path / "second.safetensors", progress=False)
    assert first.read_bytes() == second.read_bytes()
    loaded = load_toy(first, recipe=TINY)  # the path load_backbone takes for the shipped file
    assert loaded.model_ids == {"recipe": TINY.digest(), "weights": loaded.model_ids["weights"]}
    fresh = train(TINY, progress=False)
    frame = [Image.fromarray(np.full((64, 64, 3), 90, np.uint8))]
    with torch.inference_mode():
        expected = fresh.encoder(loaded.preprocess(frame))
    assert torch.equal(loaded.encode_images(frame), expected)


def test_weights_of_another_recipe_are_refused(tmp_path: Path) -> None:
    shipped = toy_package.WEIGHTS
    stale = tmp_path / "stale.safetensors"
    record = {"format": "nextframe-toy", "recipe_digest": "0" * 16}
    save_file(load_file(str(shipped)), str(stale), metadata={"nextframe": json.dumps(record)})
    with pytest.raises(UserError, match="nextframe backbone build toy"):
        load_toy(stale)
    with pytest.raises(UserError, match="nextframe backbone build toy"):
        load_toy(tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="nextframe backbone build toy"):
        load_toy(shipped, recipe=TINY)  # the shipped file is not TINY's


def test_build_command_writes_and_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toy_package, "RECIPE", TINY)
    out = tmp_path / "toy.safetensors"
    runner = CliRunner()
    result = runner.invoke(app, ["backbone", "build", "toy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_toy(out, recipe=TINY).model_ids["recipe"] == TINY.digest()
    result = runner.invoke(app, ["backbone", "build", "toy", "--out", str(out), "--check"])
    assert result.exit_code == 0, result.output
    assert "byte-identical" in result.output
    data = bytearray(out.read_bytes())
    data[-1] ^= 1
    out.write_bytes(bytes(data))
    result = runner.invoke(app, ["backbone", "build", "toy", "--out", str(out), "--check"])
    assert result.exit_code == 2 and "differ" in result.output
    result = runner.invoke(app, ["backbone", "build", "tiny"])
    assert result.exit_code == 2 and "toy" in result.output
