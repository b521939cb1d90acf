"""Atomic writes: every file is written to a temporary path beside its destination and
renamed into place only when complete, so an interrupted stage never leaves a half-written
table that a later stage (or ``dvc commit``) would take for real."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def replaced_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to build a whole output in; only if the block
    succeeds does it take ``path``'s place (the old folder is removed), else it is removed
    and ``path`` is left as it was.

    Why: the stages' outputs are DVC ``persist`` outputs (dvc.yaml), which DVC does not
    delete before a run, so a run that fails (a params typo, Ctrl-C) keeps the previous
    outputs; a stage that writes a whole folder must therefore not leave an earlier run's
    files in it (a method no longer fitted, a decoder no longer run).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    building, old = temporary_path(path), path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        yield building
        if path.exists():
            os.replace(path, old)
        os.replace(building, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def write_json(payload: object, path: str | Path) -> None:
    """Write JSON atomically, keys sorted: the same payload always gives the same bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
