"""The tgif source against a local server holding a tiny TGIF release with bad links."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from http_server import LocalServer, Route
from PIL import Image

from nextframe.config import DownloadParams, HttpParams, TgifParams
from nextframe.data import tgif
from nextframe.data.manifest import OK
from nextframe.data.video import read_video, write_video

pytestmark = pytest.mark.usefixtures("private_cache")

FAST = HttpParams(workers=4, timeout_s=2.0, retries=1, backoff_s=0.0, max_bytes=1_000_000)


def gif_bytes(tmp_path: Path, frames: np.ndarray, name: str) -> bytes:
    path = tmp_path / f"{name}.gif"
    write_video(path, frames, fps=8.0)
    return path.read_bytes()


def moving(n: int, side: int = 32, offset: int = 0) -> np.ndarray:
    frames = np.zeros((n, side, side, 3), np.uint8)
    for index in range(n):
        x = (offset + index) % (side - 8)
        frames[index, 8:16, x : x + 8] = (255, 80, 0)
    return frames


def still(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 90, 200)).save(buffer, format=kind)
    return buffer.getvalue()


@pytest.fixture
def server():
    with LocalServer() as local:
        yield local


def publish(server: LocalServer, gifs: dict[str, Route], splits: dict[str, list[str]]) -> dict:
    """Serve ``gifs`` plus a TSV and split files; returns the URL of each name."""
    urls = {name: server.add(f"/gifs/{name}.gif", route) for name, route in gifs.items()}
    lines = [f"{url}\ta {name} sentence" for name, url in urls.items()]
    lines.append(f"{urls[next(iter(urls))]}\ta second sentence for the first gif")
    tsv = server.add("/tgif.tsv", Route("\n".join(lines).encode(), content_type="text/plain"))
    split_urls = {
        split: server.add(f"/splits/{split}.txt", Route("\n".join(urls[n] for n in names).encode()))
        for split, names in splits.items()
    }
    return {"tsv": tsv, "splits": split_urls, **urls}


def params(published: dict, **tgif_overrides) -> DownloadParams:
    settings = {
        "tsv_url": published["tsv"],
        "split_urls": published["splits"],
        "limit": 50,
        "min_frames": 4,
        "max_frames": 12,
        "http": FAST,
    }
    settings.update(tgif_overrides)
    return DownloadParams(source="tgif", seed=3, tgif=TgifParams(**settings))


def by_url(result) -> dict:
    return {row.url: row for row in result.rows}


def test_every_bad_body_gets_its_reason(server, tmp_path: Path) -> None:
    gifs = {
        "good": Route(gif_bytes(tmp_path, moving(6), "good")),
        "long": Route(gif_bytes(tmp_path, moving(20, offset=3), "long")),
        "static": Route(gif_bytes(tmp_path, np.full((6, 32, 32, 3), 90, np.uint8), "static")),
        "one_frame": Route(gif_bytes(tmp_path, moving(1), "one")),
        "png": Route(still("PNG"), content_type="image/png"),
        "html": Route(b"<html><body>This GIF was removed</body></html>", content_type="text/html"),
        "short": Route(gif_bytes(tmp_path, moving(3), "short")),
        "gone": Route(statuses=[404]),
        "cut": Route(gif_bytes(tmp_path, moving(6, offset=5), "cut"), truncate=True),
    }
    published = publish(server, gifs, {"train": ["good", "long", "png"], "test": ["static"]})
    out_dir = tmp_path / "raw"
    result = tgif.collect(params(published), out_dir)

    rows = by_url(result)
    status = {name: rows[published[name]].status for name in gifs}
    assert status == {
        "good": OK,
        "long": OK,
        "static": "failed:static",
        "one_frame": "failed:not_animated",
        "png": "failed:not_animated",
        "html": "failed:not_a_gif",
        "short": "failed:too_few_frames",
        "gone": "failed:http_404",
        "cut": "failed:truncated",
    }
    assert server.count("/gifs/gone.gif") == 1  # a 404 is not retried
    good = rows[published["good"]]
    assert good.caption == "a good sentence"  # the first of its two sentences
    assert good.split == "train" and rows[published["static"]].split == "test"
    assert read_video(out_dir / good.path).n_frames == 6
    assert read_video(out_dir / rows[published["long"]].path).n_frames == 12  # max_frames
    assert all(row.path == "" for row in result.rows if row.status != OK)
    assert {row.split for row in result.rows} <= {"train", "val", "test"}
    assert result.metrics["sample_exhausted"] == 1.0
    assert "sample exhausted" in result.notes[0]
    assert sorted(p.name for p in (out_dir / "videos").iterdir()) == sorted(
        Path(rows[published[name]].path).name for name in ("good", "long")
    )
    assert not (out_dir / tgif.SCRATCH_DIR).exists()


def test_limit_reached_stops_fetching(server, tmp_path: Path) -> None:
    gifs = {f"g{i}": Route(gif_bytes(tmp_path, moving(6, offset=i), f"g{i}")) for i in range(8)}
    gifs.update({f"bad{i}": Route(statuses=[404]) for i in range(4)})
    published = publish(server, gifs, {"train": list(gifs)})
    result = tgif.collect(params(published, limit=3), tmp_path / "raw")
    counts = Counter(row.status for row in result.rows)
    assert counts[OK] == 3
    assert result.metrics["sample_exhausted"] == 0.0
    assert "limit reached" in result.notes[0]
    gif_requests = sum(server.count(f"/gifs/{name}.gif") for name in gifs)
    assert gif_requests == len(result.rows) < len(gifs)


def test_rerun_does_not_refetch_verified_gifs(server, tmp_path: Path) -> None:
    gifs = {f"g{i}": Route(gif_bytes(tmp_path, moving(6, offset=i), f"g{i}")) for i in range(4)}
    gifs["gone"] = Route(statuses=[404])
    published = publish(server, gifs, {"train": list(gifs)})
    out_dir = tmp_path / "raw"
    first = tgif.collect(params(published), out_dir)
    second = tgif.collect(params(published), out_dir)
    assert [(r.clip_id, r.status, r.path) for r in first.rows] == [
        (r.clip_id, r.status, r.path) for r in second.rows
    ]
    assert all(server.count(f"/gifs/g{i}.gif") == 1 for i in range(4))
    assert server.count("/gifs/gone.gif") == 2  # failures are tried again
    assert server.count("/tgif.tsv") == 1  # the index is cached
    assert second.metrics["reused_verified"] == 4.0


def test_gifs_outside_the_split_files_get_a_seeded_split(server, tmp_path: Path) -> None:
    gifs = {f"g{i}": Route(gif_bytes(tmp_path, moving(6, offset=i), f"g{i}")) for i in range(5)}
    published = publish(server, gifs, {})
    result = tgif.collect(params(published), tmp_path / "raw")
    assert {row.split for row in result.rows} == {"train", "val", "test"}
    assert result.metrics["unsplit"] == 5.0


def test_too_small_gifs_fail(server, tmp_path: Path) -> None:
    published = publish(server, {"tiny": Route(gif_bytes(tmp_path, moving(6), "t"))}, {})
    result = tgif.collect(params(published, min_side=64), tmp_path / "raw")
    assert [row.status for row in result.rows] == ["failed:too_small"]


def test_parse_tsv_keeps_the_first_sentence() -> None:
    text = "u1\tfirst\nu2\tother\nu1\tsecond\nno tab here\n\nu3\t  \n"
    assert tgif.parse_tsv(text) == {"u1": "first", "u2": "other"}
