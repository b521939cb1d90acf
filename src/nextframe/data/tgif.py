"""The ``tgif`` source: a seeded sample of animated GIFs from the TGIF release.

The release is a TSV of ``URL<TAB>sentence`` lines (several sentences for some GIFs) and
three split files listing GIF URLs, one per line. Choices made here:

- One manifest row per GIF, captioned with its **first** sentence in the TSV: every later
  stage works per clip, and the manifest has one caption column. Lines that are not
  ``URL<TAB>sentence`` are skipped and counted (``tsv_lines_skipped``); a UTF-8 byte-order
  mark is not part of the first URL.
- Split: the official split file that lists the GIF. A GIF listed in several takes the
  most held-out one (test, then val, then train), so no official evaluation GIF is trained
  on; such GIFs are counted (``split_conflicts``) and noted. A GIF listed in none (or every
  GIF, when ``download.tgif.split_urls`` is empty) gets a seeded split from
  ``download.split`` through ``splits.assign_splits``, so nothing is silently dropped.
- Sample: all GIFs in an order shuffled by ``download.seed``, fetched concurrently in
  batches of the number of good clips still missing, until ``limit`` good clips are in
  or the sample is exhausted; ``notes`` and the ``sample_exhausted`` metric say which.
  Rows are kept in sample order, so the same network answers give the same manifest.

Most old TGIF links no longer serve the GIF: each body is checked to be a real GIF
(``not_a_gif``, e.g. an HTML error page; ``wrong_image_format``: a PNG or JPEG in its
place), animated (``not_animated``: a GIF of one frame), decodable within
``download.max_pixels`` (``too_many_pixels``: a few KB can declare a huge canvas and
many frames), with at least ``min_frames`` frames (``too_few_frames``), a shorter side of
at least ``min_side`` (``too_small``) and some motion (``static``: every frame equals the
first). A GIF longer than ``max_frames`` is re-encoded to its first ``max_frames`` frames,
since frame selection reads whole clips. Every failure is a row ``failed:<reason>``.

Permanent failures (a 404, too large, a bad redirect, any failed check) are remembered in
the download cache with the checking params they were found under, and not fetched again
while those params are unchanged, unless ``retry_failed`` is true; transient ones (a
timeout, a 5xx, a cut-short body) are tried again on every run.

Resume: a GIF lands in ``videos/<clip_id>.gif`` only after it passed the checks (it is
downloaded to a scratch folder first), so a file there is verified; a rerun re-checks it
locally against the current params instead of fetching it again. The index files are
kept in the download cache (``nextframe.cache``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nextframe.cache import cache_root
from nextframe.config import DownloadParams, TgifParams
from nextframe.data.http import FetchJob, FetchResult, fetch_many, fetch_text, is_http_url
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult, failed
from nextframe.data.splits import assign_splits
from nextframe.data.video import Video, VideoReadError, read_video, write_video
from nextframe.errors import UserError
from nextframe.store import atomic_path

SOURCE = "tgif"
SCRATCH_DIR = ".tgif_downloads"
GIF_MAGIC = (b"GIF87a", b"GIF89a")
HELD_OUT_FIRST = ("test", "val", "train")  # a GIF in several split files takes the first


@dataclass(frozen=True)
class Index:
    """The TSV's GIFs with their first sentence, and how many lines were skipped."""

    captions: dict[str, str]
    skipped_lines: int


def clip_id_for(url: str) -> str:
    """Stable and filesystem-safe: GIF names repeat across hosts, URLs do not."""
    return "tgif-" + hashlib.sha1(url.encode()).hexdigest()[:12]


def parse_tsv(text: str) -> Index:
    """GIF URL -> its first sentence, in file order; non-blank lines without a URL, a tab
    and a sentence are skipped and counted."""
    captions: dict[str, str] = {}
    skipped = 0
    for line in text.splitlines():
        url, tab, sentence = line.strip().partition("\t")
        if tab and url and sentence.strip():
            captions.setdefault(url, sentence.strip())
        elif line.strip():
            skipped += 1
    return Index(captions, skipped)


def parse_split_files(texts: dict[str, str]) -> tuple[dict[str, str], int]:
    """GIF URL -> official split, from each split file's one-URL-per-line text, and how
    many URLs were in more than one split (each keeps the first of ``HELD_OUT_FIRST``)."""
    listed: dict[str, set[str]] = {}
    for split, text in texts.items():
        for line in text.splitlines():
            if line.strip():
                listed.setdefault(line.strip(), set()).add(split)
    splits = {
        url: next(split for split in HELD_OUT_FIRST if split in names)
        for url, names in listed.items()
    }
    return splits, sum(len(names) > 1 for names in listed.values())


