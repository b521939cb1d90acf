"""Typed view of ``params.yaml``.

Every stage validates the whole file once, up front, so a typo in any section fails
before hours of work start, and the error names the dotted key (``select_frames.k``)
together with what was expected. Unknown keys are errors too: a misspelt key that is
silently ignored is the worst kind of experiment bug.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    """Base for every params section: strict about unknown keys and silent coercions."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitFractions(Section):
    """Fractions of clips held out, for sources that ship no official split."""

    val: Fraction = 0.15
    test: Fraction = 0.15

    @model_validator(mode="after")
    def _leave_some_for_training(self) -> SplitFractions:
        if self.val + self.test >= 1:
            raise ValueError(f"val + test must be below 1, got {self.val} + {self.test}")
        return self


class SyntheticParams(Section):
    n_clips: PositiveInt = 48
    n_frames: Annotated[int, Field(ge=2)] = 24
    fps: PositiveFloat = 8.0
    size: Annotated[int, Field(ge=32)] = 64  # decord cannot read smaller MP4s
    formats: list[Literal["mp4", "gif"]] = Field(
        default_factory=lambda: ["mp4", "gif"], min_length=1
    )


class HttpParams(Section):
    workers: PositiveInt = 8
    timeout_s: PositiveFloat = 20.0
    retries: NonNegativeInt = 3
    backoff_s: NonNegativeFloat = 1.0
    max_bytes: PositiveInt = 20_000_000


class TgifParams(Section):
    tsv_url: str = "https://raw.githubusercontent.com/raingo/TGIF-Release/master/data/tgif-v1.0.tsv"
    split_urls: dict[Literal["train", "val", "test"], str] = Field(
        default_factory=lambda: {
            "train": "https://raw.githubusercontent.com/raingo/TGIF-Release/master/data/splits/train.txt",
            "val": "https://raw.githubusercontent.com/raingo/TGIF-Release/master/data/splits/val.txt",
            "test": "https://raw.githubusercontent.com/raingo/TGIF-Release/master/data/splits/test.txt",
        }
    )
    limit: PositiveInt = 200
    min_frames: Annotated[int, Field(ge=2)] = 8
    max_frames: PositiveInt = 64
    min_side: NonNegativeInt = 0
    http: HttpParams = Field(default_factory=HttpParams)

    @model_validator(mode="after")
    def _frame_bounds_in_order(self) -> TgifParams:
        if self.min_frames > self.max_frames:
            raise ValueError(
                f"min_frames ({self.min_frames}) must not exceed max_frames ({self.max_frames})"
            )
        return self


class Ucf50Params(Section):
    url: str = "https://www.crcv.ucf.edu/data/UCF50.rar"
    expected_bytes: NonNegativeInt = 0
    classes: list[str] = Field(default_factory=list)
    caption_template: str = "a person doing {name}"
    clips_per_class: NonNegativeInt = 0
    http: HttpParams = Field(
        default_factory=lambda: HttpParams(timeout_s=60.0, max_bytes=4_000_000_000)
    )


class FolderParams(Section):
    root: str = "videos"
    csv: str = "videos/captions.csv"


class DownloadParams(Section):
    source: Literal["synthetic", "tgif", "ucf50", "folder"] = "synthetic"
    seed: int = 0
    split: SplitFractions = Field(default_factory=SplitFractions)
    synthetic: SyntheticParams = Field(default_factory=SyntheticParams)
    tgif: TgifParams = Field(default_factory=TgifParams)
    ucf50: Ucf50Params = Field(default_factory=Ucf50Params)
    folder: FolderParams = Field(default_factory=FolderParams)


ColorByte = Annotated[int, Field(ge=0, le=255)]


class SelectFramesParams(Section):
    method: Literal["top_diff", "uniform"] = "top_diff"
    k: Annotated[int, Field(ge=2)] = 8
    window_s: PositiveFloat = 4.0
    step: PositiveInt = 2
    min_frames: Annotated[int, Field(ge=2)] = 4
    size: Annotated[int, Field(ge=8)] = 64
    resize: Literal["letterbox", "center_crop"] = "letterbox"
    pad_color: tuple[ColorByte, ColorByte, ColorByte] = (0, 0, 0)
    workers: PositiveInt = 2


class BackboneParams(Section):
    # toy: trained on synthetic clips, shipped with the package (offline default);
    # kandinsky22: the real unCLIP from prior_model / decoder_model (hub ids or folders).
    # The settings below name, tune and place kandinsky22; toy uses only device (and
    # batch_size, like every backbone): it is float32 and its prior is deterministic.
    name: Literal["toy", "kandinsky22"] = "toy"
    prior_model: str = "kandinsky-community/kandinsky-2-2-prior"
    decoder_model: str = "kandinsky-community/kandinsky-2-2-decoder"
    revision: str = "main"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = "auto"
    batch_size: PositiveInt = 32
    prior_steps: PositiveInt = 25
    prior_guidance: NonNegativeFloat = 4.0
    seed: int = 0


