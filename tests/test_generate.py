"""Rollouts with hand-made predictors, the decoders, and the generate + evaluate stages.

The stage tests build a small project (manifest, frames, embedding tables, models) with a
fake backbone whose image encoder is a fixed function of each picture's mean colour and
whose decoder paints that colour back, so decode -> re-encode round trips are checkable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from fixtures.project import (
    DIM,
    METHODS,
    PARAMS,
    TOKENS,
    FakeBackbone,
    build_project,
    evaluate,
    generate,
    solid,
)
from PIL import Image
from torch import Tensor

from nextframe import store
from nextframe.backbones.decoders import BackboneDecoder, RetrievalDecoder, decode_distinct
from nextframe.config import Params, ParamsError, parse_params
from nextframe.errors import UserError
from nextframe.methods.registry import load_class
from nextframe.metrics import HEADLINE_LIMIT
from nextframe.model.cases import clip_rises, held_out_clips
from nextframe.model.rollout import Conditioning, rollout
from nextframe.pipeline import evaluate as evaluate_stage
from nextframe.render import TITLE_HEIGHT, contact_sheet, read_strip


def rotation_matrix(a: Tensor, b: Tensor) -> Tensor:
    """DESIGN.md's explicit R taking a's direction to b's, float64 [D, D] (the reference)."""
    a, b = a.double(), b.double()
    n1 = a / a.norm()
    residual = b - (n1 @ b) * n1
    eye = torch.eye(len(a), dtype=torch.float64)
    if residual.norm() <= 1e-9 * b.norm():  # parallel: no rotation
        return eye
    n2 = residual / residual.norm()
    angle = torch.atan2(residual.norm() / b.norm(), (n1 @ b) / b.norm())
    return (
        eye
        + (torch.outer(n2, n1) - torch.outer(n1, n2)) * torch.sin(angle)
        + (torch.outer(n1, n1) + torch.outer(n2, n2)) * (torch.cos(angle) - 1)
    )


UNEVEN = torch.tensor([0.0, 0.1, 0.45, 0.7, 1.0])  # frame times over the span: not i / (n - 1)


def conditioning(
    batch: int, seed: int = 0, text_like_prior: bool = True, n_frames: int = 4
) -> Conditioning:
    generator = torch.Generator().manual_seed(seed)
    prior = torch.randn(batch, DIM, generator=generator)
    hidden = torch.randn(batch, TOKENS, DIM, generator=generator)
    hidden[:, 0] = prior  # token 0 points along p: it must end up along the last prediction
    return Conditioning(
        hidden_states=hidden,
        prior_embed=prior,
        text_embed=prior.clone()
        if text_like_prior
        else torch.randn(batch, DIM, generator=generator),
        start=prior.clone(),
        rises=UNEVEN[:n_frames].expand(batch, n_frames).clone(),
    )


@dataclass
class ScaleShift:
    """predict = 2 start + rise v: chain and step give different, hand-computable sequences."""

    shift: Tensor
    name: str = "scale_shift"

    def predict(self, hidden_states: Tensor, start: Tensor, rise: Tensor, text: Tensor) -> Tensor:
        return 2 * start + rise.unsqueeze(-1) * self.shift


@dataclass
class Recorder:
    """predict = start + rise v, remembering every call's inputs and output."""

    shift: Tensor
    name: str = "recorder"

    def __post_init__(self) -> None:
        self.calls: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    def predict(self, hidden_states: Tensor, start: Tensor, rise: Tensor, text: Tensor) -> Tensor:
        out = start + rise.unsqueeze(-1) * self.shift
        self.calls.append((hidden_states.clone(), start.clone(), rise.clone(), out.clone()))
        return out


