"""Motion classes from the synthetic generator's truth, and every headline metric per class
on hand-made rollouts."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch

from nextframe.config import EvaluateParams, SyntheticParams
from nextframe.data.synthetic import make_specs, truth_rows
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
