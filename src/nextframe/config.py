"""Typed view of ``params.yaml``.

Every stage validates the whole file once, up front, so a typo in any section fails
before hours of work start, and the error names the dotted key (``select_frames.k``)
together with what was expected. Unknown keys are errors too: a misspelt key that is
silently ignored is the worst kind of experiment bug.

Each field's docstring is its meaning: a stage's ``--help`` lists the keys it reads with
their current values and these texts (``describe_keys``), so they are written for users.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from nextframe.methods.registry import REGISTRY, method_names

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    """Base for every params section: strict about unknown keys and silent coercions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SplitFractions(Section):
    """Fractions of clips held out, for sources that ship no official split."""

    val: Fraction = 0.15
    """fraction of clips held out for validation (early stopping)"""
    test: Fraction = 0.15
    """fraction of clips held out for the test split (evaluation)"""

    @model_validator(mode="after")
    def _leave_some_for_training(self) -> SplitFractions:
        if self.val + self.test >= 1:
            raise ValueError(f"val + test must be below 1, got {self.val} + {self.test}")
        return self


class SyntheticParams(Section):
    n_clips: PositiveInt = 48
    """clips to generate"""
    n_frames: Annotated[int, Field(ge=2)] = 24
    """frames per clip"""
    fps: PositiveFloat = 8.0
    """frames per second of the written videos"""
    size: Annotated[int, Field(ge=32)] = 64  # decord cannot read smaller MP4s
    """frame side in pixels (at least 32)"""
    formats: list[Literal["mp4", "gif"]] = Field(
        default_factory=lambda: ["mp4", "gif"], min_length=1
    )
    """containers the clips alternate between"""


class HttpParams(Section):
    workers: PositiveInt = 8
    """concurrent downloads"""
    timeout_s: PositiveFloat = 20.0
    """seconds a connection or read may stall before the attempt fails"""
    retries: NonNegativeInt = 3
    """further attempts after a transient failure (5xx, 429, timeout, dropped connection);
    a 429/503 waits its Retry-After first (up to 60 s; a longer one ends the tries)"""
    backoff_s: NonNegativeFloat = 1.0
    """first wait between attempts, doubled each time"""
    max_bytes: PositiveInt = 20_000_000
    """largest body accepted per file (counted decoded, for a gzip body)"""
    max_redirects: NonNegativeInt = 5
    """redirects followed per request, each only to http(s)"""


class TgifParams(Section):
    tsv_url: str = "https://raw.githubusercontent.com/raingo/TGIF-Release/master/data/tgif-v1.0.tsv"
    """the release TSV of URL<TAB>sentence lines"""
    split_urls: dict[Literal["train", "val", "test"], str] = Field(
        default_factory=lambda: {
            "train": "https://raw.githubusercontent.com/raingo/TGIF-Release/master/data/splits/train.txt",
            "val": "https://raw.githubusercontent.com/raingo/TGIF-Release/master/data/splits/val.txt",
            "test": "https://raw.githubusercontent.com/raingo/TGIF-Release/master/data/splits/test.txt",
        }
    )
    """official split files (one GIF URL per line) by split name"""
    limit: PositiveInt = 200
    """verified GIFs wanted"""
    min_frames: Annotated[int, Field(ge=2)] = 8
    """fewer frames than this: failed:too_few_frames"""
    max_frames: PositiveInt = 64
    """longer GIFs are cut to their first max_frames frames"""
    min_side: NonNegativeInt = 0
    """shorter side in pixels below this: failed:too_small (0: any)"""
    retry_failed: bool = False
    """fetch again the URLs an earlier run found permanently broken (404, too large, ...)"""
    http: HttpParams = Field(default_factory=HttpParams)
    """download settings for the GIFs"""

    @model_validator(mode="after")
    def _frame_bounds_in_order(self) -> TgifParams:
        if self.min_frames > self.max_frames:
            raise ValueError(
                f"min_frames ({self.min_frames}) must not exceed max_frames ({self.max_frames})"
            )
        return self


Sha256 = Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]


