"""The ``tgif`` source: a seeded sample of animated GIFs from the TGIF release.

The release is a TSV of ``URL<TAB>sentence`` lines (several sentences for some GIFs) and
three split files listing GIF URLs, one per line. Choices made here:

- One manifest row per GIF, captioned with its **first** sentence in the TSV: every later
  stage works per clip, and the manifest has one caption column.
- Split: the official split file that lists the GIF. A GIF listed in none (or every GIF,
  when ``download.tgif.split_urls`` is empty) gets a seeded split from ``download.split``
  through ``splits.assign_splits``, so nothing is silently dropped.
- Sample: all GIFs in an order shuffled by ``download.seed``, fetched concurrently in
  batches of the number of good clips still missing, until ``limit`` good clips are in
  or the sample is exhausted; ``notes`` and the ``sample_exhausted`` metric say which.
  Rows are kept in sample order, so the same network answers give the same manifest.

Most old TGIF links no longer serve the GIF: each body is checked to be a real GIF
(``not_a_gif``, e.g. an HTML error page), animated (``not_animated``: a still image),
with at least ``min_frames`` frames (``too_few_frames``), a shorter side of at least
``min_side`` (``too_small``) and some motion (``static``: every frame equals the first).
A GIF longer than ``max_frames`` is re-encoded to its first ``max_frames`` frames, since
frame selection reads whole clips. Every failure is a row ``failed:<reason>``.

Resume: a GIF lands in ``videos/<clip_id>.gif`` only after it passed the checks (it is
downloaded to a scratch folder first), so a file there is verified; a rerun re-checks it
locally against the current params instead of fetching it again. The index files are
kept in the download cache (``nextframe.cache``).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from nextframe.config import DownloadParams, TgifParams
from nextframe.data.http import FetchJob, fetch_many, fetch_text, is_http_url
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult, failed
from nextframe.data.splits import assign_splits
from nextframe.data.video import Video, VideoReadError, read_video, write_video
from nextframe.errors import UserError

SOURCE = "tgif"
SCRATCH_DIR = ".tgif_downloads"
GIF_MAGIC = (b"GIF87a", b"GIF89a")


def clip_id_for(url: str) -> str:
    """Stable and filesystem-safe: GIF names repeat across hosts, URLs do not."""
    return "tgif-" + hashlib.sha1(url.encode()).hexdigest()[:12]


def parse_tsv(text: str) -> dict[str, str]:
    """GIF URL -> its first sentence, in file order; lines without a tab are skipped."""
    captions: dict[str, str] = {}
    for line in text.splitlines():
        url, tab, sentence = line.strip().partition("\t")
        if tab and url and sentence.strip():
            captions.setdefault(url, sentence.strip())
    return captions


def parse_split_files(texts: dict[str, str]) -> dict[str, str]:
    """GIF URL -> official split, from each split file's one-URL-per-line text."""
    return {
        line.strip(): split
        for split, text in texts.items()
        for line in text.splitlines()
        if line.strip()
    }


def sample_order(urls: list[str], seed: int) -> list[str]:
    """All URLs, sorted then shuffled by ``seed``: independent of the TSV's line order."""
    order = sorted(urls)
    random.Random(seed).shuffle(order)
    return order


def check_gif(path: Path, tgif: TgifParams) -> tuple[str | None, Video | None]:
    """``(failure reason, None)`` or ``(None, first max_frames + 1 frames)``."""
    with path.open("rb") as handle:
        magic = handle.read(6)
    if magic not in GIF_MAGIC:
        return _not_a_gif_reason(path), None
    try:
        video = read_video(path, max_frames=tgif.max_frames + 1)
    except VideoReadError:
        return "undecodable", None
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
    """A still image served in place of the GIF is ``not_animated``; anything else is not."""
    try:
        with Image.open(path) as image:
            return "not_animated" if getattr(image, "n_frames", 1) <= 1 else "not_a_gif"
    except Exception:  # Pillow raises many types for non-images; all mean "not an image"
        return "not_a_gif"


def install_gif(downloaded: Path, final: Path, tgif: TgifParams) -> str | None:
    """Check ``downloaded`` and put it at ``final`` (truncated to ``max_frames``).

    Returns the failure reason, or None once ``final`` holds a verified GIF. A failed file
    is removed, so ``final`` never holds an unverified GIF.
    """
    reason, video = check_gif(downloaded, tgif)
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


def _fetch_batch(
    urls: list[str], tgif: TgifParams, out_dir: Path, reused: list[str]
) -> dict[str, tuple[str, str]]:
    """URL -> (status, manifest path) for one batch; verified files are only re-checked."""
    outcomes: dict[str, tuple[str, str]] = {}
    jobs = []
    for url in urls:
        relative = f"{VIDEO_DIR}/{clip_id_for(url)}.gif"
        final = out_dir / relative
        if not is_http_url(url):
            outcomes[url] = (failed("bad_url"), "")
        elif final.exists():
            reused.append(url)
            reason = install_gif(final, final, tgif)
            outcomes[url] = (OK, relative) if reason is None else (failed(reason), "")
        else:
            jobs.append(FetchJob(url, out_dir / SCRATCH_DIR / f"{clip_id_for(url)}.gif"))
    for result in fetch_many(jobs, tgif.http, progress=SOURCE):
        relative = f"{VIDEO_DIR}/{clip_id_for(result.url)}.gif"
        reason = install_gif(result.dest, out_dir / relative, tgif) if result.ok else result.reason
        outcomes[result.url] = (OK, relative) if reason is None else (failed(reason), "")
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
    """Fetch and verify up to ``download.tgif.limit`` GIFs into ``out_dir/videos``."""
    tgif = params.tgif
    out_dir = Path(out_dir)
    captions = parse_tsv(fetch_text(tgif.tsv_url, tgif.http, "download.tgif.tsv_url"))
    if not captions:
        raise UserError(f"download.tgif.tsv_url {tgif.tsv_url}: no 'URL<TAB>sentence' lines")
    official = parse_split_files(
        {
            split: fetch_text(url, tgif.http, f"download.tgif.split_urls.{split}")
            for split, url in tgif.split_urls.items()
        }
    )
    order = sample_order(list(captions), params.seed)

    outcomes: dict[str, tuple[str, str]] = {}
    reused: list[str] = []
    good, position = 0, 0
    while good < tgif.limit and position < len(order):
        batch = order[position : position + tgif.limit - good]
        position += len(batch)
        batch_outcomes = _fetch_batch(batch, tgif, out_dir, reused)
        outcomes.update({url: batch_outcomes[url] for url in batch})  # keep sample order
        good += sum(status == OK for status, _ in batch_outcomes.values())
    shutil.rmtree(out_dir / SCRATCH_DIR, ignore_errors=True)

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
        "unsplit": float(sum(url not in official for url in outcomes)),
        "sample_exhausted": float(exhausted),
    }
    return SourceResult(rows, metrics=metrics, notes=[note])
