"""Streaming reader for Pushshift-style dumps: one JSON record per line, optionally compressed.

A compressed stream cannot be entered in the middle, so a large file is split *logically*: the
decompressed stream is cut into fixed-size blocks and split k of K owns the lines that start in blocks
b with b % K == k. Every split decompresses the whole stream (zstd runs at ~1 GB/s) but only parses its
own lines; skipped blocks cost one `bytes.count(b"\\n")` to keep line numbers exact. Memory is one block
plus one line, whatever the file size.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

import zstandard

from corpus.errors import InputError

# Real Pushshift .zst dumps were written with --long=31.
ZSTD_MAX_WINDOW = 2**31
BLOCK_BYTES = 8 * 2**20
READ_BYTES = 2**20
COMPRESSED_READ_BYTES = 2**16  # ~1 MB once decompressed
DEFAULT_MAX_LINE_BYTES = 16 * 2**20

COMPRESSIONS = {".zst": "zstd", ".zstd": "zstd", ".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}


class DumpError(InputError):
    """A dump that cannot be read to its end (truncated or corrupt stream); names the file."""


def unreadable_dump(path: str, err: OSError) -> DumpError:
    """The error for a dump that cannot be opened (a directory, no permission, gone), naming the file."""
    reason = err.strerror or str(err)
    if isinstance(err, IsADirectoryError):
        reason += f"; name the dumps inside it, e.g. '{path.rstrip('/')}/*'"
    return DumpError(f"{path}: cannot read the dump ({reason})")


def compression_of(path: str) -> str:
    """Compression by file suffix: zstd, gzip, bzip2, xz, or none (.jsonl, .ndjson, .json, no suffix)."""
    lower = path.lower()
    for suffix, name in COMPRESSIONS.items():
        if lower.endswith(suffix):
            return name
    return "none"


class _ZstdReader(io.RawIOBase):
    """zstd decompression that notices truncation (zstandard's stream_reader returns EOF silently) and
    reads across concatenated frames."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._frame = self._decompressor.decompressobj()
        self._pending = memoryview(b"")  # a view, so handing out a piece copies only that piece
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = self._raw.read(COMPRESSED_READ_BYTES)
            if not chunk:
                if self._in_frame:
                    raise DumpError("the stream ends inside a frame")
                return 0
            self._pending = memoryview(self._feed(chunk))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            self._in_frame = True
            out.append(self._frame.decompress(chunk))
            if not self._frame.eof:
                break
            self._in_frame = False
            chunk = self._frame.unused_data
            self._frame = self._decompressor.decompressobj()
        return b"".join(out)


def open_decompressed(raw: BinaryIO, compression: str) -> BinaryIO:
    """Wrap a binary stream in the decompressor for `compression`; reading it yields the records' bytes."""
    if compression == "zstd":
        return io.BufferedReader(_ZstdReader(raw), buffer_size=READ_BYTES)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "bzip2":
        return bz2.BZ2File(raw, mode="rb")
    if compression == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    return raw


# The errors a broken stream raises from each decompressor.
STREAM_ERRORS = (DumpError, EOFError, OSError, zstandard.ZstdError, lzma.LZMAError, zlib.error, ValueError)


class Line(NamedTuple):
    """One record's bytes (without the newline) and its 1-based line number; `too_long` lines carry
    only their first bytes."""

    number: int
    data: bytes
    too_long: bool = False


def _read_block(stream: BinaryIO, size: int) -> bytes:
    parts, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def iter_lines(
    stream: BinaryIO,
    split: int = 0,
    num_splits: int = 1,
    block_bytes: int = BLOCK_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[Line]:
    """The lines of `stream` that start in blocks owned by `split` (block index % num_splits == split).

    Over all splits every line is yielded exactly once, numbered as in the whole file. A line longer than
    `max_line_bytes` is yielded once with `too_long=True` and is never held whole in memory.
    """
    if not 0 <= split < num_splits:
        raise ValueError(f"split {split} not in [0, {num_splits})")
    line_no = 1  # number of the line that starts at the current position
    partial: list[bytes] | None = None  # bytes of an owned line that continues into the next block
    partial_len = 0
    mid_line = False  # the position is inside a line that started in an earlier block
    block_index = 0
    while block := _read_block(stream, block_bytes):
        pos = 0
        if mid_line:
            end = block.find(b"\n")
            piece = block if end < 0 else block[:end]
            if partial is not None and partial_len <= max_line_bytes:
                partial.append(piece[: max_line_bytes + 1 - partial_len])
            partial_len += len(piece)
            if end < 0:
                block_index += 1
                continue
            if partial is not None:
                yield _finish(line_no, partial, partial_len, max_line_bytes)
            partial, partial_len, mid_line = None, 0, False
            line_no += 1
            pos = end + 1
        if block_index % num_splits == split:
            lines = block[pos:].split(b"\n")
            tail = lines.pop()
            for data in lines:
                yield _finish(line_no, [data], len(data), max_line_bytes)
                line_no += 1
            if tail:
                partial, partial_len, mid_line = [tail[: max_line_bytes + 1]], len(tail), True
        else:
            line_no += block.count(b"\n", pos)
            mid_line = not block.endswith(b"\n") and pos < len(block)
        block_index += 1
    if partial is not None:
        yield _finish(line_no, partial, partial_len, max_line_bytes)


def _finish(number: int, parts: list[bytes], length: int, max_line_bytes: int) -> Line:
    data = b"".join(parts)
    if length > max_line_bytes:
        return Line(number, data[:200], too_long=True)
    return Line(number, data.rstrip(b"\r"))


def iter_dump_lines(
    raw: BinaryIO,
    path: str,
    split: int = 0,
    num_splits: int = 1,
    block_bytes: int = BLOCK_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[Line]:
    """`iter_lines` over the decompressed content of the dump at `path` (raw bytes in `raw`).

    A stream that breaks (truncated, corrupt) raises DumpError naming the file; errors raised while the
    caller handles a line are not caught here.
    """
    stream = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    if not stream.peek(1):
        return  # a 0-byte file is an empty dump in every format (bz2 and xz would call it truncated)
    lines = iter_lines(
        open_decompressed(stream, compression_of(path)), split, num_splits, block_bytes, max_line_bytes
    )
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except STREAM_ERRORS as err:
            raise DumpError(f"{path}: corrupt or truncated {compression_of(path)} stream ({err})") from None
        yield line
