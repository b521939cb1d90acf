"""Caption-aware baselines against hand computations: ridge recovers a known linear change,
replays replay exactly, the class fits equal a by-hand least squares, text_direction is the
rotation by the rise."""

from __future__ import annotations

import torch
from fixtures.methods import clip_set, fit

from nextframe.data.synthetic_captions import caption_attributes
from nextframe.methods.base import RolloutContext
from nextframe.model.rollout import Conditioning
from nextframe.model.rotation import cosine

DIM = 6
CONTEXT = RolloutContext(blend_q=1.0, anchor="fixed")


def even(count: int, frames: int) -> torch.Tensor:
    return torch.linspace(0, 1, frames).expand(count, frames).clone()


def cond(start, text, rises, prior=None) -> Conditioning:
    count = len(start)
    return Conditioning(
        hidden_states=torch.zeros(count, 0, DIM),
        prior_embed=start.clone() if prior is None else prior,
        text_embed=text,
        start=start,
        rises=rises,
    )


def random_maps(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.randn(DIM, DIM, generator=generator) * 0.3,
        torch.randn(DIM, DIM, generator=generator) * 0.3,
    )


def linear_world(count: int, generator: torch.Generator, maps, frames: int = 5):
    """Clips whose change is exactly ``r * (A t + B e_0)`` for fixed A, B. With B = 0 the
    change between any two frames is linear in the rise between them and the text, which
    ridge's features ``r t`` span, so a small regularisation recovers it exactly."""
    a_map, b_map = maps
    text = torch.randn(count, DIM, generator=generator)
    first = torch.randn(count, DIM, generator=generator)
    rises = even(count, frames)
    change = text @ a_map.T + first @ b_map.T  # [C, D] per unit rise
    clip_frames = first.unsqueeze(1) + rises.unsqueeze(-1) * change.unsqueeze(1)  # [C, F, D]
    n_frames = torch.full((count,), frames)
    return clip_set(clip_frames, n_frames, rises, text, prior=first.clone()), (a_map, b_map)


def test_ridge_recovers_a_known_linear_change_from_a_frame_and_from_the_prior() -> None:
    generator = torch.Generator().manual_seed(0)
    a_map, _ = random_maps(generator)
    b_map = torch.zeros(DIM, DIM)
    maps = (a_map, b_map)
    train, _ = linear_world(60, generator, maps)
    val, _ = linear_world(10, generator, maps)
    ridge = fit("ridge", train, val=val)
    text = torch.randn(4, DIM, generator=generator)
    start = torch.randn(4, DIM, generator=generator)
    rises = torch.tensor([0.0, 0.3, 0.6, 1.0]).expand(4, 4)
    expected = start.unsqueeze(1) + rises.unsqueeze(-1) * (
        text @ a_map.T + start @ b_map.T
    ).unsqueeze(1)
    from_frame = cond(start, text, rises, prior=torch.zeros(4, DIM))
    for starts in (cond(start, text, rises), from_frame):  # the prior's fit and the frame's
        got = ridge.rollout(starts, "step", CONTEXT).embeddings
        torch.testing.assert_close(got, expected, atol=2e-3, rtol=2e-3)
    # chain: each step from the previous prediction by the rise since it, the same path here
    got = ridge.rollout(from_frame, "chain", CONTEXT).embeddings
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=2e-3)
    assert max(ridge.ratios) <= 1e-4  # noiseless data: val picks a small regularisation


def test_the_splitters_starting_regression_recovers_a_known_change_from_both_starts() -> None:
    """``fit_change_regression`` (where ``linear_init: ridge`` starts the splitter): one
    matrix on the features with constant, fitted on rows from frames and from the prior
    together, recovers the known linear change from either start."""
    from nextframe.methods.caption_aware import fit_change_regression
    from nextframe.model.splitter import rise_polynomial

    generator = torch.Generator().manual_seed(3)
    maps = (random_maps(generator)[0], torch.zeros(DIM, DIM))
    train, _ = linear_world(60, generator, maps)
    val, _ = linear_world(10, generator, maps)
    weights = fit_change_regression(train, val)  # [3 (2D + 1), D]
    assert weights.shape == (3 * (2 * DIM + 1), DIM)
    text, start = torch.randn(2, 5, DIM, generator=generator)
    rise = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0])
    change = rise_polynomial(text, start, rise, True) @ weights
    torch.testing.assert_close(change, rise.unsqueeze(1) * text @ maps[0].T, atol=2e-3, rtol=2e-3)


def test_ridge_from_a_frame_does_not_move_at_rise_zero_and_fits_train_only() -> None:
    generator = torch.Generator().manual_seed(1)
    train, _ = linear_world(30, generator, random_maps(generator))
    other_world = torch.Generator().manual_seed(99)
    other, _ = linear_world(30, other_world, random_maps(other_world))  # another world as val
    ridge = fit("ridge", train, val=other)
    start, text = torch.randn(3, DIM), torch.randn(3, DIM)
    zero = torch.zeros(3)
    torch.testing.assert_close(
        ridge.predict(text, start, zero, torch.zeros(3, dtype=torch.bool)), start
    )
    # val chose only lambda: with another world as val it regularises hard, with train as
    # val it does not; the weights are a ridge solution on train either way
    refit = fit("ridge", train, val=train)
    assert refit.frame_weights.shape == ridge.frame_weights.shape == (2 * (2 * DIM + 1), DIM)
    assert max(refit.ratios) < min(ridge.ratios)


