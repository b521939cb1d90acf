"""The README's results tables, made from a run's ``metrics/evaluate.json`` and, where the
run wrote it, ``metrics/evaluate_methods.json`` (every method overall and per motion
class, with intervals; ``nextframe.method_table``).

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
from nextframe.motion_classes import CLASSES

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"
METHODS = list(REGISTRY)  # every registered method, in the registry's order
app = typer.Typer(add_completion=False)


def number(metrics: dict[str, float], key: str, digits: int = 3) -> str:
    value = metrics.get(key)
    return "n/a" if value is None else f"{value:.{digits}f}"


def label(method: str) -> str:
    """The method's name in a table; privileged ones (they know the generator's labels)
    are marked."""
    return f"{method} (privileged)" if REGISTRY[method].privileged else method


def with_interval(metrics: dict[str, float], key: str, digits: int = 2) -> str:
    """``mean [low, high]``, or the mean alone where no interval was computed."""
    value = number(metrics, key, digits)
    if f"{key}.ci_low" not in metrics:
        return value
    low, high = number(metrics, f"{key}.ci_low", digits), number(metrics, f"{key}.ci_high", digits)
    return f"{value} [{low}, {high}]"


def comparison(metrics: dict[str, float]) -> list[str]:
    """Every method with 95% intervals, and the splitter's paired advantage over it."""
    lines = [
        "",
        "Every method, `step` rollouts, mean [95% interval] over the test clips "
        "(`metrics/evaluate_methods.json`; proportions: exact Clopper-Pearson intervals; "
        "splitter - method: paired bootstrap, above 0 the splitter is better):",
        "",
        "| method | cos_mean | motion_mean | factor_motion (decoded) | direction_acc "
        "(22.5 deg, 0.5-1.5x) | direction_acc_45 | size_change_err "
        "| splitter - method, cos_mean | splitter - method, factor_motion |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method in [m for m in METHODS if f"{m}.step.cos_mean" in metrics] + ["truth"]:
        name = "truth (decoded true embeddings)" if method == "truth" else label(method)
        cells = [
            with_interval(metrics, f"{method}.step.{metric}", 3 if metric == "cos_mean" else 2)
            for metric in (
                "cos_mean",
                "motion_mean",
                "factor_motion",
                "direction_acc",
                "direction_acc_45",
                "size_change_err",
            )
        ]
        cells += [
            with_interval(metrics, f"splitter-{method}.step.{metric}", 3)
            if f"splitter-{method}.step.{metric}" in metrics
            else ""
            for metric in ("cos_mean", "factor_motion")
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


PER_CLASS = {
    "factor_motion": "motion on what the clip changes (position, size or angle; decoded)",
    "cos_mean": "cos_mean",
    "direction_acc": "direction_acc (decoded, translating classes)",
}


def per_class(metrics: dict[str, float]) -> list[str]:
    """One table per metric: methods x motion classes, mean [95% interval]."""
    classes = [c for c in CLASSES if f"by_class.{c}.n_clips" in metrics]
    if not classes:
        return []
    header = " | ".join(f"{c} ({int(metrics[f'by_class.{c}.n_clips'])})" for c in classes)
    lines = [
        "",
        "Per motion class (test clips per class in brackets; a class under 10 clips gives "
        "crude intervals, under 3 none), `step` rollouts:",
    ]
    methods = [m for m in METHODS if f"{m}.step.cos_mean" in metrics] + ["truth"]
    for metric, title in PER_CLASS.items():
        rows = []
        for method in methods:
            cells = [
                with_interval(metrics, f"by_class.{c}.{method}.step.{metric}")
                if f"by_class.{c}.{method}.step.{metric}" in metrics
                else ""
                for c in classes
            ]
            if any(cells):
                name = "truth" if method == "truth" else label(method)
                rows.append(f"| {name} | {' | '.join(cells)} |")
        if rows:
            lines += ["", f"| {title} | {header} |", "|---|" + "---|" * len(classes), *rows]
    return lines


def tables(metrics: dict[str, float], methods_table: dict[str, float] | None = None) -> str:
    """Markdown: one row per method, then the splitter's motion and picture scores; with
    ``methods_table`` (``evaluate_methods.json``) also every method with intervals and
    the per-class tables."""
    detail = methods_table or {}
    metrics = {**detail, **metrics}
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
            f"| {label(method)} | {number(metrics, f'{method}.step.cos_mean')} "
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
    if detail:
        lines += comparison(metrics) + per_class(metrics)
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
    methods: Annotated[
        Path, typer.Option(help="a run's per-method and per-class figures (if written)")
    ] = REPO / "metrics" / "evaluate_methods.json",
    readme: Annotated[Path, typer.Option(help="the README to check or update")] = REPO
    / "README.md",
    write: Annotated[bool, typer.Option(help="replace the README's results block")] = False,
    check: Annotated[bool, typer.Option(help="exit 1 if the README's block differs")] = False,
) -> None:
    detail = json.loads(methods.read_text()) if methods.exists() else None
    block = tables(json.loads(metrics.read_text()), detail)
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
