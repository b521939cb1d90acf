"""Composite training of the splitter (DESIGN.md, "The method"), plain PyTorch top to bottom.

1. The train stage (``pipeline/train.py``) gives each split as a ``ClipSource``: padded
   tensors in memory (``ClipSet``), or the embedding tables read batch by batch, where
   ``source.batch(rows)`` assembles just the clips a batch needs as a small ``ClipSet``
   (float32 per batch only; the same numbers, hence the same training).
2. Every epoch, each clip contributes frame 0, its last frame and random frames between
   them (up to ``max_frames_per_clip``, in time order), and every active mode turns them
   into (clip, base frame, target frame) rows of a ``Plan``:

   ========  ==================================  ===========================  ==========
   mode      start                               target                       rise
   ========  ==================================  ===========================  ==========
   normal    prior embed p                       frame k (k >= 0)             r_k >= 0
   back      last frame                          frame k < last               r_k - 1 < 0
   rotation  blend(p, cos(e0, p), rot(e0->es))   frame t > s                  r_t - r_s > 0
   diff      f(h, p, r_s), detached              frame t > s                  r_t - r_s > 0
   diff      chain rollout p -> frames 1..s      frame s + 1                  r_s+1 - r_s
   (rollout)
   ========  ==================================  ===========================  ==========

   ``r_k = (t_k - t_0) / (t_last - t_0)`` is frame k's time in seconds as a fraction of the
   clip's span (DESIGN.md, the rise): frames chosen for how much they change are not evenly
   spaced in time, and the model must learn time, not positions among kept frames.

   The text tokens always follow the start: ``h' = blend(h, cos(p, text), rot(p -> start))``
   (the identity for ``normal``, where start = p). Inputs are built per batch from the
   indices, so memory does not grow with the number of modes, and ``diff`` uses the model
   as it is at that step. With ``params.train.diff: rollout`` the ``diff`` start is the
   model's own chain rollout (``chain_to_base``, the generation's chain with a fixed anchor)
   and the loss flows back through it: one-shot starts never show the model the drift of
   its own chain, which is what the chain rollout then meets at every step after the first.
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
from typing import Protocol

import torch
from torch import Tensor

from nextframe.config import TrainParams
from nextframe.device import resolve_device
from nextframe.model.losses import change_cosine, change_loss, probe_vector, stack_terms
from nextframe.model.rotation import blend, cosine, follow
from nextframe.model.splitter import Splitter, SplitterConfig
from nextframe.progress import progress_bar

MODES = ("normal", "back", "rotation", "diff")
EpochCallback = Callable[[dict[str, float], int], None]


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ClipSet:
    """One split's clips as padded tensors; frames of clip c are ``frames[c, :n_frames[c]]``."""

    clip_ids: list[str]
    hidden_states: Tensor  # [C, T, D] float32
    prior_embed: Tensor  # [C, D]
    text_embed: Tensor  # [C, D]
    frames: Tensor  # [C, F, D], zero after n_frames
    n_frames: Tensor  # [C] int64, >= 2
    rises: Tensor  # [C, F] frame times as fractions of the clip's span: 0 first, 1 last

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def dim(self) -> int:
        return self.frames.shape[-1]

    @property
    def text_length(self) -> int:
        return self.hidden_states.shape[1]

    def to(self, device: torch.device | str) -> ClipSet:
        return ClipSet(
            clip_ids=self.clip_ids,
            hidden_states=self.hidden_states.to(device),
            prior_embed=self.prior_embed.to(device),
            text_embed=self.text_embed.to(device),
            frames=self.frames.to(device),
            n_frames=self.n_frames.to(device),
            rises=self.rises.to(device),
        )

    def batch(self, plan: Plan) -> tuple[ClipSet, Plan]:
        """The clips a batch of rows needs and the rows pointing into them: here, all of them."""
        return self, plan


class ClipSource(Protocol):
    """Where batches come from: a ``ClipSet`` in memory, or a split read from the embedding
    tables batch by batch (``pipeline.train.MappedClipSet``); both give the same batches."""

    clip_ids: list[str]
    n_frames: Tensor  # [C] int64

    @property
    def dim(self) -> int: ...

    @property
    def text_length(self) -> int: ...

    def __len__(self) -> int: ...

    def to(self, device: torch.device | str) -> ClipSource: ...

    def batch(self, plan: Plan) -> tuple[ClipSet, Plan]:
        """A ClipSet (float32, on the device) holding the clips of ``plan``'s rows, and
        ``plan`` with its clip indices pointing into it."""
        ...


