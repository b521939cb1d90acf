"""The toy backbone's bars (issues 9 and 20), on held-out clips made the way the pipeline does.

Generates a pipeline-like data set in a temporary folder: the synthetic source with the
pipeline's defaults (``download.seed`` 0, 24 frames at 8 fps, 64 px, MP4 and GIF in turn,
``--clips`` clips, split 70/15/15), frames kept by ``select_frames`` (``top_diff``, k = 8,
64 px PNGs). The test split's clips (which the toy never saw: its corpus has its own seed)
are embedded from those PNGs, as the embed stage does, and every bar is measured on them:
issue 20 adds the shape a template matcher reads from each decoded frame, and checks that
no test caption is in the toy's corpus.
Prints one JSON line per bar (``bar``, ``value``, ``threshold``, ``passed`` and details);
``--build`` also times a full build of the shipped recipe (wall and CPU seconds, load).

    python benchmarks/toy_backbone.py --clips 300 [--build]
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import torch
import typer
from PIL import Image
from torch.nn import functional as F

from nextframe.backbones import load_backbone
from nextframe.backbones.toy import RECIPE
from nextframe.backbones.toy.corpus import SYMMETRY, corpus_specs
from nextframe.backbones.toy.probes import (
    centroid,
    described_colors,
    match_shape,
    object_mask,
    psnr,
)
from nextframe.config import BackboneParams, DownloadParams, Params, SyntheticParams
from nextframe.data.synthetic import SHAPES, TRANSLATIONS, make_specs, render_clip
from nextframe.pipeline import download, select_frames
from nextframe.store import read_frames, read_manifest, read_truth

app = typer.Typer(add_completion=False)


def emit(bar: str, value: float, threshold: float, passed: bool, **details) -> None:
    typer.echo(
        json.dumps(
            {"bar": bar, "value": round(value, 4), "threshold": threshold, "passed": passed}
            | details
        )
    )


def make_test_set(root: Path, clips: int) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(test rows of the manifest, their frames with the true pose, all specs): the
    pipeline's download and select_frames stages on the defaults with ``clips`` clips."""
    params = Params(download=DownloadParams(synthetic=SyntheticParams(n_clips=clips)))
    download.run(root / "raw", params)
    select_frames.run(root / "raw" / "manifest.parquet", root / "frames", params, progress=False)
    manifest = read_manifest(root / "raw" / "manifest.parquet")
    test = manifest[manifest["split"] == "test"].sort_values("clip_id").reset_index(drop=True)
    frames = read_frames(root / "frames" / "frames.parquet")
    frames = frames[frames["clip_id"].isin(test["clip_id"])]
    truth = read_truth(root / "raw" / "truth.parquet")
    truth = truth[["clip_id", "frame_index", "cx", "cy", "angle"]]
    frames = frames.merge(truth, on=["clip_id", "frame_index"], how="left")
    frames = frames.sort_values(["clip_id", "k"]).reset_index(drop=True)
    return test, frames, make_specs(params.download.synthetic, params.download.seed)


def spec_of(clip_id: str, specs: list):
    return specs[int(clip_id[3:7])]  # synthetic clip ids are syn<index>-<digest>


