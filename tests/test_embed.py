"""The embed stage on a few PNGs: tables, order, metadata, resume, atomicity, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from stage_scripts import load_stage
from torch.nn import functional as F
from typer.testing import CliRunner

from nextframe.backbones import Backbone, kandinsky_fixture, load_backbone
from nextframe.backbones.unclip import UnclipBackbone
from nextframe.config import BackboneParams, Params, SyntheticParams
from nextframe.data.synthetic import make_specs, render_clip
from nextframe.errors import UserError
from nextframe.pipeline import embed as embed_module
from nextframe.pipeline.embed import IMAGES_TABLE, TEXTS_TABLE, prefetched
from nextframe.store import (
    FRAMES_SCHEMA,
    MANIFEST_SCHEMA,
    TextEmbeddings,
    read_frame_index,
    read_image_embeddings,
    read_manifest,
    read_text_embeddings,
    write_dataframe,
)

# 12 frames in batches of 5: batches cross clip boundaries and the last one is short.
# The kandinsky22 code path (on its test fixture): it has prior settings that matter; the
# stage CLI test below runs the default (toy) backbone.
PARAMS = kandinsky_fixture.backbone_params(device="cpu", batch_size=5, prior_steps=2)
CLIPS = {"clip_b": 5, "clip_a": 4, "clip_c": 3}  # clip_id -> frames (unsorted on purpose)
CAPTIONS = {
    "clip_a": "a red circle moves from left to right on a gray background",
    "clip_b": "a blue square grows on a black background",
    "clip_c": "a green triangle rotates clockwise",
    "clip_d": "a yellow star shrinks",
}


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return load_backbone(PARAMS)


def frame_pixels(clip_index: int, k: int) -> np.ndarray:
    """[64, 64, 3] a square that moves with k, in colours that change with the clip."""
    pixels = np.empty((64, 64, 3), np.uint8)
    pixels[:] = (40 * clip_index, 128, 255 - 40 * clip_index)
    left = 6 + 10 * k
    pixels[20:40, left : left + 16] = (255, 60 * k % 256, 0)
    return pixels


def write_frames(root: Path, clips: dict[str, int]) -> Path:
    """PNGs under root/frames/<clip_id>/<k>.png and their frames.parquet (rows unsorted)."""
    rows = []
    for clip_index, (clip_id, count) in enumerate(clips.items()):
        for k in reversed(range(count)):
            path = Path(clip_id) / f"{k}.png"
            (root / "frames" / clip_id).mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame_pixels(clip_index, k)).save(root / "frames" / path)
            rows.append(
                {
                    "clip_id": clip_id,
                    "k": k,
                    "frame_index": 2 * k,
                    "t_seconds": k / 4,
                    "score": float(k),
                    "path": str(path),
                }
            )
    frames_parquet = root / "frames" / "frames.parquet"
    write_dataframe(pd.DataFrame(rows, columns=FRAMES_SCHEMA.names), FRAMES_SCHEMA, frames_parquet)
    return frames_parquet


def write_manifest(root: Path, captions: dict[str, str]) -> Path:
    rows = [
        {
            "clip_id": clip_id,
            "source": "synthetic",
            "caption": caption,
            "label": "",
            "split": "train",
            "path": f"{clip_id}.mp4",
            "url": "",
            "status": "ok",
        }
        for clip_id, caption in captions.items()
    ]
    manifest = root / "raw" / "manifest.parquet"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    write_dataframe(pd.DataFrame(rows, columns=MANIFEST_SCHEMA.names), MANIFEST_SCHEMA, manifest)
    return manifest


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(manifest, frames.parquet, out_dir); clip_d is in the manifest but has no frames."""
    return write_manifest(tmp_path, CAPTIONS), write_frames(tmp_path, CLIPS), tmp_path / "emb"


def embed(
    manifest: Path, frames: Path, out_dir: Path, params: BackboneParams, **kwargs
) -> embed_module.EmbedSummary:
    return embed_module.run(manifest, frames, out_dir, Params(backbone=params), **kwargs)


