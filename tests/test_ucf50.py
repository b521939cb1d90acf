"""The ucf50 source against a local server holding a tiny fake UCF50 archive.

"UCF50.rar" is a real RAR 4 archive, written by hand with stored (uncompressed) members
(``test_archive.make_rar4``: there is no RAR encoder here), so download, listing,
vetting and extraction run exactly as on the real archive; only RAR decompression
itself, the tool's job, is not exercised.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
from http_server import LocalServer, Route
from test_archive import make_rar4, make_tar, make_zip_bomb

from nextframe.cache import download_path
from nextframe.config import DownloadParams, HttpParams, Ucf50Params
from nextframe.data import archive, ucf50
from nextframe.data.http import part_path
from nextframe.data.resume import record_path
from nextframe.data.video import read_video
from nextframe.errors import UserError

pytestmark = pytest.mark.usefixtures("private_cache")

FAST = HttpParams(workers=2, timeout_s=2.0, retries=1, backoff_s=0.0, max_bytes=10_000_000)
CLASSES = {"JumpingJack": range(1, 6), "YoYo": range(1, 6), "BaseballPitch": range(2, 4)}


def avi_bytes(path: Path, shade: int) -> bytes:
    """A real 32x32, 6-frame MPEG-4 AVI, so the clips decode like UCF50's."""
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for index in range(6):
            pixels = np.full((32, 32, 3), (shade + 20 * index) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("avi")
    files = {}
    for label, groups in CLASSES.items():
        for group in groups:
            for clip in (1, 2):
                name = f"UCF50/{label}/v_{label}_g{group:02d}_c{clip:02d}.avi"
                files[name] = avi_bytes(folder / "clip.avi", 7 * group + clip)
    return files


def rar_bytes(tmp_path: Path, members: dict[str, bytes]) -> bytes:
    return make_rar4(tmp_path / "made.rar", members).read_bytes()


@pytest.fixture
def server():
    with LocalServer() as local:
        yield local


def params(url: str, **overrides) -> DownloadParams:
    settings = {"url": url, "http": FAST, **overrides}
    return DownloadParams(source="ucf50", seed=1, ucf50=Ucf50Params(**settings))


def test_collects_the_chosen_classes_split_by_group(server, members, tmp_path: Path) -> None:
    url = server.add("/UCF50.rar", Route(rar_bytes(tmp_path, members)))
    out_dir = tmp_path / "raw"
    result = ucf50.collect(params(url, classes=["YoYo", "JumpingJack"]), out_dir)

    assert len(result.rows) == 20
    assert {row.label for row in result.rows} == {"YoYo", "JumpingJack"}
    jump = next(row for row in result.rows if row.label == "JumpingJack")
    assert jump.caption == "a person doing jumping jack"
    assert jump.clip_id == Path(jump.path).stem and jump.path.startswith("videos/UCF50/")
    for row in result.rows:
        member = row.path.removeprefix("videos/")
        assert (out_dir / row.path).read_bytes() == members[member]
    assert read_video(out_dir / jump.path).n_frames == 6
    splits_of_group = defaultdict(set)
    for row in result.rows:
        splits_of_group[row.clip_id.split("_")[-2]].add(row.split)
    assert all(len(splits) == 1 for splits in splits_of_group.values())
    assert {row.split for row in result.rows} == {"train", "val", "test"}
    assert not (out_dir / "videos" / "UCF50" / "BaseballPitch").exists()
    assert result.metrics["extracted"] == 20.0


def test_clips_per_class_is_a_deterministic_sample(server, members, tmp_path: Path) -> None:
    url = server.add("/UCF50.rar", Route(rar_bytes(tmp_path, members)))
    runs = [ucf50.collect(params(url, clips_per_class=3), tmp_path / f"raw{i}") for i in (0, 1)]
    picked = [[row.clip_id for row in run.rows] for run in runs]
    assert picked[0] == picked[1]
    per_class = defaultdict(int)
    for row in runs[0].rows:
        per_class[row.label] += 1
    assert per_class == {"JumpingJack": 3, "YoYo": 3, "BaseballPitch": 3}


def test_rerun_neither_downloads_nor_extracts_again(
    server, members, tmp_path: Path, monkeypatch
) -> None:
    url = server.add("/UCF50.rar", Route(rar_bytes(tmp_path, members)))
    out_dir = tmp_path / "raw"
    first = ucf50.collect(params(url), out_dir)
    extracted_members: list[str] = []
    real_extract = archive.extract

    def spy(path, wanted, dest, budget):
        extracted_members.extend(wanted)
        return real_extract(path, wanted, dest, budget)

    monkeypatch.setattr(archive, "extract", spy)
    second = ucf50.collect(params(url), out_dir)
    assert first.rows == second.rows
    assert server.count("/UCF50.rar") == 1
    assert extracted_members == []
    assert second.metrics["reused_extracted"] == len(members)


def test_interrupted_download_resumes_with_a_range(server, members, tmp_path: Path) -> None:
    body = rar_bytes(tmp_path, members)
    url = server.add("/UCF50.rar", Route(body, headers={"ETag": '"rar1"'}))
    out_dir = tmp_path / "raw"
    out_dir.mkdir()
    half = len(body) // 2
    download_path(url).parent.mkdir(parents=True)
    part_path(download_path(url)).write_bytes(body[:half])
    record_path(download_path(url)).write_text('"rar1"')
    result = ucf50.collect(params(url, expected_bytes=len(body)), out_dir)
    assert server.ranges("/UCF50.rar") == [f"bytes={half}-"]
    assert download_path(url).read_bytes() == body
    assert len(result.rows) == len(members)


def test_wrong_size_names_the_param(server, members, tmp_path: Path) -> None:
    url = server.add("/UCF50.rar", Route(rar_bytes(tmp_path, members)))
    with pytest.raises(UserError, match=r"download\.ucf50\.expected_bytes"):
        ucf50.collect(params(url, expected_bytes=123), tmp_path / "raw")


def test_unknown_class_lists_the_available_ones(server, members, tmp_path: Path) -> None:
    url = server.add("/UCF50.rar", Route(rar_bytes(tmp_path, members)))
    with pytest.raises(UserError, match=r"download\.ucf50\.classes: unknown class\(es\) Dancing"):
        ucf50.collect(params(url, classes=["Dancing", "YoYo"]), tmp_path / "raw")
    with pytest.raises(UserError, match="available: BaseballPitch, JumpingJack, YoYo"):
        ucf50.collect(params(url, classes=["Dancing"]), tmp_path / "raw")


def test_failed_download_is_a_clear_error(server, tmp_path: Path) -> None:
    url = server.add("/UCF50.rar", Route(statuses=[404]))
    with pytest.raises(UserError, match=r"download\.ucf50\.url .*http_404"):
        ucf50.collect(params(url), tmp_path / "raw")


def test_escaping_entry_refuses_the_archive(server, members, tmp_path: Path) -> None:
    hostile = {**members, "UCF50/../../evil.avi": b"evil"}
    url = server.add("/UCF50.rar", Route(rar_bytes(tmp_path, hostile)))
    out_dir = tmp_path / "raw"
    with pytest.raises(UserError, match=r"download\.ucf50\.url .*unsafe"):
        ucf50.collect(params(url), out_dir)
    assert not (out_dir / "videos").exists()
    assert not (tmp_path / "evil.avi").exists()


def test_bad_caption_template_fails_before_downloading(server, tmp_path: Path) -> None:
    url = server.add("/UCF50.rar", Route(b"never fetched"))
    with pytest.raises(UserError, match=r"download\.ucf50\.caption_template"):
        ucf50.collect(params(url, caption_template="a {person} doing {name}"), tmp_path)
    assert server.count("/UCF50.rar") == 0


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("JumpingJack", "jumping jack"),
        ("YoYo", "yo yo"),
        ("TaiChi", "tai chi"),
        ("Skiing", "skiing"),
    ],
)
def test_class_words(label: str, words: str) -> None:
    assert ucf50.class_words(label) == words


