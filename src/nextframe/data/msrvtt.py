"""The ``msrvtt`` source: MSR-VTT (Xu et al. 2016) from the files a user has.

MSR-VTT cannot be downloaded here (its release is behind the authors' and mirrors' terms),
so this reads what the user has, in the layout of the common releases (the CLIP4Clip /
Frozen-in-Time packaging):

- ``download.msrvtt.videos``: a folder of ``<video_id>.mp4`` (``video0.mp4`` ..
  ``video9999.mp4``).
- ``download.msrvtt.annotations``: either ``MSRVTT_data.json``, an object with ``videos``
  (``{"video_id", "split": train|validate|test, "category", ...}``) and ``sentences``
  (``{"video_id", "sen_id", "caption"}``, 20 per video), or the 1k-A test list
  ``MSRVTT_JSFUSION_test.csv`` (columns ``key,vid_key,video_id,sentence``; the 1000 test
  videos of Yu et al. 2018's JSFusion split that text-video papers report on), whose
  videos are then all test clips.
- with the JSON, ``download.msrvtt.test_csv`` optionally names that CSV: its videos become
  the test split (1k-A) and every other video of the official test split trains, as in
  1k-A's 9k training set; train stays train and validate is val.

One caption per video (the seed and the pipeline pair a clip with one caption): with the
CSV, its sentence (the one 1k-A evaluates with); otherwise the video's sentence with the
lowest ``sen_id`` (the first annotated), whitespace collapsed. A video of the annotations
that is not in the folder is ``failed:missing``; every file is probed as in ``folder``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from nextframe.config import DownloadParams, MsrvttParams
from nextframe.data.folder import place, probe
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult, failed
from nextframe.errors import UserError

SOURCE = "msrvtt"
JSON_SPLITS = {"train": "train", "validate": "val", "val": "val", "test": "test"}
CSV_COLUMNS = ("video_id", "sentence")


@dataclass(frozen=True)
class Entry:
    video_id: str
    caption: str
    split: str
    label: str


def _words(text: str) -> str:
    return " ".join(str(text).split())


def read_json(path: Path) -> list[Entry]:
    """Videos of ``MSRVTT_data.json`` with their official split and first sentence."""
    key = "download.msrvtt.annotations"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        videos, sentences = data["videos"], data["sentences"]
        first: dict[str, tuple[int, str]] = {}
        for sentence in sentences:
            video_id, sen_id = str(sentence["video_id"]), int(sentence["sen_id"])
            if video_id not in first or sen_id < first[video_id][0]:
                first[video_id] = (sen_id, _words(sentence["caption"]))
        entries = []
        for video in videos:
            video_id, split = str(video["video_id"]), str(video["split"]).lower()
            if split not in JSON_SPLITS:
                raise UserError(
                    f"{key}: {path}: video {video_id} has split {split!r}; expected train, "
                    "validate or test"
                )
            if video_id not in first:
                raise UserError(f"{key}: {path}: video {video_id} has no sentence")
            label = str(video.get("category", ""))
            entries.append(Entry(video_id, first[video_id][1], JSON_SPLITS[split], label))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(
            f"{key}: {path} is not MSRVTT_data.json (an object with 'videos' [video_id, "
            f"split] and 'sentences' [video_id, sen_id, caption]): {type(exc).__name__}: {exc}"
        ) from None
    return entries


def read_test_csv(path: Path, key: str) -> list[Entry]:
    """The 1k-A test videos of ``MSRVTT_JSFUSION_test.csv``, each with its sentence."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{key}: {path}: not a UTF-8 CSV ({exc})") from None
    if not rows or any(column not in rows[0] for column in CSV_COLUMNS):
        found = list(rows[0]) if rows else []
        raise UserError(
            f"{key}: {path}: expected the columns key,vid_key,video_id,sentence of "
            f"MSRVTT_JSFUSION_test.csv, found {found}"
        )
    entries: dict[str, Entry] = {}
    for row in rows:
        video_id = row["video_id"].strip()
        entries.setdefault(video_id, Entry(video_id, _words(row["sentence"]), "test", ""))
    return list(entries.values())


def annotated(settings: MsrvttParams) -> list[Entry]:
    """The videos with their caption and split, by the module doc's rules."""
    path = Path(settings.annotations)
    key = "download.msrvtt.annotations"
    if not path.is_file():
        raise UserError(
            f"{key}: {path} not found; point it at MSRVTT_data.json or MSRVTT_JSFUSION_test.csv"
        )
    if path.suffix.lower() == ".csv":
        return read_test_csv(path, key)
    entries = read_json(path)
    if not settings.test_csv:
        return entries
    test_path = Path(settings.test_csv)
    if not test_path.is_file():
        raise UserError(f'download.msrvtt.test_csv: {test_path} not found ("": official split)')
    test = {entry.video_id: entry for entry in read_test_csv(test_path, "download.msrvtt.test_csv")}
    unknown = sorted(set(test) - {entry.video_id for entry in entries})
    if unknown:
        raise UserError(
            f"download.msrvtt.test_csv: videos {unknown[:3]} are not in {path}; are both "
            "files from the same MSR-VTT release?"
        )
    return [
        Entry(e.video_id, test[e.video_id].caption, "test", e.label)
        if e.video_id in test
        else Entry(e.video_id, e.caption, "train" if e.split == "test" else e.split, e.label)
        for e in entries
    ]


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Probe and place every annotated video under ``out_dir/videos``, return the rows."""
    settings = params.msrvtt
    folder = Path(settings.videos)
    if not folder.is_dir():
        raise UserError(
            f"download.msrvtt.videos: {folder} is not a folder (the MSR-VTT <video_id>.mp4 files)"
        )
    rows = []
    for entry in annotated(settings):
        source = folder / f"{entry.video_id}.mp4"
        reason = (
            probe(source, settings.min_frames, params.max_pixels) if source.is_file() else "missing"
        )
        path = "" if reason else f"{VIDEO_DIR}/{SOURCE}/{entry.video_id}.mp4"
        if path:
            place(source, out_dir / path)
        rows.append(
            ManifestRow(
                clip_id=entry.video_id,
                source=SOURCE,
                caption=entry.caption,
                label=entry.label,
                split=entry.split,
                path=path,
                url=str(source),
                status=failed(reason) if reason else OK,
            )
        )
    return SourceResult(rows)
