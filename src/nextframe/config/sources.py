"""The download and select_frames sections: which clips, from where, which frames."""

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
