"""The ``ucf101`` source: UCF-101 (Soomro et al. 2012) from the files a user has.

The layout of the official release, unpacked:

- ``download.ucf101.root``: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` (101 classes, 25
  groups ``gXX`` of one actor and setting each).
- ``download.ucf101.lists``: ``ucfTrainTestlist/`` with ``classInd.txt`` (``1
  ApplyEyeMakeup`` per line) and ``testlist0N.txt`` (``ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi``
  per line), N = ``download.ucf101.fold``.

Splits: the fold's test list is the test split (the official split: whole groups, g01..g07
in fold 1); every other clip of a listed class trains, except the groups that
``splits.assign_splits`` (``download.split.val``, test fraction 0) holds out for
validation, so no actor is in two splits. Paths are matched without regard to case: the
release's lists spell ``HandstandPushups`` where its files say ``HandStandPushups``.

Captions: ``download.ucf101.caption_template`` with the class name split at its capitals
and lower-cased (``ApplyEyeMakeup``: "a person doing apply eye makeup", the ``ucf50``
source's rule). The template is ours: text-to-video papers prompt UCF-101 in different
ways (the bare class name, or hand-written sentences per class), so a number from another
paper is comparable only with its own prompts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nextframe.config import DownloadParams, SplitFractions, Ucf101Params
from nextframe.data.folder import place, probe
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult, failed
from nextframe.data.splits import assign_splits
from nextframe.data.ucf50 import caption_for
from nextframe.errors import UserError

SOURCE = "ucf101"
CLIP = re.compile(r"^v_(?P<label>[^_/]+)_g(?P<group>\d+)_c(?P<clip>\d+)\.avi$", re.IGNORECASE)


@dataclass(frozen=True)
class Clip:
    relative: str  # <Class>/v_<Class>_gXX_cYY.avi as on disk
    label: str  # the class as classInd.txt spells it
    group: str  # gXX

    @property
    def clip_id(self) -> str:
        return Path(self.relative).stem


def read_classes(lists: Path) -> list[str]:
    """Class names of ``classInd.txt``, in its order."""
    path = lists / "classInd.txt"
    if not path.is_file():
        raise UserError(
            f"download.ucf101.lists: {path} not found (the ucfTrainTestlist folder of UCF-101)"
        )
    classes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise UserError(f"{path} line {number}: expected '<index> <Class>', found {line!r}")
        classes.append(parts[1])
    return classes


def read_test_list(lists: Path, fold: int) -> dict[str, str]:
    """The ``<Class>/<file>.avi`` paths of ``testlist0<fold>.txt``, by their lower case."""
    path = lists / f"testlist0{fold}.txt"
    if not path.is_file():
        raise UserError(f"download.ucf101.fold: {path} not found (fold {fold}'s test list)")
    lines = path.read_text(encoding="utf-8").splitlines()
    paths = [line.split()[0].replace("\\", "/") for line in lines if line.strip()]
    return {path.lower(): path for path in paths}


def find_clips(root: Path, classes: list[str]) -> list[Clip]:
    """The ``<Class>/v_<Class>_gXX_cYY.avi`` files under ``root`` of the given classes,
    sorted by path."""
    by_lower = {name.lower(): name for name in classes}
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = by_lower.get(folder.name.lower())
        if label is None:
            continue
        for file in sorted(folder.iterdir()):
            match = CLIP.match(file.name)
            if match and match["label"].lower() == folder.name.lower() and file.is_file():
                group = f"g{int(match['group']):02d}"
                clips.append(Clip(f"{folder.name}/{file.name}", label, group))
    return clips


def chosen_classes(settings: Ucf101Params) -> list[str]:
    classes = read_classes(Path(settings.lists))
    unknown = sorted(set(settings.classes) - set(classes))
    if unknown:
        raise UserError(
            f"download.ucf101.classes: unknown class(es) {', '.join(unknown)}; classInd.txt "
            f"lists {', '.join(classes[:5])}, ..."
        )
    return settings.classes or classes


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Probe and place the chosen clips under ``out_dir/videos``, return the rows."""
    settings = params.ucf101
    root = Path(settings.root)
    if not root.is_dir():
        raise UserError(f"download.ucf101.root: {root} is not a folder (UCF-101/<Class>/*.avi)")
    caption_for("Check", settings.caption_template)  # a bad template fails first
    classes = chosen_classes(settings)
    test = read_test_list(Path(settings.lists), settings.fold)
    clips = find_clips(root, classes)
    if not clips:
        raise UserError(
            f"download.ucf101.root: no <Class>/v_<Class>_gXX_cYY.avi files of the chosen "
            f"classes under {root}"
        )
    train_groups = sorted({c.group for c in clips if c.relative.lower() not in test})
    held_out = SplitFractions(val=params.split.val, test=0.0)
    group_split = assign_splits(train_groups, held_out, params.seed)
    kept: dict[tuple[str, str], int] = {}
    rows = []
    for clip in clips:
        split = "test" if clip.relative.lower() in test else group_split[clip.group]
        count = kept.get((clip.label, split), 0)
        if settings.clips_per_class and count >= settings.clips_per_class:
            continue
        kept[(clip.label, split)] = count + 1
        source = root / clip.relative
        reason = probe(source, settings.min_frames, params.max_pixels)
        path = "" if reason else f"{VIDEO_DIR}/{SOURCE}/{clip.relative}"
        if path:
            place(source, out_dir / path)
        rows.append(
            ManifestRow(
                clip_id=clip.clip_id,
                source=SOURCE,
                caption=caption_for(clip.label, settings.caption_template),
                label=clip.label,
                split=split,
                path=path,
                url=str(source),
                status=failed(reason) if reason else OK,
            )
        )
    found = {clip.relative.lower() for clip in clips}
    names = {name.lower(): name for name in classes}
    for lower in sorted(set(test) - found):
        relative = test[lower]
        label = names.get(lower.split("/")[0])
        if label is not None:  # a listed test clip of a chosen class that is not on disk
            rows.append(
                ManifestRow(
                    clip_id=Path(relative).stem,
                    source=SOURCE,
                    caption=caption_for(label, settings.caption_template),
                    label=label,
                    split="test",
                    path="",
                    url=str(root / relative),
                    status=failed("missing"),
                )
            )
    return SourceResult(rows, metrics={"classes": float(len(classes))})
