"""The train stage: the embedding tables to a trained splitter, fitted baselines and metrics.

Reads the manifest's splits and indexes the embed stage's tables into one ``MappedClipSet``
per split (in memory: frame counts, times and row numbers; every batch's vectors are read
from the tables when it is assembled), fits the baselines on train, trains the splitter on
train with early stopping on val (``model/training.py``), scores every method on val, and
writes:

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

import numpy as np
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
    Plan,
    active_modes,
    plan_rows,
    rises_from_times,
    score_methods,
    train_splitter,
)
from nextframe.store import (
    FrameIndex,
    TextEmbeddings,
    TextTable,
    atomic_path,
    read_frame_index,
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


class MappedClipSet:
    """One split read from the embedding tables batch by batch (a ``training.ClipSource``).

    In memory: frame counts [C], rises [C, F] and where each clip's frames and caption are
    in the tables (a few hundred bytes a clip). ``batch`` reads the frames and caption
    encodings of just the clips of a batch, in place, and makes them float32 on the
    device: the numbers a ``ClipSet`` of the whole split would hold, so training from
    either gives the same weights.
    """

    def __init__(
        self,
        clip_ids: list[str],
        frame_starts: np.ndarray,
        n_frames: torch.Tensor,
        rises: torch.Tensor,
        caption_rows: np.ndarray,
        images: FrameIndex,
        texts: TextTable,
        device: torch.device | str = "cpu",
    ) -> None:
        self.clip_ids = clip_ids
        self.frame_starts = frame_starts  # [C] int64 first row of each clip in images.parquet
        self.n_frames = n_frames  # [C] int64
        self.rises = rises  # [C, F] float32
        self.caption_rows = caption_rows  # [C] int64 row of each clip's caption in texts.parquet
        self.images = images
        self.texts = texts
        self.device = torch.device(device)

    @classmethod
    def of(cls, clip_ids: list[str], images: FrameIndex, texts: TextEmbeddings) -> MappedClipSet:
        slices, text_rows = images.clip_slices(), texts.index()
        starts = np.array([slices[c].start for c in clip_ids], dtype=np.int64)
        counts = torch.tensor([slices[c].stop - slices[c].start for c in clip_ids])
        times = torch.zeros(len(clip_ids), int(counts.max()), dtype=torch.float64)  # [C, F]
        for row, clip_id in enumerate(clip_ids):
            times[row, : counts[row]] = torch.from_numpy(images.t_seconds[slices[clip_id]])
        caption_rows = texts.caption_rows[[text_rows[c] for c in clip_ids]]
        rises = rises_from_times(times, counts).float()
        return cls(list(clip_ids), starts, counts, rises, caption_rows, images, texts.table)

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def dim(self) -> int:
        return self.images.info.dim

    @property
    def text_length(self) -> int:
        return self.texts.columns["hidden_states"].shape[0]

    def to(self, device: torch.device | str) -> MappedClipSet:
        return MappedClipSet(
            self.clip_ids,
            self.frame_starts,
            self.n_frames,
            self.rises,
            self.caption_rows,
            self.images,
            self.texts,
            device,
        )

    def gather(self, clips: np.ndarray, hidden_states: bool = True) -> ClipSet:
        """The clips at positions ``clips`` as a ClipSet on the device (without their hidden
        states, [n, 0, D], if not ``hidden_states``)."""
        counts = self.n_frames[clips]  # [n]
        width = int(counts.max())
        rows = np.concatenate(
            [
                np.arange(start, start + count)
                for start, count in zip(self.frame_starts[clips], counts.tolist(), strict=True)
            ]
        )
        frames = torch.zeros(len(clips), width, self.dim)  # [n, F, D]
        frames[torch.arange(width) < counts.unsqueeze(1)] = torch.from_numpy(
            self.images.embeddings.read(rows)
        )
        caption_rows = self.caption_rows[clips]
        hidden = (
            self.texts.read("hidden_states", caption_rows).float()  # [n, T, D]
            if hidden_states
            else torch.zeros(len(clips), 0, self.dim)
        )
        return ClipSet(
            clip_ids=[self.clip_ids[c] for c in clips],
            hidden_states=hidden,
            prior_embed=self.texts.read("prior_embed", caption_rows),
            text_embed=self.texts.read("text_embed", caption_rows),
            frames=frames,
            n_frames=counts,
            rises=self.rises[clips, :width],
        ).to(self.device)

    def batch(self, plan: Plan) -> tuple[ClipSet, Plan]:
        clips, local = torch.unique(plan.clip.cpu(), return_inverse=True)
        gathered = self.gather(clips.numpy())
        return gathered, Plan(local.to(plan.clip.device), plan.base, plan.target, plan.mode)


@dataclass(frozen=True)
class Dataset:
    train: MappedClipSet
    val: MappedClipSet
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
    # The baselines hold what they fit on (nearest_clip: every training frame), so they get
    # the training split's frames in memory; the splitter's hidden states never are.
    train_set = dataset.train.gather(np.arange(len(dataset.train)), hidden_states=False)
    fitted = baseline_models.fit_baselines(
        train_set.frames, train_set.n_frames, train_set.rises, train_set.text_embed
    )
    del train_set
    result = train_splitter(dataset.train, dataset.val, settings, on_epoch)
    device = resolve_device(settings.device)
    val_set = dataset.val.to(device)
    val_plan = plan_rows(
        val_set,
        active_modes(settings.modes),
        settings.max_frames_per_clip,
        torch.Generator().manual_seed(settings.seed + 1),
        settings.diff,
    )
    predictors = {"splitter": SplitterPredictor(result.model)}
    predictors.update({name: baseline.to(device) for name, baseline in fitted.items()})
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
    splitter_dir = models_dir / SPLITTER_DIR
    result.model.save(splitter_dir)
    baseline_models.save_baselines(fitted, models_dir / BASELINES_DIR)
    write_json(values, metrics_dir / METRICS_FILE)
    write_history_csv(result.history, metrics_dir / HISTORY_FILE)
    return TrainSummary(values, artifacts=sorted(splitter_dir.iterdir()))