class SplitterParams(Section):
    variant: Literal["seed", "increment"] = "seed"
    widths: list[PositiveInt] = Field(
        default_factory=lambda: [128, 64, 32, 16, 8, 4, 2, 1], min_length=1
    )
    norm_after: list[PositiveInt] = Field(default_factory=lambda: [32, 8])
    dropout: Fraction = 0.3
    # What the mixed vector m means: target (the seed: f = m), residual (f = start + m) or
    # velocity (f = start + rise * m, so the change is zero at rise 0 and flips with its sign).
    # target is the default: starting from the prior, the first frame is a jump, not a small
    # step (cos@1 0.52 against -0.02 for velocity and 0.34 for residual on the defaults).
    output: Literal["target", "residual", "velocity"] = "target"

    @model_validator(mode="after")
    def _mix_down_to_one(self) -> SplitterParams:
        if self.widths[-1] != 1:
            raise ValueError(
                f"the last width must be 1 (mix down to one token), got {self.widths[-1]}"
            )
        return self


class LossWeights(Section):
    mse: NonNegativeFloat = 1.0
    cos: NonNegativeFloat = 1.0
    rot: NonNegativeFloat = 0.1


TrainMode = Literal["normal", "back", "rotation", "diff", "all"]


class TrainParams(Section):
    splitter: SplitterParams = Field(default_factory=SplitterParams)
    modes: list[TrainMode] = Field(default_factory=lambda: ["all"], min_length=1)
    max_frames_per_clip: Annotated[int, Field(ge=2)] = 15
    blend_q: PositiveFloat = 1.0
    loss: LossWeights = Field(default_factory=LossWeights)
    epochs: PositiveInt = 40
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.01
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    warmup_epochs: NonNegativeInt = 1
    grad_clip: NonNegativeFloat = 1.0
    patience: NonNegativeInt = 8
    seed: int = 0
    device: str = "auto"


class GenerateParams(Section):
    n_frames: Annotated[int, Field(ge=2)] = 8
    methods: list[str] = Field(
        default_factory=lambda: ["splitter", "copy_start", "linear", "slerp"], min_length=1
    )
    rollouts: list[Literal["chain", "step"]] = Field(
        default_factory=lambda: ["chain", "step"], min_length=1
    )
    start: Literal["prior", "first_frame"] = "prior"
    anchor: Literal["fixed", "moving"] = "fixed"
    decoders: list[Literal["retrieval", "diffusion"]] = Field(
        default_factory=lambda: ["retrieval", "diffusion"]
    )
    prompts: list[str] = Field(default_factory=list)
    max_clips: NonNegativeInt = 0  # held-out clips rolled out and scored (0 = all)
    decode_clips: NonNegativeInt = 8  # of those, decoded to videos (0 = all); prompts always
    steps: PositiveInt = 50
    guidance: NonNegativeFloat = 4.0
    size: Annotated[int, Field(ge=16)] = 256
    fps: PositiveFloat = 4.0
    seed: int = 0


class EvaluateParams(Section):
    horizon: PositiveInt = 7  # cos@1..horizon; held-out clips need horizon + 1 frames
    bootstrap: Annotated[int, Field(ge=100)] = 1000
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95
    seed: int = 0
    contact_sheets: NonNegativeInt = 2  # held-out clips whose sheets become DVC image plots


class Params(Section):
    download: DownloadParams = Field(default_factory=DownloadParams)
    select_frames: SelectFramesParams = Field(default_factory=SelectFramesParams)
    backbone: BackboneParams = Field(default_factory=BackboneParams)
    train: TrainParams = Field(default_factory=TrainParams)
    generate: GenerateParams = Field(default_factory=GenerateParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)


class ParamsError(ValueError):
    """A params file that cannot be used; the message is meant for the user as is."""


def _describe(error: dict) -> str:
    dotted = ".".join(str(part) for part in error["loc"])
    found = error.get("input")
    return f"{dotted}: {error['msg']} (found {found!r})"


def parse_params(raw: dict | None) -> Params:
    """Validate a params mapping; every problem is reported with its dotted key."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ParamsError("invalid params:\n  " + "\n  ".join(lines)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params file not found: {path} (run from the repository root)")
    with path.open() as handle:
        raw = yaml.safe_load(handle)
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, found {type(raw).__name__}")
    return parse_params(raw)
