"""Fit the splitter and every method of generate.methods on the train split (the splitter
early-stops on val; ridge chooses its regularisation on val).

Writes MODELS_DIR/<method>/ for each (the splitter: model.safetensors + config.json; the
others: weights.safetensors + method.json), METRICS_DIR/train.json (DVC metrics) and
METRICS_DIR/plots/train_loss.csv (one row per epoch, a DVC plot); every epoch's losses
also go to MLflow, and the splitter's files, train.json and the loss curve go with the
run as artifacts.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.pipeline import PARAMS_FILE, ParamsFileOption, params_help, run_stage, train, unwrap

app = typer.Typer(add_completion=False)


@app.command(help=unwrap(__doc__), epilog=params_help(train.PARAMS))
def main(
    manifest: Annotated[Path, typer.Argument(help="manifest.parquet (clip splits)")],
    embeddings: Annotated[Path, typer.Argument(help="folder with images/texts.parquet")],
    models_dir: Annotated[Path, typer.Argument(help="where each method's folder goes")],
    metrics_dir: Annotated[Path, typer.Argument(help="where train.json and plots/ go")],
    params_file: ParamsFileOption = PARAMS_FILE,
) -> None:
    run_stage(
        "train",
        train.PARAMS,
        params_file,
        lambda p, log: train.run(
            manifest, embeddings, models_dir, metrics_dir, p, on_epoch=log.log_metrics
        ),
        artifacts=lambda summary: summary.artifacts,
    )


if __name__ == "__main__":
    app()
