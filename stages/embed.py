"""Encode every selected frame and every clip's caption with the backbone.

Writes OUT_DIR/images.parquet (clip_id, k, t_seconds, embedding) and
OUT_DIR/texts.parquet (clip_id, caption, text_embed, prior_embed, hidden_states).
A rerun reuses the rows of clips whose frames, caption and backbone settings are
unchanged and encodes only the rest.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.pipeline import PARAMS_FILE, ParamsFileOption, embed, params_help, run_stage, unwrap

app = typer.Typer(add_completion=False)


@app.command(help=unwrap(__doc__), epilog=params_help(embed.PARAMS))
def main(
    manifest: Annotated[Path, typer.Argument(help="manifest.parquet from the download stage")],
    frames: Annotated[Path, typer.Argument(help="frames.parquet from the select_frames stage")],
    out_dir: Annotated[Path, typer.Argument(help="folder for images.parquet and texts.parquet")],
    params_file: ParamsFileOption = PARAMS_FILE,
) -> None:
    run_stage(
        "embed", embed.PARAMS, params_file, lambda p, log: embed.run(manifest, frames, out_dir, p)
    )


if __name__ == "__main__":
    app()
