"""Training rows of the splitter, mode by mode: which (clip, base, target) frames a batch
holds (``plan_rows``) and the model inputs built from them (``make_inputs``).

Every epoch, each clip contributes frame 0, its last frame and random frames between
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
forward   frame s                             frame t > s                  r_t - r_s > 0
========  ==================================  ===========================  ==========

``forward`` is ours, not the seed's: the rows ``ridge`` is fitted on, a step from a real
frame, which is what every chain step after the first and every rollout from the true
first frame asks for. ``all`` is every mode (DESIGN.md); the seed's composite training is
``[normal, back, rotation, diff]``.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nextframe.model.clips import ClipSet, ClipSource, Plan
from nextframe.model.rotation import blend, cosine, follow
from nextframe.model.splitter import Splitter

MODES = ("normal", "back", "rotation", "diff", "forward")


def active_modes(modes: list[str]) -> tuple[str, ...]:
    """``params.train.modes`` in table order (``all``: every mode)."""
    return MODES if "all" in modes else tuple(mode for mode in MODES if mode in modes)


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
        else:  # rotation, diff, forward: base s drawn among the sampled frames before the target
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
    from_frame = (mode == MODES.index("back")) | (mode == MODES.index("forward"))
    start[from_frame] = base_frame[from_frame]
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