@app.command()
def main(
    clips: Annotated[int, typer.Option(help="synthetic clips (the test split is ~15%)")] = 300,
    build: Annotated[bool, typer.Option(help="also time a full build of the recipe")] = False,
) -> None:
    torch.set_num_threads(RECIPE.threads)
    backbone = load_backbone(BackboneParams())
    with tempfile.TemporaryDirectory(prefix="nextframe-toy-bench-") as folder:
        root = Path(folder)
        test, frames, specs = make_test_set(root, clips)
        images = [Image.open(root / "frames" / path).convert("RGB") for path in frames["path"]]
        truth = np.stack([np.asarray(image) for image in images])  # [N, 64, 64, 3]
    k = int(frames.groupby("clip_id").size().max())
    started, cpu = time.perf_counter(), time.process_time()
    embeds = backbone.encode_images(images)  # [N, D]
    encode_seconds = (time.perf_counter() - started, time.process_time() - cpu)
    started, cpu = time.perf_counter(), time.process_time()
    drawn = np.stack(
        [np.asarray(p) for p in backbone.decode(embeds, size=64, steps=1, guidance=0, seed=0)]
    )
    decode_seconds = (time.perf_counter() - started, time.process_time() - cpu)
    common = {"test_clips": len(test), "frames": len(frames)}

    scores, errors, render_scores, named, turn_errors = [], [], [], [], []
    for row, picture, true_picture in zip(frames.itertuples(), drawn, truth, strict=True):
        spec = spec_of(row.clip_id, specs)
        scores.append(psnr(picture, true_picture))
        render_scores.append(psnr(true_picture, render_clip(spec)[row.frame_index]))
        found = centroid(object_mask(picture, spec.background, spec.color))
        true_centre = np.array([row.cx, row.cy])  # truth.parquet, pixels
        errors.append(np.inf if found is None else float(np.hypot(*(found - true_centre))))
        match = match_shape(object_mask(picture, spec.background, spec.color))
        named.append((spec.shape, match[0] if match else None))
        if match is not None and match[0] == spec.shape and spec.shape != "circle":
            period = 2 * np.pi / SYMMETRY[spec.shape]  # a turn by a symmetry is no turn
            error = (match[1] - row.angle) % period
            turn_errors.append(min(error, period - error))
    emit(
        "decode_psnr_db", float(np.mean(scores)), 25.0, bool(np.mean(scores) >= 25), **common,
        min=round(float(np.min(scores)), 2),
        # what the pipeline's PNGs lose to the codecs: GIF nothing, MP4 (yuv420p) this much
        lossless_frames=int(np.isinf(render_scores).sum()),
        lossy_psnr_db=round(float(np.mean([s for s in render_scores if np.isfinite(s)])), 2),
    )  # fmt: skip
    within = float(np.mean(np.array(errors) <= 3.0))
    emit(
        "decode_centroid_within_3px", within, 0.9, within >= 0.9, **common,
        median_error_px=round(float(np.median(errors)), 3),
    )  # fmt: skip

    right_shape = float(np.mean([true == found for true, found in named]))
    emit(
        "decode_shape_named", right_shape, 0.9, right_shape >= 0.9, **common,
        **{
            f"{shape}_named": round(float(np.mean([f == shape for t, f in named if t == shape])), 4)
            for shape in SHAPES
        },
        turn_error_deg_median=round(float(np.degrees(np.median(turn_errors))), 2),
    )  # fmt: skip
    corpus = {spec.caption() for spec in corpus_specs(RECIPE)}
    shared = len(set(test["caption"]) & corpus)
    emit("test_captions_in_corpus", shared, 0, shared == 0, **common)

    unit = F.normalize(embeds, dim=-1).view(len(test), k, -1)  # [C, k, D]
    moving = torch.tensor(
        [spec_of(clip_id, specs).motion in TRANSLATIONS for clip_id in test["clip_id"]]
    )
    first_last = (unit[:, 0] * unit[:, -1]).sum(-1)[moving]
    adjacent = (unit[:, :-1] * unit[:, 1:]).sum(-1)[moving]  # [M, k - 1]
    translating = {"translating_clips": int(moving.sum())}
    emit(
        "translating_first_last_cos", float(first_last.mean()), 0.9,
        bool(first_last.mean() <= 0.9), **translating,
    )  # fmt: skip
    emit(
        "translating_adjacent_cos", float(adjacent.mean()), 0.95,
        bool(adjacent.mean() >= 0.95), **translating,
        min_clip=round(float(adjacent.mean(dim=1).min()), 4),
    )  # fmt: skip

    encoding = backbone.encode_texts(test["caption"].tolist())
    scores_matrix = F.normalize(encoding.prior_embed, dim=-1) @ unit[:, 0].T  # [C, C]
    ranks = (scores_matrix > scores_matrix.diag()[:, None]).float().mean(dim=1)
    emit(
        "prior_rank_fraction_median", float(ranks.median()), 0.2,
        bool(ranks.median() <= 0.2), **common,
        in_top_20_percent=round(float((ranks <= 0.2).float().mean()), 4),
    )  # fmt: skip
    prior_drawn = backbone.decode(encoding.prior_embed, size=64, steps=1, guidance=0, seed=0)
    right = [
        described_colors(np.asarray(picture))
        == (spec_of(clip_id, specs).background, spec_of(clip_id, specs).color)
        for clip_id, picture in zip(test["clip_id"], prior_drawn, strict=True)
    ]
    emit("prior_decode_colors", float(np.mean(right)), 0.8, bool(np.mean(right) >= 0.8), **common)
    emit(
        "inference_seconds", encode_seconds[0] + decode_seconds[0], 0.0, True, **common,
        encode_wall_s=round(encode_seconds[0], 3), encode_cpu_s=round(encode_seconds[1], 3),
        decode_wall_s=round(decode_seconds[0], 3), decode_cpu_s=round(decode_seconds[1], 3),
    )  # fmt: skip

    if build:
        from nextframe.backbones.toy.build import build_weights

        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix="nextframe-toy-build-") as folder:
            started, cpu = time.perf_counter(), time.process_time()
            build_weights(RECIPE, Path(folder) / "toy.safetensors", progress=False)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        emit(
            "build_seconds", wall, 240.0, wall <= 240, cpu_s=round(cpu, 1),
            threads=RECIPE.threads, load_before=load_before, load_after=os.getloadavg(),
        )  # fmt: skip


if __name__ == "__main__":
    app()
