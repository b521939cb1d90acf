"""Pick the frames of each downloaded clip that training learns from, as PNGs.

Reads the clips with manifest status ok; writes OUT_DIR/<clip_id>/<k>.png and
OUT_DIR/frames.parquet (clip_id, k, frame_index, t_seconds, score, path).
Undecodable or missing videos are skipped and counted per reason; a rerun
reuses the clips whose PNGs are already complete.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.pipeline import (
    PARAMS_FILE,
    ParamsFileOption,
    params_help,
    run_stage,
    select_frames,
    unwrap,
)

app = typer.Typer(add_completion=False)


@app.command(help=unwrap(__doc__), epilog=params_help(select_frames.PARAMS))
def main(
    manifest: Annotated[Path, typer.Argument(help="manifest.parquet from the download stage")],
    out_dir: Annotated[Path, typer.Argument(help="folder for the PNGs and frames.parquet")],
    params_file: ParamsFileOption = PARAMS_FILE,
) -> None:
    run_stage(
        "select_frames",
        select_frames.PARAMS,
        params_file,
        lambda p, log: select_frames.run(manifest, out_dir, p),
    )


if __name__ == "__main__":
    app()
