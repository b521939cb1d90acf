"""The tgif source against a local server holding a tiny TGIF release with bad links."""

from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import sys
import time
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


def _lzw_one_colour_per_code(pixels: list[int]) -> bytes:
    """LZW codes at a fixed 3 bits: a clear code before every pixel keeps the table empty."""
    codes = [code for pixel in pixels for code in (4, pixel)] + [5]
    bits = sum(code << (3 * i) for i, code in enumerate(codes))
    data = bits.to_bytes((3 * len(codes) + 7) // 8, "little")
    blocks = b"".join(
        bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)
    )
    return b"\x02" + blocks + b"\x00"


def gif_bomb(path: Path, side: int = 3000, frames: int = 70, patch: int = 32) -> Path:
    screen = struct.pack("<6sHHBBB", b"GIF89a", side, side, 0xF1, 0, 0)
    palette = bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    body = []
    for index in range(frames):
        control = b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # keep the canvas, 0.1 s
        left = (index * patch) % (side - patch)
        descriptor = b"\x2c" + struct.pack("<HHHHB", left, left, patch, patch, 0)
        body.append(
            control + descriptor + _lzw_one_colour_per_code([1 + index % 3] * patch * patch)
        )
    path.write_bytes(screen + palette + loop + b"".join(body) + b"\x3b")
    return path


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
        "png": "failed:wrong_image_format",
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
    assert server.count("/gifs/gone.gif") == 1  # a permanent failure is remembered
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
    assert tgif.parse_tsv(text) == tgif.Index({"u1": "first", "u2": "other"}, skipped_lines=2)


def test_image_bomb_fails_before_its_frames_are_held(server, tmp_path: Path) -> None:
    """55 KB declaring 70 frames of 3000x3000 (1.9 GB as RGB): refused, quickly."""
    bomb = gif_bomb(tmp_path / "bomb.gif").read_bytes()
    assert len(bomb) < 64_000
    gifs = {"bomb": Route(bomb), "good": Route(gif_bytes(tmp_path, moving(6), "good"))}
    published = publish(server, gifs, {})
    out_dir = tmp_path / "raw"
    started = time.monotonic()
    rows = by_url(tgif.collect(params(published), out_dir))
    assert time.monotonic() - started < 20
    assert rows[published["bomb"]].status == "failed:too_many_pixels"
    assert [p.name for p in (out_dir / "videos").iterdir()] == [
        Path(rows[published["good"]].path).name
    ]
    assert not (out_dir / tgif.SCRATCH_DIR).exists()


MEASURE_PEAK = """
import json, sys
from pathlib import Path
from nextframe.config import DownloadParams
from nextframe.data import tgif
def status_mb(field):  # VmHWM, unlike ru_maxrss, is not inherited from the forking parent
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024
before = status_mb("VmRSS")
params = DownloadParams()
reason, _ = tgif.check_gif(Path(sys.argv[1]), params.tgif, params.max_pixels)
print(json.dumps({"reason": reason, "growth_mb": status_mb("VmHWM") - before}))
"""


def test_image_bomb_peak_memory_stays_bounded(tmp_path: Path) -> None:
    """Peak RSS growth while checking the bomb, in a fresh process: about 200 MB with the
    default max_pixels (50M pixels: 150 MB of RGB plus the decoder's frame), against
    3.4 GB (and an accepted GIF) without the bound."""
    bomb = gif_bomb(tmp_path / "bomb.gif")
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_PEAK, str(bomb)], capture_output=True, text=True, check=True
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["reason"] == "too_many_pixels", measured
    assert measured["growth_mb"] < 400, measured


def test_smaller_faults_each_get_their_own_reason(server, tmp_path: Path) -> None:
    good = gif_bytes(tmp_path, moving(6), "good")
    gifs = {
        "png": Route(still("PNG"), content_type="image/png"),
        "jpeg": Route(still("JPEG"), content_type="image/jpeg"),
        "one_frame": Route(gif_bytes(tmp_path, moving(1), "one")),
        "gzipped": Route(gzip.compress(good), headers={"Content-Encoding": "gzip"}),
    }
    published = publish(server, gifs, {})
    rows = by_url(tgif.collect(params(published), tmp_path / "raw"))
    assert {name: rows[published[name]].status for name in gifs} == {
        "png": "failed:wrong_image_format",
        "jpeg": "failed:wrong_image_format",
        "one_frame": "failed:not_animated",
        "gzipped": OK,
    }