def test_step_and_chain_give_the_hand_computed_sequences() -> None:
    cond = conditioning(3)
    shift = torch.linspace(-1, 1, DIM)
    step = rollout(ScaleShift(shift), cond, "step", blend_q=1.0)
    chain = rollout(ScaleShift(shift), cond, "chain", blend_q=1.0)
    assert step.shape == chain.shape == (3, 4, DIM)
    expected_chain = [cond.start]
    for index in range(1, 4):
        expected_step = 2 * cond.start + UNEVEN[index] * shift  # the true frame's time
        torch.testing.assert_close(step[:, index], expected_step)
        gap = UNEVEN[index] - UNEVEN[index - 1]  # from the previous frame's time to this one's
        expected_chain.append(2 * expected_chain[-1] + gap * shift)
    torch.testing.assert_close(chain, torch.stack(expected_chain, dim=1))
    torch.testing.assert_close(step[:, 0], cond.start)


@pytest.mark.parametrize("anchor", ["fixed", "moving"])
def test_chain_feeds_the_last_prediction_and_rotates_tokens_toward_it(anchor: str) -> None:
    cond = conditioning(2, seed=1, n_frames=5)
    recorder = Recorder(torch.randn(DIM, generator=torch.Generator().manual_seed(5)))
    rollout(recorder, cond, "chain", blend_q=1.0, anchor=anchor)
    assert len(recorder.calls) == 4  # one call per step, all clips together
    previous = cond.start
    composed = [torch.eye(DIM, dtype=torch.float64) for _ in range(2)]
    anchors = list(cond.prior_embed)
    for index, (hidden, start, rise, out) in enumerate(recorder.calls, start=1):
        assert hidden.shape == (2, TOKENS, DIM)
        torch.testing.assert_close(start, previous)  # fed its own last prediction
        torch.testing.assert_close(rise, cond.rises[:, index] - cond.rises[:, index - 1])
        for clip in range(2):
            # weight cos(p, t) = 1 here, so the blend is the full rotation
            step_rotation = rotation_matrix(anchors[clip], start[clip])
            if anchor == "fixed":
                matrix = rotation_matrix(cond.prior_embed[clip], start[clip])
            else:
                composed[clip] = step_rotation @ composed[clip]
                matrix = composed[clip]
                anchors[clip] = start[clip]
            expected = cond.hidden_states[clip].double() @ matrix.T  # R h for every token
            torch.testing.assert_close(hidden[clip].double(), expected, atol=1e-4, rtol=1e-4)
            cosine = torch.nn.functional.cosine_similarity(hidden[clip, 0], start[clip], dim=0)
            assert float(cosine) == pytest.approx(1.0, abs=1e-5)  # the p token now points at it
        previous = out


def test_moving_and_fixed_anchors_differ_and_zero_weight_keeps_tokens() -> None:
    cond = conditioning(2, seed=2)
    fixed, moving = Recorder(torch.randn(DIM)), Recorder(torch.randn(DIM))
    rollout(fixed, cond, "chain", 1.0, "fixed")
    rollout(moving, cond, "chain", 1.0, "moving")
    assert not torch.allclose(fixed.calls[-1][0][:, 1:], moving.calls[-1][0][:, 1:], atol=1e-3)
    unrelated = conditioning(2, seed=2, text_like_prior=False)
    orthogonal_text = unrelated.text_embed - (
        (unrelated.text_embed * unrelated.prior_embed).sum(-1, keepdim=True)
        / unrelated.prior_embed.norm(dim=-1, keepdim=True) ** 2
        * unrelated.prior_embed
    )
    unrelated = Conditioning(
        unrelated.hidden_states,
        unrelated.prior_embed,
        orthogonal_text,
        unrelated.start,
        unrelated.rises[:, :3],
    )
    recorder = Recorder(torch.randn(DIM))
    rollout(recorder, unrelated, "chain", 1.0, "fixed")
    for hidden, *_ in recorder.calls:  # cos(p, t) = 0: the tokens do not follow the start
        torch.testing.assert_close(hidden, unrelated.hidden_states)


def test_step_rollout_calls_once_per_step_with_growing_rise() -> None:
    cond = conditioning(3)
    recorder = Recorder(torch.ones(DIM))
    rollout(recorder, cond, "step", 1.0)
    assert [call[1].shape[0] for call in recorder.calls] == [3, 3, 3]
    for index, (_, start, rise, _) in enumerate(recorder.calls, start=1):
        torch.testing.assert_close(start, cond.start)
        torch.testing.assert_close(rise, cond.rises[:, index])


