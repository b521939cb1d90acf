"""Collect captioned clips into OUT_DIR/videos, listed in OUT_DIR/manifest.parquet.

The source is download.source: synthetic (offline, the default: clips with known
motion), tgif, ucf50 or folder. Every clip is a manifest row with status ok or
failed:<reason>, counted per reason. A rerun keeps the videos already complete.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.pipeline import (
    PARAMS_FILE,
    ParamsFileOption,
    download,
    params_help,
    run_stage,
    unwrap,
)

app = typer.Typer(add_completion=False)


@app.command(help=unwrap(__doc__), epilog=params_help(download.PARAMS))
def main(
    out_dir: Annotated[Path, typer.Argument(help="folder for videos/ and manifest.parquet")],
    params_file: ParamsFileOption = PARAMS_FILE,
) -> None:
    run_stage("download", download.PARAMS, params_file, lambda p, log: download.run(out_dir, p))


if __name__ == "__main__":
    app()
