"""Evaluation metrics, vectorised over clips, and the bootstrap interval reported with them.

The store keeps raw embeddings (the decoders need them); every metric here is a cosine,
so vectors are L2-normalised here, at the point of use. Per-clip values may be NaN where
a clip has no ground truth (a horizon past its last frame); summaries skip those clips.

- ``cos_at_h``: cosine between a rollout's step h and the clip's true frame h.
- ``motion_at_h``: cosine between the predicted motion (step h minus step 0) and the true
  motion (frame h minus frame 0), both on the unit sphere. Where frames of a clip are all
  alike (cos@h of copy_start near 1), cos@h cannot tell a model that moves the right way
  from one that stands still; this can: standing still scores 0, the right direction 1.
- ``truth_cosine``: mean over aligned frames of the cosine between decoded-and-re-encoded
  frames and the true frames.
- ``frame_consistency``: mean cosine over all pairs of distinct frames of one video.
- ``text_frame_similarity``: mean cosine between the caption's CLIP text embedding and
  each frame's CLIP image embedding.
- ``summarize``: the mean over clips and a percentile bootstrap interval (resampling
  clips with replacement), seeded so the same inputs give the same interval; for a
  proportion (a per-clip 0/1 such as ``direction_acc``), the exact binomial
  (Clopper-Pearson) interval instead, which a bootstrap cannot give at 24/24 (it says
  [1, 1]).
- ``score``: all of the above for every method and rollout, as the flat keys of
  ``metrics/evaluate_full.json``; ``headline`` picks the few that ``metrics/evaluate.json``
  (what ``dvc exp show`` and ``dvc metrics diff`` print) holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy.stats import binomtest
from torch import Tensor
from torch.nn import functional as F

from nextframe.config import EvaluateParams
from nextframe.errors import UserError


def unit(vectors: Tensor) -> Tensor:
    """L2-normalise the last axis in float64 (zero vectors stay zero)."""
    return F.normalize(vectors.double(), dim=-1)


def per_step(
    predicted: Tensor,
    truth: Tensor,
    n_truth: Tensor,
    horizon: int,
    compare: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """``compare`` of the unit vectors at steps 1..horizon: [C, n, D], [C, F, D] -> [C, horizon].

    ``compare(predicted, truth)`` gets [C, H' + 1, D] unit vectors (step 0 first) and gives
    [C, H'] values. NaN where the clip has no frame h or the rollout has no step h.
    """
    out = torch.full((predicted.shape[0], horizon), float("nan"), dtype=torch.float64)
    usable = min(horizon, predicted.shape[1] - 1, truth.shape[1] - 1)
    if usable < 1:
        return out
    values = compare(unit(predicted[:, : usable + 1]), unit(truth[:, : usable + 1]))  # [C, H']
    steps = torch.arange(1, usable + 1)  # [H']
    valid = steps.unsqueeze(0) < n_truth.unsqueeze(1)  # [C, H']
    out[:, :usable] = torch.where(valid, values, torch.full_like(values, float("nan")))
    return out


def cos_at_h(predicted: Tensor, truth: Tensor, n_truth: Tensor, horizon: int) -> Tensor:
    """[C, n, D] rollouts vs [C, F, D] true frames (valid up to n_truth [C]) -> [C, horizon].

    Column h - 1 holds the cosine at step h; NaN where the clip has no frame h or the
    rollout has no step h.
    """
    return per_step(
        predicted, truth, n_truth, horizon, lambda p, t: (p[:, 1:] * t[:, 1:]).sum(dim=-1)
    )


MOTION_FLOOR = -1.0  # motion scores below this (worse than moving the opposite way) clip here


def motion_at_h(predicted: Tensor, truth: Tensor, n_truth: Tensor, horizon: int) -> Tensor:
    """[C, n, D] rollouts vs [C, F, D] true frames -> [C, horizon] motion scores.

    Motion is measured after the first step (the jump from the start, e.g. the prior, to
    the first frame is not motion): with ``d_h = unit(e_h) - unit(e_1)`` the true change
    since step 1 and ``p_h`` the predicted one, column h - 1 holds
    ``1 - |p_h - d_h|^2 / |d_h|^2``: 1 for the true motion, 0 for standing still after the
    first step, below 0 for moving the wrong way (floored at -1). NaN at h = 1, where
    nothing has moved yet, and where the clip has no frame h.
    """

    def explained(p: Tensor, t: Tensor) -> Tensor:
        predicted_change = p[:, 1:] - p[:, 1:2]  # [C, H', D], zero at h = 1
        true_change = t[:, 1:] - t[:, 1:2]
        error = ((predicted_change - true_change) ** 2).sum(dim=-1)
        size = (true_change**2).sum(dim=-1)
        value = (1 - error / size.clamp(min=1e-12)).clamp(min=MOTION_FLOOR)
        return torch.where(size > 0, value, torch.full_like(value, float("nan")))

    return per_step(predicted, truth, n_truth, horizon, explained)


def motion_mean(predicted: Tensor, truth: Tensor, n_truth: Tensor, horizon: int) -> Tensor:
    """[C] the motion score over steps 2..horizon at once: 1 - sum |p_h - d_h|^2 / sum |d_h|^2
    (``motion_at_h``'s terms pooled, so steps with more motion count more)."""

    def pooled(p: Tensor, t: Tensor) -> Tensor:
        predicted_change = p[:, 1:] - p[:, 1:2]
        true_change = t[:, 1:] - t[:, 1:2]
        return torch.stack(
            [((predicted_change - true_change) ** 2).sum(-1), (true_change**2).sum(-1)], -1
        )  # [C, H', 2]

    count = predicted.shape[0]
    usable = min(horizon, predicted.shape[1] - 1, truth.shape[1] - 1)
    terms = pooled(unit(predicted[:, : usable + 1]), unit(truth[:, : usable + 1]))
    steps = torch.arange(1, usable + 1)
    valid = (steps.unsqueeze(0) < n_truth.unsqueeze(1)).unsqueeze(-1)  # [C, H', 1]
    error, size = (terms * valid).sum(dim=1).unbind(-1)  # [C] each
    value = (1 - error / size.clamp(min=1e-12)).clamp(min=MOTION_FLOOR)
    return torch.where(size > 0, value, torch.full((count,), float("nan"), dtype=value.dtype))


def truth_cosine(frames: Tensor, truth: Tensor, n_truth: Tensor) -> Tensor:
    """Mean cosine of frame i with true frame i over the aligned frames: [C, n, D] -> [C]."""
    aligned = min(frames.shape[1], truth.shape[1])
    cos = (unit(frames[:, :aligned]) * unit(truth[:, :aligned])).sum(dim=-1)  # [C, aligned]
    valid = (torch.arange(aligned).unsqueeze(0) < n_truth.unsqueeze(1)).double()
    return (cos * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)


def frame_consistency(frames: Tensor) -> Tensor:
    """Mean cosine over all pairs i != j of one video's frames: [C, n, D] -> [C]."""
    count = frames.shape[1]
    if count < 2:
        raise ValueError(f"frame consistency needs at least 2 frames per video, got {count}")
    normed = unit(frames)
    gram = normed @ normed.transpose(1, 2)  # [C, n, n]
    off_diagonal = gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(dim=1)
    return off_diagonal / (count * (count - 1))


def text_frame_similarity(text_embed: Tensor, frames: Tensor) -> Tensor:
    """Mean cosine between each caption [C, D] and its video's frames [C, n, D] -> [C]."""
    return (unit(frames) * unit(text_embed).unsqueeze(1)).sum(dim=-1).mean(dim=1)


@dataclass(frozen=True)
class Summary:
    mean: float
    ci_low: float
    ci_high: float
    n: int  # clips with a value


@functools.cache
def clopper_pearson(successes: int, count: int, confidence: float) -> tuple[float, float]:
    """The exact binomial interval of ``successes`` of ``count`` (``count`` >= 1)."""
    interval = binomtest(successes, count).proportion_ci(
        confidence_level=confidence, method="exact"
    )
    return float(interval.low), float(interval.high)


BOOTSTRAP_BATCH = 256  # series bootstrapped in one matrix product ([batch, C] x [C, R])


def bootstrap_means(series: Tensor, resamples: int, seed: int) -> Tensor:
    """[K, C] finite series of C clips -> [K, R] means of R resamples of the clips.

    A fresh generator per call draws the resamples ([R, C] indices, as counts of each clip
    per resample), so an interval depends only on its own values, the clip count and the
    seed, and series of the same clips share their resamples (one matrix product)."""
    count = series.shape[1]
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(count, (resamples, count), generator=generator)  # [R, C]
    weights = torch.zeros(resamples, count, dtype=torch.float64)
    weights.scatter_add_(1, picks, torch.ones_like(picks, dtype=torch.float64))  # [R, C]
    return series @ weights.T / count  # [K, R]


def summarize_many(
    series: dict[str, Tensor],
    resamples: int,
    confidence: float,
    seed: int,
    proportions: frozenset[str] = frozenset(),
) -> dict[str, Summary]:
    """``summarize`` of every [C] tensor of ``series``; the keys in ``proportions`` are
    0/1 values and get the exact Clopper-Pearson interval. Series with the same finite
    clips are bootstrapped together, ``BOOTSTRAP_BATCH`` at a time."""
    nan = float("nan")
    out: dict[str, Summary] = {}
    groups: dict[bytes, list[str]] = {}
    tail = (1 - confidence) / 2
    levels = torch.tensor([tail, 1 - tail], dtype=torch.float64)
    for key, values in series.items():
        finite = values.double()[torch.isfinite(values)]
        count = int(finite.numel())
        if count == 0:
            out[key] = Summary(mean=nan, ci_low=nan, ci_high=nan, n=0)
        elif key in proportions:
            if not bool(((finite == 0) | (finite == 1)).all()):
                raise ValueError(f"{key}: a proportion needs values 0 or 1, found {finite[:5]}")
            low, high = clopper_pearson(int(finite.sum()), count, confidence)
            out[key] = Summary(mean=float(finite.mean()), ci_low=low, ci_high=high, n=count)
        else:
            groups.setdefault(torch.isfinite(values).numpy().tobytes(), []).append(key)
    for keys in groups.values():
        for first in range(0, len(keys), BOOTSTRAP_BATCH):
            batch = keys[first : first + BOOTSTRAP_BATCH]
            rows = torch.stack([series[k].double() for k in batch])  # [K, C]
            rows = rows[:, torch.isfinite(rows[0])]  # [K, C'] the clips with values
            means = bootstrap_means(rows, resamples, seed)  # [K, R]
            lows, highs = torch.quantile(means, levels, dim=1)  # [K] each
            for key, values, low, high in zip(batch, rows, lows, highs, strict=True):
                mean = float(values.mean())
                # The percentile interval of a tiny sample can miss its mean by rounding.
                out[key] = Summary(
                    mean=mean,
                    ci_low=min(float(low), mean),
                    ci_high=max(float(high), mean),
                    n=int(values.numel()),
                )
    return {key: out[key] for key in series}


def summarize(
    values: Tensor, resamples: int, confidence: float, seed: int, proportion: bool = False
) -> Summary:
    """Mean of the finite ``values`` [C] and its interval: the percentile bootstrap, or with
    ``proportion`` (values 0 or 1) the exact Clopper-Pearson interval."""
    proportions = frozenset({"values"}) if proportion else frozenset()
    return summarize_many({"values": values}, resamples, confidence, seed, proportions)["values"]


PerClip = dict[str, Tensor]  # metric key -> [C] one value per held-out clip, NaN where n/a
REFERENCE = "splitter"  # every other method is compared with it, clip by clip
MIN_CLIPS_FOR_INTERVAL = 3  # fewer clips give no interval at all
FEW_CLIPS = 10  # fewer clips give intervals too crude to lean on (the summary says so)
PROPORTIONS = ("direction_acc", "direction_acc_45", "dynamic")  # per-clip 0/1 metrics


def embedding_scores(
    predictions: dict[tuple[str, ...], Tensor], truth: Tensor, n_truth: Tensor, horizon: int
) -> PerClip:
    """cos@h, cos_mean, motion@h (h >= 2) and motion_mean of every rollout (M, R) -> [C, n, D]."""
    if int(n_truth.max()) - 1 < horizon:
        raise UserError(
            f"evaluate.horizon is {horizon} but the longest held-out clip has only "
            f"{int(n_truth.max())} frames (steps 1..{int(n_truth.max()) - 1}); "
            "lower evaluate.horizon"
        )
    scores: PerClip = {}
    for (method, kind), rolled in predictions.items():
        if rolled.shape[1] - 1 < horizon:
            raise UserError(
                f"evaluate.horizon is {horizon} but generate.n_frames gives steps "
                f"1..{rolled.shape[1] - 1}; raise generate.n_frames or lower evaluate.horizon"
            )
        name = f"{method}.{kind}"
        cosines = cos_at_h(rolled, truth, n_truth, horizon)  # [C, H]
        motion = motion_at_h(rolled, truth, n_truth, horizon)  # [C, H]
        for h in range(1, horizon + 1):
            scores[f"{name}.cos@{h}"] = cosines[:, h - 1]
            if h >= 2:
                scores[f"{name}.motion@{h}"] = motion[:, h - 1]
        scores[f"{name}.cos_mean"] = cosines.nanmean(dim=1)
        scores[f"{name}.motion_mean"] = motion_mean(rolled, truth, n_truth, horizon)
    return scores


def decoded_embedding_scores(
    decoded: dict[tuple[str, ...], Tensor],
    truth: Tensor,
    n_truth: Tensor,
    text_embed: Tensor,
    rows: Tensor,
) -> PerClip:
    """Re-encoded decoded frames (M, R, X) -> [len(rows), n, D] of the clips at ``rows``:
    truth_cos, consistency and text_sim, as [C] with NaN for clips not decoded."""
    count = truth.shape[0]
    scores: PerClip = {}

    def spread(values: Tensor) -> Tensor:
        out = torch.full((count,), float("nan"), dtype=torch.float64)
        out[rows] = values.double()
        return out

    for (method, kind, decoder), frames in decoded.items():
        name = f"{method}.{kind}.{decoder}"
        scores[f"{name}.truth_cos"] = spread(truth_cosine(frames, truth[rows], n_truth[rows]))
        scores[f"{name}.consistency"] = spread(frame_consistency(frames))
        scores[f"{name}.text_sim"] = spread(text_frame_similarity(text_embed[rows], frames))
    return scores


def summarize_scores(per_clip: PerClip, params: EvaluateParams) -> dict[str, float]:
    """Mean of every per-clip metric with its bootstrap interval (from 3 clips up) and, for
    every method against the splitter, the paired difference ``splitter-M.<metric>`` (the
    same resampled clips for both: the bootstrap of the per-clip differences). A proportion
    (``PROPORTIONS``) gets the exact binomial interval; its paired difference, not a
    proportion, the bootstrap."""
    series = dict(per_clip)
    prefix = f"{REFERENCE}."
    for key, values in per_clip.items():
        method, _, metric = key.partition(".")
        if method != REFERENCE and f"{prefix}{metric}" in per_clip:
            series[f"{REFERENCE}-{key}"] = per_clip[f"{prefix}{metric}"] - values  # NaN if either
    proportions = frozenset(key for key in per_clip if key.rsplit(".", 1)[-1] in PROPORTIONS)
    summaries = summarize_many(
        series, params.bootstrap, params.confidence, params.seed, proportions
    )
    metrics: dict[str, float] = {}
    for key, summary in summaries.items():
        metrics[key] = summary.mean
        metrics[f"{key}.n"] = float(summary.n)
        if summary.n >= MIN_CLIPS_FOR_INTERVAL:
            metrics[f"{key}.ci_low"] = summary.ci_low
            metrics[f"{key}.ci_high"] = summary.ci_high
    return metrics


def curves_of(metrics: dict[str, float], horizon: int) -> dict[str, list[float]]:
    """ "M.R" -> [cos@1 .. cos@H] means, for the cos_at_h plot."""
    names = sorted(
        {
            key.rsplit(".", 1)[0]
            for key in metrics
            if key.endswith(".cos@1") and not key.startswith(f"{REFERENCE}-")
        }
    )
    return {name: [metrics[f"{name}.cos@{h}"] for h in range(1, horizon + 1)] for name in names}


HEADLINE_LIMIT = 40  # keys of metrics/evaluate.json, so that dvc exp show fits a terminal
# The reference's own figures: headline key -> full key ({X}: the scoring decoder).
REFERENCE_FIGURES = {
    f"{REFERENCE}.chain.cos_mean": f"{REFERENCE}.chain.cos_mean",
    f"{REFERENCE}.step.motion_mean": f"{REFERENCE}.step.motion_mean",
    f"{REFERENCE}.chain.motion_mean": f"{REFERENCE}.chain.motion_mean",
    **{
        f"{REFERENCE}.step.{metric}": f"{REFERENCE}.step.{{X}}.{metric}"
        for metric in (
            "factor_motion",
            "direction_acc",
            "direction_acc_45",
            "displacement_err",
            "size_change_err",
            "centroid_err",
            "psnr",
        )
    },
    "truth.psnr": "truth.step.{X}.psnr",
    "truth.centroid_err": "truth.step.{X}.centroid_err",
}
# Paired advantages (higher is better) whose lowest lower bound over the baselines is shown:
# headline name -> the metric after "splitter-M.".
PAIRED_BOUNDS = {
    "step.cos_mean": "step.cos_mean",
    "chain.cos_mean": "chain.cos_mean",
    "step.motion_mean": "step.motion_mean",
    "step.factor_motion": "step.{X}.factor_motion",
    "step.direction_acc": "step.{X}.direction_acc",
}
PRIVILEGED_BOUNDS = ("step.cos_mean", "step.factor_motion")


def lowest_paired_low(metrics: dict[str, float], metric: str, methods: list[str]) -> float | None:
    """The lowest ``ci_low`` of ``splitter-M.<metric>`` over ``methods`` that have one."""
    lows = [
        metrics[key]
        for method in methods
        if (key := f"{REFERENCE}-{method}.{metric}.ci_low") in metrics
    ]
    return min(lows) if lows else None


def headline(
    metrics: dict[str, float], decoder: str, methods: list[str], privileged: set[str]
) -> dict[str, float]:
    """The numbers of ``metrics/evaluate.json``, at most ``HEADLINE_LIMIT`` whatever the
    number of methods (everything else, per class, interval and step, stays in the full
    file): the clip count; the splitter's own figures (``REFERENCE_FIGURES``, pictures
    decoded by ``decoder``) and the decoder's ceiling on the true embeddings; for each of
    ``PAIRED_BOUNDS`` the lowest lower bound of the splitter's paired advantage over every
    baseline that is not ``privileged`` (``.worst_paired_low``, above 0: it beats them
    all) and, for ``PRIVILEGED_BOUNDS``, the same over the privileged ones
    (``.privileged_paired_low``); then one figure per method of ``methods`` (the splitter
    first, then in their order), the step rollout's mean cosine, as long as the limit
    allows (a method past it is in the full file only)."""
    top = {"n_clips": metrics["n_clips"]}
    for name, key in REFERENCE_FIGURES.items():
        top[name] = metrics.get(key.format(X=decoder))
    others = [m for m in methods if m != REFERENCE]
    fair = [m for m in others if m not in privileged]
    unfair = [m for m in others if m in privileged]
    for name, metric in PAIRED_BOUNDS.items():
        top[f"{REFERENCE}.{name}.worst_paired_low"] = lowest_paired_low(
            metrics, metric.format(X=decoder), fair
        )
    for name in PRIVILEGED_BOUNDS:
        top[f"{REFERENCE}.{name}.privileged_paired_low"] = lowest_paired_low(
            metrics, PAIRED_BOUNDS[name].format(X=decoder), unfair
        )
    top = {key: value for key, value in top.items() if value is not None}
    for method in sorted(methods, key=lambda name: name != REFERENCE):  # the splitter first
        value = metrics.get(f"{method}.step.cos_mean")
        if value is not None and len(top) < HEADLINE_LIMIT:
            top[f"{method}.step.cos_mean"] = value
    return top
