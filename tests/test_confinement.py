"""Nothing is written outside the output folder and the download cache.

The network sources run with the working directory, ``$HOME`` and ``$TMPDIR`` (Python's
and the archive tools') pointed at empty folders, against hostile inputs (a FIFO and a
link in the archive, a redirect to ``file://``, an HTML page instead of a GIF), and each
of those folders must still be empty afterwards.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import pytest
from http_server import LocalServer, Route
from test_archive import make_tar
from test_tgif import gif_bytes, moving, publish
from test_tgif import params as tgif_params
from test_ucf50 import FAST

from nextframe.config import DownloadParams, Ucf50Params
from nextframe.data import tgif, ucf50


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    folders = [tmp_path / name for name in ("cwd", "home", "tmp")]
    for folder in folders:
        folder.mkdir()
    monkeypatch.chdir(folders[0])
    monkeypatch.setenv("HOME", str(folders[1]))
    monkeypatch.setenv("TMPDIR", str(folders[2]))
    monkeypatch.setattr(tempfile, "tempdir", str(folders[2]))
    monkeypatch.setenv("NEXTFRAME_CACHE", str(tmp_path / "cache"))
    return folders


def contents(folders: list[Path]) -> list[str]:
    return sorted(str(path) for folder in folders for path in folder.rglob("*"))


def test_ucf50_writes_only_its_output_and_the_cache(watched, tmp_path: Path) -> None:
    clip = "UCF50/Jump/v_Jump_g{:02d}_c01.avi".format
    body = make_tar(
        tmp_path / "a.tar", {clip(1): b"real"}, {clip(2): "/etc"}, {clip(3): tarfile.FIFOTYPE}
    ).read_bytes()
    with LocalServer() as server:
        url = server.add("/UCF50.rar", Route(body))
        result = ucf50.collect(
            DownloadParams(source="ucf50", ucf50=Ucf50Params(url=url, http=FAST)), tmp_path / "raw"
        )
    assert [row.status for row in result.rows] == ["ok", "failed:symlink", "failed:fifo"]
    assert contents(watched) == []


def test_tgif_writes_only_its_output_and_the_cache(watched, tmp_path: Path) -> None:
    with LocalServer() as server:
        gifs = {
            "good": Route(gif_bytes(tmp_path, moving(6), "good")),
            "evil": Route(statuses=[302], headers={"Location": "file:///etc/passwd"}),
            "html": Route(b"<html>gone</html>"),
        }
        published = publish(server, gifs, {})
        result = tgif.collect(tgif_params(published), tmp_path / "raw")
    assert sorted(row.status for row in result.rows) == [
        "failed:not_a_gif",
        "failed:redirect_not_http",
        "ok",
    ]
    assert contents(watched) == []
