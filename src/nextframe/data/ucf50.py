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

Hostile archives (``archive.py`` holds the rules): a chosen entry that is not a regular
file, or whose name is listed twice, becomes a row ``failed:<kind>`` (``fifo``,
``symlink``, ``hardlink``, ``char_device``, ``block_device``, ``duplicate_entry``) and
is never written; extraction is bounded by ``max_file_bytes`` and ``max_total_bytes``.
With ``expected_sha256`` the archive is hashed once after download (the verified digest
is remembered beside it) and a mismatch deletes it.

Resume: members are extracted to a scratch folder and moved into ``videos/`` only when
the extraction finished, so a regular file present there is complete (the right size by
construction) and is not extracted again; anything else found at a clip's path (a FIFO
or link left by an older version) is removed.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from nextframe.cache import download_path
from nextframe.config import DownloadParams, Ucf50Params
from nextframe.data import archive
from nextframe.data.http import fetch, part_path
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult, failed
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
            advice = f"rerun to resume from the {kept} bytes in {part}"
            if result.reason == "resume_mismatch":
                advice = (
                    "the file changed on the server while resuming, twice (the server or a "
                    "proxy ignores If-Range); rerun to download it from zero, or use a mirror"
                )
            raise UserError(
                f"download.ucf50.url {ucf.url}: download failed ({result.reason}) after "
                f"{result.attempts} attempt(s); {advice}"
            )
    size = path.stat().st_size
    if ucf.expected_bytes and size != ucf.expected_bytes:
        raise UserError(
            f"{path} has {size} bytes but download.ucf50.expected_bytes is "
            f"{ucf.expected_bytes}; delete the file to download it again, or fix the param"
        )
    if ucf.expected_sha256:
        check_sha256(path, ucf.expected_sha256)
    return path


def digest_path(path: Path) -> Path:
    """Where the verified sha256 of ``path`` is remembered, so 3 GiB is hashed once."""
    return path.with_name(path.name + ".sha256")


def check_sha256(path: Path, expected: str) -> None:
    """Raise (and delete ``path``) unless its sha256 is ``expected``."""
    remembered = digest_path(path)
    if (
        remembered.exists()
        and remembered.stat().st_mtime >= path.stat().st_mtime
        and remembered.read_text(encoding="utf-8").strip() == expected
    ):
        return
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    found = digest.hexdigest()
    if found != expected:
        path.unlink()
        remembered.unlink(missing_ok=True)
        raise UserError(
            f"download.ucf50.expected_sha256: the archive from download.ucf50.url has sha256 "
            f"{found}, expected {expected}; it was deleted, so the next run downloads it again. "
            "If the server's file changed on purpose, update the param"
        )
    remembered.write_text(found, encoding="utf-8")


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


def budget(ucf: Ucf50Params) -> archive.Budget:
    return archive.Budget(
        ucf.max_file_bytes,
        ucf.max_total_bytes,
        file_key="download.ucf50.max_file_bytes",
        total_key="download.ucf50.max_total_bytes",
    )


def _clear(path: Path) -> None:
    """Remove what an older run may have left at a clip's path (a file, a FIFO, a link)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()


def _is_regular_file(path: Path) -> bool:
    """True for a regular file itself, not a link to one (nor a FIFO, a device, ...)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def extract_missing(
    archive_path: Path, clips: list[Clip], out_dir: Path, limits: archive.Budget
) -> int:
    """Extract the clips not yet in ``videos/``; returns how many were extracted."""
    videos = out_dir / VIDEO_DIR
    todo = [clip.member for clip in clips if not _is_regular_file(videos / clip.member)]
    if not todo:
        return 0
    for member in todo:
        _clear(videos / member)
    scratch = out_dir / SCRATCH_DIR
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        extracted = archive.extract(archive_path, todo, scratch, limits)
        for path, member in zip(extracted, todo, strict=True):
            target = videos / member
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    except archive.BudgetExceeded as exc:
        raise UserError(
            f"{archive_path}: stopped extracting: {exc}; removed what was partly written. "
            "Raise the param if the archive is the genuine UCF50"
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return len(todo)


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Download (or resume) UCF50, extract the selected clips and describe them."""
    ucf = params.ucf50
    out_dir = Path(out_dir)
    caption_for("Check", ucf.caption_template)  # a bad template fails before 3 GiB
    archive_path = download_archive(ucf)
    try:
        entries = archive.list_entries(archive_path)
    except UserError as exc:
        raise UserError(f"download.ucf50.url {ucf.url}: {exc}") from None
    clips = select_clips(list(dict.fromkeys(entry.name for entry in entries)), ucf, params.seed)
    refused = archive.refusals(entries)
    for clip in clips:
        if clip.member in refused:
            _clear(out_dir / VIDEO_DIR / clip.member)
    good = [clip for clip in clips if clip.member not in refused]
    extracted = extract_missing(archive_path, good, out_dir, budget(ucf))
    group_split = assign_splits(sorted({clip.group for clip in clips}), params.split, params.seed)
    rows = [
        ManifestRow(
            clip_id=clip.clip_id,
            source=SOURCE,
            caption=caption_for(clip.label, ucf.caption_template),
            label=clip.label,
            split=group_split[clip.group],
            path="" if clip.member in refused else f"{VIDEO_DIR}/{clip.member}",
            url=ucf.url,
            status=failed(refused[clip.member]) if clip.member in refused else OK,
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
        "reused_extracted": float(len(good) - extracted),
    }
    note = (
        f"{len(clips)} clips of {len(labels)} classes; held-out groups: "
        f"val {' '.join(by_split['val']) or 'none'}, test {' '.join(by_split['test']) or 'none'}"
    )
    return SourceResult(rows, metrics=metrics, notes=[note])
