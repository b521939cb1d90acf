"""Metrics against hand-computed values and independent references; the evaluate key set."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from nextframe.config import EvaluateParams
from nextframe.errors import UserError
from nextframe.metrics import (
    HEADLINE_LIMIT,
    clopper_pearson,
    cos_at_h,
    curves_of,
    decoded_embedding_scores,
    embedding_scores,
    frame_consistency,
    headline,
    motion_at_h,
    motion_mean,
    summarize,
    summarize_many,
    summarize_scores,
    text_frame_similarity,
    truth_cosine,
)
from nextframe.pipeline.evaluate import write_curves

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
DIAGONAL = torch.tensor([1.0, 1.0])


def test_cos_at_h_by_hand_with_missing_truth_as_nan() -> None:
    # clip 0: steps e1, 3 e1, e1 + e2 vs truth e1, e1, e2 -> cos@1 = 1, cos@2 = 1/sqrt2
    predicted = torch.stack(
        [torch.stack([E1, 3 * E1, DIAGONAL]), torch.stack([E2, -E2, E2])]
    )  # [2, 3, 2]
    truth = torch.stack([torch.stack([E1, E1, E2]), torch.stack([E2, E2, torch.zeros(2)])])
    n_truth = torch.tensor([3, 2])  # clip 1 has no frame 2
    values = cos_at_h(predicted, truth, n_truth, horizon=3)
    assert values.shape == (2, 3)
    assert values[0, 0] == pytest.approx(1.0)
    assert values[0, 1] == pytest.approx(1 / math.sqrt(2))
    assert values[1, 0] == pytest.approx(-1.0)
    assert math.isnan(values[1, 1])  # past clip 1's last frame
    assert torch.isnan(values[:, 2]).all()  # past the rollout's last step


def test_motion_at_h_against_a_loop_over_clips_and_steps() -> None:
    generator = torch.Generator().manual_seed(3)
    predicted = torch.randn(3, 5, 6, generator=generator, dtype=torch.float64)
    truth = torch.randn(3, 4, 6, generator=generator, dtype=torch.float64)
    n_truth = torch.tensor([4, 3, 4])
    values = motion_at_h(predicted, truth, n_truth, horizon=4)
    pooled = motion_mean(predicted, truth, n_truth, horizon=4)
    for clip in range(3):
        p = (predicted[clip] / predicted[clip].norm(dim=-1, keepdim=True)).numpy()
        t = (truth[clip] / truth[clip].norm(dim=-1, keepdim=True)).numpy()
        errors, sizes = [], []
        for h in range(1, 5):
            if h == 1 or h >= n_truth[clip] or h >= truth.shape[1]:
                assert math.isnan(values[clip, h - 1])
                continue
            moved, true_moved = p[h] - p[1], t[h] - t[1]
            error, size = np.sum((moved - true_moved) ** 2), np.sum(true_moved**2)
            errors.append(error)
            sizes.append(size)
            assert values[clip, h - 1] == pytest.approx(max(1 - error / size, -1.0), abs=1e-12)
        expected = max(1 - sum(errors) / sum(sizes), -1.0)
        assert pooled[clip] == pytest.approx(expected, abs=1e-12)


def test_motion_scores_a_jump_then_standing_still_zero_and_the_true_path_one() -> None:
    """From the prior: the jump to the first frame is not motion (DESIGN.md)."""
    prior = torch.tensor([-1.0, -1.0])
    truth = torch.stack([E1, DIAGONAL, E2, -E1]).unsqueeze(0)  # [1, 4, 2]
    jump_then_still = torch.stack([prior, E1, E1, E1]).unsqueeze(0)  # jumps to frame 1's place
    perfect = torch.stack([prior, DIAGONAL, E2, -E1]).unsqueeze(0)
    n_truth = torch.tensor([4])
    for metric in (motion_at_h, motion_mean):
        still = metric(jump_then_still, truth, n_truth, 3)
        assert torch.nan_to_num(still) == pytest.approx(torch.zeros_like(still))
        assert metric(5 * perfect, truth, n_truth, 3).nan_to_num(1.0) == pytest.approx(
            torch.ones_like(still)
        )  # scale does not matter
    # along a circle one way, predicted the other way: worse than standing still, floored
    angles = torch.tensor([0.0, 0.1, 0.2, 0.3])
    forth = torch.stack([angles.cos(), angles.sin()], -1).unsqueeze(0)
    back = torch.stack([angles.cos(), -angles.sin()], -1).unsqueeze(0)
    back[0, 0] = prior
    assert float(motion_mean(back, forth, n_truth, 3)[0]) == -1.0


def test_truth_cosine_averages_aligned_frames_only() -> None:
    frames = torch.stack([torch.stack([E1, DIAGONAL, E2])])  # [1, 3, 2]
    truth = torch.stack([torch.stack([E1, E1, E1])])
    assert truth_cosine(frames, truth, torch.tensor([3]))[0] == pytest.approx(
        (1 + 1 / math.sqrt(2) + 0) / 3
    )
    assert truth_cosine(frames, truth, torch.tensor([2]))[0] == pytest.approx(
        (1 + 1 / math.sqrt(2)) / 2
    )


def test_frame_consistency_on_known_vectors() -> None:
    # pairs of [e1, 2 e1, e2]: (0,1) = 1, (0,2) = 0, (1,2) = 0 -> mean 1/3; all equal -> 1
    videos = torch.stack([torch.stack([E1, 2 * E1, E2]), torch.stack([E2, E2, 5 * E2])])
    assert frame_consistency(videos).tolist() == pytest.approx([1 / 3, 1.0])
    random = torch.randn(4, 5, 7, generator=torch.Generator().manual_seed(0))
    unit = random / random.norm(dim=-1, keepdim=True)
    reference = [
        np.mean([float(unit[c, i] @ unit[c, j]) for i in range(5) for j in range(5) if i != j])
        for c in range(4)
    ]
    assert frame_consistency(random).tolist() == pytest.approx(reference, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 frames"):
        frame_consistency(random[:, :1])


def test_text_frame_similarity_by_hand() -> None:
    frames = torch.stack([torch.stack([E1, DIAGONAL])])
    assert text_frame_similarity(torch.stack([2 * E1]), frames)[0] == pytest.approx(
        (1 + 1 / math.sqrt(2)) / 2
    )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_decoded_scores_are_each_clips_own_against_a_loop() -> None:
    """Guards the decoded-frame metrics row by row: the decoded clips sit at ``rows`` of the
    held-out clips, and each one's text_sim is against its own caption's text embedding,
    truth_cos against its own true frames (a mix-up of rows or of embeddings must fail)."""
    generator = torch.Generator().manual_seed(7)
    truth = torch.randn(4, 3, 5, generator=generator)
    n_truth = torch.tensor([3, 3, 2, 3])
    text_embed = torch.randn(4, 5, generator=generator)
    rows = torch.tensor([3, 1])  # decoded clips, in the order of ``decoded``'s rows
    frames = torch.randn(2, 3, 5, generator=generator)
    scores = decoded_embedding_scores(
        {("m", "step", "x"): frames}, truth, n_truth, text_embed, rows
    )
    for position, clip in enumerate(rows.tolist()):
        video = frames[position].numpy()
        text_sim = np.mean([_cosine(frame, text_embed[clip].numpy()) for frame in video])
        assert scores["m.step.x.text_sim"][clip] == pytest.approx(text_sim, abs=1e-6)
        aligned = range(int(n_truth[clip]))
        truth_cos = np.mean([_cosine(video[i], truth[clip, i].numpy()) for i in aligned])
        assert scores["m.step.x.truth_cos"][clip] == pytest.approx(truth_cos, abs=1e-6)
        pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
        consistency = np.mean([_cosine(video[i], video[j]) for i, j in pairs])
        assert scores["m.step.x.consistency"][clip] == pytest.approx(consistency, abs=1e-6)
    for key in ("text_sim", "truth_cos", "consistency"):
        assert torch.isnan(scores[f"m.step.x.{key}"][[0, 2]]).all()  # not decoded


def test_cos_mean_and_motion_mean_of_every_rollout_by_hand() -> None:
    """Guards the two per-rollout summaries: ``cos_mean`` is the mean of cos@1..H over the
    steps the clip has; ``motion_mean`` pools motion's terms over steps 2..H (unit vectors,
    change since step 1), so a jump-then-stand-still rollout scores 0 and the truth 1."""
    generator = torch.Generator().manual_seed(11)
    truth = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64)
    n_truth = torch.tensor([5, 3, 5])  # clip 1 has steps 1 and 2 only
    prior = torch.randn(3, 1, 4, generator=generator, dtype=torch.float64)
    predictions = {
        ("random", "step"): torch.randn(3, 5, 4, generator=generator, dtype=torch.float64),
        ("perfect", "step"): torch.cat([prior, 2 * truth[:, 1:]], dim=1),
        ("still", "step"): torch.cat([prior, truth[:, 1:2].expand(3, 4, 4)], dim=1),
    }
    horizon = 4
    scores = embedding_scores(predictions, truth, n_truth, horizon)
    for (method, kind), rolled in predictions.items():
        for clip in range(3):
            p = [v / np.linalg.norm(v) for v in rolled[clip].numpy()]
            t = [v / np.linalg.norm(v) for v in truth[clip].numpy()]
            steps = range(1, min(horizon, int(n_truth[clip]) - 1) + 1)
            cos_mean = np.mean([float(p[h] @ t[h]) for h in steps])
            error = sum(np.sum(((p[h] - p[1]) - (t[h] - t[1])) ** 2) for h in steps if h >= 2)
            size = sum(np.sum((t[h] - t[1]) ** 2) for h in steps if h >= 2)
            motion_mean = max(1 - error / size, -1.0)
            assert scores[f"{method}.{kind}.cos_mean"][clip] == pytest.approx(cos_mean, abs=1e-9)
            assert scores[f"{method}.{kind}.motion_mean"][clip] == pytest.approx(
                motion_mean, abs=1e-9
            )
    assert scores["perfect.step.motion_mean"].tolist() == pytest.approx([1.0] * 3)
    assert scores["still.step.motion_mean"].tolist() == pytest.approx([0.0] * 3, abs=1e-12)


def test_bootstrap_interval_contains_mean_shrinks_and_matches_normal_theory() -> None:
    generator = torch.Generator().manual_seed(1)
    small = torch.randn(20, generator=generator) * 0.1 + 0.5
    large = torch.randn(2000, generator=generator) * 0.1 + 0.5
    few, many = summarize(small, 2000, 0.95, 0), summarize(large, 2000, 0.95, 0)
    for result, values in ((few, small), (many, large)):
        assert result.ci_low < result.mean < result.ci_high
        assert result.mean == pytest.approx(float(values.double().mean()))
    assert many.ci_high - many.ci_low < (few.ci_high - few.ci_low) / 4
    # independent reference: the normal interval mean +- 1.96 sd / sqrt(n)
    half_width = 1.96 * float(large.double().std()) / math.sqrt(len(large))
    assert (many.ci_high - many.ci_low) / 2 == pytest.approx(half_width, rel=0.15)
    assert summarize(small, 2000, 0.95, 0) == few  # seeded: same inputs, same interval


def test_summarize_skips_nan_and_reports_empty() -> None:
    values = torch.tensor([0.2, float("nan"), 0.4])
    result = summarize(values, 500, 0.9, 3)
    assert result.n == 2
    assert result.mean == pytest.approx(0.3)
    assert summarize(torch.tensor([float("nan")]), 500, 0.9, 3).n == 0


def _rollouts(clips: int, steps: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(clips, steps, dim, generator=torch.Generator().manual_seed(seed))


def test_scores_have_every_documented_key_and_paired_differences_are_per_clip(tmp_path) -> None:
    params = EvaluateParams(horizon=3, bootstrap=200)
    truth = _rollouts(5, 4, 6, 0)
    n_truth = torch.tensor([4, 4, 4, 4, 4])
    keys = [("splitter", "chain"), ("splitter", "step"), ("copy_start", "step")]
    predictions = {key: _rollouts(5, 4, 6, i) for i, key in enumerate(keys)}
    per_clip = embedding_scores(predictions, truth, n_truth, params.horizon)
    decoded = {("splitter", "step", "retrieval"): _rollouts(2, 4, 6, 9)}
    rows = torch.tensor([1, 3])
    per_clip.update(decoded_embedding_scores(decoded, truth, n_truth, torch.randn(5, 6), rows))
    expected = set()
    for name in ("splitter.chain", "splitter.step", "copy_start.step"):
        expected |= {f"{name}.cos@{h}" for h in (1, 2, 3)} | {f"{name}.motion@{h}" for h in (2, 3)}
        expected |= {f"{name}.cos_mean", f"{name}.motion_mean"}
    expected |= {f"splitter.step.retrieval.{m}" for m in ("truth_cos", "consistency", "text_sim")}
    assert set(per_clip) == expected
    decoded_values = per_clip["splitter.step.retrieval.truth_cos"]
    assert (
        torch.isnan(decoded_values[[0, 2, 4]]).all() and torch.isfinite(decoded_values[rows]).all()
    )

    metrics = summarize_scores(per_clip, params)
    paired = metrics["splitter-copy_start.step.cos_mean"]
    difference = per_clip["splitter.step.cos_mean"] - per_clip["copy_start.step.cos_mean"]
    assert paired == pytest.approx(float(difference.mean()))
    # paired: the interval of the per-clip differences, not of two independent means
    direct = summarize(difference, params.bootstrap, params.confidence, params.seed)
    assert metrics["splitter-copy_start.step.cos_mean.ci_low"] == pytest.approx(direct.ci_low)
    assert "splitter-copy_start.chain.cos_mean" not in metrics  # copy_start has no chain here
    # 2 decoded clips: a mean and its count, but no interval
    assert metrics["splitter.step.retrieval.truth_cos.n"] == 2
    assert "splitter.step.retrieval.truth_cos.ci_low" not in metrics
    assert metrics["splitter.step.cos_mean.n"] == 5 and "splitter.step.cos_mean.ci_low" in metrics
    # the curve is the per-horizon mean, checked against a direct computation
    curves = curves_of(metrics, params.horizon)
    direct_cos = torch.nn.functional.cosine_similarity(
        predictions[("splitter", "step")][:, 2], truth[:, 2], dim=-1
    )
    assert curves["splitter.step"][1] == pytest.approx(float(direct_cos.mean()), abs=1e-6)

    methods = ["splitter", "copy_start"]
    top = headline({"n_clips": 5.0, **metrics}, "retrieval", methods, privileged=set())
    assert len(top) <= HEADLINE_LIMIT
    # per method, not per paired difference (whose intervals stay in the full file)
    assert not [key for key in top if "-" in key.split(".")[0]]
    assert top["splitter.step.cos_mean.worst_paired_low"] == pytest.approx(
        metrics["splitter-copy_start.step.cos_mean.ci_low"]
    )
    write_curves(curves, tmp_path / "cos_at_h.csv")
    with (tmp_path / "cos_at_h.csv").open() as handle:
        rows_read = list(csv.DictReader(handle))
    assert [row["h"] for row in rows_read] == ["1", "2", "3"]
    assert float(rows_read[0]["splitter.chain"]) == pytest.approx(
        metrics["splitter.chain.cos@1"], rel=1e-5
    )


def test_scores_reject_a_horizon_past_the_clips() -> None:
    truth = _rollouts(2, 3, 4, 0)
    with pytest.raises(UserError, match=r"evaluate\.horizon"):
        embedding_scores({("a", "step"): _rollouts(2, 3, 4, 1)}, truth, torch.tensor([3, 3]), 5)


@pytest.mark.parametrize(("successes", "count"), [(0, 5), (3, 7), (24, 24), (40, 42)])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_clopper_pearson_matches_scipys_exact_binomial_interval(
    successes: int, count: int, confidence: float
) -> None:
    from scipy.stats import beta, binomtest

    low, high = clopper_pearson(successes, count, confidence)
    reference = binomtest(successes, count).proportion_ci(confidence, method="exact")
    assert (low, high) == pytest.approx((reference.low, reference.high))
    # and the textbook form: beta quantiles (Clopper and Pearson, 1934)
    tail = (1 - confidence) / 2
    textbook_low = beta.ppf(tail, successes, count - successes + 1) if successes else 0.0
    textbook_high = (
        beta.ppf(1 - tail, successes + 1, count - successes) if successes < count else 1.0
    )
    assert (low, high) == pytest.approx((textbook_low, textbook_high), abs=1e-9)


def test_proportions_get_the_exact_interval_and_their_paired_differences_the_bootstrap() -> None:
    """24 of 24 clips right is not a certainty: the bootstrap said [1, 1], Clopper-Pearson
    says [0.858, 1]; a paired difference of two proportions is not a proportion."""
    params = EvaluateParams(bootstrap=500)
    per_clip = {
        "splitter.step.x.direction_acc": torch.ones(24, dtype=torch.float64),
        "linear.step.x.direction_acc": torch.tensor([1.0, 0.0] * 12, dtype=torch.float64),
        "splitter.step.x.centroid_err": torch.full((24,), 2.0, dtype=torch.float64),
    }
    metrics = summarize_scores(per_clip, params)
    assert metrics["splitter.step.x.direction_acc"] == 1.0
    assert metrics["splitter.step.x.direction_acc.ci_low"] == pytest.approx(
        clopper_pearson(24, 24, 0.95)[0]
    )
    assert metrics["splitter.step.x.direction_acc.ci_low"] == pytest.approx(0.8575, abs=1e-4)
    assert metrics["linear.step.x.direction_acc.ci_high"] == pytest.approx(
        clopper_pearson(12, 24, 0.95)[1]
    )
    # not proportions: the bootstrap (a constant's interval is the constant)
    assert metrics["splitter.step.x.centroid_err.ci_low"] == 2.0
    difference = per_clip["splitter.step.x.direction_acc"] - per_clip["linear.step.x.direction_acc"]
    direct = summarize(difference, 500, 0.95, 0)
    assert metrics["splitter-linear.step.x.direction_acc.ci_low"] == pytest.approx(direct.ci_low)
    with pytest.raises(ValueError, match="0 or 1"):
        summarize(torch.tensor([0.5, 1.0]), 100, 0.95, 0, proportion=True)


def _full_metrics(methods: list[str], decoder: str) -> dict[str, float]:
    """Every key ``headline`` reads, for ``methods`` and the truth, with distinct values."""
    metrics = {"n_clips": 42.0}
    for number, method in enumerate([*methods, "truth"]):
        for kind in ("step", "chain"):
            metrics[f"{method}.{kind}.cos_mean"] = 0.5 + number / 100
            metrics[f"{method}.{kind}.motion_mean"] = 0.1 + number / 100
            for metric in ("factor_motion", "direction_acc", "direction_acc_45", "psnr"):
                metrics[f"{method}.{kind}.{decoder}.{metric}"] = 0.2 + number / 100
            for metric in ("displacement_err", "size_change_err", "centroid_err"):
                metrics[f"{method}.{kind}.{decoder}.{metric}"] = 3.0 + number
        if method not in ("splitter", "truth"):
            for metric in (
                "step.cos_mean",
                "chain.cos_mean",
                "step.motion_mean",
                f"step.{decoder}.factor_motion",
                f"step.{decoder}.direction_acc",
            ):
                metrics[f"splitter-{method}.{metric}.ci_low"] = 0.01 * (number + 1)
    return metrics


def test_the_headline_holds_every_registered_method_within_40_keys() -> None:
    """Guards metrics/evaluate.json's size: every registered method, privileged ones left
    out of the worst paired bound but reported beside it; and still <= 40 keys, with the
    bound over all baselines, when many more methods are added."""
    from nextframe.methods import REGISTRY

    methods = list(REGISTRY)
    privileged = {name for name, info in REGISTRY.items() if info.privileged}
    assert len(methods) >= 11 and privileged
    metrics = _full_metrics(methods, "backbone")
    # a privileged baseline beats the splitter by the most: not the fair worst bound
    worst_privileged = sorted(privileged)[0]
    metrics[f"splitter-{worst_privileged}.step.cos_mean.ci_low"] = -0.5
    top = headline(metrics, "backbone", methods, privileged)
    assert len(top) <= HEADLINE_LIMIT
    for method in methods:
        assert top[f"{method}.step.cos_mean"] == metrics[f"{method}.step.cos_mean"]
    fair = [m for m in methods if m != "splitter" and m not in privileged]
    assert top["splitter.step.cos_mean.worst_paired_low"] == min(
        metrics[f"splitter-{m}.step.cos_mean.ci_low"] for m in fair
    )
    assert top["splitter.step.cos_mean.privileged_paired_low"] == -0.5
    assert top["splitter.step.factor_motion.worst_paired_low"] == min(
        metrics[f"splitter-{m}.step.backbone.factor_motion.ci_low"] for m in fair
    )
    assert top["splitter.step.direction_acc"] == metrics["splitter.step.backbone.direction_acc"]
    assert top["truth.psnr"] == metrics["truth.step.backbone.psnr"]
    assert not [key for key in top if "-" in key.split(".")[0]]  # no paired key itself

    many = methods + [f"extra{i:02d}" for i in range(40)]
    metrics = _full_metrics(many, "backbone")
    metrics["splitter-extra39.step.cos_mean.ci_low"] = -0.25  # the last one added
    top = headline(metrics, "backbone", many, privileged)
    assert len(top) == HEADLINE_LIMIT
    assert top["splitter.step.cos_mean.worst_paired_low"] == -0.25
    assert "splitter.step.cos_mean" in top  # the reference's figure comes first


def test_series_bootstrapped_together_get_each_its_own_interval() -> None:
    """Guards the batched bootstrap: series of the same clips share one matrix product,
    series with other missing clips another; each interval is the one a plain loop over
    the resamples gives for that series alone (the indices the seeded generator draws)."""
    generator = torch.Generator().manual_seed(5)
    series = {f"s{i}": torch.randn(9, generator=generator, dtype=torch.float64) for i in range(5)}
    series["s3"][[0, 4]] = float("nan")
    series["s4"][:] = float("nan")
    summaries = summarize_many(series, 300, 0.9, 2)
    assert summaries["s4"].n == 0 and math.isnan(summaries["s4"].mean)
    for key in ("s0", "s1", "s2", "s3"):
        finite = series[key][torch.isfinite(series[key])]
        picks = torch.randint(
            len(finite), (300, len(finite)), generator=torch.Generator().manual_seed(2)
        )
        means = np.array([float(finite[row].mean()) for row in picks])
        low, high = np.quantile(means, [0.05, 0.95])
        assert summaries[key].n == len(finite)
        assert summaries[key].mean == pytest.approx(float(finite.mean()))
        assert (summaries[key].ci_low, summaries[key].ci_high) == pytest.approx((low, high))
