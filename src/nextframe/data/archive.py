"""Listing and extracting chosen members of a RAR, ZIP or TAR archive with a real tool.

Python has no RAR decoder, so archives go through ``bsdtar`` (libarchive: reads RAR4,
most RAR5, ZIP and TAR, detecting the format from the content, not the file name) and,
when bsdtar cannot read an archive, ``unar``/``lsar`` (The Unarchiver: the most complete
free RAR reader). Both come from Debian packages installed by ``scripts/setup.sh``;
they run as subprocesses with argument lists, never through a shell.

An archive is untrusted input: before anything is extracted, every entry is listed and
the whole archive is refused if one entry is absolute or climbs out of the target folder
(``../``), and after extraction no extracted path may be a symlink that points outside
the target folder. Member names are passed to bsdtar as escaped patterns and to unar as
indexes, so a name holding ``*`` or ``[`` extracts exactly that file.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from nextframe.errors import UserError

INSTALL_HINT = "install bsdtar (libarchive-tools) or unar: run bash scripts/setup.sh"
_DRIVE = re.compile(r"^[A-Za-z]:")
_PATTERN_CHARS = re.compile(r"([\\*?\[\]])")


def unsafe_reason(name: str) -> str | None:
    """Why extracting entry ``name`` could write outside the target folder, or None."""
    slashed = name.replace("\\", "/")
    if slashed.startswith("/") or _DRIVE.match(slashed):
        return "absolute path"
    normalised = posixpath.normpath(slashed)
    if normalised == ".." or normalised.startswith("../"):
        return "path leaves the target folder"
    return None


def _check_entries(archive: Path, names: list[str]) -> None:
    for name in names:
        reason = unsafe_reason(name)
        if reason:
            raise UserError(
                f"{archive}: refusing to extract anything: entry {name!r} is unsafe ({reason})"
            )


def _available_tools() -> list[str]:
    tools = []
    if shutil.which("bsdtar"):
        tools.append("bsdtar")
    if shutil.which("unar") and shutil.which("lsar"):
        tools.append("unar")
    if not tools:
        raise UserError(f"no archive tool found; {INSTALL_HINT}")
    return tools


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _list_with_bsdtar(archive: Path) -> list[str] | None:
    done = _run(["bsdtar", "-tf", str(archive)])
    return done.stdout.splitlines() if done.returncode == 0 else None


def _lsar_indexes(archive: Path) -> dict[str, int] | None:
    """Entry name -> lsar index (what ``unar -i`` takes)."""
    done = _run(["lsar", "-j", str(archive)])
    if done.returncode != 0:
        return None
    try:
        contents = json.loads(done.stdout)["lsarContents"]
    except (ValueError, KeyError):
        return None
    return {entry["XADFileName"]: int(entry["XADIndex"]) for entry in contents}


def list_members(archive: str | Path) -> list[str]:
    """Every entry name in ``archive``; raises UserError if the archive holds an unsafe one."""
    archive = Path(archive)
    if not archive.is_file():
        raise UserError(f"{archive}: archive not found")
    for tool in _available_tools():
        if tool == "bsdtar":
            names = _list_with_bsdtar(archive)
        else:
            indexes = _lsar_indexes(archive)
            names = None if indexes is None else list(indexes)
        if names is not None:
            _check_entries(archive, names)
            return names
    raise UserError(f"{archive}: cannot read the archive (corrupt, or a format the tools lack)")


def extract(archive: str | Path, members: Sequence[str], dest: str | Path) -> list[Path]:
    """Extract ``members`` of ``archive`` under ``dest``, keeping their paths in the archive.

    Returns the extracted paths. The whole archive is vetted first (``list_members``), so
    a refused archive writes nothing.
    """
    archive, dest = Path(archive), Path(dest)
    listed = set(list_members(archive))
    missing = [name for name in members if name not in listed]
    if missing:
        raise UserError(f"{archive}: no such entries: {', '.join(missing[:5])}")
    if not members:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    paths = [dest / name for name in members]
    for tool in _available_tools():
        error = _extract_with(tool, archive, members, dest)
        if error is None:
            _check_symlinks(paths, dest)
            absent = [str(path) for path in paths if not path.exists() and not path.is_symlink()]
            if not absent:
                return paths
            error = f"did not extract {', '.join(absent[:3])}"
        errors.append(f"{tool}: {error}")
    raise UserError(f"{archive}: extraction failed ({'; '.join(errors)})")


def _extract_with(tool: str, archive: Path, members: Sequence[str], dest: Path) -> str | None:
    """Run one tool; the error text on failure, None on success."""
    if tool == "unar":
        indexes = _lsar_indexes(archive)
        if indexes is None or any(name not in indexes for name in members):
            return "lsar cannot list the archive under the same names"
        wanted = [str(indexes[name]) for name in members]
        done = _run(["unar", "-q", "-f", "-D", "-i", "-o", str(dest), str(archive), *wanted])
        return None if done.returncode == 0 else done.stderr.strip() or done.stdout.strip()
    # a names file keeps the command line short for thousands of members
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as names_file:
        names_file.write("".join(_PATTERN_CHARS.sub(r"\\\1", name) + "\n" for name in members))
        names_file.flush()
        command = ["bsdtar", "-xf", str(archive), "-C", str(dest), "--no-same-owner"]
        done = _run([*command, "-T", names_file.name])
    return None if done.returncode == 0 else done.stderr.strip()


def _check_symlinks(paths: list[Path], dest: Path) -> None:
    """No extracted path, nor a folder on the way to it, may link outside ``dest``."""
    root = dest.resolve()
    for path in paths:
        for candidate in (path, *path.parents):
            if candidate == dest or dest not in candidate.parents:
                break
            if candidate.is_symlink() and not candidate.resolve().is_relative_to(root):
                target = candidate.readlink()
                candidate.unlink()
                raise UserError(
                    f"refusing archive entry {candidate}: a symlink to {target}, outside {dest}"
                )
