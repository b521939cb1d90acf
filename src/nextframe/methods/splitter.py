"""The splitter as a method: trained by ``model/training.py``, kept as ``model/splitter.py``
saves it, rolled out like every predictor."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from nextframe.config import Params
from nextframe.methods.base import FitData, PredictorMethod
from nextframe.methods.caption_aware import fit_change_regression
from nextframe.model.splitter import Splitter
from nextframe.model.training import TrainResult, train_splitter


class SplitterMethod(PredictorMethod):
    """The trained splitter (eval mode, no grad); ``result`` holds the training history
    when it was fitted in this process (the train stage's metrics come from it)."""

    name: ClassVar[str] = "splitter"

    def __init__(self, model: Splitter, result: TrainResult | None = None) -> None:
        self.model = model.eval()
        self.result = result
        self.device = next(model.parameters()).device

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        with torch.no_grad():
            return self.model(
                hidden_states.to(self.device, torch.float32),
                start.to(self.device, torch.float32),
                rise.to(self.device, torch.float32),
                text_embed.to(self.device, torch.float32),
            )

    @classmethod
    def fit(cls, data: FitData, params: Params) -> SplitterMethod:
        linear_init = None
        if params.train.splitter.linear_init == "ridge":
            linear_init = fit_change_regression(data.in_memory("train"), data.in_memory("val"))
        result = train_splitter(data.train, data.val, params.train, data.on_epoch, linear_init)
        return cls(result.model, result)

    def save(self, directory: Path) -> None:
        self.model.save(directory)

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> SplitterMethod:
        return cls(Splitter.load(directory, device))
