"""The field's video metrics in the evaluate stage: optical-flow motion (no weights) and
FVD (with the user's I3D), for every decoded method, rollout and decoder beside the real
frames' own values.

Keys (``M.R.X`` a method, rollout and decoder as in ``pipeline/evaluate.py``):

- per clip, summarised over clips with intervals and paired differences like every other
  per-clip score: ``M.R.X.flow_mag``, ``.dynamic`` (its mean over clips is the dynamic
  degree), ``.warp_err``, ``.flicker`` (``flow_metrics.py`` defines them), over steps
  1..H as the picture metrics are; ``real.<metric>`` the same for the clips' true frames.
- per set (one number for all clips, no interval): ``M.R.X.fvd`` against the true frames'
  clips, its ``.n`` (clips per set), and with ``evaluate.fvd.lengths`` ``M.R.X.fvd@L`` per
  length and ``M.R.X.fvd.spread`` (their population standard deviation; ``fvd`` is then
  their mean). FVD is comparable only across the same I3D file, clip count, clip length,
  frame sampling, resolution and shrinkage (docs/protocols.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nextframe.config import EvaluateParams, FvdParams
from nextframe.device import resolve_device
from nextframe.errors import UserError
from nextframe.flow_metrics import videos_flow_scores
from nextframe.fvd import frechet_distance, i3d_features, load_i3d, sample_frames, spread

REAL = "real"  # the key prefix of the true frames' own scores


@dataclass
class FieldScores:
    per_clip: dict[str, np.ndarray] = field(default_factory=dict)  # key -> [Cd]
    per_set: dict[str, float] = field(default_factory=dict)  # key -> one value


def scored_steps(video: np.ndarray, true: np.ndarray, horizon: int) -> slice:
    """Steps 1..H, H = min(horizon, K - 1, n - 1): what the picture metrics score."""
    return slice(1, min(horizon, len(true) - 1, len(video) - 1) + 1)


def flow_keys(
    videos: dict[tuple[str, ...], np.ndarray],
    true_frames: list[np.ndarray],
    horizon: int,
    fps: float,
    top_fraction: float,
) -> dict[str, np.ndarray]:
    """Flow scores of every (M, R, X) -> [Cd, n, S, S, 3] and of the true frames."""
    if horizon < 2:
        raise UserError(
            f"evaluate.flow needs two scored steps (evaluate.horizon >= 2), found horizon "
            f"{horizon}; raise it or set evaluate.flow.enabled: false"
        )
    scores: dict[str, np.ndarray] = {}
    first = next(iter(videos.values()))
    real = [
        true[scored_steps(video, true, horizon)]
        for video, true in zip(first, true_frames, strict=True)
    ]
    for name, values in videos_flow_scores(real, fps, top_fraction).items():
        scores[f"{REAL}.{name}"] = values
    for (method, kind, decoder), decoded in videos.items():
        clips = [
            video[scored_steps(video, true, horizon)]
            for video, true in zip(decoded, true_frames, strict=True)
        ]
        for name, values in videos_flow_scores(clips, fps, top_fraction).items():
            scores[f"{method}.{kind}.{decoder}.{name}"] = values
    return scores


def clips_for_fvd(videos: list[np.ndarray] | np.ndarray, settings: FvdParams) -> np.ndarray:
    """The first n_samples videos, each cut to clip_length sampled frames: [N, T, S, S, 3]."""
    wanted = settings.resolved("n_samples") or len(videos)
    if wanted > len(videos):
        raise UserError(
            f"evaluate.fvd.n_samples is {wanted} but only {len(videos)} decoded test clips "
            "exist; lower it (0: all) or score more clips (generate.max_clips, decode_clips)"
        )
    length = settings.resolved("clip_length")
    sampling = settings.resolved("sampling")
    return np.stack(
        [video[sample_frames(len(video), length, sampling)] for video in videos[:wanted]]
    )


def fvd_keys(
    videos: dict[tuple[str, ...], np.ndarray], true_frames: list[np.ndarray], settings: FvdParams
) -> dict[str, float]:
    """FVD of every (M, R, X) against the true frames' clips (the module doc's keys)."""
    device = resolve_device(settings.device)
    detector = load_i3d(settings.weights, device)
    size, batch = settings.resolved("size"), settings.batch_size
    lengths = settings.resolved("lengths") or [settings.resolved("clip_length")]
    real = clips_for_fvd(true_frames, settings)  # [N, T, S, S, 3]
    real_features = {n: i3d_features(detector, real[:, :n], size, batch, device) for n in lengths}
    scores: dict[str, float] = {}
    for (method, kind, decoder), decoded in videos.items():
        name = f"{method}.{kind}.{decoder}.fvd"
        generated = clips_for_fvd(decoded, settings)
        values = []
        for n in lengths:
            features = i3d_features(detector, generated[:, :n], size, batch, device)
            values.append(frechet_distance(real_features[n], features, settings.shrinkage))
            if settings.resolved("lengths"):
                scores[f"{name}@{n}"] = values[-1]
        scores[name] = float(np.mean(values))
        scores[f"{name}.n"] = float(len(real))
        if len(values) > 1:
            scores[f"{name}.spread"] = spread(values)
    return scores


def field_scores(
    videos: dict[tuple[str, ...], np.ndarray],
    true_frames: list[np.ndarray],
    settings: EvaluateParams,
    fps: float,
) -> FieldScores:
    """Flow (per clip) and FVD (per set) scores of the decoded videos, as enabled.

    ``videos``: (M, R, X) -> [Cd, n, S, S, 3] uint8; ``true_frames[c]``: clip c's true frames
    [K, S, S, 3]; ``fps``: the rate the videos are shown at (``generate.fps``).
    """
    scores = FieldScores()
    if not videos:
        return scores
    if settings.flow.enabled:
        scores.per_clip = flow_keys(
            videos, true_frames, settings.horizon, fps, settings.flow.top_fraction
        )
    if settings.fvd.enabled:
        scores.per_set = fvd_keys(videos, true_frames, settings.fvd)
    return scores
