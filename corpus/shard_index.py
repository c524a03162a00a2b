"""A shard's byte-offset index: where each sample's members and token ids lie inside its tar.

Why: the training loader needs only the token ids, and finding them by walking the tar in Python (three
512-byte headers per document, parsed by `tarfile`) cost 88% of its time. The release stage knows every
offset while it writes the tar, so it writes them down once, next to the shard, and the loader slices the
shard's bytes with them. The tar itself stays a plain WebDataset tar that any reader opens; the index is an
extra file that readers may ignore.

Format: `{split}-NNNNNN.idx.npy` beside `{split}-NNNNNN.tar` (index_name), an ``.npy`` of a 1-D structured
array (``np.load(path, allow_pickle=False)`` opens it) with one row per sample in file order:

| field | meaning |
|---|---|
| `key` | the sample's key (ASCII bytes) |
| `txt_offset`, `txt_bytes` | where the `.txt` member's data starts in the tar, and its size |
| `json_offset`, `json_bytes` | the same for `.json` |
| `npy_offset`, `npy_bytes` | the same for `.tokens.npy` (its npy header included) |
| `tokens`, `itemsize` | token count and bytes per token (2 or 4, little-endian unsigned) |

The token ids are the last ``tokens * itemsize`` bytes of the `.tokens.npy` data (token_spans).

Trust: the manifest's shard entry pins the index like the shard (``"index": {"bytes", "sha256"}``), the
loader checks both hashes before use, every offset against the shard's size (decode_index) and, with numpy
over all headers at once, that the tar holds exactly the members the index describes, as any tar reader
would see them (layout_problem: each header where it must be, naming that member, a regular file of that
size, nothing between or after). A shard that fails this is parsed header by header instead, which names a
hostile member; `webtext verify` checks that the index equals the one rebuilt from the tar's own headers
(corpus/shards.py). A release whose index and tar disagree is reported, not trained on.
"""

from __future__ import annotations

import io
import tarfile
from typing import NamedTuple

import numpy as np

INDEX_SUFFIX = ".idx.npy"
OFFSET_FIELDS = ("txt_offset", "txt_bytes", "json_offset", "json_bytes", "npy_offset", "npy_bytes", "tokens")
FIELDS = ("key", *OFFSET_FIELDS, "itemsize")
NPY_HEADER_MIN = 10  # magic (6) + version (2) + header length (2): token ids start at least this far in
SUFFIXES = (b".txt", b".json", b".tokens.npy")
BLOCK = tarfile.BLOCKSIZE


class IndexRow(NamedTuple):
    """One sample's row: its key and, per member, (data offset, size) in the tar; its token count and
    itemsize."""

    key: str
    txt_offset: int
    txt_bytes: int
    json_offset: int
    json_bytes: int
    npy_offset: int
    npy_bytes: int
    tokens: int
    itemsize: int


def index_name(shard: str) -> str:
    """The index path (or URL, or name) for a shard: ``train-000000.tar`` -> ``train-000000.idx.npy``."""
    if not shard.endswith(".tar"):
        raise ValueError(f"not a .tar shard name: {shard!r}")
    return shard[: -len(".tar")] + INDEX_SUFFIX


def index_dtype(key_width: int) -> np.dtype:
    """The row type for keys of up to `key_width` bytes (packed, little-endian: the same bytes everywhere)."""
    return np.dtype(
        [("key", f"S{max(1, key_width)}")] + [(name, "<u8") for name in OFFSET_FIELDS] + [("itemsize", "u1")]
    )


def index_array(rows: list[IndexRow]) -> np.ndarray:
    """The rows as the index's structured array."""
    keys = [row.key.encode("ascii") for row in rows]
    table = np.zeros(len(rows), dtype=index_dtype(max((len(k) for k in keys), default=1)))
    if rows:
        table["key"] = keys
        for position, name in enumerate(FIELDS[1:], start=1):
            table[name] = [row[position] for row in rows]
    return table


def encode_index(rows: list[IndexRow]) -> bytes:
    """The index file's bytes for `rows` (np.save of index_array; the same rows give the same bytes)."""
    buf = io.BytesIO()
    np.save(buf, index_array(rows), allow_pickle=False)
    return buf.getvalue()


def decode_index(data: bytes, shard_bytes: int) -> np.ndarray:
    """The index array in `data`, checked to be usable on a shard of `shard_bytes` bytes: the right fields,
    itemsizes of 2 or 4, and every member and token range inside the shard. ValueError says what is wrong.

    The checks are vectorized: they cost microseconds per thousand samples, not a pass over the tar.
    """
    try:
        table = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # np.load raises several types on bad bytes
        raise ValueError(f"index is not an .npy array ({type(e).__name__}: {e})") from None
    if (
        not isinstance(table, np.ndarray)
        or table.ndim != 1
        or table.dtype.names != FIELDS
        or table.dtype["key"].kind != "S"
        or any(table.dtype[name] != np.dtype("<u8") for name in OFFSET_FIELDS)
        or table.dtype["itemsize"] != np.dtype("u1")
    ):
        raise ValueError(f"index has the wrong layout ({getattr(table, 'dtype', type(table))})")
    if not np.isin(table["itemsize"], (2, 4)).all():
        raise ValueError("index gives a token itemsize other than 2 or 4")
    limit = np.uint64(shard_bytes)
    for member in ("txt", "json", "npy"):
        offset, size = table[f"{member}_offset"], table[f"{member}_bytes"]
        if (offset > limit).any() or (size > limit - np.minimum(offset, limit)).any():
            raise ValueError(f"index points past the end of the shard ({member} member)")
    token_bytes = table["tokens"] * table["itemsize"]
    if (table["npy_bytes"] < token_bytes + NPY_HEADER_MIN).any():
        raise ValueError("index gives more tokens than a tokens.npy member holds")
    return table


