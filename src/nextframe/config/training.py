"""The backbone and train sections: the embedding model and how each method is fitted."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from nextframe.config.sections import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
)


class BackboneParams(Section):
    name: Literal["toy", "kandinsky22"] = "toy"
    """toy (trained on synthetic clips, offline) or kandinsky22 (Kandinsky 2.2, GPU)"""
    prior_model: str = "kandinsky-community/kandinsky-2-2-prior"
    """kandinsky22's prior: a hub id or a local folder"""
    decoder_model: str = "kandinsky-community/kandinsky-2-2-decoder"
    """kandinsky22's decoder: a hub id or a local folder"""
    revision: str = "main"
    """hub revision of both models"""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """auto: float16 on CUDA, float32 on CPU"""
    device: str = "auto"
    """auto: the GPU if there is one, else the CPU; or e.g. cuda:1"""
    batch_size: PositiveInt = 32
    """frames or captions per forward pass"""
    prior_steps: PositiveInt = 25
    """diffusion steps of the prior (caption to image embedding)"""
    prior_guidance: NonNegativeFloat = 4.0
    """classifier-free guidance of the prior"""
    seed: int = 0
    """seeds the prior's noise (per caption)"""


class SplitterParams(Section):
    variant: Literal["seed", "increment", "timed"] = "seed"
    """seed (the reference token-mixing MLP), increment (residual blocks, step embedding) or
    timed (time in every layer: FiLM by the rise, text pooled by attention)"""
    widths: list[PositiveInt] = Field(
        default_factory=lambda: [128, 64, 32, 16, 8, 4, 2, 1], min_length=1
    )
    """token-mixing widths, ending in 1"""
    norm_after: list[PositiveInt] = Field(default_factory=lambda: [32, 8])
    """widths followed by a LayerNorm without affine"""
    dropout: Fraction = 0.3
    """dropout after every mixing layer"""
    # target is the default: starting from the prior, the first frame is a jump, not a small
    # step (cos@1 0.52 against -0.02 for velocity and 0.34 for residual on the defaults).
    output: Literal["target", "residual", "velocity"] = "target"
    """the mixed vector m as output: target (m), residual (start + m), velocity (start + rise m)"""
    hidden: PositiveInt = 512
    """timed: width of the MLP"""
    depth: PositiveInt = 3
    """timed: residual blocks"""
    heads: PositiveInt = 4
    """timed: attention heads pooling the text tokens (must divide D)"""
    frequencies: NonNegativeInt = 6
    """timed: sin/cos octaves of the rise fed to every block"""
    pooled: bool = False
    """also read the caption's pooled text embedding (the input ridge reads), beside the
    hidden states"""
    linear: bool = False
    """add a linear path to the change: the ridge baseline's features [1, t, s] x [1, r, r^2]
    (t the pooled text embedding, s the start, r the rise) times a learned matrix, beside
    the network's own output"""
    linear_init: Literal["zero", "ridge"] = "zero"
    """with linear: start the matrix at zero (the plain network at first), or at a ridge
    regression's closed form on the training rows with the network's output head at zero
    (training starts at that baseline's predictions and learns what it misses)"""

    @model_validator(mode="after")
    def _mix_down_to_one(self) -> SplitterParams:
        if self.widths[-1] != 1:
            raise ValueError(
                f"the last width must be 1 (mix down to one token), got {self.widths[-1]}"
            )
        if self.linear_init != "zero" and not self.linear:
            raise ValueError(f"linear_init {self.linear_init!r} needs linear: true")
        return self


class LossWeights(Section):
    mse: NonNegativeFloat = 1.0
    """weight of the squared error of the change, relative to the targets' squared norm"""
    cos: NonNegativeFloat = 1.0
    """weight of 1 - cos(predicted change, true change)"""
    rot: NonNegativeFloat = 0.1
    """weight of |(R - I) u|^2, R the rotation from true to predicted change"""
    scale: Literal["batch", "row"] = "batch"
    """what the squared error is relative to: batch (the targets' squared norm, summed over
    the batch, so the large changes of translations dominate) | row (each row's own true
    change, so a shrink or a rotation weighs as much as a translation)"""
    floor: NonNegativeFloat = 0.1
    """row scale only: each row's |true change|^2 is floored at this fraction of the batch's
    mean, so rows with almost no change (small rises) are not blown up"""


TrainMode = Literal["normal", "back", "rotation", "diff", "forward", "all"]


class TrajectoryGanParams(Section):
    """The trajectory GAN (methods/trajectory_gan.py), fitted on the training clips."""

    epochs: PositiveInt = 100
    """passes over the training rows (each clip twice: from its prior and its first frame)"""
    batch_size: PositiveInt = 64
    """trajectories per optimiser step"""
    lr: PositiveFloat = 1e-3
    """Adam learning rate of both networks"""
    gp_weight: NonNegativeFloat = 10.0
    """gamma of the zero-centred gradient penalty gamma / 2 E|grad D|^2 (0: none)"""
    gp_at: Literal["real", "interpolates"] = "real"
    """where the penalty is taken: real trajectories (R1) or points between real and fake (0-GP)"""
    noise_dim: PositiveInt = 16
    """size of the generator's noise z"""
    hidden: PositiveInt = 256
    """width of both networks"""
    frequencies: NonNegativeInt = 4
    """sin/cos octaves of the rise fed to both networks"""
    samples: Annotated[int, Field(ge=2)] = 4
    """samples per caption for the diversity figure in method.json"""
    seed: int = 0
    """seeds initialisation and the training noise"""
    sample_seed: int = 0
    """seeds the rollout's noise: sample 0 is what generate rolls out"""


class TrainParams(Section):
    splitter: SplitterParams = Field(default_factory=SplitterParams)
    """the splitter network"""
    trajectory_gan: TrajectoryGanParams = Field(default_factory=TrajectoryGanParams)
    """the trajectory GAN (a learned competitor)"""
    modes: list[TrainMode] = Field(default_factory=lambda: ["all"], min_length=1)
    """training modes: normal, back, rotation, diff (the seed's four), forward (from a real
    frame to a later one, the rows ridge is fitted on), or all of them"""
    diff: Literal["prediction", "rollout"] = "prediction"
    """diff mode's rows. prediction (the seed): start at the model's one-shot prediction of
    a random earlier frame s, target any later frame. rollout: start where the model's own
    chain rollout from the prior reaches frame s (gradients flow back through it), target
    frame s + 1: the step the chain rollout takes at generation, from where it really is"""
    max_frames_per_clip: Annotated[int, Field(ge=2)] = 15
    """frames drawn per clip and epoch (first, last and random ones between)"""
    blend_q: PositiveFloat = 1.0
    """exponent q of the blended rotation (1 - c^q) x + c^q R x"""
    loss: LossWeights = Field(default_factory=LossWeights)
    """weights of the loss terms"""
    epochs: PositiveInt = 40
    """most epochs to train"""
    batch_size: PositiveInt = 64
    """rows per optimiser step"""
    lr: PositiveFloat = 1e-3
    """AdamW learning rate after warmup"""
    weight_decay: NonNegativeFloat = 0.01
    """AdamW weight decay"""
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    """learning rate after warmup: constant or cosine decay to 0"""
    warmup_epochs: NonNegativeInt = 1
    """epochs of linear warmup"""
    grad_clip: NonNegativeFloat = 1.0
    """gradient norm clip (0: none)"""
    patience: NonNegativeInt = 8
    """stop after this many epochs without a better validation loss (0: never)"""
    seed: int = 0
    """seeds initialisation, sampling and dropout"""
    device: str = "auto"
    """auto: the GPU if there is one, else the CPU"""