def run(inputs: tuple[Path, Path, Path], **kwargs) -> embed_module.EmbedSummary:
    return embed(*inputs, PARAMS, progress=False, **kwargs)


def read_texts(out_dir: Path, manifest: Path) -> TextEmbeddings:
    """texts.parquet seen through the manifest's clips, every vector read."""
    return read_text_embeddings(out_dir / TEXTS_TABLE, read_manifest(manifest))


def test_tables_match_direct_encoding_in_sorted_order(
    inputs: tuple[Path, Path, Path], backbone: Backbone
) -> None:
    _, frames_parquet, out_dir = inputs
    summary = run(inputs)
    assert (summary.frames, summary.clips, summary.dim) == (12, 3, backbone.dim)
    assert (summary.frames_encoded, summary.texts_encoded) == (12, 3)
    assert set(summary.metrics()) >= {"frames", "clips", "seconds", "frames_per_s", "texts_per_s"}
    assert "12 frames of 3 clips" in summary.describe()

    raw = pq.read_table(out_dir / IMAGES_TABLE)  # the file itself is sorted, not only the reader
    expected_order = [(c, k) for c in sorted(CLIPS) for k in range(CLIPS[c])]
    assert list(zip(raw["clip_id"].to_pylist(), raw["k"].to_pylist(), strict=True)) == (
        expected_order
    )

    images = read_image_embeddings(out_dir / IMAGES_TABLE)
    assert images.info.backbone == "kandinsky22" and images.info.dim == backbone.dim
    assert images.info.model_ids == backbone.model_ids
    assert images.embeddings.shape == (12, backbone.dim)
    assert torch.equal(images.t_seconds, torch.tensor([k / 4 for _, k in expected_order]).double())
    pngs = [Image.open(frames_parquet.parent / c / f"{k}.png") for c, k in expected_order]
    torch.testing.assert_close(images.embeddings, backbone.encode_images(pngs))

    texts = read_texts(out_dir, inputs[0])
    assert texts.clip_ids == sorted(CLIPS)
    assert texts.captions == [CAPTIONS[c] for c in sorted(CLIPS)]
    assert texts.info == images.info
    reference = backbone.encode_texts(texts.captions)
    torch.testing.assert_close(texts.prior_embed[:], reference.prior_embed)
    torch.testing.assert_close(texts.text_embed[:], reference.text_embed)
    assert texts.hidden_states.dtype == torch.float16
    assert texts.hidden_states.shape == (3, backbone.text_length, backbone.dim)
    torch.testing.assert_close(
        texts.hidden_states[:].float(), reference.hidden_states, rtol=1e-2, atol=1e-2
    )


def test_without_prefetch_gives_the_same_tables(inputs: tuple[Path, Path, Path]) -> None:
    run(inputs)
    first = read_image_embeddings(inputs[2] / IMAGES_TABLE).embeddings
    (inputs[2] / IMAGES_TABLE).unlink()
    run(inputs, prefetch=0)
    assert torch.equal(read_image_embeddings(inputs[2] / IMAGES_TABLE).embeddings, first)


def test_prefetched_keeps_order_and_propagates_errors() -> None:
    assert list(prefetched(range(7), lambda item: item * item, depth=3)) == [
        item * item for item in range(7)
    ]

    def load(item: int) -> int:
        if item == 4:
            raise ValueError("broken frame")
        return item

    with pytest.raises(ValueError, match="broken frame"):
        list(prefetched(range(7), load, depth=2))


