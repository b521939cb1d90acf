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
``.part`` with the file's total length: see ``resume``): if the file changed on the server,
the server answers with the whole new body and the download restarts from zero instead of
splicing two versions together. Servers and proxies that ignore If-Range exist, so a 206 is
also checked against that record; one that does not continue the ``.part`` (another
validator, another total length, another start) discards it and the download restarts from
zero, once per call: a second such answer fails with ``resume_mismatch``. A
``.part`` without a record is not resumed. Each restart is logged as one warning.

A 429 or 503 with ``Retry-After`` (seconds or an HTTP date) is retried no sooner than the
server asked, as one of the ``retries``; a server asking for more than
``MAX_RETRY_AFTER_S`` gets no retry in this run (the failure stays transient).

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

import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin, urlparse

import requests
import urllib3

from nextframe.cache import download_path
from nextframe.config import HttpParams
from nextframe.data.resume import PartRecord, load_record, mismatch, record_path, save_record
from nextframe.errors import UserError
from nextframe.progress import progress_bar

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
RETRYABLE_4XX = {408, 429}  # "request timeout" and "too many requests" are transient
RATE_LIMITED = {429, 503}  # the statuses whose Retry-After says when to try again
TEXT_MAX_BYTES = 256 << 20  # index files (the TGIF TSV is ~15 MB) are not held to the clip cap
# identity: Content-Length and Range offsets must count the bytes we store, not gzip bytes
REQUEST_HEADERS = {"Accept-Encoding": "identity", "User-Agent": "nextframe-downloader"}
DECODED_ENCODINGS = {"gzip", "x-gzip", "deflate"}  # what urllib3 decodes without extras
CANCEL_GRACE_S = 0.2  # how long cancelled workers get to remove their own .part files
MAX_RETRY_AFTER_S = 60.0  # longest Retry-After waited for; a longer one ends this run's tries


@dataclass(frozen=True)
class FetchJob:
    url: str
    dest: Path


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one download; ``reason`` is empty when ``ok``.

    ``transient`` marks a failure worth trying again on a later run (a timeout, a 5xx);
    a permanent one (404, too large, a redirect to ``file://``) is not. ``attempts``
    counts requests, a restart from zero after a resume mismatch included.
    """

    url: str
    dest: Path
    ok: bool
    reason: str = ""
    bytes: int = 0
    attempts: int = 0
    transient: bool = False


class _Failure(Exception):
    """One failed attempt; ``retry`` says whether another attempt could succeed, and
    ``retry_after_s`` how long the server asked us to wait first (None: it did not say)."""

    def __init__(self, reason: str, *, retry: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.retry_after_s = retry_after_s


class _NotAContinuation(Exception):
    """A 206 that does not continue the ``.part`` (the file changed; If-Range was ignored)."""


def is_http_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def check_url(url: str) -> None:
    """Refuse anything but http(s): file:// or ftp:// in params is a mistake, not data."""
    if not is_http_url(url):
        raise UserError(f"expected an http:// or https:// URL, got {url!r}")


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


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
    attempts = retries = 0
    restarted = False
    wait_s = 0.0
    while True:
        if wait_s and stop.wait(wait_s):
            failure = _Failure("cancelled", retry=True)
            break
        attempts += 1
        try:
            size = _attempt(url, dest, http, resume=resume, stop=stop)
        except _NotAContinuation as exc:
            _discard_part(dest)
            if restarted:
                log.error(
                    "%s: changed again while resuming (%s): the server or a proxy ignores "
                    "If-Range; giving up",
                    url,
                    exc,
                )
                failure = _Failure("resume_mismatch", retry=False)
                break
            log.warning("%s: %s; downloading it again from zero", url, exc)
            restarted, wait_s = True, 0.0  # not a retry: the server answered, just not usably
            continue
        except _Failure as exc:
            failure = exc
            if not resume:
                _discard_part(dest)
            if not exc.retry or exc.reason == "cancelled" or retries == http.retries:
                break
            if (exc.retry_after_s or 0.0) > MAX_RETRY_AFTER_S:
                break  # asked to come back later than one file is worth waiting for
            retries += 1
            wait_s = _wait_before_retry(http, retries, exc.retry_after_s)
            continue
        os.replace(part_path(dest), dest)
        record_path(dest).unlink(missing_ok=True)
        return FetchResult(url, dest, ok=True, bytes=size, attempts=attempts)
    return FetchResult(
        url, dest, ok=False, reason=failure.reason, attempts=attempts, transient=failure.retry
    )


def _wait_before_retry(http: HttpParams, retry: int, retry_after_s: float | None) -> float:
    """Exponential backoff, or longer where the server said how long (``Retry-After``)."""
    backoff_s = http.backoff_s * 2 ** (retry - 1)
    return backoff_s if retry_after_s is None else max(backoff_s, retry_after_s)


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delta-seconds or an HTTP date; None if
    it is absent or unreadable (then the backoff alone decides)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; a zone-less one is read the same way
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _discard_part(dest: Path) -> None:
    part_path(dest).unlink(missing_ok=True)
    record_path(dest).unlink(missing_ok=True)


def _attempt(url: str, dest: Path, http: HttpParams, *, resume: bool, stop: threading.Event) -> int:
    """One request into ``dest.part``; returns the complete size or raises ``_Failure``."""
    headers = dict(REQUEST_HEADERS)
    offset, record = _resume_point(dest) if resume else (0, None)
    if record is not None:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = record.validator
    try:
        with _open(url, headers, http) as response:
            return _receive(
                response, dest, record, offset, http.max_bytes, resume=resume, stop=stop
            )
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


def _resume_point(dest: Path) -> tuple[int, PartRecord | None]:
    """Bytes to resume from and the record of what they are; (0, None) to start afresh."""
    part, record = part_path(dest), load_record(dest)
    if record is not None and part.exists() and part.stat().st_size:
        return part.stat().st_size, record
    _discard_part(dest)  # nothing kept, or no way to tell which version of the file it was
    return 0, None


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
    record: PartRecord | None,
    offset: int,
    max_bytes: int,
    *,
    resume: bool,
    stop: threading.Event,
) -> int:
    """Stream one response into ``dest.part``: appended to the ``offset`` bytes kept there
    on a 206 that continues them, from zero on a 200; returns the complete size."""
    part = part_path(dest)
    _check_status(response, dest, offset)
    encoding = _encoding(response)
    if response.status_code == 206:
        if record is None:
            raise _Failure("bad_range", retry=True)  # a 206 to a request without Range
        why = mismatch(record, response.headers, offset)
        if why:
            raise _NotAContinuation(why)
    else:
        if offset:
            log.warning(
                "%s: a 200 to a range request (the file changed, or Range is not supported); "
                "downloading it from zero",
                response.url,
            )
        offset = 0
        if resume:
            save_record(dest, response.headers)
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


def _check_status(response: requests.Response, dest: Path, offset: int) -> None:
    status = response.status_code
    if status == 416 and offset:
        # the range starts at or past the end: the .part is stale; start over next attempt
        _discard_part(dest)
        raise _Failure("http_416", retry=True)
    if status >= 500 or status in RETRYABLE_4XX:
        wait_s = None
        if status in RATE_LIMITED:
            wait_s = parse_retry_after(response.headers.get("Retry-After", ""))
        raise _Failure(f"http_{status}", retry=True, retry_after_s=wait_s)
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
