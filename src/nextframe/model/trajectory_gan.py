"""A conditional trajectory GAN: a caption and a start in, the whole embedding trajectory out.

The seeds' video GAN (text in, a whole sequence out, kept diverse by a zero-centred gradient
penalty) moved into this project's embedding space. A row is one clip seen from one start:

- the condition: the caption's text embedding t, the start s (the caption's prior p, or the
  clip's first frame e_0) and a flag f saying which (from the prior the trajectory first
  jumps to the first frame; from a frame it does not);
- the trajectory: the changes ``e_k - s`` at the rises r_k of frames k = 1 .. n-1, divided by
  ``scale`` (the RMS entry of the training changes), so both networks see O(1) numbers
  whatever the backbone's norm.

Generator ``G(t, s, f, z, r_1..r_n) -> changes [B, n, D]``: an MLP of (t, s, f, z) gives a
context, and an MLP of (context, sin/cos of r_i) gives step i. One z per trajectory, so the
noise changes the whole motion, not each frame independently.

Discriminator ``D(changes, t, s, f, rises) -> logit``: an MLP of the whole trajectory
(every step's change, rise features and a real-frame bit, flattened) and the condition, so
it judges a motion as one thing: steps borrowed from different motions do not pass. Padding
steps (clips with fewer frames) are zeroed, so D's gradient with respect to them is 0.

Losses, non-saturating (Goodfellow et al. 2014): ``L_D = softplus(-D(real)) + softplus(D(fake))
+ gamma / 2 * E |grad_x D(x)|^2`` and ``L_G = softplus(-D(G(z)))``. The penalty is zero-centred
and taken at the real trajectories (R1, Mescheder et al. 2018, arXiv 1801.04406) or, with
``gp_at: interpolates``, at random points between real and fake ones (the 0-GP of
Thanh-Tung et al. 2019, arXiv 1902.03984); the gradient is with respect to the trajectory
only, the condition held fixed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nextframe.model.splitter import time_features

if TYPE_CHECKING:
    from nextframe.config import TrajectoryGanParams
    from nextframe.model.clips import ClipSet


@dataclass(frozen=True)
class GanConfig:
    dim: int  # D, the embedding size
    noise_dim: int  # Z
    hidden: int  # H, the width of both networks
    frequencies: int  # sin/cos octaves of the rise

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Rows:
    """B trajectories: their condition and their true changes (``scale`` units)."""

    text: Tensor  # [B, D] text embeddings (as stored; condition_inputs normalises)
    start: Tensor  # [B, D] starts (as stored)
    from_prior: Tensor  # [B] 1.0 where the start is the caption's prior, else 0.0
    rises: Tensor  # [B, n] rises of frames 1 .. n (padding: the last rise repeated)
    mask: Tensor  # [B, n] 1.0 where the step is a real frame
    changes: Tensor  # [B, n, D] (e_k - start) / scale, zero at padding

    def __len__(self) -> int:
        return int(self.text.shape[0])

    def subset(self, index: Tensor) -> Rows:
        return Rows(*(getattr(self, name)[index] for name in Rows.__dataclass_fields__))

    def to(self, device: torch.device | str) -> Rows:
        return Rows(*(getattr(self, name).to(device) for name in Rows.__dataclass_fields__))


def condition_inputs(text: Tensor, start: Tensor, from_prior: Tensor) -> Tensor:
    """[B, D], [B, D], [B] -> [B, 2D + 1]: the condition both networks read (unit vectors,
    so a backbone's raw norms do not matter)."""
    return torch.cat(
        [
            F.normalize(text.float(), dim=-1),
            F.normalize(start.float(), dim=-1),
            from_prior[:, None],
        ],
        dim=-1,
    )


def mlp(width_in: int, hidden: int, width_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width_in, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, width_out),
    )


