"""Encode every selected frame and every clip's caption with the backbone.

Settings (params.yaml, backbone): name: toy (shipped, offline)
or kandinsky22 (prior_model, decoder_model: hub ids or local folders).
dtype, device: auto = float16 on CUDA, float32 on CPU.
batch_size: frames or captions per forward pass.
prior_steps, prior_guidance, seed: the unCLIP prior that turns each
caption into an image embedding.
Writes OUT_DIR/images.parquet (clip_id, k, t_seconds, embedding) and
OUT_DIR/texts.parquet (clip_id, caption, text_embed, prior_embed,
hidden_states). A rerun reuses the rows of clips whose frames, caption
and backbone settings are unchanged and encodes only the rest.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.config import load_params
from nextframe.embed import embed
from nextframe.errors import report_user_errors
from nextframe.tracking import stage_run

app = typer.Typer(add_completion=False, help=__doc__)


@app.command(help=__doc__)
@report_user_errors
def main(
    manifest: Annotated[Path, typer.Argument(help="manifest.parquet from the download stage")],
    frames: Annotated[Path, typer.Argument(help="frames.parquet from the select_frames stage")],
    out_dir: Annotated[Path, typer.Argument(help="folder for images.parquet and texts.parquet")],
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml to read")] = Path(
        "params.yaml"
    ),
) -> None:
    params = load_params(params_file)
    with stage_run("embed", params.backbone.model_dump(mode="json")) as run:
        summary = embed(manifest, frames, out_dir, params.backbone)
        run.log_metrics(summary.metrics())
    typer.echo(summary.describe())


if __name__ == "__main__":
    app()
