"""The train stage: the embedding tables to a trained splitter, fitted baselines and metrics.

Reads the manifest's splits and indexes the embed stage's tables into one ``MappedClipSet``
per split (in memory: frame counts, times and row numbers; every batch's vectors are read
from the tables when it is assembled), fits every method of ``generate.methods`` (the splitter
trains on train with early stopping on val, ``model/training.py``), scores every
predictor on val's rows, and writes:

  models/<method>/                 the splitter and every method of generate.methods
                                   (the privileged ones for the synthetic source only)
  metrics/train.json               the final numbers (a DVC metric)
  metrics/plots/train_loss.csv     one row per epoch (a DVC plot)

The test split is never read here: evaluate scores on it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from nextframe.config import Params
from nextframe.device import resolve_device
from nextframe.errors import UserError
from nextframe.methods.base import FitData, PredictorMethod
from nextframe.methods.loading import fit_methods, method_dir
from nextframe.methods.registry import applicable
from nextframe.model.losses import TERMS
from nextframe.model.mapped import MappedClipSet
from nextframe.model.rows import active_modes, plan_rows
from nextframe.model.splitter import count_parameters
from nextframe.model.training import EpochCallback, score_methods
from nextframe.store import (
    atomic_path,
    read_frame_index,
    read_manifest,
    read_text_embeddings,
    replaced_dir,
    select_clips,
    write_json,
)

PARAMS = ("train", "generate.methods", "download.source", "runtime")
METRICS_FILE = "train.json"
HISTORY_FILE = "plots/train_loss.csv"


@dataclass(frozen=True)
class Dataset:
    train: MappedClipSet
    val: MappedClipSet
    captions: dict[str, str]  # clip_id -> caption, train and val
    skipped: dict[str, int]  # reason -> clips, over both splits


def load_dataset(manifest_path: Path, embeddings_dir: Path) -> Dataset:
    """Read the manifest's splits and index the embedding tables for train and val."""
    manifest = read_manifest(manifest_path)
    images = read_frame_index(embeddings_dir / "images.parquet")
    texts = read_text_embeddings(embeddings_dir / "texts.parquet", manifest)
    if images.info.dim != texts.info.dim or images.info.backbone != texts.info.backbone:
        raise UserError(
            f"{embeddings_dir}: images.parquet ({images.info.backbone}, D={images.info.dim}) and "
            f"texts.parquet ({texts.info.backbone}, D={texts.info.dim}) come from different "
            "backbones; rerun the embed stage"
        )
    selections = {split: select_clips(manifest, images, texts, split) for split in ("train", "val")}
    skipped = {
        reason: sum(selection.skipped[reason] for selection in selections.values())
        for reason in selections["train"].skipped
    }
    for split, selection in selections.items():
        if not selection.clip_ids:
            raise UserError(
                f"no usable {split} clips in {manifest_path} with embeddings in {embeddings_dir} "
                f"(skipped: {skipped}); the train stage needs train and val clips with >= 2 "
                "frames each: check download.split and select_frames.min_frames"
            )
    return Dataset(
        train=MappedClipSet.of(selections["train"].clip_ids, images, texts),
        val=MappedClipSet.of(selections["val"].clip_ids, images, texts),
        captions=dict(zip(manifest["clip_id"], manifest["caption"], strict=True)),
        skipped=skipped,
    )


def write_history_csv(history: list[dict[str, float]], path: Path) -> None:
    columns = ["epoch", "lr"] + [
        f"{split}_{name}" for split in ("train", "val") for name in (*TERMS, "total")
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({**{k: f"{row[k]:.6g}" for k in columns}, "epoch": int(row["epoch"])})
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


@dataclass(frozen=True)
class TrainSummary:
    values: dict  # what metrics/train.json holds (nested)
    artifacts: list[Path]  # for MLflow: the splitter's files, train.json, the loss curve

    def metrics(self) -> dict:
        return self.values

    def describe(self) -> str:
        cos = self.values["val_change_cosine"]
        parts = ", ".join(f"{name} {values['all']:.3f}" for name, values in cos.items())
        m = self.values
        return (
            f"trained {m['parameters']} parameters on {m['train_clips']} clips, "
            f"best epoch {m['best_epoch']}/{m['epochs_run']}; validation change cosine: {parts}"
        )


def run(
    manifest_path: Path,
    embeddings_dir: Path,
    models_dir: Path,
    metrics_dir: Path,
    params: Params,
    on_epoch: EpochCallback | None = None,
) -> TrainSummary:
    """Load, fit baselines, train, score, and write models and metrics (see module doc)."""
    settings = params.train
    dataset = load_dataset(manifest_path, embeddings_dir)
    data = FitData(dataset.train, dataset.val, dataset.captions, on_epoch)
    methods_wanted = applicable(params.generate.methods, params.download.source)
    names = ["splitter", *(m for m in methods_wanted if m != "splitter")]
    methods = fit_methods(names, data, params)
    result = methods["splitter"].result
    device = resolve_device(settings.device)
    val_set = dataset.val.to(device)
    val_plan = plan_rows(
        val_set,
        active_modes(settings.modes),
        settings.max_frames_per_clip,
        torch.Generator().manual_seed(settings.seed + 1),
        settings.diff,
    )
    predictors = {
        name: method.to(device)
        for name, method in methods.items()
        if isinstance(method, PredictorMethod)
    }
    scores = score_methods(
        predictors,
        val_set,
        val_plan,
        result.model,
        settings.blend_q,
        settings.batch_size,
        settings.diff,
    )
    best = result.history[result.best_epoch - 1]
    values = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "parameters": count_parameters(result.model),
        "train_clips": len(dataset.train),
        "val_clips": len(dataset.val),
        "val_rows": len(val_plan),
        "skipped_clips": dataset.skipped,
        "train_loss": {name: best[f"train_{name}"] for name in (*TERMS, "total")},
        "val_loss": {name: best[f"val_{name}"] for name in (*TERMS, "total")},
        **scores,
    }
    with replaced_dir(models_dir) as staged:  # no folder of a method no longer fitted stays
        for name, method in methods.items():
            method.save(method_dir(staged, name))
    splitter_dir = method_dir(models_dir, "splitter")
    write_json(values, metrics_dir / METRICS_FILE)
    write_history_csv(result.history, metrics_dir / HISTORY_FILE)
    written = [metrics_dir / METRICS_FILE, metrics_dir / HISTORY_FILE]
    return TrainSummary(values, artifacts=[*sorted(splitter_dir.iterdir()), *written])