def count_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count rows the backbone encodes (images and captions) from now on."""
    counts = {"frames": 0, "captions": 0}
    encode_pixels, encode_texts = UnclipBackbone.encode_pixels, UnclipBackbone.encode_texts

    def pixels_spy(self, pixels):
        counts["frames"] += len(pixels)
        return encode_pixels(self, pixels)

    def texts_spy(self, captions):
        counts["captions"] += len(captions)
        return encode_texts(self, captions)

    monkeypatch.setattr(UnclipBackbone, "encode_pixels", pixels_spy)
    monkeypatch.setattr(UnclipBackbone, "encode_texts", texts_spy)
    return counts


def test_rerun_reuses_everything_and_rewrites_nothing(
    inputs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = inputs[2]
    run(inputs)
    stamps = {name: (out_dir / name).stat().st_mtime_ns for name in (IMAGES_TABLE, TEXTS_TABLE)}
    counts = count_calls(monkeypatch)
    summary = run(inputs)
    assert counts == {"frames": 0, "captions": 0}
    assert (summary.frames_encoded, summary.texts_encoded) == (0, 0)
    assert {name: (out_dir / name).stat().st_mtime_ns for name in stamps} == stamps


def test_tables_of_the_older_layout_are_rebuilt_or_rewritten(
    inputs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-row-per-clip texts table is re-encoded; an images table written with pyarrow's
    defaults (compressed, not readable in place) is rewritten from its own rows."""
    manifest, _, out_dir = inputs
    run(inputs)
    images = pq.read_table(out_dir / IMAGES_TABLE)
    pq.write_table(images, out_dir / IMAGES_TABLE)  # snappy, dictionary, 1 MB pages
    texts = pq.read_table(out_dir / TEXTS_TABLE)
    by_caption = {c: row for row, c in enumerate(texts.column("caption").to_pylist())}
    per_clip = texts.take([by_caption[CAPTIONS[c]] for c in sorted(CLIPS)])
    per_clip = per_clip.set_column(0, "clip_id", pa.array(sorted(CLIPS)))
    pq.write_table(per_clip, out_dir / TEXTS_TABLE)
    with pytest.raises(ValueError, match="one row per clip"):
        read_texts(out_dir, manifest)
    counts = count_calls(monkeypatch)
    run(inputs)
    assert counts == {"frames": 0, "captions": 3}
    assert read_texts(out_dir, manifest).clip_ids == sorted(CLIPS)
    assert read_frame_index(out_dir / IMAGES_TABLE).clip_ids == sorted(CLIPS)  # in place