def sample_order(urls: list[str], seed: int) -> list[str]:
    """All URLs, sorted then shuffled by ``seed``: independent of the TSV's line order."""
    order = sorted(urls)
    random.Random(seed).shuffle(order)
    return order


def check_gif(path: Path, tgif: TgifParams, max_pixels: int) -> tuple[str | None, Video | None]:
    """``(failure reason, None)`` or ``(None, first max_frames + 1 frames)``."""
    with path.open("rb") as handle:
        magic = handle.read(6)
    if magic not in GIF_MAGIC:
        return _not_a_gif_reason(path), None
    try:
        video = read_video(path, max_frames=tgif.max_frames + 1, max_pixels=max_pixels)
    except VideoReadError as exc:
        return ("too_many_pixels" if exc.reason == "too_many_pixels" else "undecodable"), None
    frames = video.frames  # [N, H, W, 3]
    if video.n_frames < 2:
        return "not_animated", None
    if video.n_frames < tgif.min_frames:
        return "too_few_frames", None
    if min(frames.shape[1:3]) < tgif.min_side:
        return "too_small", None
    if np.all(frames == frames[:1]):
        return "static", None
    return None, video


def _not_a_gif_reason(path: Path) -> str:
    """Another image format (a PNG or JPEG placeholder) is ``wrong_image_format``; anything
    else (an HTML error page) is ``not_a_gif``. Only the header is read."""
    try:
        with Image.open(path):
            return "wrong_image_format"
    except Exception:  # Pillow raises many types for non-images; all mean "not an image"
        return "not_a_gif"


def install_gif(downloaded: Path, final: Path, tgif: TgifParams, max_pixels: int) -> str | None:
    """Check ``downloaded`` and put it at ``final`` (truncated to ``max_frames``).

    Returns the failure reason, or None once ``final`` holds a verified GIF. A failed file
    is removed, so ``final`` never holds an unverified GIF.
    """
    reason, video = check_gif(downloaded, tgif, max_pixels)
    if video is None:
        downloaded.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        return reason
    final.parent.mkdir(parents=True, exist_ok=True)
    if video.n_frames > tgif.max_frames:
        write_video(final, video.frames[: tgif.max_frames], video.fps)
        if downloaded != final:
            downloaded.unlink()
    elif downloaded != final:
        os.replace(downloaded, final)
    return None


class FailureMemory:
    """Permanent failures by URL, kept in the download cache between runs.

    Each is stored with a fingerprint of the params that decide it (size cap, frame and
    pixel bounds): under other params it may pass, so it is fetched again.
    """

    def __init__(self, params: DownloadParams) -> None:
        tgif = params.tgif
        self.path = cache_root() / "downloads" / "tgif-permanent-failures.json"
        self.fingerprint = json.dumps(
            [
                tgif.http.max_bytes,
                tgif.http.max_redirects,
                tgif.min_frames,
                tgif.max_frames,
                tgif.min_side,
                params.max_pixels,
            ]
        )
        self.failures: dict[str, list[str]] = {} if tgif.retry_failed else self._load()
        self.remembered: list[str] = []

    def _load(self) -> dict[str, list[str]]:
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):  # missing or damaged: it is only a cache
            return {}

    def recall(self, url: str) -> str | None:
        """The reason ``url`` failed for good under the current params, if it did."""
        reason, fingerprint = self.failures.get(url, ("", ""))
        if not reason or fingerprint != self.fingerprint:
            return None
        self.remembered.append(url)
        return reason

    def learn(self, url: str, reason: str) -> None:
        self.failures[url] = [reason, self.fingerprint]

    def forget(self, url: str) -> None:
        self.failures.pop(url, None)

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.failures), encoding="utf-8")


def _outcome(
    result: FetchResult, out_dir: Path, params: DownloadParams, memory: FailureMemory
) -> tuple[str, str]:
    """(status, manifest path) of one finished download, learning permanent failures."""
    relative = f"{VIDEO_DIR}/{clip_id_for(result.url)}.gif"
    if not result.ok:
        if not result.transient:
            memory.learn(result.url, result.reason)
        return failed(result.reason), ""
    reason = install_gif(result.dest, out_dir / relative, params.tgif, params.max_pixels)
    if reason is None:
        memory.forget(result.url)
        return OK, relative
    memory.learn(result.url, reason)
    return failed(reason), ""