# ---------------------------------------------------------------------------- decoders


def test_retrieval_returns_the_frame_with_the_nearest_embedding(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(3)
    embeddings = torch.randn(12, DIM, generator=generator)
    clip_ids = [f"c{row // 4}" for row in range(12)]
    rows = []
    for row, clip_id in enumerate(clip_ids):
        path = Path(clip_id) / f"{row % 4}.png"
        (tmp_path / clip_id).mkdir(exist_ok=True)
        solid((row * 20, 255 - row * 20, 7)).save(tmp_path / path)
        rows.append({"clip_id": clip_id, "k": row % 4, "path": str(path)})
    images = store.ImageEmbeddings(
        clip_ids=clip_ids,
        k=torch.tensor([row % 4 for row in range(12)]),
        t_seconds=torch.zeros(12, dtype=torch.float64),
        embeddings=embeddings,
        info=store.EmbeddingInfo("fake", {}, DIM),
    )
    decoder = RetrievalDecoder.from_tables(
        images, pd.DataFrame(rows), tmp_path, ["c0", "c2"], size=8
    )
    targets = torch.tensor([5, 9, 0, 11])  # row 5 is in c1, not indexed
    queries = 3 * embeddings[targets] + 0.01 * torch.randn(4, DIM, generator=generator)
    nearest = decoder.nearest(queries)
    indexed_rows = [0, 1, 2, 3, 8, 9, 10, 11]
    scores = (
        torch.nn.functional.normalize(queries, dim=-1)
        @ torch.nn.functional.normalize(embeddings[indexed_rows], dim=-1).T
    )
    assert [indexed_rows[i] for i in nearest.tolist()] == [
        indexed_rows[i] for i in scores.argmax(1).tolist()
    ]
    assert [indexed_rows[i] for i in nearest.tolist()][1:] == [9, 0, 11]
    pictures = decoder.decode(queries)
    assert pictures.shape == (4, 8, 8, 3) and pictures.dtype == np.uint8
    assert tuple(pictures[1, 0, 0]) == (180, 75, 7)  # row 9's colour
    for query, row in enumerate(indexed_rows[i] for i in nearest.tolist()):
        # every query gets the picture of its own nearest frame, not another query's
        assert (pictures[query] == (row * 20, 255 - row * 20, 7)).all(), query
    with pytest.raises(UserError, match="training frames"):
        RetrievalDecoder.from_tables(images, pd.DataFrame(rows), tmp_path, ["nope"], size=8)


def test_contact_sheet_is_rows_of_methods_by_columns_of_frames() -> None:
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    frames[1] = 255
    sheet = contact_sheet([("truth", frames), ("splitter.chain", frames[:2])], label_width=20)
    assert sheet.size == (20 + 3 * 8, 2 * 8)
    assert sheet.getpixel((20 + 8 + 1, 1)) == (255, 255, 255)
    assert sheet.getpixel((20 + 1, 8 + 1)) == (0, 0, 0)


# ---------------------------------------------------------------------------- stages


def test_generate_then_evaluate_write_every_output(
    tmp_path: Path, fake_backbone: FakeBackbone
) -> None:
    paths = build_project(tmp_path, fake_backbone, {"train": 6, "val": 1, "test": 4})
    params = parse_params(PARAMS)
    out = tmp_path / "generated"
    summary = generate(paths, out, params)
    assert (summary.clips, summary.prompts) == (3, 1)  # max_clips of the 4 test clips

    predictions = pq.read_table(out / "predictions.parquet")
    assert predictions.schema.names == store.predictions_schema(fake_backbone.info).names
    assert store.EmbeddingInfo.from_schema(predictions.schema) == fake_backbone.info
    assert predictions.num_rows == 4 * 6 * 2 * 5  # (clips + prompt) x methods x rollouts x steps
    frame = predictions.drop_columns(["embedding"]).to_pandas()
    vectors = store.arrow_to_vectors(predictions.column("embedding"))
    texts = store.read_text_embeddings(
        paths["embeddings"] / "texts.parquet", store.read_manifest(paths["manifest"])
    )
    prior = texts.prior_embed[texts.index()["clip08"]]
    linear = torch.from_numpy(
        vectors[
            (
                (frame.clip_id == "clip08")
                & (frame.method == "linear")
                & (frame.rollout == "chain")
            ).to_numpy()
        ]
    )
    torch.testing.assert_close(linear[0], prior)  # step 0 is the start: the prior embedding
    # the saved linear baseline moves by m per unit rise, and one frame of a 5-frame clip is 1/4
    m = load_class("linear").load(paths["models"] / "linear").motion
    torch.testing.assert_close(linear[2], prior + 2 * m / 4, atol=1e-5, rtol=1e-5)

    clips = json.loads((out / "clips.json").read_text())["clips"]
    assert [c["split"] for c in clips] == ["test"] * 3 + ["prompt"]
    assert all(c["decoded"] and c["video"] for c in clips)
    videos = sorted(p.relative_to(out / "videos").as_posix() for p in (out / "videos").rglob("*.*"))
    # clips x methods x rollouts x decoders x formats, and the decoded truth of each test clip
    assert len(videos) == summary.videos == 4 * 6 * 2 * 2 * 2 + 3 * 2 * 2
    assert "clip08/splitter_chain_backbone.mp4" in videos
    assert "prompt-000/slerp_step_retrieval.gif" in videos
    assert (
        "clip08/truth_step_backbone.gif" in videos
        and "prompt-000/truth_step_backbone.gif" not in videos
    )
    strip = read_strip(out / "frames" / "clip08" / "nearest_clip_step_backbone.png")
    assert strip.shape == (5, 16, 16, 3)
    sheet = Image.open(out / "contact_sheets" / "clip08_retrieval.png")
    # a title line, then truth, decoded truth and 6 methods x 2 rollouts in 16 px rows
    assert sheet.size[1] == TITLE_HEIGHT + (2 + 12) * 16
    prompt_sheet = Image.open(out / "contact_sheets" / "prompt-000_backbone.png")
    assert prompt_sheet.size[1] == TITLE_HEIGHT + 12 * 16

    decoded = pq.read_table(out / "decoded.parquet")
    assert decoded.num_rows == 4 * 12 * 2 * 5 + 3 * 2 * 5  # methods' rows and the truth's
    metrics_dir = tmp_path / "metrics"
    result = evaluate(paths, out, metrics_dir, params)
    written = json.loads((metrics_dir / "evaluate_full.json").read_text())
    assert written == pytest.approx(result.values)
    headline = json.loads((metrics_dir / "evaluate.json").read_text())
    assert result.metrics() == headline  # what MLflow gets: the JSON keys as they are
    assert headline["splitter.step.cos_mean"] == written["splitter.step.cos_mean"]
    assert len(headline) <= HEADLINE_LIMIT
    assert written["n_clips"] == 3 and written["n_decoded_clips"] == 3
    for method in METHODS:
        for kind in ("chain", "step"):
            for h in range(1, 5):
                assert math.isfinite(written[f"{method}.{kind}.cos@{h}"])
            for decoder in ("retrieval", "backbone"):
                for metric in ("truth_cos", "consistency", "text_sim", "psnr", "ssim"):
                    assert math.isfinite(written[f"{method}.{kind}.{decoder}.{metric}"])
                # no pose is known for these clips: no trajectory means, and counts of 0
                assert written[f"{method}.{kind}.{decoder}.centroid_err.n"] == 0
                assert f"{method}.{kind}.{decoder}.centroid_err" not in written
            if method != "splitter":
                assert f"splitter-{method}.{kind}.cos_mean.ci_low" in written
    # text_sim: the decoded, re-encoded frames against their own caption's TEXT embedding
    # (not its prior embedding, which this backbone makes different), computed by hand
    table = decoded.to_pandas()
    for method, decoder in (("splitter", "backbone"), ("copy_start", "retrieval")):
        by_text, by_prior = [], []
        for clip_id in ("clip07", "clip08", "clip09"):
            rows = table[
                (table.clip_id == clip_id)
                & (table.method == method)
                & (table.rollout == "step")
                & (table.decoder == decoder)
            ].sort_values("step")
            assert list(rows.step) == [0, 1, 2, 3, 4]
            frames = np.stack(rows.embedding.to_list()).astype(np.float64)  # [5, D]
            row = texts.index()[clip_id]
            for reference, sims in ((texts.text_embed, by_text), (texts.prior_embed, by_prior)):
                vector = reference[row].double().numpy()
                norms = np.linalg.norm(frames, axis=1) * np.linalg.norm(vector)
                sims.append(float(np.mean(frames @ vector / norms)))
        key = f"{method}.step.{decoder}.text_sim"
        assert written[key] == pytest.approx(np.mean(by_text), abs=1e-6)
        assert abs(np.mean(by_text) - np.mean(by_prior)) > 1e-3  # the check can tell them apart
    # the fake decoder paints a frame's mean colour back: the true (solid) frames come back
    assert written["truth.step.backbone.psnr"] == 100.0
    # copy_start repeats the start, so its decoded video is perfectly consistent
    assert written["copy_start.step.retrieval.consistency"] == pytest.approx(1.0)
    header = (metrics_dir / "plots" / "cos_at_h.csv").read_text().splitlines()[0]
    columns = sorted(f"{m}.{r}" for m in METHODS for r in ("chain", "step"))
    assert header.split(",") == ["h", *columns]
    sheets = sorted(p.name for p in (metrics_dir / "plots" / "contact_sheets").iterdir())
    assert sheets == [
        "clip1_backbone.png",
        "clip1_retrieval.png",
        "clip2_backbone.png",
        "clip2_retrieval.png",
    ]
    # clip1 is the first decoded held-out clip, clip07, copied byte for byte
    copied = (metrics_dir / "plots" / "contact_sheets" / "clip1_retrieval.png").read_bytes()
    assert copied == (out / "contact_sheets" / "clip07_retrieval.png").read_bytes()


@pytest.mark.parametrize("split", ["train", "val"])
def test_evaluate_refuses_clips_that_training_or_validation_saw(
    tmp_path: Path, fake_backbone: FakeBackbone, split: str
) -> None:
    """Guards evaluate's leak check: a generated clip that the manifest now puts in the
    training (or validation) split is refused with an error naming it."""
    paths = build_project(tmp_path, fake_backbone, {"train": 6, "val": 1, "test": 2})
    params = parse_params({**PARAMS, "generate": {**PARAMS["generate"], "prompts": []}})
    out = tmp_path / "generated"
    generate(paths, out, params)
    manifest = store.read_manifest(paths["manifest"])
    manifest.loc[manifest["clip_id"] == "clip08", "split"] = split
    store.write_dataframe(manifest, store.MANIFEST_SCHEMA, paths["manifest"])
    with pytest.raises(UserError, match=r"clip08.*not test clips"):
        evaluate(paths, out, tmp_path / "metrics", params)


def test_held_out_clips_are_test_clips_only(tmp_path: Path, fake_backbone: FakeBackbone) -> None:
    paths = build_project(tmp_path, fake_backbone, {"train": 4, "val": 2})
    manifest = store.read_manifest(paths["manifest"])
    images = store.read_image_embeddings(paths["embeddings"] / "images.parquet")
    texts = store.read_text_embeddings(paths["embeddings"] / "texts.parquet", manifest)
    with pytest.raises(UserError, match=r"no test clips.*download\.split\.test"):
        held_out_clips(manifest, images, texts, 0)


def test_first_frame_start(tmp_path: Path, fake_backbone: FakeBackbone) -> None:
    paths = build_project(tmp_path, fake_backbone, {"train": 4, "val": 1, "test": 2})
    images = store.read_image_embeddings(paths["embeddings"] / "images.parquet")
    params = parse_params(
        {
            "generate": {
                "n_frames": 3,
                "start": "first_frame",
                "decoders": ["retrieval"],
                "methods": ["copy_start"],
                "rollouts": ["step"],
            }
        }
    )
    out = tmp_path / "generated"
    generate(paths, out, params)
    table = pq.read_table(out / "predictions.parquet")
    vectors = torch.from_numpy(store.arrow_to_vectors(table.column("embedding")).copy())
    first = images.embeddings[images.clip_slices()["clip05"].start]
    torch.testing.assert_close(vectors[0], first)
    torch.testing.assert_close(vectors[2], first)  # copy_start stays on the first true frame
    with pytest.raises(ParamsError, match=r"generate\.methods: .*unknown method\(s\) \['nope'\]"):
        parse_params({"generate": {"methods": ["nope"], "decoders": []}})
    unfitted = parse_params({"generate": {"methods": ["ridge"], "decoders": []}})
    with pytest.raises(UserError, match=r"generate\.methods: \['ridge'\] not fitted"):
        generate(paths, out, unfitted)


def test_held_out_rollouts_step_through_the_true_frames_times() -> None:
    times = torch.tensor([0.0, 0.125, 0.75, 1.0]) * 2  # seconds, unevenly kept
    torch.testing.assert_close(clip_rises(times, 4), torch.tensor([0.0, 0.125, 0.75, 1.0]))
    torch.testing.assert_close(clip_rises(times, 3), torch.tensor([0.0, 0.125, 0.75]))
    # past the clip's last frame: on at its mean gap (1/3 of the span per frame)
    torch.testing.assert_close(clip_rises(times, 6)[4:], torch.tensor([4 / 3, 5 / 3]))


def test_evaluate_needs_generate_output(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="generate stage"):
        evaluate_stage.run(
            tmp_path / "m.parquet",
            tmp_path,
            tmp_path / "generated",
            tmp_path / "frames.parquet",
            tmp_path / "truth.parquet",
            tmp_path / "metrics",
            Params(),
        )


@pytest.mark.parametrize("name", ["toy", "kandinsky22"])
def test_backbone_decoder_keeps_latents_fixed(name: str) -> None:
    """With a real backbone (toy; kandinsky22 on its test fixture): the same embedding twice
    -> identical frames; another embedding -> other frames; sizes as asked."""
    from nextframe.backbones import kandinsky_fixture, load_backbone
    from nextframe.config import BackboneParams

    params = BackboneParams() if name == "toy" else kandinsky_fixture.backbone_params()
    backbone = load_backbone(params)
    colours = [(200, 10, 10), (10, 10, 200), (10, 200, 10)]
    embeds = backbone.encode_images([solid(colour, 32) for colour in colours])
    decoder = BackboneDecoder(backbone, size=32, steps=2, guidance=4.0, seed=0, batch_size=2)
    frames = decoder.decode(embeds[[0, 0, 1, 2]])  # batches of 2: [e0, e0], [e1, e2]
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], frames[1])  # same seed, same latents, same embedding
    assert not np.array_equal(frames[0], frames[2])  # only the embedding changed
    # every row is its own embedding's picture, as decoded alone (batched convolutions may
    # round differently by one level): no row is another row's, whatever its place in a batch
    alone = [decoder.decode(embeds[i : i + 1])[0].astype(int) for i in range(3)]
    for row, own in enumerate([0, 0, 1, 2]):
        differences = [np.abs(frames[row].astype(int) - picture).max() for picture in alone]
        assert differences[own] <= 2, row
        assert min(d for i, d in enumerate(differences) if i != own) > 2, row


