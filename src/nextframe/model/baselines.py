"""Baselines with the splitter's interface, so every method is generated and scored alike.

None of them models motion from the caption, which is what the splitter must beat:

- ``copy_start``: the start embedding for every frame (stand still: the text-to-image answer).
- ``mean_frame``: the mean training frame for every frame: knows neither text nor time.
- ``nearest_clip``: replays, in time, the true frames of the training clip whose caption is
  nearest (cosine of the CLIP text embeddings): a retrieval text-to-video. It finds where
  the start sits in that clip (its nearest frame) and moves ``rise`` of the clip's span on
  from there, interpolating between the frames around that moment; so a step rollout from
  the prior replays the clip from its start, and a chain rollout keeps replaying it.
- ``linear``: ``start + rise * m``, ``m`` the mean motion per unit rise on the training
  split (the least-squares fit of ``e_k - e_0 = r_k m`` over every training frame).
- ``slerp``: rotates ``start`` by ``rise * omega`` in the plane of ``start`` and
  ``start + m`` (norm kept), ``omega`` the least-squares fit of ``angle(e_0, e_k) = r_k omega``.

Fitting needs no gradient. Saved as ``baselines.safetensors`` (the fitted tensors) and
``baselines.json`` (what they are), no pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.nn import functional as F

from nextframe.model import rotation
from nextframe.store import atomic_path

WEIGHTS_FILE = "baselines.safetensors"
CONFIG_FILE = "baselines.json"
NAMES = ("copy_start", "mean_frame", "nearest_clip", "linear", "slerp")


@dataclass(frozen=True)
class CopyStart:
    name: str = "copy_start"

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        return start.clone()

    def to(self, device: str | torch.device) -> CopyStart:
        return self


@dataclass(frozen=True)
class MeanFrame:
    mean: Tensor  # [D] mean of every training frame
    name: str = "mean_frame"

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        return self.mean.to(start.device, start.dtype).expand_as(start).clone()

    def to(self, device: str | torch.device) -> MeanFrame:
        return MeanFrame(mean=self.mean.to(device))


@dataclass(frozen=True)
class NearestClip:
    captions: Tensor  # [N, D] unit text embeddings of the training clips
    frames: Tensor  # [N, F, D] their frames, padded
    rises: Tensor  # [N, F] each frame's time as a fraction of the clip's span (padding: 1)
    n_frames: Tensor  # [N] int64
    name: str = "nearest_clip"

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        device, dtype = start.device, start.dtype
        clip = (F.normalize(text_embed.to(device, dtype), dim=-1) @ self.captions.T).argmax(1)
        frames = self.frames[clip].to(dtype)  # [B, F, D]
        rises = self.rises[clip].to(dtype)  # [B, F]
        valid = torch.arange(frames.shape[1], device=device) < self.n_frames[clip].unsqueeze(1)
        similarity = F.normalize(frames, dim=-1) @ F.normalize(start, dim=-1).unsqueeze(-1)
        similarity = similarity.squeeze(-1).masked_fill(~valid, -2.0)  # [B, F]
        here = rises.gather(1, similarity.argmax(1, keepdim=True)).squeeze(1)  # [B]
        moment = (here + rise.to(dtype)).clamp(0.0, 1.0)  # [B]
        # the frames either side of the moment, and how far between them it lies
        after = (rises < moment.unsqueeze(1)).sum(1).clamp(1, frames.shape[1] - 1)  # [B]
        before = after - 1
        r0 = rises.gather(1, before.unsqueeze(1)).squeeze(1)
        r1 = rises.gather(1, after.unsqueeze(1)).squeeze(1)
        weight = ((moment - r0) / (r1 - r0).clamp(min=1e-6)).clamp(0.0, 1.0).unsqueeze(1)
        rows = torch.arange(len(clip), device=device)
        return (1 - weight) * frames[rows, before] + weight * frames[rows, after]

    def to(self, device: str | torch.device) -> NearestClip:
        return NearestClip(
            captions=self.captions.to(device),
            frames=self.frames.to(device),
            rises=self.rises.to(device),
            n_frames=self.n_frames.to(device),
        )


@dataclass(frozen=True)
class Linear:
    motion: Tensor  # [D] mean change per unit rise
    name: str = "linear"

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        motion = self.motion.to(start.device, start.dtype)
        return start + rise.to(start.dtype).unsqueeze(-1) * motion  # [B, D]

    def to(self, device: str | torch.device) -> Linear:
        return Linear(motion=self.motion.to(device))


@dataclass(frozen=True)
class Slerp:
    motion: Tensor  # [D] direction of the motion (as in Linear)
    angular_speed: Tensor  # [] radians per unit rise
    name: str = "slerp"

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        towards = start + self.motion.to(start.device, start.dtype)  # [B, D]
        angle = rise.to(start.dtype) * self.angular_speed.to(start.device, start.dtype)  # [B]
        return rotation.rotate_by(start, start, towards, angle)

    def to(self, device: str | torch.device) -> Slerp:
        return Slerp(motion=self.motion.to(device), angular_speed=self.angular_speed.to(device))


Baseline = CopyStart | MeanFrame | NearestClip | Linear | Slerp


def fit_mean_motion(frames: Tensor, n_frames: Tensor, rises: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares mean motion ``m`` [D] and angular speed ``omega`` [] of padded clips."""
    positions = torch.arange(frames.shape[1])  # [F]
    valid = (positions.unsqueeze(0) < n_frames.unsqueeze(1)).to(frames.dtype)  # [C, F]
    rise = rises.to(frames.dtype) * valid  # [C, F]
    change = frames - frames[:, :1]  # [C, F, D]
    weight = (rise**2).sum()
    if weight <= 0:
        raise ValueError("no training clip has two frames: cannot fit a mean motion")
    motion = (rise.unsqueeze(-1) * change).sum(dim=(0, 1)) / weight  # [D]
    angles = rotation.plane(frames[:, :1], frames).angle.squeeze(-1)  # [C, F]
    angular_speed = (rise * angles).sum() / weight  # []
    return motion, angular_speed