def test_bom_skipped_lines_and_split_conflicts_are_handled_and_counted(
    server, tmp_path: Path
) -> None:
    urls = [
        server.add(f"/g{i}.gif", Route(gif_bytes(tmp_path, moving(6, offset=i), f"g{i}")))
        for i in range(3)
    ]
    tsv = "\ufeff" + "".join(f"{url}\tgif {i}\n" for i, url in enumerate(urls))
    tsv += "a line without a tab\n\n" + f"{urls[0]}\t\n"
    published = {
        "tsv": server.add("/tgif.tsv", Route(tsv.encode())),
        "splits": {
            "train": server.add("/train.txt", Route(f"{urls[0]}\n{urls[1]}\n".encode())),
            "test": server.add("/test.txt", Route(f"{urls[1]}\n".encode())),
            "val": server.add("/val.txt", Route(f"{urls[2]}\n{urls[1]}\n".encode())),
        },
    }
    result = tgif.collect(params(published), tmp_path / "raw")
    rows = by_url(result)
    assert all(row.status == OK for row in result.rows)  # the BOM did not spoil urls[0]
    assert [rows[url].split for url in urls] == ["train", "test", "val"]
    assert result.metrics["split_conflicts"] == 1.0
    assert result.metrics["tsv_lines_skipped"] == 2.0
    assert any("several split files" in note for note in result.notes)
    assert any("2 TSV line(s) skipped" in note for note in result.notes)


def test_permanent_failures_are_remembered_transient_ones_retried(server, tmp_path: Path) -> None:
    gifs = {
        "gone": Route(statuses=[404]),
        "html": Route(b"<html>removed</html>", content_type="text/html"),
        "big": Route(bytes(2_000_000)),
        "short": Route(gif_bytes(tmp_path, moving(3), "short")),
        "slow": Route(gif_bytes(tmp_path, moving(6), "slow"), delay_s=0.5),
        "down": Route(statuses=[503]),
    }
    published = publish(server, gifs, {})
    quick = FAST.model_copy(update={"timeout_s": 0.2, "retries": 0})
    paths = {name: f"/gifs/{name}.gif" for name in gifs}

    def run(**overrides) -> dict:
        result = tgif.collect(params(published, http=quick, **overrides), tmp_path / "raw")
        return {name: by_url(result)[published[name]].status for name in gifs}

    first = run()
    assert first == {
        "gone": "failed:http_404",
        "html": "failed:not_a_gif",
        "big": "failed:too_large",
        "short": "failed:too_few_frames",
        "slow": "failed:timeout",
        "down": "failed:http_503",
    }
    assert run() == first
    counts = {name: server.count(path) for name, path in paths.items()}
    assert counts == {"gone": 1, "html": 1, "big": 1, "short": 1, "slow": 2, "down": 2}
    run(min_frames=3)  # the checking params changed: every remembered failure is retried
    assert server.count(paths["short"]) == 2 and server.count(paths["gone"]) == 2
    run(min_frames=3, retry_failed=True)
    assert server.count(paths["gone"]) == 3


def test_fifty_mixed_faults_through_eight_workers_are_all_accounted_for(
    server, tmp_path: Path
) -> None:
    faults = {
        "ok": lambda i: Route(gif_bytes(tmp_path, moving(6, offset=i), f"ok{i}")),
        "failed:http_404": lambda i: Route(statuses=[404]),
        "failed:http_500": lambda i: Route(statuses=[500]),
        "failed:too_many_redirects": lambda i: Route(
            statuses=[302], headers={"Location": f"/gifs/loop{i}.gif"}
        ),
        "failed:redirect_not_http": lambda i: Route(
            statuses=[302], headers={"Location": "file:///etc/passwd"}
        ),
        "failed:not_a_gif": lambda i: Route(b"<html>gone</html>"),
        "failed:truncated": lambda i: Route(gif_bytes(tmp_path, moving(6), "t"), truncate=True),
        "failed:timeout": lambda i: Route(b"GIF89a", delay_s=4.0),
        "failed:wrong_image_format": lambda i: Route(still("PNG")),
        "failed:too_large": lambda i: Route(bytes(2_000_000), omit_length=True),
    }
    expected: dict[str, str] = {}
    gifs: dict[str, Route] = {}
    for i in range(50):
        status = list(faults)[i % len(faults)]
        name = "loop" if status == "failed:too_many_redirects" else "g"
        gifs[f"{name}{i}"] = faults[status](i)
        expected[f"{name}{i}"] = status
    published = publish(server, gifs, {})
    # a timeout well above a loaded machine's response time (0.3 s timed out a 500 once)
    eight = HttpParams(workers=8, timeout_s=1.5, retries=1, backoff_s=0.0, max_bytes=1_000_000)
    out_dir = tmp_path / "raw"
    started = time.monotonic()
    result = tgif.collect(params(published, http=eight, limit=50), out_dir)
    assert time.monotonic() - started < 60
    rows = by_url(result)
    assert len(result.rows) == 50 == len({row.clip_id for row in result.rows})
    assert {name: rows[published[name]].status for name in gifs} == expected
    assert sorted(p.name for p in (out_dir / "videos").iterdir()) == sorted(
        Path(row.path).name for row in result.rows if row.status == OK
    )
    assert not (out_dir / tgif.SCRATCH_DIR).exists()
