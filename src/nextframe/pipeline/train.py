"""The train stage: the embedding tables to a trained splitter, fitted baselines and metrics.

Reads the manifest's splits and the embed stage's tables into one padded ``ClipSet`` per
split, fits the baselines on train, trains the splitter on train with early stopping on
val (``model/training.py``), scores every method on val, and writes:

  models/splitter/{model.safetensors,config.json}
  models/baselines/{baselines.safetensors,baselines.json}
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
from nextframe.model import baselines as baseline_models
from nextframe.model.losses import TERMS
from nextframe.model.splitter import SplitterPredictor, count_parameters
from nextframe.model.training import (
    ClipSet,
    EpochCallback,
    active_modes,
    plan_rows,
    rises_from_times,
    score_methods,
    train_splitter,
)
from nextframe.store import (
    ImageEmbeddings,
    TextEmbeddings,
    atomic_path,
    read_image_embeddings,
    read_manifest,
    read_text_embeddings,
    select_clips,
    write_json,
)

PARAMS = ("train", "runtime")
SPLITTER_DIR = "splitter"
BASELINES_DIR = "baselines"
METRICS_FILE = "train.json"
HISTORY_FILE = "plots/train_loss.csv"


@dataclass(frozen=True)
class Dataset:
    train: ClipSet
    val: ClipSet
    skipped: dict[str, int]  # reason -> clips, over both splits


def load_dataset(manifest_path: Path, embeddings_dir: Path) -> Dataset:
    """Read the manifest's splits and the embedding tables into train and val ``ClipSet``s."""
    manifest = read_manifest(manifest_path)
    images = read_image_embeddings(embeddings_dir / "images.parquet")
    texts = read_text_embeddings(embeddings_dir / "texts.parquet")
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
        train=clip_set(selections["train"].clip_ids, images, texts),
        val=clip_set(selections["val"].clip_ids, images, texts),
        skipped=skipped,
    )


def clip_set(clip_ids: list[str], images: ImageEmbeddings, texts: TextEmbeddings) -> ClipSet:
    """The clips' frames padded to one [C, F, D] tensor, with their caption encodings."""
    slices, text_rows = images.clip_slices(), texts.index()
    counts = torch.tensor([slices[c].stop - slices[c].start for c in clip_ids], dtype=torch.int64)
    frames = torch.zeros(len(clip_ids), int(counts.max()), images.info.dim)  # [C, F, D]
    times = torch.zeros(len(clip_ids), int(counts.max()), dtype=torch.float64)  # [C, F]
    for row, clip_id in enumerate(clip_ids):
        frames[row, : counts[row]] = images.embeddings[slices[clip_id]]
        times[row, : counts[row]] = images.t_seconds[slices[clip_id]]
    rows = torch.tensor([text_rows[c] for c in clip_ids], dtype=torch.int64)
    return ClipSet(
        clip_ids=list(clip_ids),
        hidden_states=texts.hidden_states[rows].float(),
        prior_embed=texts.prior_embed[rows].float(),
        text_embed=texts.text_embed[rows].float(),
        frames=frames,
        n_frames=counts,
        rises=rises_from_times(times, counts).float(),
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
    artifacts: list[Path]  # the splitter's files, for MLflow

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
    train_set = dataset.train
    fitted = baseline_models.fit_baselines(
        train_set.frames, train_set.n_frames, train_set.rises, train_set.text_embed
    )
    result = train_splitter(dataset.train, dataset.val, settings, on_epoch)
    device = resolve_device(settings.device)
    val_set = dataset.val.to(device)
    val_plan = plan_rows(
        val_set,
        active_modes(settings.modes),
        settings.max_frames_per_clip,
        torch.Generator().manual_seed(settings.seed + 1),
    )
    predictors = {"splitter": SplitterPredictor(result.model)}
    predictors.update({name: baseline.to(device) for name, baseline in fitted.items()})
    scores = score_methods(
        predictors, val_set, val_plan, result.model, settings.blend_q, settings.batch_size
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
    splitter_dir = models_dir / SPLITTER_DIR
    result.model.save(splitter_dir)
    baseline_models.save_baselines(fitted, models_dir / BASELINES_DIR)
    write_json(values, metrics_dir / METRICS_FILE)
    write_history_csv(result.history, metrics_dir / HISTORY_FILE)
    return TrainSummary(values, artifacts=sorted(splitter_dir.iterdir()))
