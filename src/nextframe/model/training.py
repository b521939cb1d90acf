"""Composite training of the splitter (DESIGN.md, "The method"), plain PyTorch top to bottom.

1. The train stage (``pipeline/train.py``) gives each split as a ``ClipSource``: padded
   tensors in memory (``ClipSet``), or the embedding tables read batch by batch, where
   ``source.batch(rows)`` assembles just the clips a batch needs as a small ``ClipSet``
   (float32 per batch only; the same numbers, hence the same training).
2. Every epoch, each clip contributes frames and every active mode turns them into
   (clip, base frame, target frame) rows of a ``Plan``; ``model/rows.py`` has the table of
   modes and builds each batch's inputs from the indices, with the model as it is at that
   step (the ``diff`` rows' chain rollout included).
3. AdamW with linear warmup then cosine (or constant) learning rate, gradient clipping,
   early stopping on the validation loss keeping the best weights.
4. The splitter and the baselines are scored on the validation rows of every mode by the
   cosine between predicted and true change.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nextframe.config import TrainParams
from nextframe.device import resolve_device
from nextframe.model.clips import ClipSource, Plan
from nextframe.model.losses import change_cosine, change_loss, probe_vector, stack_terms
from nextframe.model.rows import MODES, active_modes, make_inputs, plan_rows
from nextframe.model.splitter import Splitter, SplitterConfig
from nextframe.progress import progress_bar

EpochCallback = Callable[[dict[str, float], int], None]


# ---------------------------------------------------------------------------- training


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Linear warmup, then constant or cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def evaluate_loss(
    model: Splitter, clips: ClipSource, plan: Plan, params: TrainParams, probe: Tensor
) -> dict[str, float]:
    model.eval()
    terms, sizes = [], []
    with torch.no_grad():
        for index in torch.arange(len(plan)).split(params.batch_size):
            inputs = make_inputs(
                *clips.batch(plan.subset(index)), model, params.blend_q, params.diff
            )
            prediction = model(inputs.hidden_states, inputs.start, inputs.rise, inputs.text_embed)
            terms.append(
                change_loss(inputs.start, prediction, inputs.target, params.loss, probe).as_floats()
            )
            sizes.append(len(index))
    return stack_terms(terms, sizes)


@dataclass
class TrainResult:
    model: Splitter
    history: list[dict[str, float]]  # one row per epoch
    best_epoch: int


def train_splitter(
    train_set: ClipSource,
    val_set: ClipSource,
    params: TrainParams,
    on_epoch: EpochCallback | None = None,
    linear_init: Tensor | None = None,
) -> TrainResult:
    """Train on ``train_set``, early-stop on ``val_set``; returns the best model (eval mode).
    ``linear_init`` [P, D]: the change regression the linear path starts at
    (``Splitter.start_linear_at``)."""
    device = resolve_device(params.device)
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    modes = active_modes(params.modes)
    train_set, val_set = train_set.to(device), val_set.to(device)
    dim, text_length = train_set.dim, train_set.text_length
    model = Splitter(SplitterConfig.from_params(params.splitter, dim, text_length)).to(device)
    if linear_init is not None:
        model.start_linear_at(linear_init)
    probe = probe_vector(dim).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.lr, weight_decay=params.weight_decay
    )
    val_plan = plan_rows(
        val_set,
        modes,
        params.max_frames_per_clip,
        torch.Generator().manual_seed(params.seed + 1),
        params.diff,
    )
    rows_per_epoch = len(
        plan_rows(train_set, modes, params.max_frames_per_clip, torch.Generator(), params.diff)
    )
    steps_per_epoch = math.ceil(rows_per_epoch / params.batch_size)
    total_steps = steps_per_epoch * params.epochs
    warmup = params.warmup_epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total_steps, params.lr_schedule)
    )
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
    bar = progress_bar(total=total_steps, desc="train", unit="step", leave=False)
    running = None
    for epoch in range(1, params.epochs + 1):
        model.train()
        plan = plan_rows(train_set, modes, params.max_frames_per_clip, generator, params.diff)
        order = torch.randperm(len(plan), generator=generator)
        terms, sizes = [], []
        for index in order.split(params.batch_size):
            inputs = make_inputs(
                *train_set.batch(plan.subset(index)), model, params.blend_q, params.diff
            )
            prediction = model(
                inputs.hidden_states, inputs.start, inputs.rise, inputs.text_embed
            )  # [B, D]
            loss = change_loss(inputs.start, prediction, inputs.target, params.loss, probe)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            if params.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
            optimizer.step()
            scheduler.step()
            terms.append(loss.as_floats())
            sizes.append(len(index))
            running = (
                terms[-1]["total"] if running is None else 0.9 * running + 0.1 * terms[-1]["total"]
            )
            bar.update(1)
            # refresh=False: drawn at the bar's own pace, not once per step
            bar.set_postfix(epoch=epoch, loss=f"{running:.4f}", refresh=False)
        train_terms = stack_terms(terms, sizes)
        val_terms = evaluate_loss(model, val_set, val_plan, params, probe)
        row = {"epoch": float(epoch), "lr": optimizer.param_groups[0]["lr"]}
        row.update({f"train_{name}": value for name, value in train_terms.items()})
        row.update({f"val_{name}": value for name, value in val_terms.items()})
        history.append(row)
        if on_epoch is not None:
            on_epoch({k: v for k, v in row.items() if k != "epoch"}, epoch)
        if val_terms["total"] < best_loss:
            best_loss, best_epoch, stale = val_terms["total"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if params.patience and stale >= params.patience:
                break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=best_epoch)


# ---------------------------------------------------------------------------- scoring


def score_methods(
    predictors: dict,
    clips: ClipSource,
    plan: Plan,
    splitter: Splitter,
    blend_q: float,
    batch_size: int,
    diff_rows: str = "prediction",
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean change cosine and MSE per method and mode on ``plan``'s rows (plus ``all``).

    Every method sees the same inputs (``diff`` starts come from ``splitter``).
    """
    cosines: dict[str, list[Tensor]] = {name: [] for name in predictors}
    errors: dict[str, list[Tensor]] = {name: [] for name in predictors}
    splitter.eval()
    with torch.no_grad():
        for index in torch.arange(len(plan)).split(batch_size):
            inputs = make_inputs(*clips.batch(plan.subset(index)), splitter, blend_q, diff_rows)
            for name, predictor in predictors.items():
                prediction = predictor.predict(
                    inputs.hidden_states, inputs.start, inputs.rise, inputs.text_embed
                )
                cosines[name].append(change_cosine(inputs.start, prediction, inputs.target).cpu())
                errors[name].append(((prediction - inputs.target) ** 2).mean(dim=-1).cpu())
    modes = plan.mode
    scores: dict[str, dict[str, dict[str, float]]] = {"val_change_cosine": {}, "val_mse": {}}
    for metric, values in (("val_change_cosine", cosines), ("val_mse", errors)):
        for name, chunks in values.items():
            per_row = torch.cat(chunks)
            by_mode = {MODES[m]: float(per_row[modes == m].mean()) for m in modes.unique().tolist()}
            scores[metric][name] = {**by_mode, "all": float(per_row.mean())}
    return scores