class Generator(nn.Module):
    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        self.config = config
        condition, time = 2 * config.dim + 1, 1 + 2 * config.frequencies
        self.context = mlp(condition + config.noise_dim, config.hidden, config.hidden)
        self.step = mlp(config.hidden + time, config.hidden, config.dim)

    def forward(self, condition: Tensor, noise: Tensor, rises: Tensor) -> Tensor:
        """condition [B, 2D + 1], noise [B, Z], rises [B, n] -> changes [B, n, D]."""
        context = self.context(torch.cat([condition, noise], dim=-1))  # [B, H]
        time = time_features(rises.float(), self.config.frequencies)  # [B, n, 1 + 2K]
        context = context.unsqueeze(1).expand(-1, rises.shape[1], -1)  # [B, n, H]
        return self.step(torch.cat([context, time], dim=-1))


class Discriminator(nn.Module):
    """An MLP over the whole trajectory at once (n steps of D, flattened, with their rises),
    so it judges the motion, not frames one by one. ``steps`` is fixed at training (the
    training clips' frames less one); only the generator is needed at rollout, where any
    number of rises goes."""

    def __init__(self, config: GanConfig, steps: int) -> None:
        super().__init__()
        self.config = config
        condition, time = 2 * config.dim + 1, 1 + 2 * config.frequencies
        self.net = mlp(steps * (config.dim + time + 1) + condition, config.hidden, 1)

    def forward(self, changes: Tensor, condition: Tensor, rises: Tensor, mask: Tensor) -> Tensor:
        """changes [B, n, D], condition [B, 2D + 1], rises [B, n], mask [B, n] -> logits [B].
        Padding steps are multiplied by 0: D's gradient with respect to them is exactly 0."""
        time = time_features(rises.float(), self.config.frequencies)  # [B, n, 1 + 2K]
        steps = torch.cat([changes, time, torch.ones_like(rises).unsqueeze(-1)], dim=-1)
        steps = steps * mask.unsqueeze(-1)  # [B, n, D + 2 + 2K]
        return self.net(torch.cat([steps.flatten(1), condition], dim=-1)).squeeze(-1)


def gradient_penalty(
    discriminator: nn.Module, changes: Tensor, condition: Tensor, rises: Tensor, mask: Tensor
) -> Tensor:
    """E_b |d D(x_b) / d x_b|^2 at the trajectories ``changes`` [B, n, D] -> [] (zero-centred,
    kept in the graph so the discriminator's step minimises it). D scores every row on its own
    (no batch statistics), so the gradient of the summed logits is each row's own gradient."""
    points = changes.detach().requires_grad_(True)
    logits = discriminator(points, condition, rises, mask)
    (gradient,) = torch.autograd.grad(logits.sum(), points, create_graph=True)  # [B, n, D]
    return gradient.pow(2).sum(dim=(1, 2)).mean()


def penalty_points(real: Tensor, fake: Tensor, at: str, generator: torch.Generator) -> Tensor:
    """Where the penalty is taken: the real trajectories (R1), or a uniform point on the segment
    between each real trajectory and a fake one (0-GP)."""
    if at == "real":
        return real
    share = torch.rand(real.shape[0], 1, 1, generator=generator).to(real.device)
    return share * real + (1 - share) * fake.detach()


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating: -log sigmoid(D(G(z))), strong gradients while D rejects the fakes."""
    return F.softplus(-fake_logits).mean()


# ---------------------------------------------------------------------------- rows


def clip_rows(clips: ClipSet, scale: float) -> Rows:
    """Every clip twice, from its prior (f = 1) and from its first frame (f = 0): the two
    starts a rollout may have (``generate.start``). 2C rows of n = F - 1 steps."""
    frames = clips.frames.float().cpu()  # [C, F, D]
    width = frames.shape[1]
    mask = (torch.arange(width) < clips.n_frames.cpu().unsqueeze(1))[:, 1:].float()  # [C, n]
    rises = clips.rises.float().cpu()[:, 1:]
    text = clips.text_embed.float().cpu()
    starts = (clips.prior_embed.float().cpu(), frames[:, 0])
    changes = [
        (frames[:, 1:] - start.unsqueeze(1)) * mask.unsqueeze(-1) / scale for start in starts
    ]
    flags = [torch.full((len(clips),), value) for value in (1.0, 0.0)]
    return Rows(
        text=torch.cat([text, text]),
        start=torch.cat(starts),
        from_prior=torch.cat(flags),
        rises=torch.cat([rises, rises]),
        mask=torch.cat([mask, mask]),
        changes=torch.cat(changes),
    )


def change_scale(clips: ClipSet) -> float:
    """The RMS entry of the changes ``clip_rows`` makes, from both starts: the unit of G's
    output and D's input."""
    rows = clip_rows(clips, 1.0)
    entries = rows.mask.sum() * rows.changes.shape[-1]
    return float((rows.changes.pow(2).sum() / entries.clamp(min=1.0)).sqrt().clamp(min=1e-8))