def rises_from_times(times: Tensor, n_frames: Tensor) -> Tensor:
    """[C, F] seconds (padded) -> each frame's rise from the first, (t - t_0) / (t_last - t_0).

    Padding past a clip's last frame gets the rise of its last frame.
    """
    first = times[:, :1]  # [C, 1]
    last = times.gather(1, (n_frames - 1).unsqueeze(1))  # [C, 1]
    span = last - first
    if (span <= 0).any():
        raise ValueError("every clip needs frames at two different times to define its rises")
    positions = torch.arange(times.shape[1], device=times.device).unsqueeze(0)
    rises = (times - first) / span
    return torch.where(positions < n_frames.unsqueeze(1), rises, torch.ones_like(rises))


# ---------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Plan:
    """Training rows as indices: start from frame ``base`` (or its stand-in), predict ``target``."""

    clip: Tensor  # [N] int64
    base: Tensor  # [N] int64 frame position the rise is measured from
    target: Tensor  # [N] int64 frame position to predict
    mode: Tensor  # [N] int64 index into MODES

    def __len__(self) -> int:
        return len(self.clip)

    def subset(self, index: Tensor) -> Plan:
        return Plan(self.clip[index], self.base[index], self.target[index], self.mode[index])


def active_modes(modes: list[str]) -> tuple[str, ...]:
    return MODES if "all" in modes else tuple(m for m in MODES if m in modes)