class Ucf50Params(Section):
    url: str = "https://www.crcv.ucf.edu/data/UCF50.rar"
    """the UCF50 RAR archive"""
    expected_bytes: NonNegativeInt = 0
    """archive size to check after download (0: unchecked)"""
    expected_sha256: Sha256 = ""
    """archive sha256 (lowercase hex) checked after download; a mismatch deletes it ("": none)"""
    max_file_bytes: PositiveInt = 100_000_000
    """extraction budget per clip (UCF50's largest clip is a few MB)"""
    max_total_bytes: PositiveInt = 8_000_000_000
    """extraction budget per run (all of UCF50 is about 3.3 GB unpacked)"""
    classes: list[str] = Field(default_factory=list)
    """action classes to extract ([]: all 50)"""
    caption_template: str = "a person doing {name}"
    """caption of every clip; {name} is the class name in words"""
    clips_per_class: NonNegativeInt = 0
    """clips kept per class (0: all)"""
    http: HttpParams = Field(
        default_factory=lambda: HttpParams(timeout_s=60.0, max_bytes=4_000_000_000)
    )
    """download settings for the archive"""


class FolderParams(Section):
    root: str = "videos"
    """folder holding the videos"""
    csv: str = "videos/captions.csv"
    """CSV of path,caption[,split] rows, paths relative to root"""
    min_frames: Annotated[int, Field(ge=1)] = 4
    """a file decoding to fewer frames is failed:too_few_frames"""


class MsrvttParams(Section):
    videos: str = "MSRVTT/videos/all"
    """folder holding the MSR-VTT videos as <video_id>.mp4 (video0.mp4 ... video9999.mp4)"""
    annotations: str = "MSRVTT/annotation/MSRVTT_data.json"
    """MSRVTT_data.json (videos + sentences, official split) or MSRVTT_JSFUSION_test.csv
    (the 1k-A test clips alone)"""
    test_csv: str = ""
    """with the JSON: the 1k-A list MSRVTT_JSFUSION_test.csv; its videos are the test split
    with its sentences, every other test video trains ("": the official split)"""
    min_frames: Annotated[int, Field(ge=1)] = 4
    """a file decoding to fewer frames is failed:too_few_frames"""


class Ucf101Params(Section):
    root: str = "UCF-101"
    """folder holding UCF-101/<Class>/v_<Class>_gXX_cYY.avi"""
    lists: str = "ucfTrainTestlist"
    """folder holding classInd.txt and testlist0N.txt"""
    fold: Literal[1, 2, 3] = 1
    """official train/test split: testlist0<fold>.txt is the test split"""
    caption_template: str = "a person doing {name}"
    """caption of every clip; {name} is the class name in words (ApplyEyeMakeup: apply eye
    makeup)"""
    classes: list[str] = Field(default_factory=list)
    """classes kept, as in classInd.txt ([]: all 101)"""
    clips_per_class: NonNegativeInt = 0
    """clips kept per class and split, the first in sorted order (0: all)"""
    min_frames: Annotated[int, Field(ge=1)] = 4
    """a file decoding to fewer frames is failed:too_few_frames"""


class DownloadParams(Section):
    source: Literal["synthetic", "tgif", "ucf50", "folder", "msrvtt", "ucf101"] = "synthetic"
    """where clips come from: synthetic (offline), tgif, ucf50, folder, msrvtt or ucf101"""
    seed: int = 0
    """seeds the synthetic clips, the samples and the train/val/test assignment"""
    split: SplitFractions = Field(default_factory=SplitFractions)
    """held-out fractions for sources without an official split"""
    # 50M is 150 MB of RGB: 65 frames of 877x877; a TGIF GIF is rarely over 500 px
    max_pixels: PositiveInt = 50_000_000
    """decoding budget, width x height x frames, checked before frames are held (tgif, folder)"""
    synthetic: SyntheticParams = Field(default_factory=SyntheticParams)
    """the embedded synthetic source (known ground-truth motion)"""
    tgif: TgifParams = Field(default_factory=TgifParams)
    """the TGIF release"""
    ucf50: Ucf50Params = Field(default_factory=Ucf50Params)
    """the UCF50 action data set"""
    folder: FolderParams = Field(default_factory=FolderParams)
    """your own videos plus a CSV of captions"""
    msrvtt: MsrvttParams = Field(default_factory=MsrvttParams)
    """MSR-VTT from files you have (videos + annotations)"""
    ucf101: Ucf101Params = Field(default_factory=Ucf101Params)
    """UCF-101 from files you have (videos + the train/test lists)"""


