"""Archive listing/extraction through bsdtar and unar, with hostile archives.

There is no RAR encoder here, so most archives are ZIP and TAR files written by Python
(both tools detect the format from the content, so they run the same commands and
checks), plus a minimal RAR4 written by hand (stored members, Windows host, backslash
separators, as UCF50.rar was made) so that both tools' RAR readers are exercised too.
"""

from __future__ import annotations

import io
import shutil
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from nextframe.data import archive
from nextframe.errors import UserError

TOOLS = [
    tool
    for tool, binary in (("bsdtar", "bsdtar"), ("unar", "lsar"))
    if shutil.which(binary) and shutil.which(tool)
]
MEMBERS = {
    "UCF50/Jump/v_Jump_g01_c01.avi": b"first",
    "UCF50/Jump/v_Jump_g02_c01.avi": b"second",
    "UCF50/Run/we[i]rd*name.avi": b"glob characters",
    "UCF50/Run/we_i_rdXname.avi": b"would match the glob",
}


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return path


def make_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w") as handle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            handle.addfile(info)
    return path


def _rar_block(head_type: int, flags: int, body: bytes) -> bytes:
    """A RAR4 block: CRC16 (low half of CRC32), type, flags, size, body."""
    rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest


def make_rar4(path: Path, members: dict[str, bytes]) -> Path:
    """A RAR 4 archive of stored (uncompressed) files, names with Windows separators."""
    blocks = [b"Rar!\x1a\x07\x00", _rar_block(0x73, 0, struct.pack("<HI", 0, 0))]
    for name, data in members.items():
        encoded = name.replace("/", "\\").encode()
        header = struct.pack(
            "<IIBIIBBHI",
            len(data),  # packed size
            len(data),  # unpacked size
            2,  # host OS: Windows
            zlib.crc32(data),
            0x5A210000,  # DOS date/time
            20,  # version needed
            0x30,  # method: store
            len(encoded),
            0x20,  # attributes: archive
        )
        blocks.append(_rar_block(0x74, 0x8000, header + encoded) + data)
    blocks.append(_rar_block(0x7B, 0x4000, b""))
    path.write_bytes(b"".join(blocks))
    return path


@pytest.fixture(params=TOOLS)
def only_tool(request, monkeypatch) -> str:
    """Run a test once per installed tool, with the other one hidden."""
    monkeypatch.setattr(archive, "_available_tools", lambda: [request.param])
    return request.param


@pytest.mark.parametrize("maker", [make_zip, make_tar, make_rar4])
def test_extracts_exactly_the_selected_members(maker, only_tool: str, tmp_path: Path) -> None:
    path = maker(tmp_path / "UCF50.rar", MEMBERS)
    assert sorted(archive.list_members(path)) == sorted(MEMBERS)
    wanted = ["UCF50/Jump/v_Jump_g02_c01.avi", "UCF50/Run/we[i]rd*name.avi"]
    dest = tmp_path / "out"
    extracted = archive.extract(path, wanted, dest)
    assert extracted == [dest / name for name in wanted]
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == sorted(wanted)
    assert (dest / wanted[1]).read_bytes() == b"glob characters"


@pytest.mark.parametrize("maker", [make_zip, make_rar4])
@pytest.mark.parametrize("bad", ["../evil.txt", "UCF50/../../evil.txt", "/abs.txt"])
def test_unsafe_entry_refuses_the_archive_before_writing(
    maker, bad: str, only_tool: str, tmp_path: Path
) -> None:
    path = maker(tmp_path / "bad.archive", {"UCF50/ok.avi": b"ok", bad: b"evil"})
    dest = tmp_path / "deep" / "out"
    with pytest.raises(UserError, match="unsafe"):
        archive.extract(path, ["UCF50/ok.avi"], dest)
    assert not dest.exists()
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_pointing_outside_is_removed_and_refused(only_tool: str, tmp_path: Path) -> None:
    path = make_tar(tmp_path / "links.tar", {"UCF50/a.avi": b"a"}, links={"UCF50/link": "/etc"})
    dest = tmp_path / "out"
    with pytest.raises(UserError, match="symlink"):
        archive.extract(path, ["UCF50/a.avi", "UCF50/link"], dest)
    assert not (dest / "UCF50" / "link").is_symlink()


def test_unknown_member_is_an_error(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "a.zip", MEMBERS)
    with pytest.raises(UserError, match="no such entries"):
        archive.extract(path, ["UCF50/missing.avi"], tmp_path / "out")


def test_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "UCF50.rar"
    path.write_bytes(b"<html>not an archive</html>" * 10)
    with pytest.raises(UserError, match="cannot read"):
        archive.list_members(path)


def test_no_tool_installed_says_how_to_fix(monkeypatch, tmp_path: Path) -> None:
    path = make_zip(tmp_path / "a.zip", MEMBERS)
    monkeypatch.setattr(archive.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match=r"scripts/setup\.sh"):
        archive.list_members(path)


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [
        ("UCF50/a.avi", False),
        ("UCF50/./b/../a.avi", False),
        ("../a", True),
        ("a/../../b", True),
        ("/etc/passwd", True),
        ("C:\\Windows\\x", True),
        ("..\\x", True),
    ],
)
def test_unsafe_reason(name: str, unsafe: bool) -> None:
    assert (archive.unsafe_reason(name) is not None) == unsafe
