"""The splitter: predicts where a caption's image embedding moves after a step in time.

Inputs: the caption's text hidden states ``h`` [B, T, D], a start embedding [B, D] (the
prior's embedding of the caption, a real frame, or the model's own last prediction) and
the rise [B] (signed time from start to target over the clip's last frame index); with
``pooled``, also the caption's pooled text embedding ``t`` [B, D] (what ``ridge`` reads),
one more token for seed/increment and one more input of the timed MLP.

    tokens = [h_1 .. h_T, W_s start, w_r rise]      # [B, T + 2, D]
    tokens = tokens / |tokens| over the token axis  # every channel a unit column
    out    = mix(tokens^T)                          # [B, D, T + 2] -> [B, D, 1]

``mix`` acts along the token axis with weights shared by all D channels, so its size does
not grow with D; only ``W_s`` (D x D) does. Three variants (``params.train.splitter``):

- ``seed``: the seed's stack of Linear + ELU (+ LayerNorm without affine after the widths
  in ``norm_after``) + dropout, e.g. widths 128, 64, 32, 16, 8, 4, 2, 1.
- ``increment``: a learned step embedding of the rise is added to every text token before
  mixing (the seed's "cross-attention" of text tokens to the rise: with a single key the
  softmax is 1, so attention reduces to an added affine map of the rise, which is what is
  built), and the stack is residual blocks Linear + GELU + LayerNorm + dropout with a
  linear skip.
- ``timed``: ours. Time enters every layer, not one token among T + 2 that the
  normalisation over tokens can drown: the rise becomes Fourier features that scale and
  shift (FiLM) each residual block of an MLP over [start, attention-pooled text, mean
  text]; the pooling query is the start and the time, so the words that matter at this
  moment (which way, how fast) are the ones read. Width ``hidden``, ``depth`` blocks.

    features = [r, sin(2^k pi r), cos(2^k pi r)]               # [B, 1 + 2K]
    text     = attend(query = W_q [start, features], keys = h)  # [B, D]
    x        = W_in [start, text, mean_t h]                     # [B, H]
    x        = x + (1 + g(features)) * mlp(norm(x)) + b(features)   # per block
    out      = W_out x                                          # [B, D]

With ``linear`` (any variant) a linear path is added to the output:
``+ W_lin phi(t, start, r)``, ``phi = [1, t, start] x [1, r, r^2]`` (``rise_polynomial``,
the ``ridge`` baseline's features; t the pooled text embedding), ``W_lin`` [D, 3 (2D + 1)]
zero at initialisation. The network then holds ridge's whole function class and learns
what a linear map of its inputs cannot say on top of it; with 222 training clips SGD on the
network alone did not reach ridge's motion (README, "Comparing variants").
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F

from nextframe.config import SplitterParams
from nextframe.store import atomic_path

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class SplitterConfig:
    """Everything needed to rebuild the network: the params plus the table's T and D."""

    dim: int  # D, from the embedding tables
    text_length: int  # T, from the embedding tables
    variant: str = "seed"
    widths: list[int] = field(default_factory=lambda: [128, 64, 32, 16, 8, 4, 2, 1])
    norm_after: list[int] = field(default_factory=lambda: [32, 8])
    dropout: float = 0.3
    output: str = "target"
    hidden: int = 512  # timed: MLP width
    depth: int = 3  # timed: residual blocks
    heads: int = 4  # timed: attention heads pooling the text
    frequencies: int = 6  # timed: Fourier features of the rise
    pooled: bool = False  # also read the pooled text embedding
    linear: bool = False  # add ridge's features times a learned matrix to the output

    @classmethod
    def from_params(cls, params: SplitterParams, dim: int, text_length: int) -> SplitterConfig:
        return cls(
            dim=dim,
            text_length=text_length,
            variant=params.variant,
            widths=list(params.widths),
            norm_after=list(params.norm_after),
            dropout=params.dropout,
            output=params.output,
            hidden=params.hidden,
            depth=params.depth,
            heads=params.heads,
            frequencies=params.frequencies,
            pooled=params.pooled,
            linear=params.linear,
        )