def test_rerun_encodes_only_what_changed(
    inputs: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _, out_dir = inputs
    run(inputs)
    # clip_d gains frames, clip_c loses its frames, clip_b's first PNG and clip_a's caption change.
    changed = {"clip_b": 5, "clip_a": 4, "clip_d": 2}
    frames_parquet = write_frames(tmp_path, changed)
    (tmp_path / "frames" / "clip_c" / "0.png").unlink()
    Image.fromarray(frame_pixels(5, 3)).save(tmp_path / "frames" / "clip_b" / "0.png")
    write_manifest(tmp_path, {**CAPTIONS, "clip_a": "a red circle shrinks"})
    counts = count_calls(monkeypatch)
    summary = embed(manifest, frames_parquet, out_dir, PARAMS, progress=False)
    assert counts == {"frames": 5 + 2, "captions": 2}  # clip_b, clip_d; captions of a and d
    assert (summary.frames_encoded, summary.texts_encoded) == (7, 2)

    resumed_images = read_image_embeddings(out_dir / IMAGES_TABLE)
    resumed_texts = read_texts(out_dir, inputs[0])
    fresh = embed(manifest, frames_parquet, tmp_path / "fresh", PARAMS, progress=False)
    assert fresh.frames_encoded == 11
    fresh_images = read_image_embeddings(tmp_path / "fresh" / IMAGES_TABLE)
    fresh_texts = read_texts(tmp_path / "fresh", manifest)
    assert resumed_images.clip_ids == fresh_images.clip_ids
    torch.testing.assert_close(resumed_images.embeddings, fresh_images.embeddings)
    assert resumed_texts.clip_ids == ["clip_a", "clip_b", "clip_d"]
    assert resumed_texts.captions == fresh_texts.captions
    torch.testing.assert_close(resumed_texts.prior_embed[:], fresh_texts.prior_embed[:])


def test_other_prior_settings_reencode_captions_only(
    inputs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(inputs)
    counts = count_calls(monkeypatch)
    embed(*inputs, PARAMS.model_copy(update={"prior_steps": 3}), progress=False)
    assert counts == {"frames": 0, "captions": 3}


def test_interrupted_run_leaves_no_table(
    inputs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = inputs[2]
    encode_pixels = UnclipBackbone.encode_pixels
    calls = []

    def fail_second_batch(self, pixels):
        calls.append(len(pixels))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return encode_pixels(self, pixels)

    monkeypatch.setattr(UnclipBackbone, "encode_pixels", fail_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run(inputs)
    assert calls == [5, 5]
    assert list(out_dir.iterdir()) == []


def test_missing_manifest_row_is_a_user_error(
    inputs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    write_manifest(tmp_path, {"clip_a": "only a"})
    with pytest.raises(UserError, match=r"no manifest row.*'clip_b'"):
        run(inputs)
    assert not inputs[2].exists()


def corrupt(path: Path, how: str) -> None:
    if how == "truncated":  # a valid header, then the data stops
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"not a png at all" * 8)


def test_missing_frame_skips_its_clip_and_is_reported(inputs: tuple[Path, Path, Path]) -> None:
    _, frames_parquet, out_dir = inputs
    (frames_parquet.parent / "clip_c" / "2.png").unlink()
    summary = run(inputs)
    assert [(s.clip_id, s.reason) for s in summary.skipped] == [("clip_c", "missing_frame")]
    assert summary.metrics()["skipped.missing_frame"] == 1
    assert summary.metrics()["skipped.unreadable_frame"] == 0
    assert (summary.frames, summary.clips, summary.frames_encoded) == (9, 2, 9)
    assert "missing_frame" in summary.describe()
    assert str(frames_parquet.parent / "clip_c" / "2.png") in summary.describe()
    assert read_image_embeddings(out_dir / IMAGES_TABLE).clip_ids == ["clip_a"] * 4 + ["clip_b"] * 5
    assert read_texts(out_dir, inputs[0]).clip_ids == ["clip_a", "clip_b"]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_unreadable_frames_drop_their_whole_clip(
    inputs: tuple[Path, Path, Path], backbone: Backbone, monkeypatch, prefetch: int
) -> None:
    """Batches of 5 over a0-a3 b0-b4 c0-c2: clip_b's b0 is encoded (batch 1) before its
    garbage b3 is found (batch 2); clip_c's c0 before its truncated c1 (batch 3)."""
    _, frames_parquet, out_dir = inputs
    corrupt(frames_parquet.parent / "clip_b" / "3.png", "garbage")
    corrupt(frames_parquet.parent / "clip_c" / "1.png", "truncated")
    counts = count_calls(monkeypatch)
    summary = run(inputs, prefetch=prefetch)
    assert [(s.clip_id, s.reason) for s in summary.skipped] == [
        ("clip_b", "unreadable_frame"),
        ("clip_c", "unreadable_frame"),
    ]
    assert [s.path.name for s in summary.skipped] == ["3.png", "1.png"]
    assert summary.metrics()["skipped.unreadable_frame"] == 2
    assert (summary.frames, summary.clips, summary.frames_encoded) == (4, 1, 4)
    assert str(frames_parquet.parent / "clip_b" / "3.png") in summary.describe()
    assert counts["captions"] == 1

    images = read_image_embeddings(out_dir / IMAGES_TABLE)
    assert images.clip_ids == ["clip_a"] * 4 and images.k.tolist() == [0, 1, 2, 3]
    pngs = [Image.open(frames_parquet.parent / "clip_a" / f"{k}.png") for k in range(4)]
    torch.testing.assert_close(images.embeddings, backbone.encode_images(pngs))
    texts = read_texts(out_dir, inputs[0])
    assert texts.clip_ids == ["clip_a"] and texts.captions == [CAPTIONS["clip_a"]]

    # A rerun remembers the unreadable clips: it reads and rewrites nothing, reports them again.
    stamps = {name: (out_dir / name).stat().st_mtime_ns for name in (IMAGES_TABLE, TEXTS_TABLE)}
    counts.update(frames=0, captions=0)
    again = run(inputs, prefetch=prefetch)
    assert counts == {"frames": 0, "captions": 0}
    assert again.skipped == summary.skipped and again.clips == 1
    assert {name: (out_dir / name).stat().st_mtime_ns for name in stamps} == stamps

    # Fixing a file brings its clip back, and only it is encoded.
    Image.fromarray(frame_pixels(1, 3)).save(frames_parquet.parent / "clip_b" / "3.png")
    fixed = run(inputs, prefetch=prefetch)
    assert (fixed.frames_encoded, fixed.texts_encoded) == (5, 1)
    assert [s.clip_id for s in fixed.skipped] == ["clip_c"]
    assert read_texts(out_dir, inputs[0]).clip_ids == ["clip_a", "clip_b"]


def test_no_clip_left_is_a_user_error(inputs: tuple[Path, Path, Path]) -> None:
    _, frames_parquet, out_dir = inputs
    (frames_parquet.parent / "clip_a" / "0.png").unlink()
    (frames_parquet.parent / "clip_b" / "4.png").unlink()
    corrupt(frames_parquet.parent / "clip_c" / "2.png", "garbage")
    with pytest.raises(UserError, match=r"no clip has all its frame files readable.*clip_a/0\.png"):
        run(inputs)
    assert not (out_dir / IMAGES_TABLE).exists()
    (frames_parquet.parent / "clip_c" / "0.png").unlink()
    with pytest.raises(UserError, match=r"skipped 3 clips \(missing_frame: 3\)"):
        run(inputs)


def test_batch_size_does_not_change_the_tables(inputs: tuple[Path, Path, Path]) -> None:
    """Batches of 3 vs 7 over the 12 frames (CPU, float32). Measured: every column but the
    image embeddings is bit-identical (captions are padded to a fixed length and each has
    its own prior generator), so those are compared exactly; the image embeddings differ
    only by float32 rounding of differently shaped matmuls (max 2.9e-6 on values up to 14),
    so they are compared to within 1e-6 of the largest value (about 5 float32 ulps)."""
    manifest, frames_parquet, out_dir = inputs
    tables = {}
    for batch_size in (3, 7):
        params = PARAMS.model_copy(update={"batch_size": batch_size})
        embed(manifest, frames_parquet, out_dir / str(batch_size), params, progress=False)
        tables[batch_size] = (
            read_image_embeddings(out_dir / str(batch_size) / IMAGES_TABLE),
            read_texts(out_dir / str(batch_size), manifest),
        )
    (images_3, texts_3), (images_7, texts_7) = tables[3], tables[7]
    assert images_3.clip_ids == images_7.clip_ids and torch.equal(images_3.k, images_7.k)
    assert torch.equal(images_3.t_seconds, images_7.t_seconds)
    # float32 rounding of batched matmuls: measured max |diff| 2.9e-6 on values up to 14.
    difference = (images_3.embeddings - images_7.embeddings).abs().max()
    assert difference <= 1e-6 * images_3.embeddings.abs().max()
    assert texts_3.clip_ids == texts_7.clip_ids and texts_3.captions == texts_7.captions
    for name in ("text_embed", "prior_embed", "hidden_states"):
        assert torch.equal(getattr(texts_3, name)[:], getattr(texts_7, name)[:]), name


def test_embeddings_round_trip_through_parquet_bit_exactly(
    inputs: tuple[Path, Path, Path], backbone: Backbone, monkeypatch
) -> None:
    """What the backbone returned is what the readers give back: float32 exactly,
    hidden_states exactly as their float16 cast."""
    returned: dict[str, list] = {"pixels": [], "texts": []}
    encode_pixels, encode_texts = UnclipBackbone.encode_pixels, UnclipBackbone.encode_texts

    def pixels_spy(self, pixels):
        returned["pixels"].append(encode_pixels(self, pixels))
        return returned["pixels"][-1]

    def texts_spy(self, captions):
        returned["texts"].append(encode_texts(self, captions))
        return returned["texts"][-1]

    monkeypatch.setattr(UnclipBackbone, "encode_pixels", pixels_spy)
    monkeypatch.setattr(UnclipBackbone, "encode_texts", texts_spy)
    run(inputs)
    images = read_image_embeddings(inputs[2] / IMAGES_TABLE)
    texts = read_texts(inputs[2], inputs[0])
    assert images.embeddings.dtype == torch.float32
    assert torch.equal(images.embeddings, torch.cat(returned["pixels"]))  # frames arrive sorted
    every_row = np.arange(len(texts.table))  # in caption_id order, the order encoded
    for name in ("text_embed", "prior_embed"):
        original = torch.cat([getattr(encoding, name) for encoding in returned["texts"]])
        assert getattr(texts, name).dtype == torch.float32
        assert torch.equal(texts.table.read(name, every_row), original), name
    hidden = torch.cat([encoding.hidden_states for encoding in returned["texts"]])
    assert texts.hidden_states.dtype == torch.float16
    assert torch.equal(texts.table.read("hidden_states", every_row), hidden.half())


def test_stage_cli(inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    stage = load_stage("embed")
    params_file = tmp_path / "params.yaml"
    params_file.write_text("backbone:\n  device: cpu\n  batch_size: 5\n  prior_steps: 2\n")
    arguments = [*map(str, inputs), "--params", str(params_file)]
    result = CliRunner().invoke(stage.app, arguments)
    assert result.exit_code == 0, result.output
    assert "12 frames of 3 clips" in result.output
    assert (inputs[2] / IMAGES_TABLE).exists() and (inputs[2] / TEXTS_TABLE).exists()

    params_file.write_text("backbone:\n  name: kandinsky23\n")
    result = CliRunner().invoke(stage.app, arguments)
    assert result.exit_code == 2
    assert "backbone.name" in result.output


def test_stored_priors_point_at_their_own_clips_first_frames(tmp_path: Path) -> None:
    """Guards what texts.parquet's prior_embed holds (DESIGN.md: the prior maps a caption
    to its first frame's embedding): through the stage with the default (toy) backbone on
    six synthetic clips, each caption's stored prior is nearest its own clip's first frame
    in images.parquet, and much nearer to it than the caption's text embedding is. Storing
    the text embedding, or another caption's prior, fails. Measured: about 0.9 vs 0.6."""
    captions, rows = {}, []
    for index, spec in enumerate(make_specs(SyntheticParams(n_clips=6), seed=777)):
        clip_id = f"clip_{index}"
        captions[clip_id] = spec.caption()
        (tmp_path / "frames" / clip_id).mkdir(parents=True)
        for k, pixels in enumerate(render_clip(spec)[::8]):  # frames 0, 8, 16
            Image.fromarray(pixels).save(tmp_path / "frames" / clip_id / f"{k}.png")
            rows.append((clip_id, k, 8 * k, k / 1.0, 0.0, f"{clip_id}/{k}.png"))
    frames_parquet = tmp_path / "frames" / "frames.parquet"
    write_dataframe(pd.DataFrame(rows, columns=FRAMES_SCHEMA.names), FRAMES_SCHEMA, frames_parquet)
    manifest = write_manifest(tmp_path, captions)
    out_dir = tmp_path / "emb"
    embed(manifest, frames_parquet, out_dir, BackboneParams(device="cpu"), progress=False)
    images = read_image_embeddings(out_dir / IMAGES_TABLE)
    texts = read_texts(out_dir, manifest)
    assert images.info.backbone == "toy" and texts.clip_ids == sorted(captions)
    slices = images.clip_slices()
    firsts = F.normalize(images.embeddings[[slices[c].start for c in texts.clip_ids]], dim=-1)
    prior = F.normalize(texts.prior_embed[:], dim=-1)  # [6, D]
    text = F.normalize(texts.text_embed[:], dim=-1)
    scores = prior @ firsts.T  # [caption, clip]
    assert torch.equal(scores.argmax(dim=1), torch.arange(6))
    assert (scores.diag() > (text * firsts).sum(dim=-1) + 0.15).all()
