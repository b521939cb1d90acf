"""Roll out every method from the held-out clips' captions (and params.generate.prompts), decode.

Writes OUT_DIR/predictions.parquet (clip_id, method, rollout, step, embedding),
OUT_DIR/decoded.parquet (decoded frames re-encoded by the backbone), OUT_DIR/clips.json,
one GIF and one MP4 per clip, method, rollout and decoder under OUT_DIR/videos/<clip_id>/,
and a contact sheet per clip and decoder under OUT_DIR/contact_sheets/.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.config import load_params
from nextframe.errors import report_user_errors
from nextframe.generate_stage import run_generate
from nextframe.tracking import stage_run

app = typer.Typer(add_completion=False, help=__doc__)


@app.command(help=__doc__)
@report_user_errors
def main(
    manifest: Annotated[Path, typer.Argument(help="data/raw/manifest.parquet (clip splits)")],
    embeddings_dir: Annotated[
        Path, typer.Argument(help="folder with images.parquet, texts.parquet")
    ],
    models_dir: Annotated[Path, typer.Argument(help="models folder written by the train stage")],
    out_dir: Annotated[Path, typer.Argument(help="where predictions, videos and sheets go")],
    frames_table: Annotated[
        Path, typer.Option("--frames", help="frames.parquet (retrieval decoder, truth rows)")
    ] = Path("data/frames/frames.parquet"),
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml to read")] = Path(
        "params.yaml"
    ),
) -> None:
    params = load_params(params_file)
    logged = {"generate": params.generate.model_dump(mode="json"), "blend_q": params.train.blend_q}
    with stage_run("generate", logged) as run:
        summary = run_generate(manifest, embeddings_dir, models_dir, frames_table, out_dir, params)
        run.log_metrics(summary.metrics())
    typer.echo(summary.describe())


if __name__ == "__main__":
    app()
