"""The ``ucf50`` source: action clips from the UCF50 RAR archive, captioned by class.

The archive (about 3 GiB) is downloaded into the download cache (``nextframe.cache``, outside
the DVC output) with HTTP Range resume,
so an interrupted download continues where it stopped. Its entries
``UCF50/<Class>/v_<Class>_gNN_cNN.avi`` are listed (and vetted) by ``archive.py``; only the
chosen classes (``download.ucf50.classes``, all when empty) and at most
``clips_per_class`` clips per class (sorted, then a sample seeded by ``download.seed`` and
the class) are extracted, to ``<out_dir>/videos/UCF50/<Class>/``.

Splits are by group: UCF50's ``gNN`` is one actor and setting, shared across classes, so
``splits.assign_splits`` runs over the group ids and every clip takes its group's split;
no actor is seen in training and evaluation both.

Resume: members are extracted to a scratch folder and moved into ``videos/`` only when
the extraction tool finished, so a file present there is complete (the right size by
construction) and is not extracted again.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from nextframe.cache import download_path
from nextframe.config import DownloadParams, Ucf50Params
from nextframe.data import archive
from nextframe.data.http import fetch, part_path
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult
from nextframe.data.splits import assign_splits
from nextframe.errors import UserError

SOURCE = "ucf50"
ARCHIVE_NAME = "UCF50.rar"
SCRATCH_DIR = ".ucf50_extracting"
MEMBER = re.compile(
    r"^UCF50/(?P<label>[^/]+)/v_[^/]*_g(?P<group>\d+)_c\d+\.avi$", flags=re.IGNORECASE
)
_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True)
class Clip:
    member: str  # path inside the archive
    label: str  # class name, e.g. JumpingJack
    group: str  # gNN

    @property
    def clip_id(self) -> str:
        return Path(self.member).stem


def class_words(label: str) -> str:
    """``JumpingJack`` -> ``jumping jack``, ``YoYo`` -> ``yo yo``."""
    return _WORD_BOUNDARY.sub(" ", label).lower()


def caption_for(label: str, template: str) -> str:
    try:
        return template.format(name=class_words(label))
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(
            f"download.ucf50.caption_template {template!r}: use only the field {{name}} ({exc})"
        ) from None


def download_archive(ucf: Ucf50Params) -> Path:
    """The complete archive in the download cache, fetched or resumed when needed.

    Kept outside ``data/raw`` so that neither a rerun nor ``dvc push`` touches its 3 GiB.
    """
    path = download_path(ucf.url)
    if not path.exists():
        result = fetch(ucf.url, path, ucf.http, resume=True)
        if not result.ok:
            part = part_path(path)
            kept = part.stat().st_size if part.exists() else 0
            raise UserError(
                f"download.ucf50.url {ucf.url}: download failed ({result.reason}) after "
                f"{result.attempts} attempt(s); rerun to resume from the {kept} bytes in {part}"
            )
    size = path.stat().st_size
    if ucf.expected_bytes and size != ucf.expected_bytes:
        raise UserError(
            f"{path} has {size} bytes but download.ucf50.expected_bytes is "
            f"{ucf.expected_bytes}; delete the file to download it again, or fix the param"
        )
    return path


def select_clips(members: list[str], ucf: Ucf50Params, seed: int) -> list[Clip]:
    """The clips to use, per class sorted then sampled with a (seed, class) RNG."""
    by_label: dict[str, list[Clip]] = {}
    for member in members:
        match = MEMBER.match(member)
        if match:
            group = f"g{int(match['group']):02d}"
            by_label.setdefault(match["label"], []).append(Clip(member, match["label"], group))
    if not by_label:
        raise UserError(
            f"{ARCHIVE_NAME}: no entries like UCF50/<Class>/v_<Class>_gNN_cNN.avi; "
            "is download.ucf50.url the UCF50 archive?"
        )
    unknown = sorted(set(ucf.classes) - set(by_label))
    if unknown:
        raise UserError(
            f"download.ucf50.classes: unknown class(es) {', '.join(unknown)}; "
            f"available: {', '.join(sorted(by_label))}"
        )
    chosen: list[Clip] = []
    for label in sorted(ucf.classes or by_label):
        clips = sorted(by_label[label], key=lambda clip: clip.member)
        if ucf.clips_per_class and len(clips) > ucf.clips_per_class:
            picked = random.Random(f"{seed}:{label}").sample(clips, ucf.clips_per_class)
            clips = sorted(picked, key=lambda clip: clip.member)
        chosen.extend(clips)
    return chosen


def extract_missing(archive_path: Path, clips: list[Clip], out_dir: Path) -> int:
    """Extract the clips not yet in ``videos/``; returns how many were extracted."""
    videos = out_dir / VIDEO_DIR
    todo = [clip.member for clip in clips if not (videos / clip.member).exists()]
    if not todo:
        return 0
    scratch = out_dir / SCRATCH_DIR
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        for path, member in zip(archive.extract(archive_path, todo, scratch), todo, strict=True):
            target = videos / member
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return len(todo)


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Download (or resume) UCF50, extract the selected clips and describe them."""
    ucf = params.ucf50
    out_dir = Path(out_dir)
    caption_for("Check", ucf.caption_template)  # a bad template fails before 3 GiB
    archive_path = download_archive(ucf)
    clips = select_clips(archive.list_members(archive_path), ucf, params.seed)
    extracted = extract_missing(archive_path, clips, out_dir)
    group_split = assign_splits(sorted({clip.group for clip in clips}), params.split, params.seed)
    rows = [
        ManifestRow(
            clip_id=clip.clip_id,
            source=SOURCE,
            caption=caption_for(clip.label, ucf.caption_template),
            label=clip.label,
            split=group_split[clip.group],
            path=f"{VIDEO_DIR}/{clip.member}",
            url=ucf.url,
            status=OK,
        )
        for clip in clips
    ]
    labels = sorted({clip.label for clip in clips})
    by_split = {
        name: sorted(g for g, s in group_split.items() if s == name) for name in ("val", "test")
    }
    metrics = {
        "classes": float(len(labels)),
        "groups": float(len(group_split)),
        "extracted": float(extracted),
        "reused_extracted": float(len(clips) - extracted),
    }
    note = (
        f"{len(clips)} clips of {len(labels)} classes; held-out groups: "
        f"val {' '.join(by_split['val']) or 'none'}, test {' '.join(by_split['test']) or 'none'}"
    )
    return SourceResult(rows, metrics=metrics, notes=[note])