class PixelDecoder:
    """A decoder whose picture is a fixed function of the embedding, counting what it sees."""

    name = "pixels"

    def __init__(self) -> None:
        self.rows_seen = 0

    def decode(self, embeddings: Tensor) -> np.ndarray:
        self.rows_seen += len(embeddings)
        values = (embeddings[:, :3] * 40 + 128).clamp(0, 255).to(torch.uint8).numpy()
        return np.broadcast_to(values[:, None, None, :], (len(embeddings), 4, 4, 3)).copy()


class MeanColourBackbone:
    def encode_images(self, images: list[Image.Image]) -> Tensor:
        return torch.tensor(
            np.stack([np.asarray(i, dtype=np.float32).mean((0, 1)) for i in images])
        )


def test_decode_distinct_decodes_each_vector_once_and_puts_every_row_back() -> None:
    generator = torch.Generator().manual_seed(0)
    shared = torch.randn(2, 4, 5, generator=generator)
    predicted = {
        ("copy_start", "chain"): shared,
        ("copy_start", "step"): shared.clone(),  # a repeat, as for every baseline
        ("splitter", "chain"): torch.randn(2, 4, 5, generator=generator),
    }
    decoder = PixelDecoder()
    pictures, reencoded = decode_distinct(
        decoder, predicted, MeanColourBackbone(), batch_size=3, progress=False
    )
    assert decoder.rows_seen == 16  # 8 shared + 8 splitter rows, not 24
    for key, embeddings in predicted.items():
        expected = PixelDecoder().decode(embeddings.reshape(-1, 5)).reshape(2, 4, 4, 4, 3)
        assert np.array_equal(pictures[key], expected), key
        expected_embeds = MeanColourBackbone().encode_images(
            [Image.fromarray(p) for p in expected.reshape(-1, 4, 4, 3)]
        )
        assert torch.equal(reencoded[key], expected_embeds.reshape(2, 4, 3)), key


