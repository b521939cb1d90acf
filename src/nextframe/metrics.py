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
  clips with replacement), seeded so the same inputs give the same interval.
- ``score``: all of the above for every method and rollout, as the flat keys of
  ``metrics/evaluate_full.json``; ``headline`` picks the few that ``metrics/evaluate.json``
  (what ``dvc exp show`` and ``dvc metrics diff`` print) holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
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


def motion_at_h(predicted: Tensor, truth: Tensor, n_truth: Tensor, horizon: int) -> Tensor:
    """[C, n, D] rollouts vs [C, F, D] true frames -> [C, horizon] motion cosines.

    Column h - 1 holds cos(unit(p_h) - unit(p_0), unit(e_h) - unit(e_0)); a rollout that
    does not move has a zero motion and scores 0; NaN where there is no step or frame h.
    """

    def motion_cosine(p: Tensor, t: Tensor) -> Tensor:
        return (unit(p[:, 1:] - p[:, :1]) * unit(t[:, 1:] - t[:, :1])).sum(dim=-1)

    return per_step(predicted, truth, n_truth, horizon, motion_cosine)


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


def summarize(values: Tensor, resamples: int, confidence: float, seed: int) -> Summary:
    """Mean of the finite ``values`` [C] and its percentile bootstrap interval.

    All resamples are drawn at once ([resamples, C] indices); a fresh generator per call
    makes each interval depend only on its own values and the seed.
    """
    finite = values.double()[torch.isfinite(values)]
    count = int(finite.numel())
    if count == 0:
        nan = float("nan")
        return Summary(mean=nan, ci_low=nan, ci_high=nan, n=0)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(count, (resamples, count), generator=generator)  # [R, C]
    means = finite[picks].mean(dim=1)  # [R]
    tail = (1 - confidence) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    mean = float(finite.mean())
    # The percentile interval of a tiny sample can miss its own mean by rounding; widen to it.
    return Summary(mean=mean, ci_low=min(float(low), mean), ci_high=max(float(high), mean), n=count)


def _add(metrics: dict[str, float], key: str, values: Tensor, params: EvaluateParams) -> None:
    summary = summarize(values, params.bootstrap, params.confidence, params.seed)
    metrics[key] = summary.mean
    metrics[f"{key}.ci_low"] = summary.ci_low
    metrics[f"{key}.ci_high"] = summary.ci_high


@dataclass(frozen=True)
class Scores:
    metrics: dict[str, float]  # every key of the module docstring, with intervals
    curves: dict[str, list[float]]  # "M.R" -> cos@1..H


def score(
    predictions: dict[tuple[str, ...], Tensor],
    decoded: dict[tuple[str, ...], Tensor],
    truth: Tensor,
    n_truth: Tensor,
    text_embed: Tensor,
    params: EvaluateParams,
    decoded_rows: Tensor | None = None,
) -> Scores:
    """All metrics of the module docstring from tensors: predictions (M, R) -> [C, n, D].

    ``decoded`` holds only the clips at ``decoded_rows`` of the C clips (default: all).
    """
    horizon = params.horizon
    if int(n_truth.max()) - 1 < horizon:
        raise UserError(
            f"evaluate.horizon is {horizon} but the longest held-out clip has only "
            f"{int(n_truth.max())} frames (steps 1..{int(n_truth.max()) - 1}); "
            "lower evaluate.horizon"
        )
    metrics: dict[str, float] = {"n_clips": float(truth.shape[0])}
    curves: dict[str, list[float]] = {}
    for (method, kind), rolled in predictions.items():
        if rolled.shape[1] - 1 < horizon:
            raise UserError(
                f"evaluate.horizon is {horizon} but generate.n_frames gives steps "
                f"1..{rolled.shape[1] - 1}; raise generate.n_frames or lower evaluate.horizon"
            )
        per_clip = cos_at_h(rolled, truth, n_truth, horizon)  # [C, H]
        name = f"{method}.{kind}"
        for h in range(1, horizon + 1):
            _add(metrics, f"{name}.cos@{h}", per_clip[:, h - 1], params)
        curves[name] = [metrics[f"{name}.cos@{h}"] for h in range(1, horizon + 1)]
        _add(metrics, f"{name}.cos_mean", per_clip.nanmean(dim=1), params)
        motion = motion_at_h(rolled, truth, n_truth, horizon)  # [C, H]
        for h in range(1, horizon + 1):
            _add(metrics, f"{name}.motion@{h}", motion[:, h - 1], params)
        _add(metrics, f"{name}.motion_mean", motion.nanmean(dim=1), params)
    rows = torch.arange(truth.shape[0]) if decoded_rows is None else decoded_rows
    if decoded:
        metrics["n_decoded_clips"] = float(len(rows))
    for (method, kind, decoder), frames in decoded.items():
        name = f"{method}.{kind}.{decoder}"
        _add(metrics, f"{name}.truth_cos", truth_cosine(frames, truth[rows], n_truth[rows]), params)
        _add(metrics, f"{name}.consistency", frame_consistency(frames), params)
        _add(metrics, f"{name}.text_sim", text_frame_similarity(text_embed[rows], frames), params)
    return Scores(metrics=metrics, curves=curves)


HEADLINE_ROLLOUT_KEYS = ("step.cos_mean", "chain.cos_mean", "step.motion_mean")


def headline(metrics: dict[str, float]) -> dict[str, float]:
    """The few numbers of ``metrics/evaluate.json``: clip counts, and per method the mean
    cosine over the horizon of both rollouts, the step rollout's motion and its decoded
    frames' cosine to the truth (every interval stays in the full file)."""
    methods = sorted({key.split(".")[0] for key in metrics if key.endswith(".cos_mean")})
    wanted = ["n_clips", "n_decoded_clips"]
    for method in methods:
        wanted += [f"{method}.{key}" for key in HEADLINE_ROLLOUT_KEYS]
        wanted += [
            key
            for key in metrics
            if key.startswith(f"{method}.step.") and key.endswith(".truth_cos")
        ]
    return {key: metrics[key] for key in wanted if key in metrics}
