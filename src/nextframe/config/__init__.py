"""Typed view of ``params.yaml``.

Every stage validates the whole file once, up front, so a typo in any section fails
before hours of work start, and the error names the dotted key (``select_frames.k``)
together with what was expected. Unknown keys are errors too: a misspelt key that is
silently ignored is the worst kind of experiment bug.

Each field's docstring is its meaning: a stage's ``--help`` lists the keys it reads with
their current values and these texts (``describe_keys``), so they are written for users.

Rooms: ``sections`` (the base and number types), ``sources`` (download, select_frames),
``training`` (backbone, train), ``scoring`` (generate, evaluate) and ``params`` (the whole
file, its loading and its help).
"""

from nextframe.config.params import (
    KeyHelp,
    Params,
    ParamsError,
    RuntimeParams,
    describe_keys,
    load_params,
    parse_params,
)
from nextframe.config.scoring import EvaluateParams, FlowParams, FvdParams, GenerateParams
from nextframe.config.sources import (
    DownloadParams,
    FolderParams,
    HttpParams,
    MsrvttParams,
    SelectFramesParams,
    SplitFractions,
    SyntheticParams,
    TgifParams,
    Ucf50Params,
    Ucf101Params,
)
from nextframe.config.training import (
    BackboneParams,
    LossWeights,
    SplitterParams,
    TrainParams,
    TrajectoryGanParams,
)

__all__ = [
    "BackboneParams",
    "DownloadParams",
    "EvaluateParams",
    "FlowParams",
    "FolderParams",
    "FvdParams",
    "GenerateParams",
    "HttpParams",
    "KeyHelp",
    "LossWeights",
    "MsrvttParams",
    "Params",
    "ParamsError",
    "RuntimeParams",
    "SelectFramesParams",
    "SplitFractions",
    "SplitterParams",
    "SyntheticParams",
    "TgifParams",
    "TrainParams",
    "TrajectoryGanParams",
    "Ucf50Params",
    "Ucf101Params",
    "describe_keys",
    "load_params",
    "parse_params",
]
