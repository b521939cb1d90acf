"""The ``nextframe`` command for users; the pipeline's stages live in ``stages/``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextframe.config import ParamsError, load_params
from nextframe.data.synthetic_captions import caption_words
from nextframe.errors import UserError, report_user_errors
from nextframe.methods.registry import method_names

app = typer.Typer(add_completion=False, help="nextframe: text-to-video by steps in time.")
backbone_app = typer.Typer(add_completion=False, help="Backbones: build the toy one.")
app.add_typer(backbone_app, name="backbone")

CAPTION_HELP = (
    "what the video shows, e.g. 'a red circle grows on a blue background'. An empty caption "
    "is refused. "
    "The toy backbone (the default) knows only the words of its synthetic captions: "
    + ", ".join(sorted(caption_words()))
    + ". Other words (and punctuation, emoji) are named in a warning and the video is drawn "
    "anyway; so is a caption longer than the text tower reads (20 tokens for the toy), "
    "with a warning saying how many tokens were dropped."
)


@app.callback()
def main() -> None:
    """Text-to-video by predicting how an image embedding moves in time."""


@app.command()
@report_user_errors
def sample(
    caption: Annotated[str, typer.Argument(help=CAPTION_HELP, show_default=False)],
    frames: Annotated[
        int,
        typer.Option(
            "--frames",
            help="how many frames sample the same clip span, 2 to 1000: evenly spaced from "
            "the start (rise 0) to one clip's worth of motion (rise 1), so more frames make "
            "the same motion smoother, not longer",
        ),
    ] = 16,
    out: Annotated[
        Path,
        typer.Option("--out", help="video to write (.gif or .mp4); its folder is made if need be"),
    ] = Path("sample.gif"),
    method: Annotated[
        str,
        typer.Option(help="any method of generate.methods: " + ", ".join(method_names())),
    ] = "splitter",
    rollout: Annotated[
        str,
        typer.Option(
            help="step (every frame from the start: the one the default model is best at) "
            "or chain (frame from frame)"
        ),
    ] = "step",
    decoder: Annotated[
        str,
        typer.Option(
            help="backbone (draws the embedding) or retrieval (the nearest training frame)"
        ),
    ] = "backbone",
    models: Annotated[Path, typer.Option(help="models folder written by the train stage")] = Path(
        "models"
    ),
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml to read")] = Path(
        "params.yaml"
    ),
    embeddings: Annotated[Path, typer.Option(help="embed stage output (retrieval only)")] = Path(
        "data/embeddings"
    ),
    frames_table: Annotated[Path, typer.Option(help="frames.parquet (retrieval only)")] = Path(
        "data/frames/frames.parquet"
    ),
    manifest: Annotated[Path, typer.Option(help="manifest.parquet (retrieval only)")] = Path(
        "data/raw/manifest.parquet"
    ),
) -> None:
    """Write a video for CAPTION with the trained model and the configured backbone."""
    from nextframe.sample import PipelineOutputs, sample_video

    if rollout not in ("chain", "step"):
        raise UserError(f"--rollout must be step or chain, got {rollout!r}")
    if not params_file.is_file():
        raise UserError(f"--params: {params_file} not found (run from the repository root)")
    try:
        params = load_params(params_file)
    except ParamsError as exc:  # YAML syntax (with line and column), unknown key, bad value
        raise UserError(f"--params: {exc}") from None
    written = sample_video(
        caption,
        out,
        params,
        models,
        frames,
        method=method,
        kind=rollout,
        decoder_name=decoder,
        outputs=PipelineOutputs(manifest=manifest, embeddings=embeddings, frames=frames_table),
    )
    typer.echo(f"wrote {written} ({frames} frames, {method} {rollout}, {decoder} decoder)")


@backbone_app.command("build")
@report_user_errors
def backbone_build(
    name: Annotated[str, typer.Argument(help="the backbone to build: toy")] = "toy",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="weights file to write (default: the one the package ships)"),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="build into a temporary file and check it is byte-identical to --out "
            "(default: the shipped file); writes nothing",
        ),
    ] = False,
) -> None:
    """Train the toy backbone from its recipe (a few minutes on 2 CPU cores)."""
    import tempfile

    from nextframe.backbones.toy import RECIPE, WEIGHTS
    from nextframe.backbones.toy.build import build_weights
    from nextframe.tracking import stage_run

    if name != "toy":
        raise UserError(f"can build the toy backbone only, got {name!r}: use 'toy'")
    target = out or WEIGHTS
    with tempfile.TemporaryDirectory(prefix="nextframe-toy-") as folder:
        built = Path(folder) / target.name if check else target
        with stage_run("backbone_build", RECIPE.to_dict()) as run:
            build_weights(RECIPE, built, log=run.log_metrics)
        if check:
            if not target.is_file():
                raise UserError(f"--check: {target} does not exist; build it first (no --check)")
            if built.read_bytes() != target.read_bytes():
                raise UserError(
                    f"--check: the rebuilt weights differ from {target} (recipe "
                    f"{RECIPE.digest()}); another CPU or torch build can change the last bits, "
                    "else the recipe's code changed without its VERSION: rebuild (no --check)"
                )
            typer.echo(f"ok: rebuilt weights are byte-identical to {target}")
            return
    typer.echo(f"wrote {target} (recipe {RECIPE.digest()})")
