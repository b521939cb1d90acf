"""The splitter: predicts where a caption's image embedding moves after a step in time.

Inputs: the caption's text hidden states ``h`` [B, T, D], a start embedding [B, D] (the
prior's embedding of the caption, a real frame, or the model's own last prediction) and
the rise [B] (signed time from start to target over the clip's last frame index).

    tokens = [h_1 .. h_T, W_s start, w_r rise]      # [B, T + 2, D]
    tokens = tokens / |tokens| over the token axis  # every channel a unit column
    out    = mix(tokens^T)                          # [B, D, T + 2] -> [B, D, 1]

``mix`` acts along the token axis with weights shared by all D channels, so its size does
not grow with D; only ``W_s`` (D x D) does. Two variants (``params.train.splitter``):

- ``seed``: the seed's stack of Linear + ELU (+ LayerNorm without affine after the widths
  in ``norm_after``) + dropout, e.g. widths 128, 64, 32, 16, 8, 4, 2, 1.
- ``increment``: a learned step embedding of the rise is added to every text token before
  mixing (the seed's "cross-attention" of text tokens to the rise: with a single key the
  softmax is 1, so attention reduces to an added affine map of the rise, which is what is
  built), and the stack is residual blocks Linear + GELU + LayerNorm + dropout with a
  linear skip.
"""

from __future__ import annotations

import json
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


class Splitter(nn.Module):
    """``f(h, start, rise) -> predicted target embedding``."""

    def __init__(self, config: SplitterConfig) -> None:
        super().__init__()
        if config.variant not in ("seed", "increment"):
            raise ValueError(f"unknown splitter variant {config.variant!r} (seed or increment)")
        if config.output not in ("target", "residual", "velocity"):
            raise ValueError(
                f"unknown splitter output {config.output!r} (target, residual or velocity)"
            )
        self.config = config
        dim, tokens = config.dim, config.text_length + 2
        self.start_proj = nn.Linear(dim, dim)  # start embedding -> one token
        self.rise_proj = nn.Linear(1, dim)  # rise -> one token
        self.step_embed = nn.Linear(1, dim) if config.variant == "increment" else None
        builder = increment_mixer if config.variant == "increment" else seed_mixer
        self.mix = builder(tokens, config)

    def forward(self, hidden_states: Tensor, start: Tensor, rise: Tensor) -> Tensor:
        # hidden_states [B, T, D], start [B, D], rise [B]
        rise = rise.to(start.dtype).unsqueeze(-1)  # [B, 1]
        if self.step_embed is not None:
            hidden_states = hidden_states + self.step_embed(rise).unsqueeze(1)  # [B, T, D]
        start_token = self.start_proj(start).unsqueeze(1)  # [B, 1, D]
        rise_token = self.rise_proj(rise).unsqueeze(1)  # [B, 1, D]
        tokens = torch.cat([hidden_states, start_token, rise_token], dim=1)  # [B, T + 2, D]
        tokens = F.normalize(tokens, dim=1)  # unit norm over the token axis, per channel
        mixed = self.mix(tokens.transpose(1, 2))  # [B, D, T + 2] -> [B, D, 1]
        mixed = mixed.squeeze(-1)  # [B, D]
        if self.config.output == "residual":
            return start + mixed
        if self.config.output == "velocity":
            return start + rise * mixed
        return mixed

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


class SplitterPredictor:
    """The trained splitter behind the ``Predictor`` interface (eval mode, no grad)."""

    name = "splitter"

    def __init__(self, model: Splitter) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        with torch.no_grad():
            return self.model(
                hidden_states.to(self.device, torch.float32),
                start.to(self.device, torch.float32),
                rise.to(self.device, torch.float32),
            )