class ResidualMix(nn.Module):
    """An ``increment`` block on the token axis: Linear, GELU, LayerNorm, dropout + linear skip."""

    def __init__(self, width_in: int, width_out: int, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(width_in, width_out)
        self.norm = nn.LayerNorm(width_out)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Linear(width_in, width_out, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # [B, D, width_in] -> [B, D, width_out]
        return self.dropout(self.norm(F.gelu(self.linear(x)))) + self.skip(x)


def seed_mixer(tokens: int, config: SplitterConfig) -> nn.Sequential:
    """The seed's token-mixing MLP: tokens -> widths[0] -> ... -> 1."""
    layers: list[nn.Module] = []
    width_in = tokens
    hidden = config.widths[:-1]
    for width in hidden:
        layers += [nn.Linear(width_in, width), nn.ELU()]
        if width in config.norm_after:
            layers.append(nn.LayerNorm(width, elementwise_affine=False))
        layers.append(nn.Dropout(config.dropout))
        width_in = width
    layers.append(nn.Linear(width_in, config.widths[-1]))
    return nn.Sequential(*layers)


def increment_mixer(tokens: int, config: SplitterConfig) -> nn.Sequential:
    """Residual token-mixing blocks: tokens -> widths[0] -> ... -> 1 (the last one plain)."""
    layers: list[nn.Module] = []
    width_in = tokens
    for width in config.widths[:-1]:
        layers.append(ResidualMix(width_in, width, config.dropout))
        width_in = width
    layers.append(nn.Linear(width_in, config.widths[-1]))
    return nn.Sequential(*layers)


def rise_polynomial(text: Tensor, start: Tensor, rise: Tensor, with_constant: bool) -> Tensor:
    """[N, D] x2 and [N] -> [N, P]: ``[1, t, s]`` times ``[1,] r, r^2`` in the inputs' dtype,
    P = (2D + 1) * powers. The features of the ``ridge`` baseline and of the splitter's
    ``linear`` path, so the network contains that baseline's whole function class."""
    inputs = torch.cat([torch.ones_like(rise).unsqueeze(1), text, start], dim=1)  # [N, 2D + 1]
    rise = rise.unsqueeze(1)  # [N, 1]
    powers = [rise, rise**2]
    if with_constant:
        powers.insert(0, torch.ones_like(rise))
    return torch.cat([inputs * power for power in powers], dim=1)


def time_features(rise: Tensor, frequencies: int) -> Tensor:
    """[B] -> [B, 1 + 2K]: the rise and sin/cos at K octaves, so small time differences
    (adjacent frames) and the sign (back mode) are both easy to read."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, device=rise.device, dtype=rise.dtype)
    angles = rise.unsqueeze(-1) * scales  # [B, K]
    return torch.cat([rise.unsqueeze(-1), angles.sin(), angles.cos()], dim=-1)


class FilmBlock(nn.Module):
    """x + (1 + gamma(t)) * mlp(norm(x)) + beta(t): a residual block the time modulates."""

    def __init__(self, width: int, features: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * width, width)
        )
        self.film = nn.Linear(features, 2 * width)
        nn.init.zeros_(self.film.weight)  # start as a plain residual MLP
        nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, features: Tensor) -> Tensor:  # [B, H], [B, F] -> [B, H]
        gamma, beta = self.film(features).chunk(2, dim=-1)
        return x + (1 + gamma) * self.mlp(self.norm(x)) + beta


class TimedMixer(nn.Module):
    """The ``timed`` variant's body: [B, T, D] text, [B, D] start, [B] rise -> [B, D]."""

    def __init__(self, config: SplitterConfig) -> None:
        super().__init__()
        dim, width = config.dim, config.hidden
        features = 1 + 2 * config.frequencies
        self.frequencies = config.frequencies
        self.query = nn.Linear(dim + features, dim)
        self.attend = nn.MultiheadAttention(dim, config.heads, batch_first=True)
        self.inputs = nn.Linear((4 if config.pooled else 3) * dim, width)
        self.blocks = nn.ModuleList(
            FilmBlock(width, features, config.dropout) for _ in range(config.depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))

    def forward(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, pooled: list[Tensor]
    ) -> Tensor:
        # pooled: [] or [the text embedding [B, D]]
        features = time_features(rise, self.frequencies)  # [B, F]
        query = self.query(torch.cat([start, features], dim=-1)).unsqueeze(1)  # [B, 1, D]
        text, _ = self.attend(query, hidden_states, hidden_states, need_weights=False)
        x = self.inputs(
            torch.cat([start, text.squeeze(1), hidden_states.mean(dim=1), *pooled], -1)
        )  # [B, 3D or 4D] -> [B, H]
        for block in self.blocks:
            x = block(x, features)  # [B, H]
        return self.out(x)  # [B, D]


VARIANTS = ("seed", "increment", "timed")


class Splitter(nn.Module):
    """``f(h, start, rise) -> predicted target embedding``."""

    def __init__(self, config: SplitterConfig) -> None:
        super().__init__()
        if config.variant not in VARIANTS:
            raise ValueError(f"unknown splitter variant {config.variant!r} ({', '.join(VARIANTS)})")
        if config.output not in ("target", "residual", "velocity"):
            raise ValueError(
                f"unknown splitter output {config.output!r} (target, residual or velocity)"
            )
        self.config = config
        self.linear = None
        if config.linear:  # zero at first: training starts from the plain network
            self.linear = nn.Linear(3 * (2 * config.dim + 1), config.dim, bias=False)
            nn.init.zeros_(self.linear.weight)
        if config.variant == "timed":
            self.timed = TimedMixer(config)
            return
        dim, tokens = config.dim, config.text_length + (3 if config.pooled else 2)
        self.start_proj = nn.Linear(dim, dim)  # start embedding -> one token
        self.rise_proj = nn.Linear(1, dim)  # rise -> one token
        self.step_embed = nn.Linear(1, dim) if config.variant == "increment" else None
        builder = increment_mixer if config.variant == "increment" else seed_mixer
        self.mix = builder(tokens, config)

    def forward(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor | None = None
    ) -> Tensor:
        # hidden_states [B, T, D], start [B, D], rise [B], text_embed [B, D] (read if pooled)
        rise = rise.to(start.dtype)
        pooled: list[Tensor] = []
        if self.config.pooled or self.config.linear:
            if text_embed is None:
                raise ValueError("this splitter reads the pooled text embedding: pass text_embed")
            text_embed = text_embed.to(start.dtype)
            pooled = [text_embed] if self.config.pooled else []
        if self.config.variant == "timed":
            mixed = self.timed(hidden_states, start, rise, pooled)  # [B, D]
        else:
            mixed = self.token_mix(hidden_states, start, rise.unsqueeze(-1), pooled)
        output = self.shape_output(mixed, start, rise)  # [B, D]
        if self.linear is not None:
            output = output + self.linear(rise_polynomial(text_embed, start, rise, True))
        return output

    def start_linear_at(self, change_weights: Tensor) -> None:
        """Set the linear path to ``change_weights`` [P, D] (a regression of the change on
        ``rise_polynomial``'s features, with constant) and the network's last layer to zero,
        so the splitter's prediction is that regression's until training moves it."""
        if self.linear is None:
            raise ValueError("this splitter has no linear path (train.splitter.linear: false)")
        weight = change_weights.T.to(self.linear.weight).clone()  # [D, P]
        if self.config.output == "target":  # the change plus the start: s's block at r^0
            dim = self.config.dim
            weight[:, 1 + dim : 1 + 2 * dim] += torch.eye(dim, dtype=weight.dtype)
        head = self.timed.out[-1] if self.config.variant == "timed" else self.mix[-1]
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            head.weight.zero_()
            head.bias.zero_()

    def shape_output(self, mixed: Tensor, start: Tensor, rise: Tensor) -> Tensor:
        """The mixed vector [B, D] as ``output`` says: target, start + m or start + rise m."""
        if self.config.output == "residual":
            return start + mixed
        if self.config.output == "velocity":
            return start + rise.unsqueeze(-1) * mixed
        return mixed

    def token_mix(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, pooled: list[Tensor]
    ) -> Tensor:
        """The seed and increment variants: [B, T, D], [B, D], [B, 1], [] or [[B, D]] -> [B, D]."""
        if self.step_embed is not None:
            hidden_states = hidden_states + self.step_embed(rise).unsqueeze(1)  # [B, T, D]
        start_token = self.start_proj(start).unsqueeze(1)  # [B, 1, D]
        rise_token = self.rise_proj(rise).unsqueeze(1)  # [B, 1, D]
        extra = [vector.unsqueeze(1) for vector in pooled]  # [] or [[B, 1, D]]
        tokens = torch.cat([hidden_states, start_token, rise_token, *extra], dim=1)  # [B, T+2|3, D]
        tokens = F.normalize(tokens, dim=1)  # unit norm over the token axis, per channel
        return self.mix(tokens.transpose(1, 2)).squeeze(-1)  # [B, D, T + 2] -> [B, D]

    def save(self, directory: str | Path) -> None:
        """``directory/model.safetensors`` + ``directory/config.json``, each written atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()
        }
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        with atomic_path(directory / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(asdict(self.config), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> Splitter:
        """Rebuild from ``save``'s files (safetensors and JSON only, no pickle)."""
        directory = Path(directory)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            if not (directory / name).exists():
                raise FileNotFoundError(
                    f"{directory / name} not found; run the train stage first (dvc repro train)"
                )
        config = SplitterConfig(**json.loads((directory / CONFIG_FILE).read_text()))
        model = cls(config)
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE), device=str(device)))
        return model.to(device).eval()


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
