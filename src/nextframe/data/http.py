"""Downloading files over HTTP(S) without trusting the network.

Remote datasets rot: links time out, servers return 5xx for a while, error pages arrive
with status 200, and a 3 GiB archive is rarely fetched in one go. So every request has a
timeout, transient failures (5xx, 408, 429, timeouts, dropped connections, short bodies)
are retried with exponential backoff, permanent ones (other 4xx) are not, a size cap stops
runaway bodies, and a body is streamed to ``<dest>.part`` and renamed only once complete,
so ``dest`` existing means the whole body arrived. With ``resume=True`` an interrupted
``.part`` file is continued with an HTTP Range request instead of starting over.

Failures are returned, not raised, with a short stable ``reason`` (``http_404``,
``too_large``, ``truncated``, ``timeout``, ``connection``) that sources write into the
manifest as ``failed:<reason>``. Only a URL that is not http(s) raises: that is a params
mistake, not a network event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
import urllib3
from tqdm import tqdm

from nextframe.cache import download_path
from nextframe.config import HttpParams
from nextframe.errors import UserError

CHUNK_BYTES = 1 << 16
RETRYABLE_4XX = {408, 429}  # "request timeout" and "too many requests" are transient
TEXT_MAX_BYTES = 256 << 20  # index files (the TGIF TSV is ~15 MB) are not held to the clip cap
# identity: Content-Length and Range offsets must count the bytes we store, not gzip bytes
REQUEST_HEADERS = {"Accept-Encoding": "identity", "User-Agent": "nextframe-downloader"}


@dataclass(frozen=True)
class FetchJob:
    url: str
    dest: Path


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one download; ``reason`` is empty when ``ok``."""

    url: str
    dest: Path
    ok: bool
    reason: str = ""
    bytes: int = 0
    attempts: int = 0


class _Failure(Exception):
    """One failed attempt; ``retry`` says whether another attempt could succeed."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def is_http_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def check_url(url: str) -> None:
    """Refuse anything but http(s): file:// or ftp:// in params is a mistake, not data."""
    if not is_http_url(url):
        raise UserError(f"expected an http:// or https:// URL, got {url!r}")


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def fetch(url: str, dest: Path, http: HttpParams, *, resume: bool = False) -> FetchResult:
    """Download ``url`` to ``dest`` with retries; never leaves a partial ``dest``.

    Without ``resume`` every attempt starts from zero and a failed download leaves no
    ``.part`` file behind; with it, bytes already in ``.part`` are kept for the next
    attempt or the next run.
    """
    check_url(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    if not resume:
        part.unlink(missing_ok=True)
    failure = _Failure("not_attempted", retry=False)
    attempts = 0
    for attempt in range(http.retries + 1):
        if attempt:
            time.sleep(http.backoff_s * 2 ** (attempt - 1))
        attempts += 1
        try:
            size = _attempt(url, part, http, resume=resume)
        except _Failure as exc:
            failure = exc
            if not resume:
                part.unlink(missing_ok=True)
            if not exc.retry:
                break
            continue
        os.replace(part, dest)
        return FetchResult(url, dest, ok=True, bytes=size, attempts=attempts)
    return FetchResult(url, dest, ok=False, reason=failure.reason, attempts=attempts)


def _attempt(url: str, part: Path, http: HttpParams, *, resume: bool) -> int:
    """One request into ``part``; returns the complete size or raises ``_Failure``."""
    offset = part.stat().st_size if resume and part.exists() else 0
    headers = dict(REQUEST_HEADERS)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with requests.get(url, headers=headers, stream=True, timeout=http.timeout_s) as response:
            return _receive(response, part, offset, http.max_bytes)
    except (requests.Timeout, urllib3.exceptions.ReadTimeoutError):
        raise _Failure("timeout", retry=True) from None
    except (requests.ConnectionError, urllib3.exceptions.HTTPError):
        # refused, reset, or a protocol error in the middle of the body
        raise _Failure("connection", retry=True) from None


def _receive(response: requests.Response, part: Path, offset: int, max_bytes: int) -> int:
    status = response.status_code
    if status == 416 and offset:
        # the range starts at or past the end: the .part is stale; start over next attempt
        part.unlink(missing_ok=True)
        raise _Failure("http_416", retry=True)
    if status >= 500 or status in RETRYABLE_4XX:
        raise _Failure(f"http_{status}", retry=True)
    if status >= 400:
        raise _Failure(f"http_{status}", retry=False)
    if status == 206 and not _range_starts_at(response, offset):
        part.unlink(missing_ok=True)
        raise _Failure("bad_range", retry=True)
    if status != 206:
        offset = 0  # the server ignored the Range header and sent the whole body
    length_header = response.headers.get("Content-Length")
    expected = offset + int(length_header) if length_header and length_header.isdigit() else None
    if expected is not None and expected > max_bytes:
        raise _Failure("too_large", retry=False)
    written = offset
    # read raw bytes and check the length ourselves, so a cut-short body keeps what arrived
    response.raw.enforce_content_length = False
    with part.open("ab" if offset else "wb") as handle:
        while chunk := response.raw.read(CHUNK_BYTES, decode_content=False):
            written += len(chunk)
            if written > max_bytes:
                raise _Failure("too_large", retry=False)
            handle.write(chunk)
    if expected is not None and written < expected:
        raise _Failure("truncated", retry=True)
    return written


def _range_starts_at(response: requests.Response, offset: int) -> bool:
    """``Content-Range: bytes <offset>-<end>/<total>`` must continue exactly where we are."""
    content_range = response.headers.get("Content-Range", "")
    unit, _, spec = content_range.partition(" ")
    start = spec.split("-", 1)[0]
    return unit == "bytes" and start.isdigit() and int(start) == offset


def fetch_many(
    jobs: Iterable[FetchJob], http: HttpParams, progress: str | None = None
) -> Iterator[FetchResult]:
    """Fetch ``jobs`` on ``http.workers`` threads, yielding results as they complete.

    ``progress`` labels a tqdm bar; None shows none. Closing the generator early cancels
    the jobs not yet started.
    """
    jobs = list(jobs)
    executor = ThreadPoolExecutor(max_workers=http.workers)
    try:
        futures = [executor.submit(fetch, job.url, job.dest, http) for job in jobs]
        with tqdm(total=len(futures), desc=progress, disable=progress is None) as bar:
            for future in as_completed(futures):
                bar.update(1)
                yield future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def fetch_text(url: str, http: HttpParams) -> str:
    """A small index file (TSV, split list) as text, kept in the download cache for reruns.

    A failure raises: without its index a source cannot do anything useful.
    """
    check_url(url)
    cached = download_path(url)
    if not cached.exists():
        text_http = http.model_copy(update={"max_bytes": max(http.max_bytes, TEXT_MAX_BYTES)})
        result = fetch(url, cached, text_http)
        if not result.ok:
            raise UserError(
                f"could not download {url}: {result.reason} after {result.attempts} attempt(s); "
                "check the URL in params.yaml and your network, then rerun"
            )
    return cached.read_text(encoding="utf-8", errors="replace")