# ---------------------------------------------------------------------------- training


@dataclass
class GanResult:
    generator: Generator  # the best epoch's (eval mode)
    history: list[dict[str, float]]  # one row per epoch: losses and the val score
    best_epoch: int


def train_gan(
    rows: Rows,
    score: Callable[[Generator], float],
    settings: TrajectoryGanParams,
    dim: int,
    device: torch.device,
) -> GanResult:
    """Alternate one discriminator and one generator step per batch of training rows; after
    every epoch ``score`` (the val cosine of the first sample, higher is better) picks the
    generator kept. Only ``rows`` are ever in a gradient step."""
    torch.manual_seed(settings.seed)
    noise_rng = torch.Generator().manual_seed(settings.seed)
    config = GanConfig(dim, settings.noise_dim, settings.hidden, settings.frequencies)
    generator = Generator(config).to(device)
    discriminator = Discriminator(config, rows.rises.shape[1]).to(device)
    betas = (0.5, 0.99)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=settings.lr, betas=betas)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=settings.lr, betas=betas)
    rows = rows.to(device)

    def noise(count: int) -> Tensor:
        return torch.randn(count, settings.noise_dim, generator=noise_rng).to(device)

    history: list[dict[str, float]] = []
    best_score, best_epoch, best_state = -math.inf, 0, None
    for epoch in range(1, settings.epochs + 1):
        generator.train()
        totals, seen = {"d_loss": 0.0, "penalty": 0.0, "g_loss": 0.0}, 0
        for index in torch.randperm(len(rows), generator=noise_rng).split(settings.batch_size):
            batch = rows.subset(index.to(device))
            condition = condition_inputs(batch.text, batch.start, batch.from_prior)
            mask = batch.mask.unsqueeze(-1)  # [B, n, 1]
            fake = generator(condition, noise(len(batch)), batch.rises) * mask  # [B, n, D]
            real_logits = discriminator(batch.changes, condition, batch.rises, batch.mask)
            fake_logits = discriminator(fake.detach(), condition, batch.rises, batch.mask)
            adversarial = discriminator_loss(real_logits, fake_logits)
            points = penalty_points(batch.changes, fake, settings.gp_at, noise_rng)
            penalty = gradient_penalty(discriminator, points, condition, batch.rises, batch.mask)
            d_optimizer.zero_grad(set_to_none=True)
            (adversarial + settings.gp_weight / 2 * penalty).backward()
            d_optimizer.step()

            fake = generator(condition, noise(len(batch)), batch.rises) * mask
            g_loss = generator_loss(discriminator(fake, condition, batch.rises, batch.mask))
            g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            g_optimizer.step()
            for name, value in (("d_loss", adversarial), ("penalty", penalty), ("g_loss", g_loss)):
                totals[name] += float(value.detach()) * len(batch)
            seen += len(batch)
        generator.eval()
        with torch.no_grad():
            val_score = score(generator)
        history.append(
            {"epoch": float(epoch), **{k: v / seen for k, v in totals.items()}, "val": val_score}
        )
        if val_score > best_score:
            best_score, best_epoch = val_score, epoch
            best_state = copy.deepcopy(generator.state_dict())
    generator.load_state_dict(best_state)
    return GanResult(generator=generator.eval(), history=history, best_epoch=best_epoch)
