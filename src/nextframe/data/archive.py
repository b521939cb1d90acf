"""Listing and extracting chosen members of a RAR, ZIP or TAR archive, treated as hostile.

Python has no RAR decoder, so archives are read with libarchive (through ``libarchive-c``:
the library behind ``bsdtar``; reads RAR4, most RAR5, ZIP, TAR and more, detecting the
format from the content, not the file name) and, only when libarchive cannot read the
archive at all, with ``lsar``/``unar`` (The Unarchiver: the most complete free RAR
reader), run as a subprocess with an argument list, never through a shell. Both come from
Debian packages installed by ``scripts/setup.sh``.

What an archive cannot do here, whatever it holds:

- write outside the target folder: before anything is extracted, every entry is listed
  and the whole archive is refused if one name is absolute or climbs out (``../``);
- write anything but a regular file: links, devices, FIFOs and sockets are reported by
  ``refusals`` (their kind is the reason) and never extracted; a name listed twice is
  refused too (``duplicate_entry``), since which of the two lands is up to the tool;
- write more than its ``Budget``: bytes per file and in all, counted as they are written
  (libarchive) or watched on disk (unar), not taken from headers that can lie; crossing it
  stops extraction, removes the target folder and raises ``BudgetExceeded``;
- get past a refusal by switching tools: unar is used only for archives libarchive cannot
  list, and the same checks apply to it.

With libarchive every byte goes through our own ``open(O_EXCL | O_NOFOLLOW)``, so the
tool never decides what kind of file is created. Members are picked by exact name, so a
name holding ``*`` or ``[`` extracts exactly that file.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nextframe.errors import UserError

INSTALL_HINT = "install libarchive (libarchive-tools) or unar: run bash scripts/setup.sh"
FILE = "file"
DUPLICATE = "duplicate_entry"
WATCH_INTERVAL_S = 0.05  # how often the size of unar's output is checked against the budget
_DRIVE = re.compile(r"^[A-Za-z]:")
# lsar's flag for each kind of entry that is not a regular file, checked in this order
_LSAR_KINDS = (
    ("XADIsHardLink", "hardlink"),
    ("XADIsLink", "symlink"),
    ("XADIsDirectory", "directory"),
    ("XADIsFIFO", "fifo"),
    ("XADIsCharacterDevice", "char_device"),
    ("XADIsBlockDevice", "block_device"),
)


@dataclass(frozen=True)
class Entry:
    """One archive entry: ``kind`` is ``file`` or what it is instead (``symlink``, ...)."""

    name: str
    kind: str
    size: int  # as the header declares it; 0 when the archive does not say
    index: int  # position in the archive (what ``unar -i`` takes)


@dataclass(frozen=True)
class Budget:
    """Bytes an extraction may write; the keys name the params that set them in errors."""

    max_file_bytes: int
    max_total_bytes: int
    file_key: str = "max_file_bytes"
    total_key: str = "max_total_bytes"

    def check(self, name: str, file_bytes: int, total_bytes: int) -> None:
        if file_bytes > self.max_file_bytes:
            raise BudgetExceeded(
                f"entry {name} holds more than {self.max_file_bytes} bytes ({self.file_key})"
            )
        if total_bytes > self.max_total_bytes:
            raise BudgetExceeded(
                f"the selected entries hold more than {self.max_total_bytes} bytes "
                f"({self.total_key})"
            )


class BudgetExceeded(UserError):
    """An extraction would write more than its budget; nothing of it is kept."""


def unsafe_reason(name: str) -> str | None:
    """Why extracting entry ``name`` could write outside the target folder, or None."""
    slashed = name.replace("\\", "/")
    if slashed.startswith("/") or _DRIVE.match(slashed):
        return "absolute path"
    normalised = posixpath.normpath(slashed)
    if normalised == ".." or normalised.startswith("../"):
        return "path leaves the target folder"
    return None


def refusals(entries: Sequence[Entry]) -> dict[str, str]:
    """Entry name -> why it cannot be extracted as a file, for every name that cannot."""
    counts = Counter(entry.name for entry in entries)
    refused = {entry.name: entry.kind for entry in entries if entry.kind != FILE}
    refused.update({name: DUPLICATE for name, count in counts.items() if count > 1})
    return refused


def _available_tools() -> list[str]:
    tools = []
    if _libarchive() is not None:
        tools.append("libarchive")
    if shutil.which("unar") and shutil.which("lsar"):
        tools.append("unar")
    if not tools:
        raise UserError(f"no archive reader found; {INSTALL_HINT}")
    return tools


def _libarchive():
    """The libarchive-c module, or None when it or the C library is missing."""
    try:
        import libarchive
    except (ImportError, OSError):  # OSError: the package is there, libarchive.so is not
        return None
    return libarchive


def _kind(entry) -> str:
    """A libarchive entry's kind; hard links first: libarchive gives them no file type."""
    for kind, flag in (
        ("hardlink", entry.islnk),
        ("symlink", entry.issym),
        ("directory", entry.isdir),
        ("fifo", entry.isfifo),
        ("char_device", entry.ischr),
        ("block_device", entry.isblk),
        ("socket", entry.issock),
    ):
        if flag:
            return kind
    return FILE if entry.isreg else "unknown_type"


