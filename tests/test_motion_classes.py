"""Motion classes from the synthetic generator's truth, and every headline metric per class
on hand-made rollouts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from fixtures.project import PARAMS, FakeBackbone, build_project, evaluate, generate

from nextframe import store
from nextframe.config import EvaluateParams, SyntheticParams, parse_params
from nextframe.data.synthetic import make_specs, truth_rows
from nextframe.method_table import method_table
from nextframe.metrics import clopper_pearson, embedding_scores
from nextframe.motion_classes import class_summaries, motion_classes

EXPECTED = {
    "moves_left": "left",
    "moves_right": "right",
    "moves_up": "up",
    "moves_down": "down",
    "grows": "grow",
    "shrinks": "shrink",
    "rotates": "rotate",
}


def test_every_generator_motion_gets_its_class_from_the_truth_alone() -> None:
    specs = make_specs(SyntheticParams(n_clips=120), 3)
    rows, clip_ids, wanted = [], [], []
    for motion, name in EXPECTED.items():
        for number, spec in enumerate([s for s in specs if s.motion == motion][:3]):
            clip_id = f"{name}{number}"
            rows += truth_rows(clip_id, replace(spec, n_frames=6))
            clip_ids.append(clip_id)
            wanted.append(name)
    truth = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order must not matter
    assert motion_classes(truth, [*clip_ids, "no_pose"]) == [*wanted, None]


def test_per_class_summaries_of_hand_made_rollouts() -> None:
    """Two left clips a method follows exactly and three right clips where it stands still
    after step 1: the aggregate motion (0.4) hides what the classes show (1 and 0)."""
    generator = torch.Generator().manual_seed(0)
    truth = torch.randn(5, 4, 8, generator=generator, dtype=torch.float64)  # [C, F, D]
    n_truth = torch.full((5,), 4)
    classes = ["left", "right", "left", "right", "right"]
    prior = torch.randn(5, 1, 8, generator=generator, dtype=torch.float64)
    follows = torch.cat([prior, truth[:, 1:]], dim=1)
    still = torch.cat([prior, truth[:, 1:2].expand(5, 3, 8)], dim=1)
    left = torch.tensor([c == "left" for c in classes])[:, None, None]
    predictions = {
        ("splitter", "step"): torch.where(left, follows, still),
        ("copy_start", "step"): still,
    }
    per_clip = embedding_scores(predictions, truth, n_truth, horizon=3)
    per_clip["splitter.step.x.direction_acc"] = torch.tensor(
        [1.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64
    )
    per_clip["splitter.step.cos@1"] = torch.ones(5)  # not a class metric: not summarised
    metrics = class_summaries(per_clip, classes, EvaluateParams(bootstrap=200))
    assert float(per_clip["splitter.step.motion_mean"].mean()) == pytest.approx(0.4)
    assert metrics["by_class.left.n_clips"] == 2 and metrics["by_class.right.n_clips"] == 3
    assert metrics["by_class.left.splitter.step.motion_mean"] == pytest.approx(1.0)
    assert metrics["by_class.right.splitter.step.motion_mean"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["by_class.left.splitter-copy_start.step.motion_mean"] == pytest.approx(1.0)
    right_cos = per_clip["splitter.step.cos_mean"][[1, 3, 4]].mean()
    assert metrics["by_class.right.splitter.step.cos_mean"] == pytest.approx(float(right_cos))
    # 2 of 3 right clips moved the right way: the exact interval; 2 left clips: none
    assert metrics["by_class.right.splitter.step.x.direction_acc"] == pytest.approx(2 / 3)
    assert metrics["by_class.right.splitter.step.x.direction_acc.ci_low"] == pytest.approx(
        clopper_pearson(2, 3, 0.95)[0]
    )
    assert "by_class.left.splitter.step.x.direction_acc.ci_low" not in metrics
    assert not [key for key in metrics if "cos@" in key]
    assert not [key for key in metrics if key.startswith(("by_class.up", "by_class.rotate"))]


def test_the_evaluate_stage_writes_per_class_keys_to_the_full_file_only(
    tmp_path: Path, fake_backbone: FakeBackbone
) -> None:
    """Guards the stage's wiring: the classes come from truth.parquet's rows of the held-out
    clips, each class's summaries land in evaluate_full.json, none in the headline."""
    paths = build_project(tmp_path, fake_backbone, {"train": 6, "val": 1, "test": 3})
    specs = make_specs(SyntheticParams(n_clips=60), 3)
    motions = {"clip07": "moves_left", "clip08": "moves_right", "clip09": "rotates"}
    rows = []
    for clip_id, motion in motions.items():
        spec = next(s for s in specs if s.motion == motion)
        rows += truth_rows(clip_id, replace(spec, n_frames=5))
    store.write_dataframe(pd.DataFrame(rows), store.TRUTH_SCHEMA, paths["truth"])
    params = parse_params({**PARAMS, "generate": {**PARAMS["generate"], "decoders": []}})
    generate(paths, tmp_path / "generated", params)
    result = evaluate(paths, tmp_path / "generated", tmp_path / "metrics", params)
    full = json.loads((tmp_path / "metrics" / "evaluate_full.json").read_text())
    top = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    assert result.metrics() == top  # MLflow: the headline keys, none of the per-class ones
    classes = ("left", "right", "rotate")
    for name in classes:
        assert full[f"by_class.{name}.n_clips"] == 1
        assert full[f"by_class.{name}.splitter.step.cos_mean.n"] == 1
        assert f"by_class.{name}.splitter-copy_start.step.cos_mean" in full
    assert not [key for key in full if key.startswith(("by_class.up", "by_class.grow"))]
    # one clip per class: the classes' means average to the overall mean
    for key in ("splitter.step.cos_mean", "copy_start.chain.motion_mean"):
        per_class = [full[f"by_class.{name}.{key}"] for name in classes]
        assert sum(per_class) / 3 == pytest.approx(full[key])
    assert not [key for key in top if key.startswith("by_class")]
    table = json.loads((tmp_path / "metrics" / "evaluate_methods.json").read_text())
    assert (
        table["by_class.rotate.splitter.step.cos_mean"]
        == full["by_class.rotate.splitter.step.cos_mean"]
    )
    assert table["copy_start.step.motion_mean"] == full["copy_start.step.motion_mean"]


def test_the_methods_file_names_metrics_as_the_headline_does() -> None:
    """evaluate_methods.json: the scoring decoder's figures without the decoder in the key,
    the other decoder's left out, per class only for classes with clips."""
    full = {
        "splitter.step.cos_mean": 0.9,
        "splitter.step.cos_mean.ci_low": 0.8,
        "splitter.step.backbone.factor_motion": 0.4,
        "splitter.step.retrieval.factor_motion": 0.1,
        "splitter.chain.cos_mean": 0.7,
        "truth.step.backbone.direction_acc": 1.0,
        "splitter-ridge.step.backbone.factor_motion.ci_high": 0.2,
        "by_class.grow.n_clips": 3.0,
        "by_class.grow.ridge.step.backbone.factor_motion": -0.5,
        "by_class.grow.ridge.step.backbone.psnr": 20.0,
    }
    assert method_table(full, "backbone", ["splitter", "ridge"]) == {
        "splitter.step.cos_mean": 0.9,
        "splitter.step.cos_mean.ci_low": 0.8,
        "splitter.step.factor_motion": 0.4,
        "truth.step.direction_acc": 1.0,
        "splitter-ridge.step.factor_motion.ci_high": 0.2,
        "by_class.grow.n_clips": 3.0,
        "by_class.grow.ridge.step.factor_motion": -0.5,
    }
