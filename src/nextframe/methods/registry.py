"""Every method by name: what it is and where its class lives, without importing torch.

A method is any way of making a rollout (the splitter, a baseline, a learned competitor);
``base.Method`` is its surface. ``nextframe.config`` validates ``generate.methods`` against this
table at start-up (so it must stay importable without torch), the train stage fits the
listed methods, generate rolls them out, evaluate scores what they made and the README's
tables list them in this order. Adding a method is one module and one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    """A registry entry. ``target`` is ``.module:Class`` (a module of this package) or
    ``package.module:Class``, imported on first use by ``load_class``: ``nextframe.config`` reads
    the registry without importing any method, so a stage that only validates params does
    not depend on the methods' code."""

    name: str
    target: str
    summary: str  # one line for --help and the README
    caption_aware: bool  # reads the caption's motion (a reviewer's minimum for a baseline)
    privileged: bool = False  # knows the synthetic generator's labels (synthetic source only)
    learned: bool = False  # trained by gradient descent from a seed (the benchmark's 3 seeds)


REGISTRY: dict[str, MethodInfo] = {}


def register(info: MethodInfo) -> MethodInfo:
    """Add ``info`` (a test may register its own method); a name is registered once."""
    if info.name in REGISTRY and REGISTRY[info.name] != info:
        raise ValueError(f"method {info.name!r} is already registered as {REGISTRY[info.name]}")
    REGISTRY[info.name] = info
    return info


def method_names() -> list[str]:
    return list(REGISTRY)


def applicable(methods: list[str], source: str) -> list[str]:
    """``methods`` (``generate.methods``) that can run on ``source``: the privileged ones
    need the synthetic generator's labels and are left out for every other source, so
    switching ``download.source`` needs no edit of the method list."""
    return [name for name in methods if source == "synthetic" or not REGISTRY[name].privileged]


def load_class(name: str) -> type:
    """The class of method ``name`` (importing its module)."""
    module, _, attribute = REGISTRY[name].target.partition(":")
    return getattr(importlib.import_module(module, package=__package__), attribute)


for _info in (
    MethodInfo(
        "splitter",
        ".splitter:SplitterMethod",
        "the splitter: caption tokens, start and rise -> the embedding at that rise",
        caption_aware=True,
        learned=True,
    ),
    MethodInfo("copy_start", ".baselines:CopyStart", "stand still", caption_aware=False),
    MethodInfo(
        "mean_frame", ".baselines:MeanFrame", "the mean training frame", caption_aware=False
    ),
    MethodInfo(
        "nearest_clip",
        ".baselines:NearestClip",
        "replay the frames of the training clip with the nearest caption",
        caption_aware=False,
    ),
    MethodInfo(
        "linear", ".baselines:Linear", "start + rise x the mean motion", caption_aware=False
    ),
    MethodInfo(
        "slerp",
        ".baselines:Slerp",
        "rotate the start by rise x the mean angular speed",
        caption_aware=False,
    ),
    MethodInfo(
        "ridge",
        ".caption_aware:Ridge",
        "ridge regression of the change on the splitter's inputs",
        caption_aware=True,
    ),
    MethodInfo(
        "replay_change",
        ".caption_aware:ReplayChange",
        "the nearest caption's change replayed on the start",
        caption_aware=True,
    ),
    MethodInfo(
        "text_direction",
        ".caption_aware:TextDirection",
        "move the start toward the caption's text embedding by the rise",
        caption_aware=True,
    ),
    MethodInfo(
        "trajectory_gan",
        ".trajectory_gan:TrajectoryGan",
        "a conditional GAN: caption, start and noise -> the whole trajectory (sample 0)",
        caption_aware=True,
        learned=True,
    ),
    MethodInfo(
        "class_regression",
        ".privileged:ClassRegression",
        "per (motion, speed, size) fit of the change in rise, rise^2 (privileged)",
        caption_aware=True,
        privileged=True,
    ),
    MethodInfo(
        "replay_change_attrs",
        ".privileged:ReplayChangeAttrs",
        "the change of a training clip with the same (motion, speed, size) (privileged)",
        caption_aware=True,
        privileged=True,
    ),
):
    register(_info)