ColorByte = Annotated[int, Field(ge=0, le=255)]


class SelectFramesParams(Section):
    method: Literal["top_diff", "uniform"] = "top_diff"
    """top_diff: frame 0 + the k-1 frames that change most in the window; uniform: every step-th"""
    k: Annotated[int, Field(ge=2)] = 8
    """frames kept per clip"""
    window_s: PositiveFloat = 4.0
    """top_diff looks at the first window_s seconds only"""
    step: PositiveInt = 2
    """uniform keeps every step-th frame"""
    min_frames: Annotated[int, Field(ge=2)] = 4
    """clips with fewer usable frames are skipped (too_few_frames)"""
    size: Annotated[int, Field(ge=8)] = 64
    """side of the square PNGs written"""
    resize: Literal["letterbox", "center_crop"] = "letterbox"
    """letterbox (pad with pad_color) or center_crop"""
    pad_color: tuple[ColorByte, ColorByte, ColorByte] = (0, 0, 0)
    """RGB of the letterbox padding"""
    workers: PositiveInt = 2
    """clips decoded and written concurrently"""


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

    @model_validator(mode="after")
    def _mix_down_to_one(self) -> SplitterParams:
        if self.widths[-1] != 1:
            raise ValueError(
                f"the last width must be 1 (mix down to one token), got {self.widths[-1]}"
            )
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


TrainMode = Literal["normal", "back", "rotation", "diff", "all"]


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
    """training modes: normal, back, rotation, diff, or all of them"""
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


class GenerateParams(Section):
    n_frames: Annotated[int, Field(ge=2)] = 8
    """rollout steps, step 0 included: a held-out clip steps through its first n_frames
    selected frames' times (past its last frame, on at its mean frame gap); a prompt's
    frames are spaced evenly over one clip's span"""
    methods: list[str] = Field(default_factory=method_names, min_length=1)
    """the methods to fit, roll out and score (nextframe.methods.registry; train always fits
    the splitter too: every method is compared with it)"""
    rollouts: list[Literal["chain", "step"]] = Field(
        default_factory=lambda: ["chain", "step"], min_length=1
    )
    """step: every frame from the start; chain: every frame from the previous one"""
    start: Literal["prior", "first_frame"] = "prior"
    """what step 0 is: the prior's embedding of the caption, or the true first frame"""
    anchor: Literal["fixed", "moving"] = "fixed"
    """chain: rotate the original tokens (fixed) or the previous step's (moving)"""
    decoders: list[Literal["retrieval", "backbone"]] = Field(
        default_factory=lambda: ["retrieval", "backbone"]
    )
    """retrieval (nearest training frame) and/or the backbone's own decoder"""
    prompts: list[str] = Field(default_factory=list)
    """extra captions to make videos of"""
    max_clips: NonNegativeInt = 0
    """held-out clips rolled out and scored (0: all)"""
    decode_clips: NonNegativeInt = 0
    """of those, decoded and scored on pictures (0: all); prompts always are"""
    video_clips: NonNegativeInt = 8
    """of the decoded ones, written as GIF/MP4 and contact sheets (0: all); prompts always"""
    steps: PositiveInt = 50
    """diffusion steps of the backbone's decoder (kandinsky22; the toy decodes in one pass)"""
    guidance: NonNegativeFloat = 4.0
    """decoder classifier-free guidance"""
    size: Annotated[int, Field(ge=16)] = 256
    """side of the decoded pictures"""
    fps: PositiveFloat = 4.0
    """frames per second of the written videos"""
    seed: int = 0
    """decoder seed, the same for every frame"""

    @field_validator("methods")
    @classmethod
    def _registered_methods(cls, methods: list[str]) -> list[str]:
        unknown = [name for name in methods if name not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known: {method_names()}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"a method is listed twice: {methods}")
        return methods