def test_replay_change_at_rise_zero_is_the_start_and_replays_a_single_clip_exactly() -> None:
    generator = torch.Generator().manual_seed(2)
    frames = torch.randn(1, 5, DIM, generator=generator)
    prior = torch.randn(1, DIM, generator=generator)
    train = clip_set(frames, torch.tensor([5]), even(1, 5), torch.randn(1, DIM), prior=prior)
    replay = fit("replay_change", train)
    start, text = torch.randn(2, DIM, generator=generator), torch.randn(2, DIM)
    rises = even(2, 5)
    made = replay.rollout(cond(start, text, rises, prior=torch.randn(2, DIM)), "step", CONTEXT)
    torch.testing.assert_close(made.embeddings[:, 0], start)  # rise 0: the start
    expected = start.unsqueeze(1) + (frames - frames[:, :1])  # the one clip's change, replayed
    torch.testing.assert_close(made.embeddings, expected)
    # from the prior, the change is replayed from the clip's own prior: the jump included
    from_prior = replay.rollout(cond(start, text, rises), "chain", CONTEXT).embeddings
    torch.testing.assert_close(from_prior[:, 1:], start.unsqueeze(1) + (frames - prior)[:, 1:])


CAPTIONS = [
    "a small red square moves slowly from left to right on a gray background",
    "a small blue square moves slowly from left to right on a white background",
    "a large red circle shrinks quickly on a gray background",
]


def test_caption_attributes_parse_the_synthetic_captions() -> None:
    assert caption_attributes(CAPTIONS[0]) == ("moves_right", "slowly", "small")
    assert caption_attributes(CAPTIONS[2]) == ("shrinks", "quickly", "large")
    assert caption_attributes("a person doing yoga") is None


def test_class_regression_is_the_least_squares_fit_of_each_label_triple() -> None:
    generator = torch.Generator().manual_seed(3)
    frames = torch.randn(3, 4, DIM, generator=generator)
    rises = torch.tensor([[0.0, 0.2, 0.7, 1.0], [0.0, 0.5, 0.6, 1.0], [0.0, 0.3, 0.4, 1.0]])
    train = clip_set(frames, torch.tensor([4, 4, 4]), rises, torch.randn(3, DIM))
    model = fit("class_regression", train, captions=CAPTIONS)
    # clips 0 and 1 share (moves_right, slowly, small): fit a r + b r^2 to both by hand
    r = torch.cat([rises[0, 1:], rises[1, 1:]]).double()
    change = torch.cat([frames[0, 1:] - frames[0, 0], frames[1, 1:] - frames[1, 0]]).double()
    basis = torch.stack([r, r**2], 1)
    coefficients = torch.linalg.solve(basis.T @ basis, basis.T @ change)  # [2, D]
    start = torch.randn(1, DIM, generator=generator)
    query = torch.tensor([[0.0, 0.5, 1.0]])
    context = RolloutContext(1.0, "fixed", captions=[CAPTIONS[1].replace("blue", "green")])
    got = model.rollout(
        cond(start, torch.randn(1, DIM), query, prior=torch.zeros(1, DIM)), "step", context
    )
    q = query[0].double()
    expected = start.double() + torch.stack([q, q**2], 1) @ coefficients
    torch.testing.assert_close(got.embeddings[0].double(), expected, atol=1e-5, rtol=1e-5)


def test_replay_change_attrs_replays_a_clip_with_the_same_labels() -> None:
    generator = torch.Generator().manual_seed(4)
    frames = torch.randn(3, 4, DIM, generator=generator)
    text = torch.randn(3, DIM, generator=generator)
    train = clip_set(frames, torch.tensor([4, 4, 4]), even(3, 4), text)
    model = fit("replay_change_attrs", train, captions=CAPTIONS)
    start = torch.randn(1, DIM, generator=generator)
    # the text embedding is clip 2's (a shrinking circle), the caption says it moves right
    query = cond(start, text[2:3], even(1, 4), prior=torch.zeros(1, DIM))
    context = RolloutContext(1.0, "fixed", captions=[CAPTIONS[0]])
    got = model.rollout(query, "step", context).embeddings[0]
    changes = [start[0] + frames[c] - frames[c, 0] for c in (0, 1)]
    assert any(torch.allclose(got, change, atol=1e-6) for change in changes)
    plain = fit("replay_change", train).rollout(query, "step", context).embeddings[0]
    torch.testing.assert_close(plain, start[0] + frames[2] - frames[2, 0])  # nearest text: clip 2


def test_text_direction_rotates_toward_the_text_by_the_rise_and_keeps_the_norm() -> None:
    generator = torch.Generator().manual_seed(5)
    start, text = torch.randn(2, DIM, generator=generator), torch.randn(2, DIM, generator=generator)
    method = fit(
        "text_direction",
        clip_set(torch.randn(1, 2, DIM), torch.tensor([2]), even(1, 2), torch.randn(1, DIM)),
    )
    rises = torch.tensor([[0.0, 0.5, 1.0]]).expand(2, 3)
    made = method.rollout(cond(start, text, rises), "step", CONTEXT).embeddings
    angle = torch.arccos(cosine(start, text))
    torch.testing.assert_close(made[:, 1].norm(dim=-1), start.norm(dim=-1))
    torch.testing.assert_close(
        torch.arccos(cosine(made[:, 1], start)), angle / 2, atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(cosine(made[:, 2], text), torch.ones(2), atol=1e-5, rtol=1e-5)