def test_decode_clips_are_scored_on_pictures_and_video_clips_become_videos(
    tmp_path: Path, fake_backbone: FakeBackbone
) -> None:
    paths = build_project(tmp_path, fake_backbone, {"train": 6, "val": 1, "test": 4})
    settings = {**PARAMS["generate"], "max_clips": 0, "decode_clips": 2, "video_clips": 1}
    params = parse_params({**PARAMS, "generate": settings})
    out = tmp_path / "generated"
    summary = generate(paths, out, params)
    assert (summary.clips, summary.decoded_clips, summary.prompts) == (4, 2, 1)

    predicted = pq.read_table(out / "predictions.parquet").column("clip_id").to_pylist()
    assert set(predicted) == {"clip07", "clip08", "clip09", "clip10", "prompt-000"}
    decoded = pq.read_table(out / "decoded.parquet").column("clip_id").to_pylist()
    assert set(decoded) == {"clip07", "clip08", "prompt-000"}
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["clip07", "clip08", "prompt-000"]
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["clip07", "prompt-000"]
    flags = {
        c["clip_id"]: (c["decoded"], c["video"])
        for c in json.loads((out / "clips.json").read_text())["clips"]
    }
    assert flags == {
        "clip07": (True, True),
        "clip08": (True, False),
        "clip09": (False, False),
        "clip10": (False, False),
        "prompt-000": (True, True),
    }

    metrics_dir = tmp_path / "metrics"
    result = evaluate(paths, out, metrics_dir, params)
    metrics = result.values
    assert metrics["n_clips"] == 4 and metrics["n_decoded_clips"] == 2
    assert metrics["splitter.step.cos_mean.n"] == 4
    for key in ("truth_cos", "psnr"):  # pictures of the two decoded clips only: no interval
        assert metrics[f"splitter.chain.retrieval.{key}.n"] == 2
        assert f"splitter.chain.retrieval.{key}.ci_low" not in metrics
    assert "fewer than 10" in result.describe()
    sheets = sorted(p.name for p in (metrics_dir / "plots" / "contact_sheets").iterdir())
    assert sheets == ["clip1_backbone.png", "clip1_retrieval.png"]
    written = ["evaluate.json", "evaluate_full.json", "evaluate_methods.json", "cos_at_h.csv"]
    written += sheets
    assert sorted(path.name for path in result.files) == sorted(written)
