"""The whole params file: its sections, validation with dotted-key errors, and the
per-key help that stages print."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo

from nextframe.config.scoring import EvaluateParams, GenerateParams
from nextframe.config.sections import PositiveInt, Section
from nextframe.config.sources import DownloadParams, SelectFramesParams
from nextframe.config.training import BackboneParams, TrainParams


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
