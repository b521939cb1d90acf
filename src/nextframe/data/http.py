"""Downloading files over HTTP(S) without trusting the network.

Remote datasets rot: links time out, servers return 5xx for a while, error pages arrive
with status 200, and a 3 GiB archive is rarely fetched in one go. So every request has a
timeout, transient failures (5xx, 408, 429, timeouts, dropped connections, short bodies)
are retried with exponential backoff, permanent ones (other 4xx, bad redirects, a body
over the size cap) are not, and a body is streamed to ``<dest>.part`` and renamed only once
complete, so ``dest`` existing means the whole body arrived.

Redirects are followed here, hop by hop, at most ``max_redirects`` times and only to
http(s): a ``Location`` pointing at ``file://`` or ``ftp://`` is a hostile or broken
server, not a reason to read the local disk. A gzip or deflate body (sent although we ask
for ``identity``) is decoded as it streams, the size cap counting decoded bytes.

With ``resume=True`` an interrupted ``.part`` is continued with a Range request guarded by
``If-Range`` (the ETag or Last-Modified of the response that started it, kept beside the
``.part``): if the file changed on the server, the server answers with the whole new body
and the download restarts from zero instead of splicing two versions together. A ``.part``
without a validator is not resumed.

Failures are returned, not raised, with a short stable ``reason`` (``http_404``,
``too_large``, ``truncated``, ``timeout``, ``connection``, ``redirect_not_http``,
``too_many_redirects``, ...) that sources write into the manifest as ``failed:<reason>``,
and ``transient`` saying whether a later run could succeed. Only a URL that is not http(s)
raises: that is a params mistake, not a network event.

Ctrl-C: ``fetch_many`` runs its downloads on daemon threads that check a shared stop event
between chunks and during backoff; on KeyboardInterrupt (or when the consumer stops early)
it sets the event, gives the workers a moment to remove their ``.part`` files, removes
those of workers still blocked in a socket read, and lets the interrupt propagate. The
threads are daemons because a ``ThreadPoolExecutor`` joins its workers at interpreter exit,
which held Ctrl-C for as long as a stalled read's timeout.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlparse

import requests
import urllib3

from nextframe.cache import download_path
from nextframe.config import HttpParams
from nextframe.errors import UserError
from nextframe.progress import progress_bar

CHUNK_BYTES = 1 << 16
RETRYABLE_4XX = {408, 429}  # "request timeout" and "too many requests" are transient
TEXT_MAX_BYTES = 256 << 20  # index files (the TGIF TSV is ~15 MB) are not held to the clip cap
# identity: Content-Length and Range offsets must count the bytes we store, not gzip bytes
REQUEST_HEADERS = {"Accept-Encoding": "identity", "User-Agent": "nextframe-downloader"}
DECODED_ENCODINGS = {"gzip", "x-gzip", "deflate"}  # what urllib3 decodes without extras
CANCEL_GRACE_S = 0.2  # how long cancelled workers get to remove their own .part files


@dataclass(frozen=True)
class FetchJob:
    url: str
    dest: Path


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one download; ``reason`` is empty when ``ok``.

    ``transient`` marks a failure worth trying again on a later run (a timeout, a 5xx);
    a permanent one (404, too large, a redirect to ``file://``) is not.
    """

    url: str
    dest: Path
    ok: bool
    reason: str = ""
    bytes: int = 0
    attempts: int = 0
    transient: bool = False


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


def validator_path(dest: Path) -> Path:
    """Where the ETag / Last-Modified of a resumable ``.part`` is kept."""
    return dest.with_name(dest.name + ".part.validator")


