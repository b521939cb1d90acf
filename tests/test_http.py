"""The downloader against a local server with injected faults (no network needed)."""

from __future__ import annotations

import gzip
import os
import time
import tracemalloc
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from http_server import LocalServer, Route

from nextframe.config import HttpParams
from nextframe.data.http import (
    FetchJob,
    fetch,
    fetch_many,
    fetch_text,
    parse_retry_after,
    part_path,
)
from nextframe.data.resume import PartRecord, load_record, record_path, save_record
from nextframe.errors import UserError

pytestmark = pytest.mark.usefixtures("private_cache")

FAST = HttpParams(workers=4, timeout_s=2.0, retries=2, backoff_s=0.0, max_bytes=100_000)
BODY = os.urandom(20_000)
ETAG = {"ETag": '"v1"'}


def leftovers(folder: Path) -> list[str]:
    """Files a download left in ``folder`` (``.part``, validators, half bodies)."""
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


def restarts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings a download logged for starting over from zero."""
    return [r.getMessage() for r in caplog.records if "from zero" in r.getMessage()]


@pytest.fixture
def server():
    with LocalServer() as local:
        yield local


def test_ok_download_is_byte_identical_and_leaves_no_part(server, tmp_path: Path) -> None:
    url = server.add("/a.bin", Route(BODY))
    result = fetch(url, tmp_path / "a.bin", FAST)
    assert result.ok and result.reason == "" and result.bytes == len(BODY)
    assert (tmp_path / "a.bin").read_bytes() == BODY
    assert not part_path(tmp_path / "a.bin").exists()


def test_404_is_not_retried(server, tmp_path: Path) -> None:
    url = server.add("/gone", Route(BODY, statuses=[404]))
    result = fetch(url, tmp_path / "gone", FAST)
    assert not result.ok and result.reason == "http_404" and not result.transient
    assert server.count("/gone") == 1
    assert not (tmp_path / "gone").exists() and not part_path(tmp_path / "gone").exists()


def test_500_then_200_is_retried(server, tmp_path: Path) -> None:
    url = server.add("/flaky", Route(BODY, statuses=[500, 200]))
    result = fetch(url, tmp_path / "flaky", FAST)
    assert result.ok and result.attempts == 2
    assert server.count("/flaky") == 2
    assert (tmp_path / "flaky").read_bytes() == BODY


def test_always_500_gives_up_after_retries_plus_one(server, tmp_path: Path) -> None:
    url = server.add("/down", Route(BODY, statuses=[503]))
    result = fetch(url, tmp_path / "down", FAST)
    assert not result.ok and result.reason == "http_503" and result.transient
    assert server.count("/down") == FAST.retries + 1 == result.attempts


def test_truncated_body_is_retried_then_reported(server, tmp_path: Path) -> None:
    url = server.add("/short", Route(BODY, truncate=True))
    result = fetch(url, tmp_path / "short", FAST)
    assert not result.ok and result.reason == "truncated"
    assert server.count("/short") == FAST.retries + 1
    assert not (tmp_path / "short").exists() and not part_path(tmp_path / "short").exists()


def test_too_large_by_content_length(server, tmp_path: Path) -> None:
    url = server.add("/big", Route(BODY))
    small = FAST.model_copy(update={"max_bytes": 1000})
    result = fetch(url, tmp_path / "big", small)
    assert not result.ok and result.reason == "too_large"
    assert server.count("/big") == 1
    assert not part_path(tmp_path / "big").exists()


def test_too_large_while_streaming_without_content_length(server, tmp_path: Path) -> None:
    url = server.add("/big", Route(BODY, omit_length=True))
    small = FAST.model_copy(update={"max_bytes": 1000})
    result = fetch(url, tmp_path / "big", small)
    assert not result.ok and result.reason == "too_large"


def test_timeout_is_retried_and_reported(server, tmp_path: Path) -> None:
    url = server.add("/slow", Route(BODY, delay_s=0.6))
    quick = FAST.model_copy(update={"timeout_s": 0.2, "retries": 1})
    result = fetch(url, tmp_path / "slow", quick)
    assert not result.ok and result.reason == "timeout"
    assert result.attempts == 2


def started_part(dest: Path, data: bytes, validator: str = '"v1"', total: int = len(BODY)) -> None:
    """A ``.part`` left by an earlier run, with the record of the response it came from."""
    part_path(dest).write_bytes(data)
    save_record(dest, {"ETag": validator, "Content-Length": str(total)})


def test_range_resume_requests_only_the_rest_if_unchanged(server, tmp_path: Path) -> None:
    url = server.add("/big.rar", Route(BODY, headers=ETAG))
    dest = tmp_path / "big.rar"
    half = len(BODY) // 2
    started_part(dest, BODY[:half])
    result = fetch(url, dest, FAST, resume=True)
    assert result.ok and dest.read_bytes() == BODY
    assert server.ranges("/big.rar") == [f"bytes={half}-"]
    assert server.if_ranges("/big.rar") == ['"v1"']
    assert leftovers(tmp_path) == ["big.rar"]


def test_changed_file_restarts_from_zero_instead_of_splicing(
    server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """If-Range with the old ETag: the server sends the whole new body, not a spliced tail."""
    new_body = os.urandom(len(BODY))
    url = server.add("/big.rar", Route(new_body, headers={"ETag": '"v2"'}))
    dest = tmp_path / "big.rar"
    started_part(dest, BODY[:5000], '"v1"')
    started = time.monotonic()
    result = fetch(url, dest, FAST, resume=True)
    assert result.ok and dest.read_bytes() == new_body
    assert server.if_ranges("/big.rar") == ['"v1"']
    assert leftovers(tmp_path) == ["big.rar"]
    assert time.monotonic() - started < 5
    assert len(restarts(caplog)) == 1


def test_last_modified_is_the_validator_without_a_strong_etag(server, tmp_path: Path) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    headers = {"ETag": 'W/"weak"', "Last-Modified": stamp}
    route = Route(BODY, truncate=True, headers=headers)
    url = server.add("/big.rar", route)
    dest = tmp_path / "big.rar"
    once = FAST.model_copy(update={"retries": 0})
    assert fetch(url, dest, once, resume=True).reason == "truncated"
    assert load_record(dest) == PartRecord(stamp, len(BODY))
    route.truncate = False
    assert fetch(url, dest, once, resume=True).ok
    assert server.if_ranges("/big.rar") == [None, stamp]
    assert dest.read_bytes() == BODY


def test_part_without_validator_is_not_resumed(server, tmp_path: Path) -> None:
    url = server.add("/big.rar", Route(BODY, headers=ETAG))
    dest = tmp_path / "big.rar"
    part_path(dest).write_bytes(b"from who knows which version")
    assert fetch(url, dest, FAST, resume=True).ok
    assert dest.read_bytes() == BODY
    assert server.ranges("/big.rar") == [None]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path: Path) -> None:
    url = server.add("/big.rar", Route(BODY, honour_range=False, headers=ETAG))
    dest = tmp_path / "big.rar"
    started_part(dest, BODY[:5000])
    result = fetch(url, dest, FAST, resume=True)
    assert result.ok and dest.read_bytes() == BODY
    assert server.ranges("/big.rar") == ["bytes=5000-"]


def test_resume_after_truncation_continues_the_part(server, tmp_path: Path) -> None:
    """A resumable download cut short keeps its bytes and the next run finishes it."""
    route = Route(BODY, truncate=True, headers=ETAG)
    url = server.add("/big.rar", route)
    dest = tmp_path / "big.rar"
    once = FAST.model_copy(update={"retries": 0})
    assert fetch(url, dest, once, resume=True).reason == "truncated"
    kept = part_path(dest).stat().st_size
    assert 0 < kept < len(BODY)
    route.truncate = False
    assert fetch(url, dest, once, resume=True).ok
    assert dest.read_bytes() == BODY
    assert server.ranges("/big.rar")[-1] == f"bytes={kept}-"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.gif", "a.gif"])
def test_non_http_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="http"):
        fetch(url, tmp_path / "x", FAST)


def test_fetch_many_yields_every_result(server, tmp_path: Path) -> None:
    jobs = [
        FetchJob(server.add(f"/{i}.bin", Route(BODY[: 100 + i])), tmp_path / f"{i}")
        for i in range(6)
    ]
    jobs.append(FetchJob(server.base_url + "/missing", tmp_path / "missing"))
    results = {result.url: result for result in fetch_many(jobs, FAST, progress=None)}
    assert len(results) == 7
    assert results[server.base_url + "/missing"].reason == "http_404"
    assert all(results[job.url].ok for job in jobs[:6])


def test_fetch_text_is_cached(server, tmp_path: Path) -> None:
    url = server.add("/index.tsv", Route(b"a\tb\n", content_type="text/plain"))
    assert fetch_text(url, FAST, "k") == "a\tb\n"
    assert fetch_text(url, FAST, "k") == "a\tb\n"
    assert server.count("/index.tsv") == 1


def test_fetch_text_drops_a_byte_order_mark(server) -> None:
    url = server.add("/bom.tsv", Route("\ufeffhttp://x/a.gif\tcat\n".encode()))
    assert fetch_text(url, FAST, "k") == "http://x/a.gif\tcat\n"


def test_fetch_text_failure_names_the_key_and_url(server, tmp_path: Path) -> None:
    url = server.base_url + "/nothing.tsv"
    with pytest.raises(UserError, match=r"download\.tgif\.tsv_url: .*nothing\.tsv"):
        fetch_text(url, FAST, "download.tgif.tsv_url")


def test_redirect_is_followed(server, tmp_path: Path) -> None:
    server.add("/final.bin", Route(BODY))
    url = server.add("/moved", Route(statuses=[301], headers={"Location": "/final.bin"}))
    result = fetch(url, tmp_path / "a", FAST)
    assert result.ok and (tmp_path / "a").read_bytes() == BODY


def test_redirect_loop_is_a_bounded_permanent_failure(server, tmp_path: Path) -> None:
    url = server.add("/loop", Route(statuses=[302], headers={"Location": "/loop"}))
    started = time.monotonic()
    result = fetch(url, tmp_path / "a", FAST)
    assert (result.ok, result.reason, result.transient) == (False, "too_many_redirects", False)
    assert server.count("/loop") == FAST.max_redirects + 1  # one attempt: not retried
    assert leftovers(tmp_path) == []
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/a.gif"])
def test_redirect_to_another_scheme_is_refused(server, target: str, tmp_path: Path) -> None:
    url = server.add("/evil", Route(statuses=[302], headers={"Location": target}))
    result = fetch(url, tmp_path / "a", FAST)
    assert (result.ok, result.reason) == (False, "redirect_not_http")
    assert server.count("/evil") == 1
    assert leftovers(tmp_path) == []


def test_gzip_body_is_decoded(server, tmp_path: Path) -> None:
    route = Route(gzip.compress(BODY), headers={"Content-Encoding": "gzip"})
    url = server.add("/a.gif", route)
    result = fetch(url, tmp_path / "a.gif", FAST)
    assert result.ok and (tmp_path / "a.gif").read_bytes() == BODY


def test_gzip_bomb_is_capped_on_decoded_bytes(server, tmp_path: Path) -> None:
    bomb = gzip.compress(bytes(50_000_000))  # 50 MB of zeros in about 50 KB
    url = server.add("/bomb.gif", Route(bomb, headers={"Content-Encoding": "gzip"}))
    started = time.monotonic()
    result = fetch(url, tmp_path / "bomb.gif", FAST)
    assert (result.ok, result.reason, result.transient) == (False, "too_large", False)
    assert leftovers(tmp_path) == []
    assert time.monotonic() - started < 5


def test_unknown_encoding_is_its_own_failure(server, tmp_path: Path) -> None:
    url = server.add("/a.gif", Route(BODY, headers={"Content-Encoding": "br"}))
    result = fetch(url, tmp_path / "a.gif", FAST)
    assert (result.ok, result.reason) == (False, "unsupported_encoding")
    assert leftovers(tmp_path) == []


def test_leaving_fetch_many_early_abandons_transfers_in_flight(server, tmp_path: Path) -> None:
    """Closing the generator (as Ctrl-C in the consumer does) stops within a second and
    leaves no .part, although the slow bodies would take a minute to arrive."""
    server.add("/fast.bin", Route(BODY[:100]))
    slow = [server.add(f"/slow{i}.bin", Route(BODY, trickle_s=3.0)) for i in range(3)]
    jobs = [FetchJob(server.base_url + "/fast.bin", tmp_path / "fast.bin")]
    jobs += [FetchJob(url, tmp_path / f"slow{i}.bin") for i, url in enumerate(slow)]
    results = fetch_many(jobs, FAST.model_copy(update={"timeout_s": 30.0}))
    first = next(results)
    while not all(server.count(f"/slow{i}.bin") for i in range(3)):
        time.sleep(0.01)
    started = time.monotonic()
    results.close()
    assert time.monotonic() - started < 1.5
    assert first.ok and leftovers(tmp_path) == ["fast.bin"]


def test_server_ignoring_if_range_cannot_splice_a_changed_file(
    server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 206 carries bytes of the new file and another ETag: they are not appended."""
    new_body = os.urandom(len(BODY))
    route = Route(new_body, honour_if_range=False, headers={"ETag": '"v2"'})
    url = server.add("/big.rar", route)
    dest = tmp_path / "big.rar"
    started_part(dest, BODY[:5000], '"v1"')
    result = fetch(url, dest, FAST, resume=True)
    assert result.ok and dest.read_bytes() == new_body
    assert server.ranges("/big.rar") == ["bytes=5000-", None]
    assert len(restarts(caplog)) == 1 and '"v2"' in restarts(caplog)[0]
    assert leftovers(tmp_path) == ["big.rar"]