def token_spans(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(byte offset of the first token id, byte offset past the last) of each sample, as int64 arrays."""
    end = (table["npy_offset"] + table["npy_bytes"]).astype(np.int64)
    return end - (table["tokens"] * table["itemsize"]).astype(np.int64), end


def keys_of(table: np.ndarray) -> list[str]:
    """The samples' keys as str."""
    return [key.decode("ascii") for key in table["key"].tolist()]


def _template() -> np.ndarray:
    """The header block tarfile writes for a member of ours (GNU format, mode 0644, owner 0, mtime 0)."""
    info = tarfile.TarInfo("")
    info.mode, info.type = 0o644, tarfile.REGTYPE
    return np.frombuffer(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"), np.uint8)


_TEMPLATE = _template()
_FIXED = ((100, 124), (136, 148), (156, BLOCK))  # every header byte but the name, size and checksum fields
_OCTAL = 8 ** np.arange(10, -1, -1, dtype=np.int64)


def layout_problem(table: np.ndarray, data: bytes) -> str | None:
    """Why the tar `data` does not hold exactly the members `table` describes (None when it does): each
    sample's .txt, .json, .tokens.npy in order, every header block right before its data naming that member
    as a regular file of that size with a valid checksum and our fixed fields, no byte between members, and
    only zeros after the last. Tar blocks are 512 bytes, so the headers are rows of the shard seen as blocks:
    one gather, then whole-array comparisons (about 10 ms per 100k members)."""
    width = table.dtype["key"].itemsize
    if width + len(SUFFIXES[-1]) > 100:
        return "a member name over 100 bytes (a GNU long-name block)"
    raw = np.frombuffer(data, np.uint8)
    fields = [(f"{m}_offset", f"{m}_bytes") for m in ("txt", "json", "npy")]
    offsets = np.stack([table[o] for o, _ in fields], axis=1).reshape(-1).astype(np.int64)
    sizes = np.stack([table[b] for _, b in fields], axis=1).reshape(-1).astype(np.int64)
    padded = -(-sizes // BLOCK) * BLOCK
    starts = BLOCK * np.arange(1, len(sizes) + 1) + np.cumsum(padded) - padded
    if not np.array_equal(offsets, starts):
        return "its members are not back to back in index order"
    end = int(starts[-1] + padded[-1]) if len(sizes) else 0
    if len(raw) < end + 2 * BLOCK or raw[end:].any():
        return "more follows its last member than the end-of-archive zeros"
    headers = raw[: end // BLOCK * BLOCK].reshape(-1, BLOCK)[offsets // BLOCK - 1]
    if not np.array_equal(headers[:, :100], _names(table["key"], width)):
        return "a header names another member"
    if any((headers[:, low:high] != _TEMPLATE[low:high]).any() for low, high in _FIXED):
        return "a member is not a plain regular file"
    digits = headers[:, 124:135].astype(np.int64) - ord("0")
    if (
        ((digits < 0) | (digits > 7)).any()
        or headers[:, 135].any()
        or not np.array_equal(digits @ _OCTAL, sizes)
    ):
        return "a header gives another size"
    checksum = np.add.reduce(headers, axis=1, dtype=np.uint32).astype(np.int64) + 256
    checksum -= np.add.reduce(headers[:, 148:156], axis=1, dtype=np.uint32)
    stored = headers[:, 148:154].astype(np.int64) - ord("0")
    if ((stored < 0) | (stored > 7)).any() or not np.array_equal(stored @ _OCTAL[-6:], checksum):
        return "a header's checksum is wrong"
    return None


def _names(keys: np.ndarray, width: int) -> np.ndarray:
    """The 100-byte name fields of every sample's three members, in file order, built without a loop."""
    key_bytes = np.ascontiguousarray(keys).view(np.uint8).reshape(len(keys), width)
    lengths = (key_bytes != 0).sum(axis=1)  # keys are ASCII without NUL: the rest of the field is padding
    names = np.zeros((len(keys), len(SUFFIXES), 100), np.uint8)
    names[:, :, :width] = key_bytes[:, None, :]
    for k, suffix in enumerate(SUFFIXES):
        columns = lengths[:, None] + np.arange(len(suffix))
        names[np.arange(len(keys))[:, None], k, columns] = np.frombuffer(suffix, np.uint8)
    return names.reshape(-1, 100)
