"""Score the generated rollouts of the held-out clips: cos@h, decoded-frame metrics, CIs.

Writes METRICS_DIR/evaluate.json (flat keys such as splitter.chain.cos@1 and
splitter.chain.cos@1.ci_low; see src/nextframe/evaluate.py), METRICS_DIR/plots/cos_at_h.csv
(one column per method and rollout) and METRICS_DIR/plots/contact_sheets/*.png.
"""

from pathlib import Path
from typing import Annotated

import typer

from nextframe.config import load_params
from nextframe.errors import report_user_errors
from nextframe.evaluate import run_evaluate
from nextframe.tracking import stage_run

app = typer.Typer(add_completion=False, help=__doc__)


@app.command(help=__doc__)
@report_user_errors
def main(
    manifest: Annotated[Path, typer.Argument(help="data/raw/manifest.parquet (clip splits)")],
    embeddings_dir: Annotated[
        Path, typer.Argument(help="folder with images.parquet, texts.parquet")
    ],
    generated_dir: Annotated[Path, typer.Argument(help="output folder of the generate stage")],
    metrics_dir: Annotated[Path, typer.Argument(help="where evaluate.json and plots/ go")],
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml to read")] = Path(
        "params.yaml"
    ),
) -> None:
    params = load_params(params_file)
    with stage_run("evaluate", params.evaluate.model_dump(mode="json")) as run:
        summary = run_evaluate(
            manifest, embeddings_dir, generated_dir, metrics_dir, params.evaluate
        )
        run.log_metrics(summary.mlflow_metrics())
        run.log_artifacts(summary.plots)
    typer.echo(summary.describe())


if __name__ == "__main__":
    app()
