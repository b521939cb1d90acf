"""The ``folder`` source: videos already on disk plus a CSV of ``path,caption[,split]``.

For something-something-v2, MSR-VTT or a team's own footage. ``download.folder.root`` is
the videos folder and ``download.folder.csv`` the captions table, both relative to where
the stage runs (the repository root); CSV paths are relative to ``root``.

A malformed CSV (not UTF-8, missing column, empty caption, unknown split, one file given
two splits) stops the stage with the offending line, since guessing would silently train
on the wrong data. A single bad video does not: a path that escapes ``root`` is
``failed:outside_root``, a missing file ``failed:missing``, and every file is probed by
decoding its first ``min_frames`` frames (within ``download.max_pixels``) before it is
``ok``: ``not_a_video`` (a suffix no reader takes), ``empty_file``, ``undecodable``,
``too_many_pixels``, ``too_few_frames``.

A file is known by its real path, not its spelling: ``./a.mp4``, ``a.mp4`` and a link to
it are one video, so they share a split (no leak between training and evaluation) and a
row repeating the same file and caption is dropped (counted in ``duplicate_rows``).
Several captions of one video stay separate rows, as multi-caption datasets need. Without a
``split`` column, splits come from ``splits.assign_splits`` keyed by that real path.

Videos are hard-linked (or copied, across filesystems) into ``<out_dir>/videos`` so the
stage's output is self-contained for DVC; a rerun keeps a copy whose size and
modification time match its source.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import shutil
from pathlib import Path, PurePosixPath

import pandas as pd

from nextframe.config import DownloadParams
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult, failed
from nextframe.data.splits import SPLIT_NAMES, assign_splits
from nextframe.data.video import DECORD_SUFFIXES, GIF_SUFFIXES, VideoReadError, read_video
from nextframe.errors import UserError
from nextframe.progress import progress_bar
from nextframe.store import atomic_path

SOURCE = "folder"
REQUIRED_COLUMNS = ("path", "caption")
VIDEO_SUFFIXES = GIF_SUFFIXES | DECORD_SUFFIXES


def _decode_csv(csv: Path) -> str:
    """The CSV's text; bytes that are not UTF-8 are reported with their line."""
    data = csv.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(
            f"download.folder.csv: {csv} line {line}: expected UTF-8 text, found byte "
            f"0x{data[exc.start]:02x}; save the CSV as UTF-8 (e.g. iconv -f latin1 -t utf-8) "
            "and rerun"
        ) from None


def read_captions(csv: Path) -> pd.DataFrame:
    """The CSV as strings with columns path (normalised), caption, split ("" when not
    given) and line (its line in the file)."""
    if not csv.is_file():
        raise UserError(f"download.folder.csv: {csv} not found (a CSV of path,caption[,split])")
    try:
        table = pd.read_csv(
            io.StringIO(_decode_csv(csv)), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(
            f"download.folder.csv: {csv}: expected CSV rows path,caption[,split]: {exc}"
        ) from None
    table.columns = [str(column).strip().lower() for column in table.columns]
    for column in REQUIRED_COLUMNS:
        if column not in table.columns:
            raise UserError(
                f"download.folder.csv: {csv} has no {column!r} column; expected a header "
                f"path,caption[,split], found {list(table.columns)}"
            )
    has_split = "split" in table.columns
    table = table.assign(
        path=table["path"].map(normalise),
        caption=table["caption"].str.strip(),
        split=table["split"].str.strip().str.lower() if has_split else "",
        line=table.index + 2,  # line 1 is the header
    )
    for row in table.itertuples(index=False):
        line = f"download.folder.csv: {csv} line {row.line}"
        if not row.path or not row.caption:
            raise UserError(f"{line}: path and caption must not be empty")
        if has_split and row.split not in SPLIT_NAMES:
            raise UserError(f"{line}: split must be train, val or test, found {row.split!r}")
    return table[["path", "caption", "split", "line"]]


def normalise(relative: str) -> str:
    """One spelling per path: ``./a.mp4``, ``a.mp4`` and ``sub/../a.mp4`` are ``a.mp4``."""
    slashed = relative.strip().replace("\\", "/")
    return posixpath.normpath(slashed) if slashed else ""


def _identity(root: Path, relative: str) -> str:
    """The file's real path under ``root`` (links resolved), or its spelling if absent."""
    source = _inside_root(root, relative)
    if source is None or not source.exists():
        return relative
    return source.resolve().relative_to(root.resolve()).as_posix()


def probe(path: Path, min_frames: int, max_pixels: int) -> str | None:
    """Why ``path`` is not a usable video (a stable reason), or None when it is one."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return "not_a_video"
    if path.stat().st_size == 0:
        return "empty_file"
    try:
        video = read_video(path, max_frames=min_frames, max_pixels=max_pixels)
    except VideoReadError as exc:
        return exc.reason
    return "too_few_frames" if video.n_frames < min_frames else None


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


def place(source: Path, target: Path) -> None:
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


def _with_splits(table: pd.DataFrame, params: DownloadParams, csv: Path) -> pd.DataFrame:
    """Every row's split, one per file: seeded by its identity, or the CSV's (which must
    then agree for every spelling of one file)."""
    if (table["split"] == "").all():
        assigned = assign_splits(list(table["key"]), params.split, params.seed)
        return table.assign(split=table["key"].map(assigned))
    for key, group in table.groupby("key", sort=False):
        if group["split"].nunique() > 1:
            lines = ", ".join(f"line {row.line} ({row.split})" for row in group.itertuples())
            raise UserError(
                f"download.folder.csv: {csv}: {key} is one file given several splits "
                f"({lines}); a video must be in one split only, fix the split column"
            )
    return table


def _status(
    source: Path | None, params: DownloadParams, probes: dict[Path, str | None]
) -> str | None:
    """Why the row's file cannot be used, or None; each file is probed once."""
    if source is None:
        return "outside_root"
    if not source.is_file():
        return "missing"
    if source not in probes:
        probes[source] = probe(source, params.folder.min_frames, params.max_pixels)
    return probes[source]


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Validate the CSV, probe and place every video under ``out_dir/videos``, return rows."""
    root = Path(params.folder.root)
    if not root.is_dir():
        raise UserError(f"download.folder.root: {root} is not a folder (the videos' root)")
    csv = Path(params.folder.csv)
    table = read_captions(csv)
    table = table.assign(key=[_identity(root, relative) for relative in table["path"]])
    unique = table.drop_duplicates(["key", "caption"])
    duplicates = len(table) - len(unique)
    table = _with_splits(unique, params, csv)
    rows, taken = [], set()
    probes: dict[Path, str | None] = {}
    for relative, caption, split in progress_bar(
        list(table[["path", "caption", "split"]].itertuples(index=False)), desc=SOURCE, unit="clip"
    ):
        clip_id = _slug(relative, taken)
        source = _inside_root(root, relative)
        reason = _status(source, params, probes)
        path = "" if reason else f"{VIDEO_DIR}/{clip_id}{source.suffix.lower()}"
        if path:
            place(source, out_dir / path)
        rows.append(
            ManifestRow(
                clip_id=clip_id,
                source=SOURCE,
                caption=caption,
                label="",
                split=split,
                path=path,
                url=str(root / relative),
                status=failed(reason) if reason else OK,
            )
        )
    notes = [f"{duplicates} CSV row(s) repeating a file and caption dropped"] if duplicates else []
    return SourceResult(rows, metrics={"duplicate_rows": float(duplicates)}, notes=notes)
