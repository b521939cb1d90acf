"""The downloader against a local server with injected faults (no network needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from http_server import LocalServer, Route

from nextframe.config import HttpParams
from nextframe.data.http import FetchJob, fetch, fetch_many, fetch_text, part_path
from nextframe.errors import UserError

pytestmark = pytest.mark.usefixtures("private_cache")

FAST = HttpParams(workers=4, timeout_s=2.0, retries=2, backoff_s=0.0, max_bytes=100_000)
BODY = os.urandom(20_000)


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
    assert not result.ok and result.reason == "http_404"
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
    assert not result.ok and result.reason == "http_503"
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


def test_range_resume_requests_only_the_rest(server, tmp_path: Path) -> None:
    url = server.add("/big.rar", Route(BODY))
    dest = tmp_path / "big.rar"
    half = len(BODY) // 2
    part_path(dest).write_bytes(BODY[:half])
    result = fetch(url, dest, FAST, resume=True)
    assert result.ok and dest.read_bytes() == BODY
    assert server.ranges("/big.rar") == [f"bytes={half}-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path: Path) -> None:
    url = server.add("/big.rar", Route(BODY, honour_range=False))
    dest = tmp_path / "big.rar"
    part_path(dest).write_bytes(BODY[:5000])
    result = fetch(url, dest, FAST, resume=True)
    assert result.ok and dest.read_bytes() == BODY
    assert server.ranges("/big.rar") == ["bytes=5000-"]


def test_resume_after_truncation_continues_the_part(server, tmp_path: Path) -> None:
    """A resumable download cut short keeps its bytes and the next run finishes it."""
    route = Route(BODY, truncate=True)
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
    assert fetch_text(url, FAST) == "a\tb\n"
    assert fetch_text(url, FAST) == "a\tb\n"
    assert server.count("/index.tsv") == 1


def test_fetch_text_failure_names_the_url(server, tmp_path: Path) -> None:
    url = server.base_url + "/nothing.tsv"
    with pytest.raises(UserError, match=r"nothing\.tsv"):
        fetch_text(url, FAST)