def _fetch_batch(
    urls: list[str],
    params: DownloadParams,
    out_dir: Path,
    reused: list[str],
    memory: FailureMemory,
) -> dict[str, tuple[str, str]]:
    """URL -> (status, manifest path) for one batch; verified files are only re-checked,
    remembered permanent failures are not fetched."""
    tgif = params.tgif
    outcomes: dict[str, tuple[str, str]] = {}
    jobs = []
    for url in urls:
        relative = f"{VIDEO_DIR}/{clip_id_for(url)}.gif"
        final = out_dir / relative
        if not is_http_url(url):
            outcomes[url] = (failed("bad_url"), "")
        elif final.exists():
            reused.append(url)
            reason = install_gif(final, final, tgif, params.max_pixels)
            outcomes[url] = (OK, relative) if reason is None else (failed(reason), "")
        elif remembered := memory.recall(url):
            outcomes[url] = (failed(remembered), "")
        else:
            jobs.append(FetchJob(url, out_dir / SCRATCH_DIR / f"{clip_id_for(url)}.gif"))
    with closing(fetch_many(jobs, tgif.http, progress=SOURCE)) as results:
        for result in results:
            outcomes[result.url] = _outcome(result, out_dir, params, memory)
    return outcomes


def _splits(
    outcomes: dict[str, tuple[str, str]], official: dict[str, str], params: DownloadParams
) -> dict[str, str]:
    """URL -> split: the official one, else a seeded one; good and failed clips are split
    apart, so the non-empty guarantee for val and test is not spent on failures."""
    splits: dict[str, str] = {}
    for good in (True, False):
        unlisted = [
            url
            for url, (status, _) in outcomes.items()
            if url not in official and (status == OK) == good
        ]
        splits.update(assign_splits(unlisted, params.split, params.seed))
    splits.update({url: official[url] for url in outcomes if url in official})
    return splits


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Fetch and verify up to ``download.tgif.limit`` GIFs into ``out_dir/videos``.

    On KeyboardInterrupt the downloads in flight are abandoned, the scratch folder is
    removed, verified GIFs stay, and the interrupt propagates.
    """
    tgif = params.tgif
    out_dir = Path(out_dir)
    index = parse_tsv(fetch_text(tgif.tsv_url, tgif.http, "download.tgif.tsv_url"))
    captions = index.captions
    if not captions:
        raise UserError(
            f"download.tgif.tsv_url {tgif.tsv_url}: expected 'URL<TAB>sentence' lines, found "
            f"none ({index.skipped_lines} other lines); is it the TGIF release TSV?"
        )
    official, conflicts = parse_split_files(
        {
            split: fetch_text(url, tgif.http, f"download.tgif.split_urls.{split}")
            for split, url in tgif.split_urls.items()
        }
    )
    order = sample_order(list(captions), params.seed)

    outcomes: dict[str, tuple[str, str]] = {}
    reused: list[str] = []
    memory = FailureMemory(params)
    good, position = 0, 0
    try:
        while good < tgif.limit and position < len(order):
            batch = order[position : position + tgif.limit - good]
            position += len(batch)
            batch_outcomes = _fetch_batch(batch, params, out_dir, reused, memory)
            outcomes.update({url: batch_outcomes[url] for url in batch})  # keep sample order
            good += sum(status == OK for status, _ in batch_outcomes.values())
    finally:
        shutil.rmtree(out_dir / SCRATCH_DIR, ignore_errors=True)
        memory.save()

    splits = _splits(outcomes, official, params)
    rows = [
        ManifestRow(
            clip_id=clip_id_for(url),
            source=SOURCE,
            caption=captions[url],
            label="",
            split=splits[url],
            path=path,
            url=url,
            status=status,
        )
        for url, (status, path) in outcomes.items()
    ]
    exhausted = good < tgif.limit
    if exhausted:
        note = (
            f"sample exhausted: only {good} good GIFs among all {len(order)} "
            f"(download.tgif.limit is {tgif.limit})"
        )
    else:
        note = f"limit reached: {good} good GIFs after trying {position} of {len(order)}"
    metrics = {
        "candidates": float(len(order)),
        "attempted": float(position),
        "reused_verified": float(len(reused)),
        "remembered_failures": float(len(memory.remembered)),
        "unsplit": float(sum(url not in official for url in outcomes)),
        "split_conflicts": float(conflicts),
        "tsv_lines_skipped": float(index.skipped_lines),
        "sample_exhausted": float(exhausted),
    }
    return SourceResult(rows, metrics=metrics, notes=[note, *_notes(index, conflicts, memory)])


def _notes(index: Index, conflicts: int, memory: FailureMemory) -> list[str]:
    """What the user should know beyond the counts: skipped lines, split conflicts, memory."""
    notes = []
    if index.skipped_lines:
        notes.append(f"{index.skipped_lines} TSV line(s) skipped (not URL<TAB>sentence)")
    if conflicts:
        notes.append(
            f"{conflicts} GIF(s) listed in several split files; each kept in the most "
            "held-out one (test, then val, then train)"
        )
    if memory.remembered:
        notes.append(
            f"{len(memory.remembered)} known permanent failure(s) not fetched again "
            "(set download.tgif.retry_failed: true to retry them)"
        )
    return notes
