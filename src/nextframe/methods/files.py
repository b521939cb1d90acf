"""How a fitted method is kept on disk: ``weights.safetensors`` (its tensors) and
``method.json`` (what it is), both written atomically; no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from nextframe.store import atomic_path

WEIGHTS_FILE = "weights.safetensors"
DESCRIPTION_FILE = "method.json"


def save_method_files(directory: Path, tensors: dict[str, Tensor], description: dict) -> None:
    """Write ``tensors`` (int64 kept, everything else as float32) and ``description``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kept = {
        name: (tensor if tensor.dtype == torch.int64 else tensor.float())
        .detach()
        .cpu()
        .contiguous()
        for name, tensor in tensors.items()
    }
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(kept, str(tmp), metadata={"format": "pt"})
    with atomic_path(directory / DESCRIPTION_FILE) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n")


def load_method_files(
    directory: Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, Tensor], dict]:
    """``save_method_files``' tensors (on ``device``) and description."""
    directory = Path(directory)
    for name in (WEIGHTS_FILE, DESCRIPTION_FILE):
        if not (directory / name).exists():
            raise FileNotFoundError(
                f"{directory / name} not found; run the train stage first (dvc repro train)"
            )
    tensors = load_file(str(directory / WEIGHTS_FILE), device=str(device))
    return tensors, json.loads((directory / DESCRIPTION_FILE).read_text())