# The seed author's MSR-VTT comparison (issue 18): 31 test clips, 16 frames at 256 px, FVD
# reported as mean +- spread over clip lengths 10..16.
FVD_PROTOCOLS: dict[str, dict[str, Any]] = {
    "seed_msrvtt": {
        "n_samples": 31,
        "clip_length": 16,
        "size": 256,
        "lengths": list(range(10, 17)),
    },
}


class FvdParams(Section):
    enabled: bool = False
    """compute FVD (needs the I3D TorchScript file at evaluate.fvd.weights)"""
    weights: str = ""
    """path of i3d_torchscript.pt, the StyleGAN-V / common FVD I3D (docs/protocols.md)"""
    protocol: Literal["custom", "seed_msrvtt"] = "custom"
    """custom (the keys below) or seed_msrvtt (31 clips, 16 frames, 256 px, lengths 10..16)"""
    clip_length: Annotated[int, Field(ge=2)] = 16
    """frames per clip fed to I3D, sampled from each video"""
    lengths: list[Annotated[int, Field(ge=2)]] = Field(default_factory=list)
    """clip lengths L to score, each the first L frames of the sampled clip, reported as
    mean and spread ([]: clip_length only)"""
    sampling: Literal["first", "uniform"] = "first"
    """which frames: the first ones, or evenly spaced over the video"""
    size: Annotated[int, Field(ge=8)] = 224
    """frame side in pixels the clips are resized to before I3D"""
    n_samples: NonNegativeInt = 0
    """clips per set, the first ones in clip order; real and generated the same (0: all)"""
    shrinkage: Fraction = 0.0
    """covariance shrinkage toward the scaled identity; needed when clips <= features"""
    batch_size: PositiveInt = 8
    """clips per I3D forward pass"""
    device: str = "auto"
    """auto: the GPU if there is one, else the CPU"""

    @model_validator(mode="after")
    def _protocol_fixes_its_keys(self) -> FvdParams:
        # a key left at its default (as params.yaml lists it) takes the preset's value; any
        # other value would be silently overridden, so it is an error
        preset = FVD_PROTOCOLS.get(self.protocol, {})
        fields = type(self).model_fields
        clashing = [
            key
            for key, value in preset.items()
            if getattr(self, key) not in (value, fields[key].get_default(call_default_factory=True))
        ]
        if clashing:
            raise ValueError(
                f"protocol {self.protocol} fixes {', '.join(clashing)}; leave them at their "
                "defaults or use protocol: custom"
            )
        too_long = [n for n in self.resolved("lengths") if n > self.resolved("clip_length")]
        if too_long:
            raise ValueError(f"lengths {too_long} exceed clip_length {self.clip_length}")
        return self

    def resolved(self, key: str) -> Any:
        """A setting as the protocol preset fixes it, else as given."""
        return FVD_PROTOCOLS.get(self.protocol, {}).get(key, getattr(self, key))


class FlowParams(Section):
    enabled: bool = True
    """optical-flow motion metrics of decoded and true frames (OpenCV Farneback, no weights)"""
    top_fraction: Fraction = 0.05
    """dynamic degree: a pair's score is the mean of its largest flow magnitudes (top 5%)"""


class EvaluateParams(Section):
    horizon: PositiveInt = 7
    """steps scored: cos@1..horizon (held-out clips need horizon + 1 frames)"""
    bootstrap: Annotated[int, Field(ge=100)] = 1000
    """bootstrap resamples of the clips for every interval"""
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95
    """level of the intervals"""
    seed: int = 0
    """seeds the bootstrap"""
    contact_sheets: NonNegativeInt = 2
    """held-out clips whose contact sheets become DVC image plots"""
    fvd: FvdParams = Field(default_factory=FvdParams)
    """Frechet Video Distance with a user-supplied I3D (off by default: none ships)"""
    flow: FlowParams = Field(default_factory=FlowParams)
    """weight-free motion metrics from dense optical flow"""


