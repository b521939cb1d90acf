"""The ``folder`` source: videos already on disk plus a CSV of ``path,caption[,split]``.

For something-something-v2, MSR-VTT or a team's own footage. ``download.folder.root`` is
the videos folder and ``download.folder.csv`` the captions table, both relative to where
the stage runs (the repository root); CSV paths are relative to ``root``.

A malformed CSV (missing column, empty caption, unknown split) stops the stage with the
offending line, since guessing would silently train on the wrong data. A single bad
video does not: a path that escapes ``root`` is ``failed:outside_root`` and a missing file
``failed:missing``. Without a ``split`` column, splits come from ``splits.assign_splits``
keyed by the video path, so several captions of one video always share a split.

Videos are hard-linked (or copied, across filesystems) into ``<out_dir>/videos`` so the
stage's output is self-contained for DVC; a rerun keeps a copy whose size and
modification time match its source.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path, PurePosixPath

import pandas as pd
from tqdm import tqdm

from nextframe.config import DownloadParams
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult, failed
from nextframe.data.splits import SPLIT_NAMES, assign_splits
from nextframe.errors import UserError
from nextframe.store import atomic_path

SOURCE = "folder"
REQUIRED_COLUMNS = ("path", "caption")


def read_captions(csv: Path) -> pd.DataFrame:
    """The CSV as strings with columns path, caption and split ("" when not given)."""
    if not csv.is_file():
        raise UserError(f"download.folder.csv: {csv} not found (a CSV of path,caption[,split])")
    table = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    table.columns = [str(column).strip().lower() for column in table.columns]
    for column in REQUIRED_COLUMNS:
        if column not in table.columns:
            raise UserError(
                f"download.folder.csv: {csv} has no {column!r} column; expected a header "
                f"path,caption[,split], found {list(table.columns)}"
            )
    has_split = "split" in table.columns
    table = table.assign(
        path=table["path"].str.strip(),
        caption=table["caption"].str.strip(),
        split=table["split"].str.strip().str.lower() if has_split else "",
    )
    for index, row in table.iterrows():
        line = f"download.folder.csv: {csv} line {int(index) + 2}"  # line 1 is the header
        if not row["path"] or not row["caption"]:
            raise UserError(f"{line}: path and caption must not be empty")
        if has_split and row["split"] not in SPLIT_NAMES:
            raise UserError(f"{line}: split must be train, val or test, found {row['split']!r}")
    return table[["path", "caption", "split"]]


def _inside_root(root: Path, relative: str) -> Path | None:
    """The video's path if ``relative`` stays inside ``root`` (symlinks resolved), else None."""
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", relative):
        return None
    path = root / pure
    if not path.resolve().is_relative_to(root.resolve()):
        return None
    return path


def _slug(relative: str, taken: set[str]) -> str:
    """A clip id safe as a folder name, made from the relative path and unique in ``taken``."""
    stem = str(PurePosixPath(relative.replace("\\", "/")).with_suffix(""))
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip("._-") or "clip"
    slug, count = base, 1
    while slug in taken:
        count += 1
        slug = f"{base}-{count}"
    taken.add(slug)
    return slug


def _place(source: Path, target: Path) -> None:
    """Hard-link (or copy) ``source`` to ``target`` atomically, unless it is already there."""
    if target.exists():
        if os.path.samefile(source, target):
            return
        same, have = source.stat(), target.stat()
        if same.st_size == have.st_size and int(same.st_mtime) == int(have.st_mtime):
            return
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem, or links not supported there
            shutil.copy2(source, tmp)


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Validate the CSV, place every video under ``out_dir/videos`` and return the rows."""
    root = Path(params.folder.root)
    if not root.is_dir():
        raise UserError(f"download.folder.root: {root} is not a folder (the videos' root)")
    table = read_captions(Path(params.folder.csv))
    if (table["split"] == "").all():
        assigned = assign_splits(list(table["path"]), params.split, params.seed)
        table = table.assign(split=table["path"].map(assigned))
    rows, taken = [], set()
    for relative, caption, split in tqdm(
        list(table.itertuples(index=False)), desc=SOURCE, unit="clip"
    ):
        clip_id = _slug(relative, taken)
        source = _inside_root(root, relative)
        status, path = OK, ""
        if source is None:
            status = failed("outside_root")
        elif not source.is_file():
            status = failed("missing")
        else:
            path = f"{VIDEO_DIR}/{clip_id}{source.suffix.lower()}"
            _place(source, out_dir / path)
        rows.append(
            ManifestRow(
                clip_id=clip_id,
                source=SOURCE,
                caption=caption,
                label="",
                split=split,
                path=path,
                url=str(root / relative),
                status=status,
            )
        )
    return SourceResult(rows)
