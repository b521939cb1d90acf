"""Frechet Video Distance: I3D features of two sets of clips, and the Frechet distance
between the Gaussians fitted to them.

The feature network is the Kinetics-400 I3D as a TorchScript file, the one StyleGAN-V's
``metrics/frechet_video_distance.py`` and most FVD code since load
(``i3d_torchscript.pt``, a port of the TF-Hub I3D of the original FVD paper, Unterthiner
et al. 2018; StyleGAN-V downloads it from
https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt). It is not shipped here: the
user downloads it and points ``evaluate.fvd.weights`` at it. It is called as those codes
call it, ``detector(videos, rescale=True, resize=True, return_features=True)`` with videos
``[B, 3, T, H, W]`` float in 0..255; it rescales to -1..1, resizes to 224 px itself and
returns the 400 logits before the softmax, ``[B, 400]``.

The distance between N(mu1, S1) and N(mu2, S2) is
``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)``. The trace of the
square root is computed from the eigenvalues of the symmetric positive semi-definite
``S1^1/2 S2 S1^1/2`` (negative rounding clipped to 0), not with ``scipy.linalg.sqrtm`` of
the non-symmetric ``S1 S2`` that common FVD code uses: that is where its complex parts and
values like -7.6e11 come from when the covariances are singular.

Sample covariances of N clips have rank at most N - 1: with N <= F features (31 clips
against 400 I3D features in the seed author's protocol) they are singular and the distance
mostly measures how few clips there were. ``frechet_distance`` then refuses, naming the
minimum (F + 1 clips per set), unless a ``shrinkage`` a in (0, 1] is given: both
covariances become ``(1 - a) S + a (tr S / F) I`` (shrinkage toward the scaled identity, as
in Ledoit and Wolf 2004, with a fixed a). A regularised FVD is comparable only with FVDs
regularised the same way on the same number of clips.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from nextframe.errors import UserError

NEGATIVE_TOLERANCE = 1e-9  # relative to the traces: rounding below this is clipped to 0


@dataclass(frozen=True)
class Gaussian:
    mean: np.ndarray  # [F] float64
    covariance: np.ndarray  # [F, F] float64


def fit_gaussian(features: np.ndarray, shrinkage: float = 0.0) -> Gaussian:
    """Mean and (shrunk) sample covariance of ``features`` [N, F]."""
    values = np.asarray(features, dtype=np.float64)
    covariance = np.cov(values, rowvar=False).reshape(values.shape[1], values.shape[1])
    if shrinkage > 0:
        dims = covariance.shape[0]
        target = np.trace(covariance) / dims * np.eye(dims)
        covariance = (1 - shrinkage) * covariance + shrinkage * target
    return Gaussian(values.mean(axis=0), covariance)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding -> 0)."""
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def gaussian_distance(first: Gaussian, second: Gaussian) -> float:
    """The Frechet (2-Wasserstein squared) distance between two Gaussians, >= 0."""
    root = _psd_sqrt(first.covariance)
    inner = root @ second.covariance @ root  # symmetric PSD, same trace-sqrt as S1 S2
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())
    traces = float(np.trace(first.covariance) + np.trace(second.covariance))
    shift = float(((first.mean - second.mean) ** 2).sum())
    distance = shift + traces - 2 * trace_sqrt
    scale = max(traces + shift, 1e-300)
    if distance < -NEGATIVE_TOLERANCE * scale:
        raise ValueError(f"Frechet distance came out negative ({distance:g}); inputs not PSD?")
    return max(distance, 0.0)


def frechet_distance(real: np.ndarray, generated: np.ndarray, shrinkage: float = 0.0) -> float:
    """FVD of two feature sets [N, F] of the same N clips (see the module doc for the rule
    on N <= F)."""
    if real.ndim != 2 or real.shape != generated.shape:
        raise UserError(
            f"FVD compares feature sets of the same shape [clips, features]: found real "
            f"{tuple(real.shape)} and generated {tuple(generated.shape)}"
        )
    count, dims = real.shape
    if count < 2:
        raise UserError(f"FVD needs at least 2 clips per set, found {count}")
    if count <= dims and shrinkage <= 0:
        raise UserError(
            f"FVD: {count} clips give singular covariances of {dims} features; it needs at "
            f"least {dims + 1} clips per set. Score more clips (generate.max_clips, "
            "evaluate.fvd.n_samples) or set evaluate.fvd.shrinkage (e.g. 0.1) to regularise "
            "(docs/protocols.md: comparable only with FVDs shrunk the same way)"
        )
    if not (np.isfinite(real).all() and np.isfinite(generated).all()):
        raise UserError("FVD: the I3D features are not all finite; check evaluate.fvd.weights")
    return gaussian_distance(fit_gaussian(real, shrinkage), fit_gaussian(generated, shrinkage))


def load_i3d(path: str | Path, device: torch.device) -> torch.jit.ScriptModule:
    """The TorchScript I3D at ``path`` (``evaluate.fvd.weights``), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"evaluate.fvd.weights: {path} not found; download i3d_torchscript.pt (the "
            "StyleGAN-V / common FVD I3D, see docs/protocols.md) and point the param at it, "
            "or set evaluate.fvd.enabled: false"
        )
    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the file is one
            warnings.simplefilter("ignore", DeprecationWarning)
            detector = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise UserError(
            f"evaluate.fvd.weights: {path} is not a TorchScript file ({exc}); expected "
            "i3d_torchscript.pt"
        ) from None
    return detector.eval()


def sample_frames(length: int, count: int, sampling: str) -> np.ndarray:
    """Indices of ``count`` frames of a ``length``-frame video: the first ones, or evenly
    spaced over the whole video (first and last included)."""
    if count > length:
        raise UserError(
            f"evaluate.fvd: clips of {count} frames requested (clip_length / lengths) but the "
            f"videos have {length}; lower evaluate.fvd.clip_length or raise generate.n_frames"
        )
    if sampling == "first":
        return np.arange(count)
    return np.round(np.linspace(0, length - 1, count)).astype(np.int64)


def i3d_features(
    detector: torch.jit.ScriptModule,
    videos: np.ndarray,
    size: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """[N, T, H, W, 3] uint8 clips -> [N, F] I3D features, frames resized to ``size`` px."""
    features = []
    with torch.no_grad():
        for start in range(0, len(videos), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(videos[start : start + batch_size]))
            clips, frames = batch.shape[:2]
            pictures = batch.to(device).flatten(0, 1).permute(0, 3, 1, 2).float()  # [B T, 3, H, W]
            if pictures.shape[-2:] != (size, size):
                pictures = F.interpolate(pictures, size=(size, size), mode="bilinear")
            pictures = pictures.clamp(0, 255).reshape(clips, frames, 3, size, size)
            stacked = pictures.permute(0, 2, 1, 3, 4).contiguous()  # [B, 3, T, S, S]
            out = detector(stacked, rescale=True, resize=True, return_features=True)
            if out.ndim != 2 or out.shape[0] != clips:
                raise UserError(
                    f"evaluate.fvd.weights: the detector returned shape {tuple(out.shape)}, "
                    f"expected [{clips}, features]; is it i3d_torchscript.pt?"
                )
            features.append(out.double().cpu().numpy())
    return np.concatenate(features)


def spread(values: list[float]) -> float:
    """Population standard deviation (0 for one value): the '+-' of the seed's table."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / len(values))
