"""What a resumable ``.part`` was cut from, so that a resume can prove it continues it.

A Range request guarded by ``If-Range`` is only as safe as the server's If-Range: a server
or proxy that ignores it answers 206 with bytes of the *new* file, and appending them
splices two versions. So beside the ``.part`` we keep a record of the response that
started it (its validator: a strong ETag, else Last-Modified; and the file's total length
when the server said it) and compare both with every 206 before a byte of it is written.

The record is a text file: the validator on the first line, the total length (digits) on
the second. A record of one line (written before totals were kept) still resumes, on the
validator alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PartRecord:
    validator: str
    total: int | None  # bytes in the whole file; None when the server did not say


def record_path(dest: Path) -> Path:
    """Where the record of ``dest``'s ``.part`` is kept."""
    return dest.with_name(dest.name + ".part.validator")


def validator(headers: Mapping[str, str]) -> str:
    """A strong ETag, else Last-Modified, else "" (a weak ETag cannot guard a byte range)."""
    etag = headers.get("ETag", "")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified", "")


def full_length(headers: Mapping[str, str]) -> int | None:
    """The total length a 200 announces: its Content-Length, unless the body is encoded."""
    if headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return None
    length = headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def save_record(dest: Path, headers: Mapping[str, str]) -> None:
    """Record what the 200 that starts ``dest``'s ``.part`` was; without a validator, nothing
    is recorded and the ``.part`` will not be resumed."""
    path = record_path(dest)
    tag = validator(headers)
    if not tag:
        path.unlink(missing_ok=True)
        return
    total = full_length(headers)
    path.write_text(tag + ("" if total is None else f"\n{total}") + "\n", encoding="utf-8")


def load_record(dest: Path) -> PartRecord | None:
    """The record beside ``dest``'s ``.part``; None if there is none or it is unreadable."""
    try:
        lines = record_path(dest).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or not lines[0]:
        return None
    total = lines[1] if len(lines) > 1 else ""
    return PartRecord(lines[0], int(total) if total.isdigit() else None)


def mismatch(record: PartRecord, headers: Mapping[str, str], offset: int) -> str:
    """Why a 206 does not continue the ``.part`` of ``offset`` bytes ("" when it does).

    It must come from the same version of the file (same validator, same total length)
    and start exactly at ``offset``, unencoded (Range offsets count stored bytes).
    """
    content_range = headers.get("Content-Range", "")
    unit, _, spec = content_range.partition(" ")
    span, _, total = spec.partition("/")
    start = span.split("-", 1)[0]
    if unit != "bytes" or not start.isdigit():
        return f"unusable Content-Range {content_range!r}"
    if int(start) != offset:
        return f"Content-Range starts at {start}, not at the {offset} bytes kept"
    if headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return "an encoded 206 (its offsets are not the stored bytes)"
    tag = validator(headers)
    if tag != record.validator:
        return f"validator {tag or 'missing'} differs from {record.validator} of the kept bytes"
    if record.total is not None and total != str(record.total):
        return f"total length {total} differs from {record.total} of the kept bytes"
    return ""