class RuntimeParams(Section):
    threads: PositiveInt = 2
    """CPU threads of torch in every stage: results can depend on it, so it is a param"""
    cpu_kernels: Literal["avx2", "native"] = "avx2"
    """avx2: torch's CPU kernels capped at AVX2 (ATen, MKL in reproducible mode, oneDNN), so
    any x86-64 CPU with AVX2 gives the same bytes; native: the fastest the CPU has, results
    then differ between CPU kinds in the last bits"""


class Params(Section):
    download: DownloadParams = Field(default_factory=DownloadParams)
    select_frames: SelectFramesParams = Field(default_factory=SelectFramesParams)
    backbone: BackboneParams = Field(default_factory=BackboneParams)
    train: TrainParams = Field(default_factory=TrainParams)
    generate: GenerateParams = Field(default_factory=GenerateParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    runtime: RuntimeParams = Field(default_factory=RuntimeParams)

    def select(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The values of dotted ``keys`` (sections or leaves), nested as in params.yaml."""
        dumped = self.model_dump(mode="json")
        selected: dict[str, Any] = {}
        for key in keys:
            source, target = dumped, selected
            *parents, leaf = key.split(".")
            for part in parents:
                source = source[part]
                target = target.setdefault(part, {})
            target[leaf] = source[leaf]
        return selected


class ParamsError(ValueError):
    """A params file that cannot be used; the message is meant for the user as is."""


def _describe(error: dict) -> str:
    dotted = ".".join(str(part) for part in error["loc"])
    found = error.get("input")
    if error["type"] == "extra_forbidden":
        return f"{dotted}: unknown key{_closest_key(error['loc'])} (found {found!r})"
    return f"{dotted}: {error['msg']} (found {found!r})"


def _closest_key(loc: tuple) -> str:
    """``; did you mean train.epochs?`` for a misspelt key, or ``; known: ...``: a typo is
    the usual reason for a key the schema does not know."""
    model: type[BaseModel] = Params
    for part in loc[:-1]:
        annotation = model.model_fields[str(part)].annotation if isinstance(part, str) else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    known = list(model.model_fields)
    parent = "".join(f"{part}." for part in loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"; did you mean {parent}{close[0]}?"
    return f"; known keys here: {', '.join(known)}"


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
    try:
        with path.open() as handle:
            raw = yaml.safe_load(handle)
    except yaml.MarkedYAMLError as exc:
        raise ParamsError(_describe_syntax(path, exc)) from None
    except yaml.YAMLError as exc:  # an error without a position (rare: a bad stream)
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, found {type(raw).__name__}")
    return parse_params(raw)


def _describe_syntax(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """``params.yaml line 88, column 13: expected ',' or ']', but got ':' (while parsing a
    flow sequence from line 87, column 11)``: where the parser gave up, in one line."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
    context = ""
    if exc.context and exc.context_mark and exc.context_mark is not mark:
        start = exc.context_mark
        context = f" ({exc.context} from line {start.line + 1}, column {start.column + 1})"
    problem = exc.problem or exc.context or "invalid YAML"
    return f"{path} {where}: {problem}{context}; fix the YAML syntax there"


@dataclass(frozen=True)
class KeyHelp:
    """One leaf of params.yaml for a stage's ``--help``."""

    key: str  # dotted, e.g. train.splitter.variant
    value: Any  # the current value
    meaning: str


def describe_keys(params: Params, keys: tuple[str, ...]) -> list[KeyHelp]:
    """Every leaf under the dotted ``keys`` with its current value and its docstring."""
    described: list[KeyHelp] = []

    def walk(model: BaseModel, prefix: str, wanted: str) -> None:
        for name, field in type(model).model_fields.items():
            dotted = f"{prefix}{name}"
            if not (
                dotted == wanted
                or dotted.startswith(wanted + ".")
                or wanted.startswith(dotted + ".")
            ):
                continue
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                walk(value, f"{dotted}.", wanted)
            else:
                described.append(KeyHelp(dotted, _plain(value), _meaning(field)))

    for key in keys:
        walk(params, "", key)
    return described


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _meaning(field: FieldInfo) -> str:
    return " ".join((field.description or "").split())
