"""Compare a reproduced run's metrics with the committed ones, within a stated tolerance.

Byte identity of the outputs is promised only for the data stages (the README's "What
reproduces"): on another CPU the float kernels round differently and the metrics
move by about 1e-4. This script says whether a run reproduces the committed *results*:
every ``metrics/*.json`` tracked by git at ``--ref`` (default HEAD) is compared key by key
(nested keys dotted) with the file in the working tree, and every key outside its tolerance,
missing or new is named. Exit 0: all agree; 1: some differ; 2: a file cannot be read.

Tolerances, by the kind of number (chosen from the drift between CPUs, about 1e-4 on
cosines and 1e-5 relative on PSNR, and the smallest effect the README claims, a paired
cosine margin of 0.015):
  exact          counts and proportions (n_clips, best_epoch, parameters, *_acc, ...): whole
                 numbers or k/n fractions, so any change is a different result, not rounding
  abs 2e-3       cosine-like values in [-1, 1] (cos*, motion*, *worst_paired_low): 20x the
                 drift between CPUs, 7x below the smallest margin the README reports
  rel 1e-3       everything else (PSNR in dB, pixel errors, losses, MSE): scale-free; 0.02 dB
                 on a PSNR of 23, 100x the drift between CPUs

    python scripts/check_reproduction.py                  # working tree vs HEAD
    python scripts/check_reproduction.py --ref v1.0       # vs a tag
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

EXACT = re.compile(
    r"(^|\.)(n|n_clips|n_decoded_clips|best_epoch|epochs_run|parameters|train_clips|val_clips"
    r"|val_rows)$|_acc$|^skipped_clips\."
)
COSINE_LIKE = re.compile(r"cos|motion|worst_paired_low")
COSINE_ABS = 2e-3
RELATIVE = 1e-3
FLOOR = 1e-12  # a committed 0.0 is matched by float noise, not only by 0.0
app = typer.Typer(add_completion=False)


@dataclass(frozen=True)
class Difference:
    file: str
    key: str
    committed: object
    reproduced: object
    allowed: str  # the tolerance that was exceeded, in words

    def describe(self) -> str:
        return (
            f"{self.file}: {self.key}: committed {self.committed!r}, reproduced "
            f"{self.reproduced!r} ({self.allowed})"
        )


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    """Nested JSON objects as one mapping of dotted keys (``val_loss.total``)."""
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{prefix}{key}."))
        return flat
    return {prefix.removesuffix("."): value}


def tolerance(key: str) -> tuple[str, float]:
    """``("exact" | "abs" | "rel", bound)`` for a dotted key (see the module doc)."""
    if EXACT.search(key):
        return "exact", 0.0
    if COSINE_LIKE.search(key):
        return "abs", COSINE_ABS
    return "rel", RELATIVE


def differs(key: str, committed: object, reproduced: object) -> str | None:
    """Why ``reproduced`` is not ``committed`` within the key's tolerance, or None."""
    numbers = (int, float)
    if not (isinstance(committed, numbers) and isinstance(reproduced, numbers)):
        return None if committed == reproduced else "not equal"
    if isinstance(committed, bool) or isinstance(reproduced, bool):
        return None if committed == reproduced else "not equal"
    if math.isnan(committed) or math.isnan(reproduced):
        return None if math.isnan(committed) and math.isnan(reproduced) else "one is NaN"
    kind, bound = tolerance(key)
    gap = abs(reproduced - committed)
    if kind == "exact":
        return None if gap == 0 else "exact: a count or proportion"
    if kind == "abs":
        return None if gap <= bound else f"|diff| {gap:.3g} > abs {bound:g}"
    scale = abs(committed)
    allowed = bound * scale + FLOOR
    return None if gap <= allowed else f"|diff| {gap:.3g} > rel {bound:g} of {scale:.4g}"


def compare(file: str, committed: object, reproduced: object) -> list[Difference]:
    """Every key of two metrics payloads that differs, is missing or is new."""
    old, new = flatten(committed), flatten(reproduced)
    found = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            found.append(Difference(file, key, old[key], None, "missing in the reproduction"))
        elif key not in old:
            found.append(Difference(file, key, None, new[key], "not in the committed file"))
        elif (why := differs(key, old[key], new[key])) is not None:
            found.append(Difference(file, key, old[key], new[key], why))
    return found


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise typer.BadParameter(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@app.command(help=__doc__.split("\n\n")[0])
def main(
    ref: Annotated[str, typer.Option(help="the commit whose metrics are the reference")] = "HEAD",
    repo: Annotated[Path, typer.Option(help="the repository root")] = Path("."),
) -> None:
    listed = git(repo, "ls-tree", "--name-only", ref, "metrics/").split()
    files = sorted(name for name in listed if name.endswith(".json"))
    if not files:
        typer.echo(f"error: no metrics/*.json tracked at {ref}", err=True)
        raise typer.Exit(2)
    differences: list[Difference] = []
    keys = 0
    for name in files:
        committed = json.loads(git(repo, "show", f"{ref}:{name}"))
        path = repo / name
        if not path.is_file():
            typer.echo(f"error: {name} not found; run the pipeline first (dvc repro)", err=True)
            raise typer.Exit(2)
        found = compare(name, committed, json.loads(path.read_text()))
        differences += found
        keys += len(flatten(committed))
    for difference in differences:
        typer.echo(difference.describe())
    if differences:
        typer.echo(f"{len(differences)} of {keys} metrics differ from {ref} beyond tolerance")
        raise typer.Exit(1)
    typer.echo(f"all {keys} metrics in {len(files)} files agree with {ref} within tolerance")


if __name__ == "__main__":
    app()
