"""Fitting, loading and rolling out methods by name, through the registry.

The one place that imports method modules by name (``registry.load_class``): a stage that
uses it depends on every module the registry names (tests/test_stages.py counts them in
its import closure, so ``dvc.yaml`` reruns the stage when a method changes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nextframe.errors import UserError
from nextframe.methods.base import FitData, Method, Rolled, RolloutContext
from nextframe.methods.registry import REGISTRY, load_class
from nextframe.model.rollout import Conditioning

if TYPE_CHECKING:
    from nextframe.config import Params


def method_dir(models_dir: Path, name: str) -> Path:
    """Where method ``name`` is saved: ``models/<name>/``."""
    return Path(models_dir) / name


def fit_methods(names: list[str], data: FitData, params: Params) -> dict[str, Method]:
    """Every method of ``names`` fitted on ``data``, in that order."""
    return {name: load_class(name).fit(data, params) for name in names}


def load_methods(
    models_dir: Path,
    names: list[str],
    device: str | torch.device = "cpu",
    key: str = "generate.methods",
) -> dict[str, Method]:
    """The methods ``names`` as the train stage saved them (``key`` names the setting that
    chose them, for the error about an unknown or unfitted one)."""
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise UserError(f"{key}: unknown method(s) {unknown}; known: {sorted(REGISTRY)}")
    missing = [name for name in names if not method_dir(models_dir, name).is_dir()]
    if missing:
        raise UserError(
            f"{key}: {missing} not fitted in {models_dir}; run the train stage with them in "
            "generate.methods (dvc repro train)"
        )
    return {name: load_class(name).load(method_dir(models_dir, name), device) for name in names}


def roll_out_methods(
    methods: dict[str, Method], cond: Conditioning, kinds: list[str], context: RolloutContext
) -> dict[tuple[str, str], Rolled]:
    """(method, rollout) -> what that method made for every caption of ``cond``."""
    return {
        (name, kind): method.rollout(cond, kind, context)
        for name, method in methods.items()
        for kind in kinds
    }