def fetch(
    url: str,
    dest: Path,
    http: HttpParams,
    *,
    resume: bool = False,
    stop: threading.Event | None = None,
) -> FetchResult:
    """Download ``url`` to ``dest`` with retries; never leaves a partial ``dest``.

    Without ``resume`` every attempt starts from zero and a failed download leaves no
    ``.part`` file behind; with it, bytes already in ``.part`` are kept for the next
    attempt or the next run. Setting ``stop`` abandons the download (``cancelled``).
    """
    check_url(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    if not resume:
        _discard_part(dest)
    failure = _Failure("not_attempted", retry=False)
    attempts = 0
    for attempt in range(http.retries + 1):
        if attempt and stop.wait(http.backoff_s * 2 ** (attempt - 1)):
            failure = _Failure("cancelled", retry=True)
            break
        attempts += 1
        try:
            size = _attempt(url, dest, http, resume=resume, stop=stop)
        except _Failure as exc:
            failure = exc
            if not resume:
                _discard_part(dest)
            if not exc.retry or failure.reason == "cancelled":
                break
            continue
        os.replace(part_path(dest), dest)
        validator_path(dest).unlink(missing_ok=True)
        return FetchResult(url, dest, ok=True, bytes=size, attempts=attempts)
    return FetchResult(
        url, dest, ok=False, reason=failure.reason, attempts=attempts, transient=failure.retry
    )


def _discard_part(dest: Path) -> None:
    part_path(dest).unlink(missing_ok=True)
    validator_path(dest).unlink(missing_ok=True)


def _attempt(url: str, dest: Path, http: HttpParams, *, resume: bool, stop: threading.Event) -> int:
    """One request into ``dest.part``; returns the complete size or raises ``_Failure``."""
    headers = dict(REQUEST_HEADERS)
    offset = _resume_offset(dest) if resume else 0
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validator_path(dest).read_text(encoding="utf-8")
    try:
        with _open(url, headers, http) as response:
            return _receive(response, dest, offset, http.max_bytes, resume=resume, stop=stop)
    except (requests.Timeout, urllib3.exceptions.ReadTimeoutError):
        raise _Failure("timeout", retry=True) from None
    except (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError):
        raise _Failure("bad_encoding", retry=False) from None
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.InvalidHeader,
        urllib3.exceptions.LocationValueError,
    ):
        # a Location or a header that cannot be used as given
        raise _Failure("bad_response", retry=False) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError):
        # refused, reset, or a protocol error in the middle of the body
        raise _Failure("connection", retry=True) from None


def _resume_offset(dest: Path) -> int:
    """Bytes to resume from: the ``.part``'s size if a validator says which version it holds."""
    part, validator = part_path(dest), validator_path(dest)
    if part.exists() and validator.exists():
        return part.stat().st_size
    _discard_part(dest)  # no way to tell whether the server's file is still the same
    return 0


def _open(url: str, headers: dict[str, str], http: HttpParams) -> requests.Response:
    """GET ``url``, following at most ``http.max_redirects`` redirects, each to http(s)."""
    for _ in range(http.max_redirects + 1):
        response = requests.get(
            url, headers=headers, stream=True, timeout=http.timeout_s, allow_redirects=False
        )
        if not response.is_redirect:
            return response
        response.close()
        url = urljoin(url, response.headers["Location"])
        if not is_http_url(url):
            raise _Failure("redirect_not_http", retry=False)
    raise _Failure("too_many_redirects", retry=False)


def _receive(
    response: requests.Response,
    dest: Path,
    offset: int,
    max_bytes: int,
    *,
    resume: bool,
    stop: threading.Event,
) -> int:
    part = part_path(dest)
    _check_status(response.status_code, dest, offset)
    encoding = _encoding(response)
    if response.status_code == 206:
        if encoding or not _range_starts_at(response, offset):
            _discard_part(dest)
            raise _Failure("bad_range", retry=True)
    else:
        offset = 0  # a 200: the server ignored Range, or If-Range says the file changed
        if resume:
            _save_validator(dest, response)
    length_header = response.headers.get("Content-Length", "")
    length = int(length_header) if length_header.isdigit() else None
    if length is not None and offset + length > max_bytes:
        raise _Failure("too_large", retry=False)
    raw = response.raw
    # read raw bytes and check the length ourselves, so a cut-short body keeps what arrived
    raw.enforce_content_length = False
    written = offset
    with part.open("ab" if offset else "wb") as handle:
        while not stop.is_set():
            # read1 returns what has arrived, so a trickling server cannot delay the stop check
            chunk = raw.read1(CHUNK_BYTES, decode_content=bool(encoding))
            if not chunk:
                break
            written += len(chunk)
            if written > max_bytes:
                raise _Failure("too_large", retry=False)
            handle.write(chunk)
    if stop.is_set():
        raise _Failure("cancelled", retry=True)
    if length is not None and raw.tell() < length:
        raise _Failure("truncated", retry=True)
    return written


