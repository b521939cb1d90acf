"""Train the splitter on the train split, early-stop on val, and fit the baselines.

Writes models/splitter (model.safetensors + config.json), models/baselines, the final
numbers to metrics/train.json (DVC metrics) and one row per epoch to
metrics/plots/train_loss.csv (DVC plot); every epoch's losses also go to MLflow.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.config import load_params
from nextframe.errors import report_user_errors
from nextframe.model.training import run_training
from nextframe.tracking import stage_run

app = typer.Typer(add_completion=False, help=__doc__)


@app.command(help=__doc__)
@report_user_errors
def main(
    manifest: Annotated[Path, typer.Argument(help="manifest.parquet (clip splits)")],
    embeddings_dir: Annotated[Path, typer.Argument(help="folder with images/texts.parquet")],
    models_dir: Annotated[Path, typer.Argument(help="where splitter/ and baselines/ go")],
    metrics_dir: Annotated[Path, typer.Argument(help="where train.json and plots/ go")],
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml to read")] = Path(
        "params.yaml"
    ),
) -> None:
    params = load_params(params_file)
    with stage_run("train", params.train.model_dump(mode="json")) as run:
        summary = run_training(
            manifest,
            embeddings_dir,
            models_dir,
            metrics_dir,
            params.train,
            on_epoch=run.log_metrics,
        )
        run.log_metrics(summary.mlflow_metrics())
        run.log_artifacts(sorted((models_dir / "splitter").iterdir()))
    typer.echo(summary.describe())


if __name__ == "__main__":
    app()