def files_under(folder: Path) -> list[str]:
    """Everything below ``folder`` that is not a folder, links and FIFOs included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def test_special_files_become_failed_rows_and_only_files_are_written(
    server, tmp_path: Path
) -> None:
    clip = "UCF50/Jump/v_Jump_g{:02d}_c01.avi".format
    special = {
        clip(2): tarfile.FIFOTYPE,
        clip(3): tarfile.CHRTYPE,
        clip(4): tarfile.BLKTYPE,
        clip(5): tarfile.LNKTYPE,
    }
    body = make_tar(tmp_path / "a.tar", {clip(1): b"real"}, {clip(6): "/etc/passwd"}, special)
    url = server.add("/UCF50.rar", Route(body.read_bytes()))
    out_dir = tmp_path / "raw"
    for _ in range(2):  # the rerun reads the same archive and gives the same rows
        result = ucf50.collect(params(url), out_dir)
        statuses = {row.clip_id: (row.status, row.path) for row in result.rows}
        assert statuses == {
            "v_Jump_g01_c01": ("ok", f"videos/{clip(1)}"),
            "v_Jump_g02_c01": ("failed:fifo", ""),
            "v_Jump_g03_c01": ("failed:char_device", ""),
            "v_Jump_g04_c01": ("failed:block_device", ""),
            "v_Jump_g05_c01": ("failed:hardlink", ""),
            "v_Jump_g06_c01": ("failed:symlink", ""),
        }
        assert files_under(out_dir) == [f"videos/{clip(1)}"]


def test_a_name_listed_twice_is_one_failed_row_on_every_run(server, tmp_path: Path) -> None:
    path = tmp_path / "twice.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as handle:
        handle.writestr("UCF50/Jump/v_Jump_g01_c01.avi", b"first")
        handle.writestr("UCF50/Jump/v_Jump_g01_c01.avi", b"second")
        handle.writestr("UCF50/Jump/v_Jump_g02_c01.avi", b"fine")
    url = server.add("/UCF50.rar", Route(path.read_bytes()))
    for _ in range(2):
        result = ucf50.collect(params(url), tmp_path / "raw")
        assert [(row.clip_id, row.status) for row in result.rows] == [
            ("v_Jump_g01_c01", "failed:duplicate_entry"),
            ("v_Jump_g02_c01", "ok"),
        ]


def test_extraction_over_budget_stops_with_the_param_and_keeps_nothing(
    server, tmp_path: Path
) -> None:
    sizes = {f"UCF50/Jump/v_Jump_g0{i}_c01.avi": 3_000_000 for i in (1, 2)}
    url = server.add("/UCF50.rar", Route(make_zip_bomb(tmp_path / "b.zip", sizes).read_bytes()))
    out_dir = tmp_path / "raw"
    with pytest.raises(UserError, match=r"download\.ucf50\.max_file_bytes.*removed what"):
        ucf50.collect(params(url, max_file_bytes=1_000_000), out_dir)
    with pytest.raises(UserError, match=r"download\.ucf50\.max_total_bytes"):
        ucf50.collect(params(url, max_total_bytes=5_000_000), out_dir)
    assert files_under(out_dir) == []


def test_expected_sha256_is_checked_once_and_a_mismatch_deletes(
    server, members, tmp_path: Path
) -> None:
    body = rar_bytes(tmp_path, members)
    url = server.add("/UCF50.rar", Route(body))
    digest = hashlib.sha256(body).hexdigest()
    with pytest.raises(UserError, match=r"download\.ucf50\.expected_sha256: .* was deleted"):
        ucf50.collect(params(url, expected_sha256="0" * 64), tmp_path / "raw")
    assert not download_path(url).exists()
    result = ucf50.collect(params(url, expected_sha256=digest), tmp_path / "raw")
    assert len(result.rows) == len(members)
    assert ucf50.digest_path(download_path(url)).read_text() == digest
    assert server.count("/UCF50.rar") == 2  # the mismatch forced one fresh download


@pytest.mark.parametrize("honour_if_range", [True, False])
def test_archive_changed_between_runs_restarts_instead_of_splicing(
    server, members, tmp_path: Path, honour_if_range: bool
) -> None:
    """Whether the server answers the stale If-Range with the whole new archive or (ignoring
    it) with a 206 tail of it, the archive on disk is the new one, not a splice."""
    old, new = rar_bytes(tmp_path, members), os.urandom(10)
    new = rar_bytes(tmp_path, {**members, "UCF50/YoYo/v_YoYo_g09_c01.avi": new})
    route = Route(new, headers={"ETag": '"new"'}, honour_if_range=honour_if_range)
    url = server.add("/UCF50.rar", route)
    download_path(url).parent.mkdir(parents=True)
    part_path(download_path(url)).write_bytes(old[: len(old) // 2])
    record_path(download_path(url)).write_text('"old"')
    digest = hashlib.sha256(new).hexdigest()
    result = ucf50.collect(params(url, expected_sha256=digest), tmp_path / "raw")
    assert server.if_ranges("/UCF50.rar")[0] == '"old"'
    assert download_path(url).read_bytes() == new
    assert len(result.rows) == len(members) + 1


def test_an_archive_that_keeps_changing_while_resuming_names_the_url(
    server, members, tmp_path: Path
) -> None:
    """Mirrors with different ETags behind one URL, If-Range ignored, bodies cut short: the
    restart from zero is spent and the second mismatch is an error saying so."""
    body = rar_bytes(tmp_path, members)
    etags = ['"B"', '"A"', '"B"']
    route = Route(body, honour_if_range=False, truncate=True, etags=etags)
    url = server.add("/UCF50.rar", route)
    download_path(url).parent.mkdir(parents=True)
    part_path(download_path(url)).write_bytes(body[:1000])
    record_path(download_path(url)).write_text('"A"')
    with pytest.raises(UserError, match=rf"{re.escape(url)}: .*resume_mismatch.*ignores If-Range"):
        ucf50.collect(params(url), tmp_path / "raw")
    assert not part_path(download_path(url)).exists()


def test_an_unreadable_archive_names_the_param(server, tmp_path: Path) -> None:
    url = server.add("/UCF50.rar", Route(b"<html>moved</html>" * 50))
    with pytest.raises(UserError, match=r"download\.ucf50\.url .*cannot read the archive"):
        ucf50.collect(params(url), tmp_path / "raw")
