"""Collect captioned clips into OUT_DIR/videos, listed in OUT_DIR/manifest.parquet.

Settings (params.yaml, download):
source: synthetic (offline, the default), tgif, ucf50 or folder.
seed: seeds the sampling and the train/val/test assignment.
split.val, split.test: held-out fractions where a source has no split.
synthetic: n_clips clips of n_frames frames at fps, size x size px,
  alternating over formats (mp4, gif); one shape moving as captioned.
tgif: tsv_url (URL<TAB>sentence); split_urls (official split lists);
  limit (good GIFs wanted); min_frames, max_frames; min_side (0: any);
  http: workers, timeout_s, retries, backoff_s, max_bytes per file.
ucf50: url (RAR archive); expected_bytes (0: unchecked);
  classes ([]: all); caption_template ({name}); clips_per_class (0: all);
  http as for tgif.
folder: root (the videos folder); csv (path,caption[,split] rows,
  paths relative to root).
Every clip is a manifest row: status ok or failed:<reason>.
A rerun keeps the videos that are already complete.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.config import load_params
from nextframe.data.sources import download
from nextframe.errors import report_user_errors
from nextframe.tracking import stage_run

app = typer.Typer(add_completion=False, help=__doc__)


@app.command(help=__doc__)
@report_user_errors
def main(
    out_dir: Annotated[Path, typer.Argument(help="folder for videos/ and manifest.parquet")],
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml to read")] = Path(
        "params.yaml"
    ),
) -> None:
    params = load_params(params_file)
    with stage_run("download", params.download.model_dump(mode="json")) as run:
        summary = download(params.download, out_dir)
        run.log_metrics(summary.metrics())
    typer.echo(summary.describe())


if __name__ == "__main__":
    app()