def test_same_validator_but_another_total_length_restarts(
    server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unchanged validator (a Last-Modified within the same second) with another length."""
    new_body = BODY + os.urandom(3000)
    url = server.add("/big.rar", Route(new_body, honour_if_range=False, headers=ETAG))
    dest = tmp_path / "big.rar"
    started_part(dest, os.urandom(5000), '"v1"', total=len(BODY))
    result = fetch(url, dest, FAST, resume=True)
    assert result.ok and dest.read_bytes() == new_body
    assert len(restarts(caplog)) == 1 and str(len(new_body)) in restarts(caplog)[0]


def test_a_second_mismatch_is_an_error_naming_the_url(
    server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two mirrors behind one name, each with its own ETag, neither honouring If-Range: the
    restart from zero is cut short, the next resume mismatches again, and that is final."""
    etags = ['"B"', '"A"', '"B"']
    url = server.add("/big.rar", Route(BODY, honour_if_range=False, truncate=True, etags=etags))
    dest = tmp_path / "big.rar"
    started_part(dest, BODY[:5000], '"A"')
    result = fetch(url, dest, FAST, resume=True)
    assert (result.ok, result.reason, result.transient) == (False, "resume_mismatch", False)
    assert server.ranges("/big.rar") == ["bytes=5000-", None, f"bytes={len(BODY) // 2}-"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and url in errors[0] and "If-Range" in errors[0]
    assert leftovers(tmp_path) == []


def test_200_to_a_range_request_replaces_the_part(
    server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server without Range support sends the whole (here shorter, new) body: it replaces
    the kept bytes instead of being appended to them."""
    new_body = os.urandom(12_000)
    route = Route(new_body, honour_range=False, headers={"ETag": '"v2"'})
    url = server.add("/big.rar", route)
    dest = tmp_path / "big.rar"
    started_part(dest, BODY[:15_000])
    result = fetch(url, dest, FAST, resume=True)
    assert result.ok and dest.read_bytes() == new_body
    assert server.ranges("/big.rar") == ["bytes=15000-"]
    assert len(restarts(caplog)) == 1


def test_a_record_without_total_still_resumes(server, tmp_path: Path) -> None:
    """A ``.part`` recorded before totals were kept (the validator alone) is continued."""
    url = server.add("/big.rar", Route(BODY, headers=ETAG))
    dest = tmp_path / "big.rar"
    part_path(dest).write_bytes(BODY[:5000])
    record_path(dest).write_text('"v1"')
    assert fetch(url, dest, FAST, resume=True).ok and dest.read_bytes() == BODY
    assert server.ranges("/big.rar") == ["bytes=5000-"]


def test_429_waits_as_long_as_retry_after_says(server, tmp_path: Path) -> None:
    route = Route(BODY, statuses=[429, 200], headers={"Retry-After": "1"})
    url = server.add("/limited", route)
    result = fetch(url, tmp_path / "a", FAST)
    assert result.ok and result.attempts == 2
    first, second = server.times("/limited")
    assert second - first >= 1.0


def test_retry_after_waits_count_against_the_retries(server, tmp_path: Path) -> None:
    url = server.add("/limited", Route(BODY, statuses=[503], headers={"Retry-After": "1"}))
    started = time.monotonic()
    result = fetch(url, tmp_path / "a", FAST.model_copy(update={"retries": 1}))
    assert (result.ok, result.reason, result.transient) == (False, "http_503", True)
    assert server.count("/limited") == 2
    assert 1.0 <= time.monotonic() - started < 3.0


def test_retry_after_beyond_the_cap_ends_this_run(server, tmp_path: Path) -> None:
    url = server.add("/limited", Route(BODY, statuses=[429], headers={"Retry-After": "3600"}))
    started = time.monotonic()
    result = fetch(url, tmp_path / "a", FAST)
    assert (result.ok, result.reason, result.transient) == (False, "http_429", True)
    assert server.count("/limited") == 1
    assert time.monotonic() - started < 1.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("", now) is None


def compressed_zeros(size: int, encoding: str) -> bytes:
    """``size`` zero bytes gzip- or deflate-encoded, built a MiB at a time (no big buffer)."""
    packer = zlib.compressobj(9, wbits=31 if encoding == "gzip" else 15)
    zeros = bytes(1 << 20)
    body = [packer.compress(zeros) for _ in range(size >> 20)]
    return b"".join([*body, packer.flush()])


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_encoded_bomb_is_capped_while_streaming(server, tmp_path: Path, encoding: str) -> None:
    """64 MiB of zeros in about 64 KB: the cap counts decoded bytes, and the decoder hands
    out a chunk at a time, so memory stays far below even the 5 MB decoded before the cap
    (a decoder that inflated the whole body, or one read's worth, would hold tens of MB)."""
    bomb = compressed_zeros(64 << 20, encoding)
    url = server.add("/bomb.gif", Route(bomb, headers={"Content-Encoding": encoding}))
    capped = FAST.model_copy(update={"max_bytes": 5_000_000})
    tracemalloc.start()
    try:
        result = fetch(url, tmp_path / "bomb.gif", capped)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.ok, result.reason) == (False, "too_large")
    assert peak < 4 << 20
    assert leftovers(tmp_path) == []
