"""Pick the frames of each downloaded clip that training learns from, as PNGs.

Reads clips with manifest status "ok". Settings (params.yaml, select_frames):
method: top_diff = frame 0 + the k-1 frames that change most within the
first window_s seconds; uniform = every step-th frame. k: frames per clip.
min_frames: clips with fewer usable frames are skipped. size: output side.
resize: letterbox (padded with pad_color) or center_crop.
workers: clips decoded and written concurrently.
Writes OUT_DIR/<clip_id>/<k>.png and OUT_DIR/frames.parquet.
Undecodable or missing videos are skipped and counted per reason;
a rerun reuses the clips whose PNGs are already complete.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.config import load_params
from nextframe.data.extract import select_frames
from nextframe.errors import report_user_errors
from nextframe.tracking import stage_run

app = typer.Typer(add_completion=False, help=__doc__)


@app.command(help=__doc__)
@report_user_errors
def main(
    manifest: Annotated[Path, typer.Argument(help="manifest.parquet from the download stage")],
    out_dir: Annotated[Path, typer.Argument(help="folder for the PNGs and frames.parquet")],
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml to read")] = Path(
        "params.yaml"
    ),
) -> None:
    params = load_params(params_file)
    with stage_run("select_frames", params.select_frames.model_dump(mode="json")) as run:
        summary = select_frames(manifest, out_dir, params.select_frames)
        run.log_metrics(summary.metrics())
    typer.echo(summary.describe())


if __name__ == "__main__":
    app()
