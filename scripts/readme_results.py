"""The README's results tables, made from a run's ``metrics/evaluate.json``.

The README quotes the committed pipeline's numbers; this script is where those tables come
from, so they cannot drift from the metrics: ``--check`` (run by the tests) fails when the
README's block differs from what the committed metrics give, ``--write`` updates it.

    python scripts/readme_results.py              # print the tables
    python scripts/readme_results.py --write      # replace the README's results block
    python scripts/readme_results.py --check      # exit 1 if the README is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from nextframe.methods import REGISTRY

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"
METHODS = list(REGISTRY)  # every registered method, in the registry's order
app = typer.Typer(add_completion=False)


def number(metrics: dict[str, float], key: str, digits: int = 3) -> str:
    value = metrics.get(key)
    return "n/a" if value is None else f"{value:.{digits}f}"


def tables(metrics: dict[str, float]) -> str:
    """Markdown: one row per method, then the splitter's motion and picture scores."""
    lines = [
        f"Held-out test split, {int(metrics['n_clips'])} clips, `step` rollouts from the "
        "caption's prior embedding (`metrics/evaluate.json`; decoded: by the backbone, "
        "scored against `truth.parquet`):",
        "",
        "| method | cos_mean | direction_acc (decoded) | displacement_err (px, decoded) |",
        "|---|---|---|---|",
    ]
    for method in METHODS:
        if f"{method}.step.cos_mean" not in metrics:
            continue
        lines.append(
            f"| {method} | {number(metrics, f'{method}.step.cos_mean')} "
            f"| {number(metrics, f'{method}.step.direction_acc', 2)} "
            f"| {number(metrics, f'{method}.step.displacement_err', 1)} |"
        )
    lines += [
        "",
        "| splitter | step | chain |",
        "|---|---|---|",
        f"| cos_mean | {number(metrics, 'splitter.step.cos_mean')} "
        f"| {number(metrics, 'splitter.chain.cos_mean')} |",
        "| motion_mean (1 = the true change, 0 = standing still) "
        f"| {number(metrics, 'splitter.step.motion_mean')} "
        f"| {number(metrics, 'splitter.chain.motion_mean')} |",
        "| worst lower 95% bound of (splitter - baseline) in cos_mean "
        f"| {number(metrics, 'splitter.step.cos_mean.worst_paired_low')} "
        f"| {number(metrics, 'splitter.chain.cos_mean.worst_paired_low')} |",
        "",
        "| decoded pictures (backbone decoder, 64 px) | splitter, step | true embeddings |",
        "|---|---|---|",
        f"| PSNR against the true frames (dB) | {number(metrics, 'splitter.step.psnr', 2)} "
        f"| {number(metrics, 'truth.psnr', 2)} |",
        f"| object centroid error (px) | {number(metrics, 'splitter.step.centroid_err', 2)} "
        f"| {number(metrics, 'truth.centroid_err', 2)} |",
    ]
    return "\n".join(lines)


def replaced(readme: str, block: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


@app.command()
def main(
    metrics: Annotated[Path, typer.Option(help="a run's headline metrics")] = REPO
    / "metrics"
    / "evaluate.json",
    readme: Annotated[Path, typer.Option(help="the README to check or update")] = REPO
    / "README.md",
    write: Annotated[bool, typer.Option(help="replace the README's results block")] = False,
    check: Annotated[bool, typer.Option(help="exit 1 if the README's block differs")] = False,
) -> None:
    block = tables(json.loads(metrics.read_text()))
    if not (write or check):
        typer.echo(block)
        return
    current = readme.read_text()
    wanted = replaced(current, block)
    if write:
        readme.write_text(wanted)
    elif wanted != current:
        typer.echo(f"{readme}: the results block differs from {metrics}; run with --write")
        sys.exit(1)


if __name__ == "__main__":
    app()