def sample_frames(
    n_frames: Tensor, max_frames: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Frame 0, the last frame and random frames between, in time order.

    Returns positions [C, M] (sorted; entries past ``count`` are padding) and count [C].
    """
    clips, width = len(n_frames), int(n_frames.max())
    positions = torch.arange(width).expand(clips, width)  # [C, F]
    keys = torch.rand(clips, width, generator=generator)
    last = (n_frames - 1).unsqueeze(1)  # [C, 1]
    keys = torch.where((positions == 0) | (positions == last), -1.0, keys)  # always keep the ends
    keys = torch.where(positions > last, 2.0, keys)  # never pick padding
    keep = min(max_frames, width)
    picked = keys.argsort(dim=1)[:, :keep]  # [C, M]
    count = n_frames.clamp(max=keep)  # [C]
    slot = torch.arange(keep).expand(clips, keep)
    picked = torch.where(slot < count.unsqueeze(1), picked, width)  # padding sorts last
    return picked.sort(dim=1).values, count


def plan_rows(
    clips: ClipSource,
    modes: tuple[str, ...],
    max_frames: int,
    generator: torch.Generator,
    diff_rows: str = "prediction",
) -> Plan:
    """Every row of one epoch for the given modes (see the module docstring's table);
    ``diff_rows`` is ``params.train.diff``."""
    n_frames = clips.n_frames.cpu()
    positions, count = sample_frames(n_frames, max_frames, generator)  # [C, M], [C]
    clip_count, width = positions.shape
    clip_index = torch.arange(clip_count).unsqueeze(1).expand(clip_count, width)  # [C, M]
    slot = torch.arange(width).expand(clip_count, width)
    valid = slot < count.unsqueeze(1)
    last = (n_frames - 1).unsqueeze(1).expand(clip_count, width)
    parts = []
    for mode in modes:
        if mode == "normal":
            rows, base = valid, torch.zeros_like(positions)
        elif mode == "back":
            rows, base = valid & (positions < last), last
        else:  # rotation, diff: base s drawn among the sampled frames before the target
            rows = valid & (slot >= 1)
            draw = torch.rand(clip_count, width, generator=generator)  # [C, M]
            earlier = (draw * slot).long()  # a slot before each target's
            if mode == "diff" and diff_rows == "rollout":
                earlier = (slot - 1).clamp(min=0)  # the chain steps frame by frame
            base = positions.gather(1, earlier.clamp(max=width - 1))
        parts.append(
            Plan(
                clip=clip_index[rows],
                base=base[rows],
                target=positions[rows],
                mode=torch.full((int(rows.sum()),), MODES.index(mode), dtype=torch.int64),
            )
        )
    return Plan(
        clip=torch.cat([part.clip for part in parts]),
        base=torch.cat([part.base for part in parts]),
        target=torch.cat([part.target for part in parts]),
        mode=torch.cat([part.mode for part in parts]),
    )


@dataclass(frozen=True)
class Inputs:
    hidden_states: Tensor  # [B, T, D]
    start: Tensor  # [B, D]
    target: Tensor  # [B, D]
    rise: Tensor  # [B]
    text_embed: Tensor  # [B, D]


def chain_to_base(
    model: Splitter,
    hidden: Tensor,
    text_embed: Tensor,
    prior: Tensor,
    text_weight: Tensor,
    rises: Tensor,
    base: Tensor,
    blend_q: float,
) -> Tensor:
    """The chain rollout from the prior through frames 1..base, as generation runs it with a
    fixed anchor: [N, T, D] tokens, [N, D] pooled text, [N, D] prior, [N] weight, [N, F] rises,
    [N] base -> [N, D].

    Fed only one-shot predictions, the model never sees the drift of its own chain; trained
    from here it learns to step on from where its rollout really is (scheduled sampling)."""
    last = prior.clone()  # [N, D]
    for step in range(1, int(base.max()) + 1):
        active = base >= step  # rows whose chain reaches this frame
        tokens = follow(
            hidden[active], text_weight[active], prior[active], last[active], blend_q
        )  # [A, T, D]
        rise = rises[active, step] - rises[active, step - 1]  # [A]
        last[active] = model(tokens, last[active], rise, text_embed[active])
    return last


def make_inputs(
    clips: ClipSet, plan: Plan, model: Splitter, blend_q: float, diff_rows: str = "prediction"
) -> Inputs:
    """Build the model inputs of ``plan``'s rows (on the clips' device), mode by mode."""
    device = clips.frames.device
    clip, base, target, mode = (
        t.to(device) for t in (plan.clip, plan.base, plan.target, plan.mode)
    )
    hidden = clips.hidden_states[clip]  # [B, T, D]
    prior = clips.prior_embed[clip]  # [B, D]
    text_embed = clips.text_embed[clip]  # [B, D]
    first = clips.frames[clip, 0]  # [B, D]
    base_frame = clips.frames[clip, base]  # [B, D]
    start = prior.clone()
    back = mode == MODES.index("back")
    start[back] = base_frame[back]
    rotated = mode == MODES.index("rotation")
    if rotated.any():
        moved = blend(
            prior[rotated],
            cosine(first[rotated], prior[rotated]),
            first[rotated],
            base_frame[rotated],
            blend_q,
        )
        start[rotated] = moved
    text_weight = cosine(prior, text_embed)  # [B]
    diff = mode == MODES.index("diff")
    if diff.any() and diff_rows == "rollout":
        start[diff] = chain_to_base(
            model,
            hidden[diff],
            text_embed[diff],
            prior[diff],
            text_weight[diff],
            clips.rises[clip[diff]],
            base[diff],
            blend_q,
        )
    elif diff.any():
        was_training = model.training
        model.eval()
        with torch.no_grad():
            start[diff] = model(
                hidden[diff], prior[diff], clips.rises[clip[diff], base[diff]], text_embed[diff]
            )
        model.train(was_training)
    hidden = follow(hidden, text_weight, prior, start, blend_q)
    rise = clips.rises[clip, target] - clips.rises[clip, base]  # [B], seconds / span
    return Inputs(
        hidden_states=hidden,
        start=start,  # carries the gradient of a diff rollout's chain, if any
        target=clips.frames[clip, target],
        rise=rise,
        text_embed=text_embed,
    )


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
) -> TrainResult:
    """Train on ``train_set``, early-stop on ``val_set``; returns the best model (eval mode)."""
    device = resolve_device(params.device)
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    modes = active_modes(params.modes)
    train_set, val_set = train_set.to(device), val_set.to(device)
    dim, text_length = train_set.dim, train_set.text_length
    model = Splitter(SplitterConfig.from_params(params.splitter, dim, text_length)).to(device)
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
