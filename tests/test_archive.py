"""Archive listing/extraction through bsdtar and unar, with hostile archives.

There is no RAR encoder here, so most archives are ZIP and TAR files written by Python
(both readers detect the format from the content, so they run the same code and
checks), plus a minimal RAR4 written by hand (stored members, Windows host, backslash
separators, as UCF50.rar was made) so that both readers' RAR support is exercised too.
Hostile archives are built here too: special files, duplicate names, bombs, liars.
"""

from __future__ import annotations

import io
import shutil
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from nextframe.data import archive
from nextframe.errors import UserError

TOOLS = ["libarchive"] if archive._libarchive() else []
TOOLS += ["unar"] if shutil.which("unar") and shutil.which("lsar") else []
ROOMY = archive.Budget(max_file_bytes=10**9, max_total_bytes=10**9)
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


def make_tar(
    path: Path,
    members: dict[str, bytes],
    links: dict[str, str] | None = None,
    special: dict[str, bytes] | None = None,
) -> Path:
    """A TAR of regular ``members``, symlinks ``links`` (name -> target) and ``special``
    entries (name -> tarfile type: FIFOTYPE, CHRTYPE, BLKTYPE, LNKTYPE, ...)."""
    with tarfile.open(path, "w") as handle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            handle.addfile(info)
        for name, kind in (special or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = next(iter(members)) if kind == tarfile.LNKTYPE else ""
            info.devmajor, info.devminor = 1, 3  # /dev/null's numbers, for the devices
            handle.addfile(info)
    return path


def make_zip_bomb(path: Path, sizes: dict[str, int]) -> Path:
    """A ZIP of zero-filled members: ``sizes`` bytes each, a thousandth of that packed."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for name, size in sizes.items():
            handle.writestr(name, bytes(size))
    return path


def make_lying_zip(path: Path, name: str, size: int, declared: int) -> Path:
    """A ZIP whose one member unpacks to ``size`` bytes but whose headers say ``declared``."""
    data = bytearray(make_zip_bomb(path, {name: size}).read_bytes())
    struct.pack_into("<I", data, 22, declared)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # central directory: the same
    path.write_bytes(bytes(data))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


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
    assert sorted(entry.name for entry in archive.list_entries(path)) == sorted(MEMBERS)
    wanted = ["UCF50/Jump/v_Jump_g02_c01.avi", "UCF50/Run/we[i]rd*name.avi"]
    dest = tmp_path / "out"
    extracted = archive.extract(path, wanted, dest, ROOMY)
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
        archive.extract(path, ["UCF50/ok.avi"], dest, ROOMY)
    assert not dest.exists()
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


SPECIAL = {
    "UCF50/Jump/v_Jump_g03_c01.avi": tarfile.FIFOTYPE,
    "UCF50/Jump/v_Jump_g04_c01.avi": tarfile.CHRTYPE,
    "UCF50/Jump/v_Jump_g05_c01.avi": tarfile.BLKTYPE,
    "UCF50/Jump/v_Jump_g06_c01.avi": tarfile.LNKTYPE,
}
SPECIAL_REASONS = {
    "UCF50/Jump/v_Jump_g03_c01.avi": "fifo",
    "UCF50/Jump/v_Jump_g04_c01.avi": "char_device",
    "UCF50/Jump/v_Jump_g05_c01.avi": "block_device",
    "UCF50/Jump/v_Jump_g06_c01.avi": "hardlink",
    "UCF50/Jump/v_Jump_g07_c01.avi": "symlink",
}


def special_tar(path: Path) -> Path:
    links = {"UCF50/Jump/v_Jump_g07_c01.avi": "/etc/passwd"}
    return make_tar(path, {"UCF50/Jump/v_Jump_g01_c01.avi": b"real"}, links, SPECIAL)


def test_special_files_are_named_by_kind_and_never_written(only_tool: str, tmp_path: Path) -> None:
    path = special_tar(tmp_path / "special.tar")
    assert archive.refusals(archive.list_entries(path)) == SPECIAL_REASONS
    for name, kind in SPECIAL_REASONS.items():
        dest = tmp_path / f"out-{kind}"
        with pytest.raises(UserError, match=rf"not regular files.*\({kind}\)"):
            archive.extract(path, ["UCF50/Jump/v_Jump_g01_c01.avi", name], dest, ROOMY)
        assert not dest.exists()
    dest = tmp_path / "out"
    archive.extract(path, ["UCF50/Jump/v_Jump_g01_c01.avi"], dest, ROOMY)
    assert leftovers(dest) == ["UCF50/Jump/v_Jump_g01_c01.avi"]


def test_a_name_listed_twice_is_refused(only_tool: str, tmp_path: Path) -> None:
    path = tmp_path / "twice.zip"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "w") as handle:
        handle.writestr("UCF50/a.avi", b"first")
        handle.writestr("UCF50/a.avi", b"second")
        handle.writestr("UCF50/b.avi", b"fine")
    assert archive.refusals(archive.list_entries(path)) == {"UCF50/a.avi": "duplicate_entry"}
    with pytest.raises(UserError, match=r"UCF50/a\.avi \(duplicate_entry\)"):
        archive.extract(path, ["UCF50/a.avi"], tmp_path / "out", ROOMY)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("sizes", "budget", "key"),
    [
        ({"UCF50/a.avi": 30_000_000}, archive.Budget(1_000_000, 10**9, "per_file"), "per_file"),
        (
            {f"UCF50/{i}.avi": 400_000 for i in range(4)},
            archive.Budget(10**9, 1_000_000, total_key="all_files"),
            "all_files",
        ),
    ],
)
def test_bomb_stops_at_the_budget_and_leaves_nothing(
    sizes: dict, budget: archive.Budget, key: str, only_tool: str, tmp_path: Path
) -> None:
    path = make_zip_bomb(tmp_path / "bomb.zip", sizes)
    dest = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(archive.BudgetExceeded, match=key):
        archive.extract(path, list(sizes), dest, budget)
    assert time.monotonic() - started < 10
    assert not dest.exists() and leftovers(tmp_path) == ["bomb.zip"]


def test_a_size_liar_is_caught_by_the_bytes_written(only_tool: str, tmp_path: Path) -> None:
    """The headers say 100 bytes, the data is 30 MB: what counts is what lands on disk."""
    path = make_lying_zip(tmp_path / "liar.zip", "UCF50/a.avi", 30_000_000, declared=100)
    dest = tmp_path / "out"
    with pytest.raises(archive.BudgetExceeded, match="max_file_bytes"):
        archive.extract(path, ["UCF50/a.avi"], dest, archive.Budget(1_000_000, 10**9))
    assert not dest.exists() and leftovers(tmp_path) == ["liar.zip"]


def test_a_refusal_is_final_the_fallback_never_gets_past_it(monkeypatch, tmp_path: Path) -> None:
    if TOOLS != ["libarchive", "unar"]:
        pytest.skip("needs both readers")
    path = make_lying_zip(tmp_path / "liar.zip", "UCF50/a.avi", 30_000_000, declared=100)
    monkeypatch.setattr(archive, "_extract_with_unar", pytest.fail)
    with pytest.raises(archive.BudgetExceeded):
        archive.extract(path, ["UCF50/a.avi"], tmp_path / "out", archive.Budget(1_000_000, 10**9))
    assert not (tmp_path / "out").exists()


def test_unknown_member_is_an_error(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "a.zip", MEMBERS)
    with pytest.raises(UserError, match="no such entries"):
        archive.extract(path, ["UCF50/missing.avi"], tmp_path / "out", ROOMY)


def test_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "UCF50.rar"
    path.write_bytes(b"<html>not an archive</html>" * 10)
    with pytest.raises(UserError, match="cannot read"):
        archive.list_entries(path)


def test_no_tool_installed_says_how_to_fix(monkeypatch, tmp_path: Path) -> None:
    path = make_zip(tmp_path / "a.zip", MEMBERS)
    monkeypatch.setattr(archive.shutil, "which", lambda name: None)
    monkeypatch.setattr(archive, "_libarchive", lambda: None)
    with pytest.raises(UserError, match=r"scripts/setup\.sh"):
        archive.list_entries(path)


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