def _check_status(status: int, dest: Path, offset: int) -> None:
    if status == 416 and offset:
        # the range starts at or past the end: the .part is stale; start over next attempt
        _discard_part(dest)
        raise _Failure("http_416", retry=True)
    if status >= 500 or status in RETRYABLE_4XX:
        raise _Failure(f"http_{status}", retry=True)
    if status not in (200, 206):
        # 4xx, and 1xx/3xx that are not followable redirects (a 3xx without Location)
        raise _Failure(f"http_{status}", retry=False)


def _encoding(response: requests.Response) -> str:
    """The body's Content-Encoding ("" for none); one we cannot decode is a failure."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return ""
    if encoding not in DECODED_ENCODINGS:
        raise _Failure("unsupported_encoding", retry=False)
    return encoding


def _save_validator(dest: Path, response: requests.Response) -> None:
    """Keep what ``If-Range`` needs to resume this body: a strong ETag, else Last-Modified."""
    etag = response.headers.get("ETag", "")
    validator = etag if etag and not etag.startswith("W/") else ""
    validator = validator or response.headers.get("Last-Modified", "")
    if validator:
        validator_path(dest).write_text(validator, encoding="utf-8")
    else:
        validator_path(dest).unlink(missing_ok=True)


def _range_starts_at(response: requests.Response, offset: int) -> bool:
    """``Content-Range: bytes <offset>-<end>/<total>`` must continue exactly where we are."""
    content_range = response.headers.get("Content-Range", "")
    unit, _, spec = content_range.partition(" ")
    start = spec.split("-", 1)[0]
    return unit == "bytes" and start.isdigit() and int(start) == offset


def fetch_many(
    jobs: Iterable[FetchJob], http: HttpParams, progress: str | None = None
) -> Iterator[FetchResult]:
    """Fetch ``jobs`` on ``http.workers`` daemon threads, yielding results as they complete.

    ``progress`` labels a progress bar; None shows none. Leaving early (an exception in the
    consumer, KeyboardInterrupt, or closing the generator: use ``contextlib.closing``)
    abandons the downloads in flight and removes their ``.part`` files.
    """
    jobs = list(jobs)
    pending: queue.SimpleQueue[FetchJob] = queue.SimpleQueue()
    for job in jobs:
        pending.put(job)
    done: queue.SimpleQueue[FetchResult | BaseException] = queue.SimpleQueue()
    stop = threading.Event()
    workers = [
        threading.Thread(target=_work, args=(pending, done, http, stop), daemon=True)
        for _ in range(min(http.workers, len(jobs)))
    ]
    for worker in workers:
        worker.start()
    try:
        with progress_bar(total=len(jobs), desc=progress or "", disable=progress is None) as shown:
            for _ in jobs:
                outcome = done.get()
                if isinstance(outcome, BaseException):
                    raise outcome
                shown.update(1)
                yield outcome
    finally:
        stop.set()
        _abandon(workers, jobs)


def _work(
    pending: queue.SimpleQueue[FetchJob],
    done: queue.SimpleQueue[FetchResult | BaseException],
    http: HttpParams,
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        try:
            job = pending.get_nowait()
        except queue.Empty:
            return
        try:
            done.put(fetch(job.url, job.dest, http, stop=stop))
        except Exception as exc:  # a bug or a full disk: the consumer re-raises it
            done.put(exc)


def _abandon(workers: list[threading.Thread], jobs: list[FetchJob]) -> None:
    """After a stop: let running workers clean up, then remove what blocked ones left."""
    deadline = time.monotonic() + CANCEL_GRACE_S
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    for job in jobs:
        part_path(job.dest).unlink(missing_ok=True)


def fetch_text(url: str, http: HttpParams, key: str) -> str:
    """A small index file (TSV, split list) as text, kept in the download cache for reruns.

    ``key`` is the params key that names the URL. A failure raises: without its index a
    source cannot do anything useful. A UTF-8 byte-order mark is dropped.
    """
    if not is_http_url(url):
        raise UserError(f"{key}: expected an http:// or https:// URL, got {url!r}")
    cached = download_path(url)
    if not cached.exists():
        text_http = http.model_copy(update={"max_bytes": max(http.max_bytes, TEXT_MAX_BYTES)})
        result = fetch(url, cached, text_http)
        if not result.ok:
            raise UserError(
                f"{key}: could not download {url}: {result.reason} after {result.attempts} "
                "attempt(s); check the URL in params.yaml and your network, then rerun"
            )
    return cached.read_text(encoding="utf-8-sig", errors="replace")
