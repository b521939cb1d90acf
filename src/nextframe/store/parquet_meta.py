"""Just enough of parquet's Thrift compact protocol to parse a data page header.

A vector column written by ``parquet_writer`` has, in every row group, one data page whose
values (PLAIN: raw little-endian numbers) end the column chunk. Reading a row is reading
``row_bytes`` at a known offset. ``VectorColumn.locate`` checks that layout from the
footer and each chunk's page header (parsed here) and refuses any other, so a table from
another writer is an error, never wrong numbers.
"""

from __future__ import annotations

PAGE_HEADER_BYTES = 4096  # read to parse a page header (a few dozen bytes here)
DATA_PAGE, DATA_PAGE_V2, PLAIN = 0, 3, 0  # parquet.thrift: PageType, Encoding


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buffer[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _thrift_value(buffer: bytes, pos: int, kind: int) -> tuple[object, int]:
    """One value of Thrift compact type ``kind`` (maps do not occur in page headers)."""
    if kind in (1, 2):  # booleans live in the field header
        return kind == 1, pos
    if kind == 3:
        return buffer[pos], pos + 1
    if kind in (4, 5, 6):
        value, pos = _varint(buffer, pos)
        return _zigzag(value), pos
    if kind == 7:
        return None, pos + 8
    if kind == 8:
        size, pos = _varint(buffer, pos)
        return bytes(buffer[pos : pos + size]), pos + size
    if kind in (9, 10):
        head, pos = buffer[pos], pos + 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(buffer, pos)
        items = []
        for _ in range(size):
            if element in (1, 2):  # booleans in lists are one byte each
                items.append(buffer[pos] == 1)
                pos += 1
            else:
                item, pos = _thrift_value(buffer, pos, element)
                items.append(item)
        return items, pos
    if kind == 12:
        return thrift_struct(buffer, pos)
    raise ValueError(f"unexpected Thrift compact type {kind}")


def thrift_struct(buffer: bytes, pos: int) -> tuple[dict[int, object], int]:
    """A Thrift compact struct as {field id: value}, and the position after it."""
    fields: dict[int, object] = {}
    last = 0
    while True:
        head, pos = buffer[pos], pos + 1
        if head == 0:
            return fields, pos
        delta, kind = head >> 4, head & 0x0F
        if delta:
            last += delta
        else:
            value, pos = _varint(buffer, pos)
            last = _zigzag(value)
        fields[last], pos = _thrift_value(buffer, pos, kind)
