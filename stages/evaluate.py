"""Score the generated rollouts of the test clips: cosines, motion, pictures, trajectories.

Writes METRICS_DIR/evaluate.json (the headline numbers, a DVC metric),
METRICS_DIR/evaluate_full.json (every per-step value and interval),
METRICS_DIR/plots/cos_at_h.csv and METRICS_DIR/plots/contact_sheets/*.png. MLflow gets
the headline numbers under their JSON keys, the cos@h curves as metric histories and
every file written as an artifact.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.pipeline import (
    PARAMS_FILE,
    ParamsFileOption,
    evaluate,
    params_help,
    run_stage,
    unwrap,
)

app = typer.Typer(add_completion=False)


@app.command(help=unwrap(__doc__), epilog=params_help(evaluate.PARAMS))
def main(
    manifest: Annotated[Path, typer.Argument(help="data/raw/manifest.parquet (clip splits)")],
    embeddings: Annotated[Path, typer.Argument(help="folder with images/texts.parquet")],
    generated: Annotated[Path, typer.Argument(help="output folder of the generate stage")],
    metrics_dir: Annotated[Path, typer.Argument(help="where evaluate.json and plots/ go")],
    frames: Annotated[
        Path, typer.Option("--frames", help="frames.parquet: the true frames' pictures")
    ] = Path("data/frames/frames.parquet"),
    truth: Annotated[
        Path, typer.Option("--truth", help="truth.parquet: the object's true pose (synthetic)")
    ] = Path("data/raw/truth.parquet"),
    params_file: ParamsFileOption = PARAMS_FILE,
) -> None:
    run_stage(
        "evaluate",
        evaluate.PARAMS,
        params_file,
        lambda p, log: evaluate.run(manifest, embeddings, generated, frames, truth, metrics_dir, p),
        artifacts=lambda summary: summary.files,
        history=lambda summary: summary.steps(),
    )


if __name__ == "__main__":
    app()
