"""Baselines with the splitter's interface, so every method is generated and scored alike.

- ``copy_start``: the start embedding for every frame, i.e. the pure text-to-image answer.
- ``linear``: ``start + rise * m`` with ``m`` the mean motion per unit rise on the training
  split, the least-squares fit of ``e_k - e_0 = r_k m`` over every training frame.
- ``slerp``: rotate ``start`` by ``rise * omega`` in the plane of ``start`` and
  ``start + m`` (norm kept), ``omega`` the least-squares fit of ``angle(e_0, e_k) = r_k omega``.

They ignore the text; fitting needs no gradient. Saved as ``baselines.safetensors`` (the
fitted tensors) and ``baselines.json`` (what they are), no pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from nextframe.model import rotation
from nextframe.store import atomic_path

WEIGHTS_FILE = "baselines.safetensors"
CONFIG_FILE = "baselines.json"
NAMES = ("copy_start", "linear", "slerp")


@dataclass(frozen=True)
class CopyStart:
    name: str = "copy_start"

    def predict(self, hidden_states: Tensor, start: Tensor, rise: Tensor) -> Tensor:
        return start.clone()

    def to(self, device: str | torch.device) -> CopyStart:
        return self


@dataclass(frozen=True)
class Linear:
    motion: Tensor  # [D] mean change per unit rise
    name: str = "linear"

    def predict(self, hidden_states: Tensor, start: Tensor, rise: Tensor) -> Tensor:
        motion = self.motion.to(start.device, start.dtype)
        return start + rise.to(start.dtype).unsqueeze(-1) * motion  # [B, D]

    def to(self, device: str | torch.device) -> Linear:
        return Linear(motion=self.motion.to(device))


@dataclass(frozen=True)
class Slerp:
    motion: Tensor  # [D] direction of the motion (as in Linear)
    angular_speed: Tensor  # [] radians per unit rise
    name: str = "slerp"

    def predict(self, hidden_states: Tensor, start: Tensor, rise: Tensor) -> Tensor:
        towards = start + self.motion.to(start.device, start.dtype)  # [B, D]
        angle = rise.to(start.dtype) * self.angular_speed.to(start.device, start.dtype)  # [B]
        return rotation.rotate_by(start, start, towards, angle)

    def to(self, device: str | torch.device) -> Slerp:
        return Slerp(motion=self.motion.to(device), angular_speed=self.angular_speed.to(device))


def fit_mean_motion(frames: Tensor, n_frames: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares mean motion ``m`` [D] and angular speed ``omega`` [] of padded clips."""
    count = frames.shape[1]
    positions = torch.arange(count, dtype=frames.dtype)  # [F]
    last = (n_frames - 1).clamp(min=1).to(frames.dtype)  # [C]
    valid = (positions.unsqueeze(0) < n_frames.unsqueeze(1)).to(frames.dtype)  # [C, F]
    rise = positions.unsqueeze(0) / last.unsqueeze(1) * valid  # [C, F]
    change = frames - frames[:, :1]  # [C, F, D]
    weight = (rise**2).sum()
    if weight <= 0:
        raise ValueError("no training clip has two frames: cannot fit a mean motion")
    motion = (rise.unsqueeze(-1) * change).sum(dim=(0, 1)) / weight  # [D]
    angles = rotation.plane(frames[:, :1], frames).angle.squeeze(-1)  # [C, F]
    angular_speed = (rise * angles).sum() / weight  # []
    return motion, angular_speed


def fit_baselines(frames: Tensor, n_frames: Tensor) -> dict[str, CopyStart | Linear | Slerp]:
    motion, angular_speed = fit_mean_motion(frames, n_frames)
    return {
        "copy_start": CopyStart(),
        "linear": Linear(motion=motion),
        "slerp": Slerp(motion=motion, angular_speed=angular_speed),
    }


def save_baselines(baselines: dict[str, CopyStart | Linear | Slerp], directory: str | Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    linear, slerp = baselines["linear"], baselines["slerp"]
    tensors = {  # linear and slerp share the fitted mean motion
        "motion": linear.motion.detach().cpu().float().contiguous(),
        "angular_speed": slerp.angular_speed.detach().cpu().float().reshape(()),
    }
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    description = {
        "methods": list(NAMES),
        "dim": int(linear.motion.numel()),
        "angular_speed": float(slerp.angular_speed),
        "motion_norm": float(linear.motion.norm()),
    }
    with atomic_path(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n")


def load_baselines(
    directory: str | Path, device: str | torch.device = "cpu"
) -> dict[str, CopyStart | Linear | Slerp]:
    directory = Path(directory)
    path = directory / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run the train stage first (dvc repro train)")
    tensors = load_file(str(path), device=str(device))
    return {
        "copy_start": CopyStart(),
        "linear": Linear(motion=tensors["motion"]),
        "slerp": Slerp(motion=tensors["motion"], angular_speed=tensors["angular_speed"]),
    }
