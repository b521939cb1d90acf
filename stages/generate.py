"""Roll out every method from the held-out clips' captions (and generate.prompts), decode.

Writes OUT_DIR/predictions.parquet (clip_id, method, rollout, step, embedding),
OUT_DIR/decoded.parquet (decoded frames re-encoded by the backbone), OUT_DIR/clips.json,
a GIF and an MP4 per clip, method, rollout and decoder under OUT_DIR/videos/<clip_id>/,
and a contact sheet per clip and decoder under OUT_DIR/contact_sheets/.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.pipeline import (
    PARAMS_FILE,
    ParamsFileOption,
    generate,
    params_help,
    run_stage,
    unwrap,
)

app = typer.Typer(add_completion=False)


@app.command(help=unwrap(__doc__), epilog=params_help(generate.PARAMS))
def main(
    manifest: Annotated[Path, typer.Argument(help="data/raw/manifest.parquet (clip splits)")],
    embeddings: Annotated[Path, typer.Argument(help="folder with images/texts.parquet")],
    models_dir: Annotated[Path, typer.Argument(help="models folder written by the train stage")],
    out_dir: Annotated[Path, typer.Argument(help="where predictions, videos and sheets go")],
    frames: Annotated[
        Path, typer.Option("--frames", help="frames.parquet (retrieval decoder, truth rows)")
    ] = Path("data/frames/frames.parquet"),
    params_file: ParamsFileOption = PARAMS_FILE,
) -> None:
    run_stage(
        "generate",
        generate.PARAMS,
        params_file,
        lambda p, log: generate.run(manifest, embeddings, models_dir, frames, out_dir, p),
    )


if __name__ == "__main__":
    app()
