"""The splitter, its baselines, and how later stages load them all the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from nextframe.errors import UserError
from nextframe.model.baselines import load_baselines
from nextframe.model.splitter import Splitter, SplitterPredictor


class Predictor(Protocol):
    """Anything that predicts a target embedding from the caption, a start and a rise."""

    name: str

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        """hidden_states [B, T, D] (the caption's tokens, rotated to follow the start),
        start [B, D], rise [B], text_embed [B, D] (the caption's CLIP text projection,
        untouched) -> predicted target [B, D]."""
        ...


def load_predictors(
    models_dir: str | Path,
    device: str | torch.device = "cpu",
    methods: list[str] | None = None,
    key: str = "generate.methods",
) -> dict[str, Predictor]:
    """The splitter from ``models_dir/splitter`` and every baseline from
    ``models_dir/baselines``, or only ``methods`` (in that order; ``key`` names the setting
    that chose them in the error about an unknown one)."""
    models_dir = Path(models_dir)
    predictors: dict[str, Predictor] = {
        "splitter": SplitterPredictor(Splitter.load(models_dir / "splitter", device))
    }
    predictors.update(load_baselines(models_dir / "baselines", device))
    if methods is None:
        return predictors
    unknown = [name for name in methods if name not in predictors]
    if unknown:
        raise UserError(f"{key}: unknown {unknown}; the models folder has {sorted(predictors)}")
    return {name: predictors[name] for name in methods}
