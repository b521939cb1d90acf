"""The trajectory GAN: it learns a caption's motion on a toy world, its noise is seeded, its
gradient penalty is the textbook one, it survives a save/load, and only training rows ever
reach a gradient step."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from fixtures.methods import clip_set, fit_data
from fixtures.project import PARAMS, FakeBackbone, build_project, evaluate, generate
from torch.nn import functional as F

from nextframe.config import ParamsError, parse_params
from nextframe.methods import REGISTRY
from nextframe.methods.base import RolloutContext
from nextframe.methods.files import DESCRIPTION_FILE
from nextframe.methods.trajectory_gan import (
    TrajectoryGan,
    clip_conditioning,
    pairwise_spread,
    truth_spread,
)
from nextframe.model.trajectory_gan import (
    Discriminator,
    GanConfig,
    condition_inputs,
    gradient_penalty,
    penalty_points,
)
from nextframe.pipeline import train as train_stage

DIM = 8
FRAMES = 5
CONTEXT = RolloutContext(blend_q=1.0, anchor="fixed")
SMALL = {"hidden": 32, "batch_size": 16, "noise_dim": 4, "samples": 4}


def toy_world(count: int, generator: torch.Generator) -> tuple:
    """Four motions, each a fixed direction in embedding space; a caption is its motion's
    prototype plus noise, a clip moves its (random) first frame along the motion by the
    rise. The prior is the first frame plus noise (the jump a rollout from it must make)."""
    directions = F.normalize(
        torch.randn(4, DIM, generator=torch.Generator().manual_seed(7)), dim=-1
    )
    motion = torch.randint(0, 4, (count,), generator=generator)
    text = F.normalize(
        F.one_hot(motion, DIM).float() + 0.1 * torch.randn(count, DIM, generator=generator), dim=-1
    )
    first = F.normalize(torch.randn(count, DIM, generator=generator), dim=-1)
    rises = torch.linspace(0, 1, FRAMES).expand(count, FRAMES).clone()
    frames = first.unsqueeze(1) + 0.8 * rises.unsqueeze(-1) * directions[motion].unsqueeze(1)
    prior = first + 0.05 * torch.randn(count, DIM, generator=generator)
    clips = clip_set(frames, torch.full((count,), FRAMES), rises, text, prior=prior)
    return clips, motion


def params(**settings):
    return parse_params({"train": {"trajectory_gan": {**SMALL, **settings}, "device": "cpu"}})


def fit(train, val, **settings) -> TrajectoryGan:
    return TrajectoryGan.fit(fit_data(train, val=val), params(**settings))


@pytest.fixture(scope="module")
def world() -> dict:
    generator = torch.Generator().manual_seed(0)
    train, _ = toy_world(64, generator)
    val, _ = toy_world(16, generator)
    test, _ = toy_world(24, generator)
    return {"train": train, "val": val, "test": test}


@pytest.fixture(scope="module")
def fitted(world: dict) -> TrajectoryGan:
    return fit(world["train"], world["val"], epochs=60)


def mean_cosine(made: torch.Tensor, truth: torch.Tensor) -> float:
    return float(F.cosine_similarity(made[:, 1:], truth[:, 1:], dim=-1).mean())


def test_it_starts_at_the_start_and_moves_toward_the_true_change(world, fitted) -> None:
    test = world["test"]
    for start in (test.prior_embed, test.frames[:, 0]):
        cond = clip_conditioning(test, start, test.rises)
        made = fitted.rollout(cond, "step", CONTEXT).embeddings  # [C, n, D]
        assert made.shape == test.frames.shape
        torch.testing.assert_close(made[:, 0], start)
        standing = start.unsqueeze(1).expand_as(test.frames)
        # better than standing still (copy_start), and the change points the true way
        assert mean_cosine(made, test.frames) > mean_cosine(standing, test.frames) + 0.03
        change = F.cosine_similarity(
            made[:, 1:] - start.unsqueeze(1), test.frames[:, 1:] - start.unsqueeze(1), dim=-1
        )
        assert float(change.mean()) > 0.5
        # the whole trajectory at once: chain is step
        torch.testing.assert_close(fitted.rollout(cond, "chain", CONTEXT).embeddings, made)


def test_samples_differ_by_seed_and_repeat_for_the_same_seed(world, fitted) -> None:
    test = world["test"]
    cond = clip_conditioning(test, test.prior_embed, test.rises)
    drawn = fitted.samples(cond, 4)  # [S, C, n, D]
    torch.testing.assert_close(drawn[0], fitted.rollout(cond, "step", CONTEXT).embeddings)
    torch.testing.assert_close(fitted.samples(cond, 4), drawn)  # same seed: same samples
    for a in range(4):  # different z: different trajectories
        for b in range(a + 1, 4):
            assert (drawn[a, :, 1:] - drawn[b, :, 1:]).abs().max() > 1e-3
    reseeded = TrajectoryGan(fitted.generator, fitted.scale, fitted.sample_seed + 1, {})
    assert (reseeded.samples(cond, 1)[0] - drawn[0])[:, 1:].abs().max() > 1e-3
    # a rollout does not depend on the captions beside it in its batch
    torch.testing.assert_close(fitted.samples(cond.subset(slice(3, 5)), 4), drawn[:, 3:5])


def test_the_fit_report_holds_the_diversity_beside_the_truths_spread(fitted) -> None:
    report = fitted.report
    assert 1 <= report["best_epoch"] <= 60 == len(report["history"])
    assert report["val_cos_mean"] == max(row["val"] for row in report["history"])
    diversity = report["diversity"]
    assert diversity["samples"] == 4 and diversity["val_captions"] == 16
    for start in ("from_prior", "from_first_frame"):
        assert diversity[start]["cosine_distance"] > 1e-4
        assert diversity[start]["change_distance"] > 1e-3
    assert diversity["truth_same_attributes"] is None  # the toy captions state no attributes


def test_training_is_deterministic_for_a_seed_and_changes_with_it(world) -> None:
    first = fit(world["train"], world["val"], epochs=2)
    again = fit(world["train"], world["val"], epochs=2)
    other = fit(world["train"], world["val"], epochs=2, seed=1)
    cond = clip_conditioning(world["test"], world["test"].prior_embed, world["test"].rises)
    made = first.rollout(cond, "step", CONTEXT).embeddings
    torch.testing.assert_close(again.rollout(cond, "step", CONTEXT).embeddings, made)
    assert (other.rollout(cond, "step", CONTEXT).embeddings - made).abs().max() > 1e-3


def test_only_training_rows_reach_a_gradient_step(world) -> None:
    """Val picks the epoch kept and nothing else: with another world as val, every epoch's
    training losses are the same to the bit (a val row in a batch would change them)."""
    other, _ = toy_world(16, torch.Generator().manual_seed(99))
    shifted = clip_set(
        other.frames + 5.0, other.n_frames, other.rises, -other.text_embed, other.prior_embed
    )
    one = fit(world["train"], world["val"], epochs=4)
    two = fit(world["train"], shifted, epochs=4)
    losses = ("d_loss", "penalty", "g_loss")
    assert [[row[k] for k in losses] for row in one.report["history"]] == [
        [row[k] for k in losses] for row in two.report["history"]
    ]
    assert [row["val"] for row in one.report["history"]] != [
        row["val"] for row in two.report["history"]
    ]


def test_save_and_load_give_identical_rollouts(tmp_path: Path, world, fitted) -> None:
    fitted.save(tmp_path / "gan")
    loaded = TrajectoryGan.load(tmp_path / "gan")
    test = world["test"]
    cond = clip_conditioning(test, test.frames[:, 0], test.rises)
    assert torch.equal(loaded.samples(cond, 4), fitted.samples(cond, 4))
    assert loaded.report == json.loads(json.dumps(fitted.report))
    description = json.loads((tmp_path / "gan" / DESCRIPTION_FILE).read_text())
    assert description["method"] == "trajectory_gan"
    assert description["diversity"]["from_prior"]["cosine_distance"] > 0


# ---------------------------------------------------------------------------- the penalty


def test_gradient_penalty_is_the_mean_squared_gradient_at_each_row() -> None:
    """Against autograd of D at one row at a time (batch of 1): |dD(x_b)/dx_b|^2, averaged."""
    torch.manual_seed(0)
    config = GanConfig(dim=DIM, noise_dim=4, hidden=32, frequencies=2)
    discriminator = Discriminator(config, steps=3)
    changes = torch.randn(5, 3, DIM)
    condition = condition_inputs(torch.randn(5, DIM), torch.randn(5, DIM), torch.rand(5).round())
    rises = torch.rand(5, 3)
    mask = torch.ones(5, 3)
    mask[1, 2] = 0.0  # a clip with a frame less
    got = gradient_penalty(discriminator, changes, condition, rises, mask)
    by_row = []
    for row in range(5):
        point = changes[row : row + 1].clone().requires_grad_(True)
        logit = discriminator(
            point, condition[row : row + 1], rises[row : row + 1], mask[row : row + 1]
        )
        (gradient,) = torch.autograd.grad(logit.sum(), point)
        by_row.append(gradient.pow(2).sum())
        if row == 1:
            assert gradient[0, 2].abs().max() == 0  # a padding step has no gradient
    torch.testing.assert_close(got, torch.stack(by_row).mean())
    # it stays in the graph: the discriminator's step can lower it
    assert got.requires_grad
    (weight,) = torch.autograd.grad(got, [discriminator.net[0].weight])
    assert weight.abs().max() > 0


def test_the_penalty_is_taken_at_real_samples_or_between_real_and_fake() -> None:
    real, fake = torch.randn(6, 3, DIM), torch.randn(6, 3, DIM)
    rng = torch.Generator().manual_seed(0)
    assert penalty_points(real, fake, "real", rng) is real
    between = penalty_points(real, fake, "interpolates", rng)
    share = ((between - fake) / (real - fake))[:, :1, :1]  # one share per row
    torch.testing.assert_close((between - fake) / (real - fake), share.expand_as(real))
    assert ((share > 0) & (share < 1)).all()


# ---------------------------------------------------------------------------- diversity


def test_pairwise_spread_and_the_truths_spread_by_hand() -> None:
    start = torch.tensor([1.0, 0.0])
    trajectories = torch.stack(
        [torch.stack([start, start + torch.tensor([0.0, d])]) for d in (1.0, -1.0, 0.0)]
    )  # three samples: up, down, stand
    cosine, change = pairwise_spread(trajectories)
    # pairs (up, down): 1 - cos(45 deg up, 45 deg down) = 1, distance 2; (up, stand),
    # (down, stand): 1 - cos 45 deg, distance 1
    expected_cosine = (1.0 + 2 * (1 - 2**-0.5)) / 3
    assert cosine == pytest.approx(expected_cosine, rel=1e-5)
    assert change == pytest.approx(4 / 3, rel=1e-6)

    captions = [
        "a small red square moves slowly from left to right on a gray background",
        "a small blue circle moves slowly from left to right on a white background",
        "a large red circle shrinks quickly on a gray background",
    ]
    rises = torch.linspace(0, 1, 3).expand(3, 3).clone()
    moves = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])  # change per unit rise
    first = torch.randn(3, 2)
    frames = first.unsqueeze(1) + rises.unsqueeze(-1) * moves.unsqueeze(1)
    clips = clip_set(frames, torch.full((3,), 3), rises, torch.randn(3, 2))
    spread = truth_spread(clips, captions, torch.tensor([0.0, 0.5, 1.0]))
    # one group of two (the right-movers): |(3 - 1) r| at r = 0.5 and 1, averaged
    assert spread == {"change_distance": pytest.approx(1.5), "groups": 1, "clips": 2}
    assert truth_spread(clips, ["a person doing yoga"] * 3, torch.tensor([0.0, 1.0])) is None


# ---------------------------------------------------------------------------- wiring


def test_it_is_a_registered_learned_caption_aware_method() -> None:
    info = REGISTRY["trajectory_gan"]
    assert info.learned and info.caption_aware and not info.privileged
    assert parse_params({"generate": {"methods": ["splitter", "trajectory_gan"]}})


@pytest.mark.parametrize(
    ("settings", "dotted"),
    [
        ({"gp_weight": -1}, "train.trajectory_gan.gp_weight"),
        ({"gp_at": "fake"}, "train.trajectory_gan.gp_at"),
        ({"samples": 1}, "train.trajectory_gan.samples"),
        ({"noise": 3}, "train.trajectory_gan.noise"),
    ],
)
def test_bad_settings_name_their_key(settings: dict, dotted: str) -> None:
    with pytest.raises(ParamsError, match=f"{dotted}:"):
        parse_params({"train": {"trajectory_gan": settings}})


def test_the_train_stage_fits_it_and_generate_and_evaluate_score_it(
    tmp_path: Path, fake_backbone: FakeBackbone
) -> None:
    """Through the stages' own code: train fits it from the embedding tables (train split),
    generate rolls it out for held-out clips and prompts, evaluate scores it."""
    paths = build_project(tmp_path, fake_backbone, {"train": 6, "val": 2, "test": 3})
    raw = json.loads(json.dumps(PARAMS))
    raw["generate"]["methods"] = ["splitter", "copy_start", "trajectory_gan"]
    raw["train"] = {"epochs": 1, "device": "cpu", "trajectory_gan": {**SMALL, "epochs": 2}}
    params = parse_params(raw)
    train_stage.run(paths["manifest"], paths["embeddings"], paths["models"], tmp_path, params)
    description = json.loads((paths["models"] / "trajectory_gan" / DESCRIPTION_FILE).read_text())
    assert len(description["history"]) == 2
    generate(paths, tmp_path / "generated", params)
    table = pq.read_table(tmp_path / "generated" / "predictions.parquet").to_pandas()
    made = table[table["method"] == "trajectory_gan"]
    assert len(made) == (3 + 1) * 2 * 5  # (3 clips + 1 prompt) x rollouts x steps
    evaluate(paths, tmp_path / "generated", tmp_path / "metrics", params)
    full = json.loads((tmp_path / "metrics" / "evaluate_full.json").read_text())
    assert "splitter-trajectory_gan.step.cos_mean" in full