def _entry_name(entry) -> str:
    name = entry.pathname or ""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


def _list_with_libarchive(archive: Path) -> list[Entry] | None:
    libarchive = _libarchive()
    try:
        with libarchive.file_reader(str(archive)) as reader:
            return [
                Entry(_entry_name(entry), _kind(entry), entry.size or 0, index)
                for index, entry in enumerate(reader)
            ]
    except libarchive.ArchiveError:
        return None


def _list_with_lsar(archive: Path) -> list[Entry] | None:
    done = subprocess.run(["lsar", "-j", str(archive)], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    try:
        contents = json.loads(done.stdout)["lsarContents"]
        return [
            Entry(
                str(item["XADFileName"]),
                next((kind for key, kind in _LSAR_KINDS if item.get(key)), FILE),
                int(item.get("XADFileSize", 0)),
                int(item["XADIndex"]),
            )
            for item in contents
        ]
    except (ValueError, KeyError, TypeError):
        return None


def _read_listing(archive: Path) -> tuple[str, list[Entry]]:
    """The first tool that can read ``archive`` and its entries; refuses unsafe names."""
    if not archive.is_file():
        raise UserError(f"{archive}: archive not found")
    for tool in _available_tools():
        lister = _list_with_libarchive if tool == "libarchive" else _list_with_lsar
        entries = lister(archive)
        if entries is not None:
            for entry in entries:
                reason = unsafe_reason(entry.name)
                if reason:
                    raise UserError(
                        f"{archive}: refusing to extract anything: entry {entry.name!r} "
                        f"is unsafe ({reason})"
                    )
            return tool, entries
    raise UserError(f"{archive}: cannot read the archive (corrupt, or a format the tools lack)")


def list_entries(archive: str | Path) -> list[Entry]:
    """Every entry of ``archive``; raises UserError if it holds an unsafe name."""
    return _read_listing(Path(archive))[1]


def extract(
    archive: str | Path, members: Sequence[str], dest: str | Path, budget: Budget
) -> list[Path]:
    """Extract the regular files ``members`` of ``archive`` into the new folder ``dest``.

    Returns their paths (``dest/<name>``). The archive is vetted first, so a refused one
    writes nothing; ``dest`` must not exist yet, and on any failure it is removed whole.
    """
    archive, dest = Path(archive), Path(dest)
    tool, entries = _read_listing(archive)
    chosen = _chosen_entries(archive, entries, members, budget)
    dest.mkdir(parents=True)
    try:
        if tool == "libarchive":
            _extract_with_libarchive(archive, chosen, dest, budget)
        else:
            _extract_with_unar(archive, chosen, dest, budget)
        _check_written(archive, chosen, dest)
    except BaseException:  # KeyboardInterrupt too: nothing partial may stay
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return [dest / entry.name for entry in chosen]


def _chosen_entries(
    archive: Path, entries: list[Entry], members: Sequence[str], budget: Budget
) -> list[Entry]:
    """The entries to write, after refusing unknown, special, duplicate and oversized ones."""
    by_name = {entry.name: entry for entry in entries}
    missing = [name for name in members if name not in by_name]
    if missing:
        raise UserError(f"{archive}: no such entries: {', '.join(missing[:5])}")
    refused = refusals(entries)
    bad = [f"{name} ({refused[name]})" for name in members if name in refused]
    if bad:
        raise UserError(f"{archive}: not regular files, not extracted: {', '.join(bad[:5])}")
    chosen = [by_name[name] for name in dict.fromkeys(members)]
    declared = 0
    for entry in chosen:
        declared += entry.size
        budget.check(entry.name, entry.size, declared)
    return chosen


def _open_new(path: Path):
    """A new regular file for writing; refuses to follow or replace anything already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    return os.fdopen(os.open(path, flags, 0o644), "wb")


def _extract_with_libarchive(
    archive: Path, chosen: list[Entry], dest: Path, budget: Budget
) -> None:
    wanted = {entry.index for entry in chosen}
    libarchive = _libarchive()
    total = 0
    try:
        with libarchive.file_reader(str(archive)) as reader:
            for index, entry in enumerate(reader):
                if index not in wanted:
                    continue
                name = _entry_name(entry)
                with _open_new(dest / name) as handle:
                    written = 0
                    for block in entry.get_blocks():
                        written += len(block)
                        total += len(block)
                        budget.check(name, written, total)
                        handle.write(block)
    except libarchive.ArchiveError as exc:
        raise UserError(f"{archive}: extraction failed ({exc.msg})") from None
    except OSError as exc:
        raise UserError(f"{archive}: could not write an entry under {dest} ({exc})") from None


def _extract_with_unar(archive: Path, chosen: list[Entry], dest: Path, budget: Budget) -> None:
    """unar writes the files itself, so its output is watched and it is killed over budget
    (or on Ctrl-C, so that it cannot write into a folder being removed)."""
    indexes = [str(entry.index) for entry in chosen]
    command = ["unar", "-q", "-f", "-D", "-o", str(dest), str(archive), "-i", *indexes]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    with process:
        try:
            errors = _watch(process, dest, budget)
        except BaseException:
            process.kill()
            raise
    if process.returncode != 0:
        raise UserError(f"{archive}: extraction failed (unar: {errors.strip()})")


def _watch(process: subprocess.Popen, dest: Path, budget: Budget) -> str:
    """Wait for ``process``, checking what it wrote under ``dest``; returns its stderr."""
    while True:
        try:
            _, errors = process.communicate(timeout=WATCH_INTERVAL_S)
        except subprocess.TimeoutExpired:
            _check_usage(dest, budget)
            continue
        _check_usage(dest, budget)
        return errors


def _check_usage(dest: Path, budget: Budget) -> None:
    """Raise ``BudgetExceeded`` if the files under ``dest`` are over ``budget``."""
    total = 0
    for path, size in _file_sizes(dest):
        total += size
        budget.check(str(path.relative_to(dest)), size, total)


def _file_sizes(folder: Path) -> Iterator[tuple[Path, int]]:
    """(path, size) of everything under ``folder`` but real folders, links not followed."""
    for root, folders, names in os.walk(folder):
        linked = [name for name in folders if Path(root, name).is_symlink()]
        for name in [*names, *linked]:
            path = Path(root, name)
            try:
                yield path, path.lstat().st_size
            except FileNotFoundError:  # renamed by the tool between listing and stat
                continue


def _check_written(archive: Path, chosen: list[Entry], dest: Path) -> None:
    """Exactly the chosen entries landed, each as a regular file, and nothing else."""
    expected = {dest / entry.name for entry in chosen}
    for path, _ in _file_sizes(dest):
        if path not in expected or not stat.S_ISREG(path.lstat().st_mode):
            raise UserError(f"{archive}: extraction wrote {path}, which was not asked for")
    absent = sorted(str(path) for path in expected if not path.is_file())
    if absent:
        raise UserError(f"{archive}: extraction did not write {', '.join(absent[:3])}")