def fit_baselines(
    frames: Tensor, n_frames: Tensor, rises: Tensor, text_embed: Tensor
) -> dict[str, Baseline]:
    """Every baseline from the training split: frames [C, F, D] (padded), n_frames [C],
    rises [C, F] and the captions' text embeddings [C, D]."""
    motion, angular_speed = fit_mean_motion(frames, n_frames, rises)
    valid = torch.arange(frames.shape[1]).unsqueeze(0) < n_frames.unsqueeze(1)  # [C, F]
    return {
        "copy_start": CopyStart(),
        "mean_frame": MeanFrame(mean=frames[valid].mean(dim=0)),
        "nearest_clip": NearestClip(
            captions=F.normalize(text_embed.float(), dim=-1),
            frames=frames.float(),
            rises=rises.float(),
            n_frames=n_frames.long(),
        ),
        "linear": Linear(motion=motion),
        "slerp": Slerp(motion=motion, angular_speed=angular_speed),
    }


def save_baselines(baselines: dict[str, Baseline], directory: str | Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    linear, slerp = baselines["linear"], baselines["slerp"]
    nearest, mean = baselines["nearest_clip"], baselines["mean_frame"]
    tensors = {  # linear and slerp share the fitted mean motion
        "motion": linear.motion,
        "angular_speed": slerp.angular_speed.reshape(()),
        "mean_frame": mean.mean,
        "nearest.captions": nearest.captions,
        "nearest.frames": nearest.frames,
        "nearest.rises": nearest.rises,
        "nearest.n_frames": nearest.n_frames,
    }
    tensors = {
        name: tensor.detach().cpu().contiguous()
        if tensor.dtype == torch.int64
        else tensor.detach().cpu().float().contiguous()
        for name, tensor in tensors.items()
    }
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    description = {
        "methods": list(NAMES),
        "dim": int(linear.motion.numel()),
        "angular_speed": float(slerp.angular_speed),
        "motion_norm": float(linear.motion.norm()),
        "nearest_clip_clips": int(nearest.frames.shape[0]),
    }
    with atomic_path(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n")


def load_baselines(
    directory: str | Path, device: str | torch.device = "cpu"
) -> dict[str, Baseline]:
    directory = Path(directory)
    path = directory / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run the train stage first (dvc repro train)")
    tensors = load_file(str(path), device=str(device))
    if "mean_frame" not in tensors:
        raise FileNotFoundError(
            f"{path} predates the mean_frame and nearest_clip baselines; rerun train"
        )
    return {
        "copy_start": CopyStart(),
        "mean_frame": MeanFrame(mean=tensors["mean_frame"]),
        "nearest_clip": NearestClip(
            captions=tensors["nearest.captions"],
            frames=tensors["nearest.frames"],
            rises=tensors["nearest.rises"],
            n_frames=tensors["nearest.n_frames"],
        ),
        "linear": Linear(motion=tensors["motion"]),
        "slerp": Slerp(motion=tensors["motion"], angular_speed=tensors["angular_speed"]),
    }
