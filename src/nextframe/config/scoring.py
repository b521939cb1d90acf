"""The generate and evaluate sections: rollouts, decoding and the metrics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from nextframe.config.sections import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
)
from nextframe.methods.registry import REGISTRY, method_names


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
