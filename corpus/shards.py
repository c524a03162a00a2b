"""WebDataset tar shards: deterministic writing, reading back, and release verification.

A shard is a plain tar (GNU format) of samples sorted by key; each sample is three regular files in this
order: ``<key>.txt`` (UTF-8), ``<key>.json`` (sorted compact JSON), ``<key>.tokens.npy`` (``np.save`` of a
1-D uint16/uint32 array, no EOT inside). Headers carry no time, owner or host detail, so the same samples
give a byte-identical file.

With each shard write_shard writes its byte-offset index (corpus/shard_index.py), pinned by the manifest;
verify_release checks it against the manifest and against the tar's own headers.

Reading never trusts a member before its header is checked (member_problem): links, devices, directories,
fifos, sparse files, names outside the schema (so no '..' or absolute path) and sizes over MAX_MEMBER_BYTES
or past the end of the file are refused, naming the shard and the member, before any data is read.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

# SHARD_RE and file_sha256 stay importable from here: their callers predate corpus.manifest/hashing.
from corpus.hashing import file_sha256
from corpus.manifest import PLAIN_NAME_RE, SHARD_RE, Manifest
from corpus.shard_index import IndexRow, decode_index, encode_index, index_array, index_name

TAR_FORMAT = tarfile.GNU_FORMAT
MEMBER_SUFFIXES = ("txt", "json", "tokens.npy")
KEY_RE = re.compile(r"^[0-9A-Za-z_-]+$")
MEMBER_RE = re.compile(r"^([0-9A-Za-z_-]+)\.(txt|json|tokens\.npy)$")
TOKEN_DTYPES = (np.dtype("<u2"), np.dtype("<u4"))
MAX_PROBLEMS_PER_SHARD = 20
# A member's data is read whole into memory, so its header's size is checked before any of it is read.
MAX_MEMBER_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Sample:
    """One document of a shard: ``__key__`` = doc id, text, metadata and token ids."""

    key: str
    text: str
    meta: dict
    tokens: np.ndarray


def shard_name(split: str, index: int) -> str:
    """``{split}-{NNNNNN}.tar``, e.g. ``train-000000.tar``."""
    if not re.fullmatch(r"[a-z]+", split) or not 0 <= index <= 999_999:
        raise ValueError(f"bad shard split/index: {split!r} {index}")
    return f"{split}-{index:06d}.tar"


def numbering_problems(manifest: dict | Manifest) -> list[str]:
    """Each split's shards must be numbered 000000, 000001, ... in order with no gap (an empty shard is not
    numbered), so the brace pattern ``{split}-{000000..N-1}.tar`` from the manifest's count names them all."""
    problems = []
    for split, entries in sorted(_raw(manifest)["splits"].items()):
        names = [entry["path"] for entry in entries]
        if names != [f"{split}-{index:06d}.tar" for index in range(len(names))]:
            problems.append(f"manifest: split {split!r} is not numbered {split}-000000.tar on without gaps")
    return problems


def meta_bytes(meta: dict) -> bytes:
    """The canonical JSON encoding of a sample's metadata."""
    return json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def tokens_bytes(tokens: np.ndarray) -> bytes:
    """``np.save`` bytes of a 1-D little-endian uint16/uint32 token array."""
    arr = np.asarray(tokens)
    if arr.ndim != 1 or arr.dtype.kind != "u" or arr.dtype.itemsize not in (2, 4):
        raise ValueError(f"tokens must be a 1-D uint16/uint32 array, got {arr.dtype} ndim={arr.ndim}")
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return _npy_header(arr.dtype.str, arr.shape[0]) + arr.tobytes()


@functools.lru_cache(maxsize=1 << 16)
def _npy_header(descr: str, count: int) -> bytes:
    """The header np.save writes for a 1-D array of `count` items of `descr` (numpy's own function, the one
    np.save calls; cached: np.save's generic path cost more than the release's tar headers)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": (count,)})
    return buf.getvalue()


class _HashingWriter:
    """A write-only file wrapper that counts and hashes what passes through."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _tarfile_header(name: str, size: int) -> bytes:
    """The header block(s) tarfile writes for a member of ours (GNU format, fixed fields)."""
    return _tarinfo(name, size).tobuf(TAR_FORMAT, tarfile.ENCODING, "surrogateescape")


_HEADER = _tarfile_header("", 0)  # tarfile's own header for our fixed fields: name and size are patched in
_NUL = bytes(tarfile.RECORDSIZE)


def _header(name: str, size: int) -> bytes:
    """tarfile's header for member `name` of `size` bytes, byte for byte, without building a TarInfo.

    Writing three members per document through tarfile.addfile (a TarInfo copy, its field-by-field header)
    cost the release stage more than tokenizing; this patches the name, size and checksum of a header
    tarfile made once. Names over 100 bytes (a GNU long-name block) and sizes beyond 11 octal digits are left
    to tarfile.
    """
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > tarfile.LENGTH_NAME or size >= 8**11:
        return _tarfile_header(name, size)
    buf = bytearray(_HEADER)
    buf[: len(raw)] = raw
    buf[124:136] = b"%011o\0" % size
    buf[148:156] = b"        "  # the checksum counts its own field as spaces
    buf[148:155] = b"%06o\0" % sum(buf)
    return bytes(buf)


def write_shard(
    path: str,
    samples: list[Sample],
    open_fn: Callable[..., IO[bytes]] = open,
    rename_fn: Callable[[str, str], Any] = os.replace,
    index: bool = True,
) -> dict:
    """Write ``samples`` sorted by key to ``path`` (via ``path + ".tmp"``); return its manifest entry.

    ``open_fn(p, "wb")`` opens the temporary file and ``rename_fn(src, dst)`` publishes it (pass Beam's
    FileSystems for remote paths). Same samples give a byte-identical file.

    With `index` the shard's byte-offset index (corpus/shard_index.py) is written beside it, straight to its
    name before the shard is renamed into place (the shard's rename publishes the pair), and the entry pins
    it: ``"index": {"bytes", "sha256"}``.
    """
    ordered = sorted(samples, key=lambda s: s.key)
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if prev.key == cur.key:
            raise ValueError(f"duplicate sample key {cur.key!r}")
    for s in ordered:
        if not KEY_RE.match(s.key):
            raise ValueError(f"bad sample key {s.key!r}")
    tmp = path + ".tmp"
    n_tokens, rows = 0, []
    with open_fn(tmp, "wb") as raw:
        out = _HashingWriter(raw)
        for s in ordered:  # the bytes tarfile writes (tested), one write per document
            tokens = np.asarray(s.tokens)
            n_tokens += int(tokens.shape[0])
            spans, parts, at = [], [], out.size
            datas = (s.text.encode("utf-8"), meta_bytes(s.meta), tokens_bytes(tokens))
            for suffix, data in zip(MEMBER_SUFFIXES, datas, strict=True):
                header = _header(f"{s.key}.{suffix}", len(data))
                padding = _NUL[: -len(data) % tarfile.BLOCKSIZE]
                spans += [at + len(header), len(data)]
                parts += [header, data, padding]
                at += len(header) + len(data) + len(padding)
            out.write(b"".join(parts))
            rows.append(IndexRow(s.key, *spans, int(tokens.shape[0]), tokens.dtype.itemsize))
        out.write(_NUL[: 2 * tarfile.BLOCKSIZE])  # the end of the archive, padded to a whole record
        out.write(_NUL[: -out.size % tarfile.RECORDSIZE])
    entry = {
        "path": os.path.basename(path),
        "sha256": out.sha.hexdigest(),
        "bytes": out.size,
        "docs": len(ordered),
        "tokens": n_tokens,
    }
    if index:
        data = encode_index(rows)
        with open_fn(index_name(path), "wb") as handle:
            handle.write(data)
        entry["index"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    rename_fn(tmp, path)
    return entry


_NPY_MAGIC = b"\x93NUMPY\x01\x00"  # format 1.0, what np.save writes for these arrays
_NPY_HEADER = re.compile(rb"^\{'descr': '(<u[24])', 'fortran_order': False, 'shape': \((\d+),\), \} *\n$")


def load_tokens(data: bytes) -> np.ndarray:
    """Load a ``tokens.npy`` payload safely (no pickle); raise ValueError unless 1-D uint16/uint32.

    The header ``tokens_bytes`` writes is parsed directly (the training loader reads every token through
    here, and ``np.load``'s generic header parsing costs more than the data); anything else goes to np.load.
    """
    if data[:8] == _NPY_MAGIC and len(data) >= 10:
        end = 10 + int.from_bytes(data[8:10], "little")
        match = _NPY_HEADER.match(data[10:end])
        if match:
            dtype, count = np.dtype(match.group(1).decode()), int(match.group(2))
            if len(data) - end == count * dtype.itemsize:
                return np.frombuffer(data, dtype=dtype, count=count, offset=end)
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype not in TOKEN_DTYPES:
        raise ValueError(f"tokens.npy is not a 1-D uint16/uint32 array ({getattr(arr, 'dtype', type(arr))})")
    return arr


def read_shard(path: str) -> Iterator[Sample]:
    """Yield the samples of a shard in file order; raise ValueError naming the shard and the member on a
    member that must not be read (see member_problem) or a sample outside the schema."""
    parts: dict[str, bytes] = {}
    key = None
    with tarfile.open(path, mode="r:") as tar:
        for member, member_key, suffix in checked_members(tar, path, os.path.getsize(path)):
            if key is not None and member_key != key:
                yield _sample(path, key, parts)
                parts = {}
            key = member_key
            f = tar.extractfile(member)
            parts[suffix] = f.read() if f else b""
    if key is not None:
        yield _sample(path, key, parts)


def checked_members(tar: tarfile.TarFile, path: str, size: int) -> Iterator[tuple[tarfile.TarInfo, str, str]]:
    """(member, key, suffix) of each member of `tar`, a file of `size` bytes, before any of its data is read;
    ValueError naming `path` and the member at the first one that must not be read (member_problem)."""
    while (member := tar.next()) is not None:
        why = member_problem(member, size - member.offset_data)
        if why:
            raise ValueError(f"{path}: member {member.name!r}: {why}")
        key, suffix = MEMBER_RE.match(member.name).groups()  # type: ignore[union-attr]
        yield member, key, suffix
        tar.members.clear()  # TarFile keeps every header it read; a reader going through once needs none


def token_members(data: bytes, path: str) -> Iterator[tuple[str, memoryview]]:
    """(key, tokens.npy payload) of each sample of a whole shard held in memory, in file order; every member
    is checked as in checked_members. The payloads are views of `data`, nothing is copied."""
    view = memoryview(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member, key, suffix in checked_members(tar, path, len(data)):
            if suffix == "tokens.npy":
                yield key, view[member.offset_data : member.offset_data + member.size]


def _sample(path: str, key: str, parts: dict[str, bytes]) -> Sample:
    if set(parts) != set(MEMBER_SUFFIXES):
        raise ValueError(f"{path}: sample {key!r} has members {sorted(parts)}")
    return Sample(
        key=key,
        text=parts["txt"].decode("utf-8"),
        meta=json.loads(parts["json"]),
        tokens=load_tokens(parts["tokens.npy"]),
    )


def member_problem(member: tarfile.TarInfo, available: int) -> str | None:
    """Why a tar member must not be read, from its header alone: unsafe, outside the schema, or declaring
    more data than MAX_MEMBER_BYTES or than the `available` bytes left in the file; None when fine."""
    name = member.name
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "path traversal ('..')"
    if member.issym() or member.islnk():
        return f"link to {member.linkname!r}"
    if member.ischr() or member.isblk() or member.isfifo():
        return "device or fifo"
    if member.issparse():  # its holes read back as zeros: a few bytes in the tar can declare gigabytes
        return f"sparse file (declares {member.size} bytes)"
    if not member.isreg():
        return f"not a regular file (type {member.type!r})"
    if not MEMBER_RE.match(name):
        return "name outside the schema <key>.txt/.json/.tokens.npy"
    if member.size > MAX_MEMBER_BYTES:
        return f"declares {member.size} bytes, over the {MAX_MEMBER_BYTES}-byte member cap"
    if member.size > available:
        return f"declares {member.size} bytes, only {max(0, available)} follow (truncated)"
    return None


def scan_shard(path: str) -> tuple[int, int, list[str]]:
    """Read a shard without extracting anything: (docs, tokens, problems). Never raises."""
    docs, tokens, problems, _ = _scan(path)
    return docs, tokens, problems


def _scan(path: str) -> tuple[int, int, list[str], list[IndexRow]]:
    """scan_shard, and the shard's index rows as its own headers give them (valid only without problems)."""
    problems: list[str] = []
    members: dict[str, dict[str, tuple[int, int]]] = {}  # key -> suffix -> (data offset, size), file order
    counts: dict[str, tuple[int, int]] = {}  # key -> (tokens, itemsize)
    try:
        size = os.path.getsize(path)
        with tarfile.open(path, mode="r:") as tar:
            while (member := tar.next()) is not None:
                why = member_problem(member, size - member.offset_data)
                if why:
                    problems.append(f"member {member.name!r}: {why}")
                    continue
                key, suffix = MEMBER_RE.match(member.name).groups()  # type: ignore[union-attr]
                if suffix in members.setdefault(key, {}):
                    problems.append(f"member {member.name!r}: duplicate")
                members[key][suffix] = (member.offset_data, member.size)
                f = tar.extractfile(member)
                data = f.read() if f else b""
                if len(data) != member.size:
                    problems.append(f"member {member.name!r}: truncated data")
                    continue
                try:
                    if suffix == "txt":
                        data.decode("utf-8")
                    elif suffix == "json":
                        json.loads(data)
                    else:
                        arr = load_tokens(data)
                        counts[key] = (int(arr.shape[0]), arr.dtype.itemsize)
                except Exception as e:  # any decode failure is a reported problem
                    problems.append(f"member {member.name!r}: unreadable ({type(e).__name__}: {e})")
    except Exception as e:  # a hostile or truncated tar is reported, never raised
        problems.append(f"unreadable tar ({type(e).__name__}: {e})")
    for key, got in sorted(members.items()):
        if set(got) != set(MEMBER_SUFFIXES):
            problems.append(f"sample {key!r}: has {sorted(got)}, expected {list(MEMBER_SUFFIXES)}")
    n_tokens = sum(n for n, _ in counts.values())
    if problems:
        return len(members), n_tokens, problems, []
    rows = [
        IndexRow(key, *got["txt"], *got["json"], *got["tokens.npy"], *counts[key])
        for key, got in members.items()
    ]
    return len(members), n_tokens, problems, rows


def _verify_shard(directory: str, entry: Any) -> list[str]:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return [f"manifest: bad shard entry {entry!r}"]
    name = entry["path"]
    if not SHARD_RE.match(name):
        return [f"{name}: shard path not of the form {{split}}-NNNNNN.tar"]
    full = os.path.join(directory, name)
    if not os.path.isfile(full):
        return [f"{name}: missing"]
    out = []
    sha, size = file_sha256(full)
    if size != entry.get("bytes"):
        out.append(f"{name}: size {size} bytes, manifest says {entry.get('bytes')} (truncated or altered)")
    elif sha != entry.get("sha256"):
        out.append(f"{name}: sha256 {sha} does not match the manifest (altered or truncated)")
    docs, tokens, problems, rows = _scan(full)
    if len(problems) > MAX_PROBLEMS_PER_SHARD:
        extra = len(problems) - MAX_PROBLEMS_PER_SHARD
        problems = problems[:MAX_PROBLEMS_PER_SHARD] + [f"... and {extra} more problems"]
    out += [f"{name}: {p}" for p in problems]
    if docs != entry.get("docs"):
        out.append(f"{name}: {docs} docs, manifest says {entry.get('docs')}")
    if tokens != entry.get("tokens"):
        out.append(f"{name}: {tokens} tokens, manifest says {entry.get('tokens')}")
    if "index" in entry:
        out += [f"{name}: {p}" for p in _verify_index(full, entry["index"], size, None if out else rows)]
    return out


def _verify_index(shard: str, entry: Any, shard_bytes: int, rows: list[IndexRow] | None) -> list[str]:
    """The shard's index (corpus/shard_index.py): present, as the manifest pins it and, when the shard itself
    is sound (`rows` its members as its headers give them), equal to the index rebuilt from them."""
    name = os.path.basename(index_name(shard))
    if not isinstance(entry, dict) or not (isinstance(entry.get("sha256"), str) and "bytes" in entry):
        return [f"manifest: bad index entry {entry!r}"]
    if not os.path.isfile(index_name(shard)):
        return [f"index {name} missing"]
    with open(index_name(shard), "rb") as handle:
        data = handle.read()
    if (hashlib.sha256(data).hexdigest(), len(data)) != (entry["sha256"], entry["bytes"]):
        return [f"index {name}: sha256 or size differs from the manifest"]
    if rows is None:
        return []
    try:
        table = decode_index(data, shard_bytes)
    except ValueError as e:
        return [f"index {name}: {e}"]
    want = index_array(rows)
    if table.dtype != want.dtype or table.tobytes() != want.tobytes():
        return [f"index {name} does not match the shard's members"]
    return []


def _raw(manifest: dict | Manifest) -> dict:
    """The JSON object: verify takes a parsed Manifest or a raw dict, which may be malformed on purpose."""
    return manifest.data if isinstance(manifest, Manifest) else manifest


def verify_release(directory: str, manifest: dict | Manifest) -> list[str]:
    """Check a release directory against its manifest: one line per problem, [] when fine. Never raises.

    A raw dict is checked entry by entry rather than refused whole (as parse_manifest would), so one bad entry
    does not hide the state of every other shard."""
    manifest = _raw(manifest)
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    if not isinstance(splits, dict):
        return ["manifest: no 'splits' mapping"]
    problems: list[str] = []
    listed: set[str] = set()
    for split, entries in sorted(splits.items()):
        if not isinstance(entries, list):
            problems.append(f"manifest: split {split!r} is not a list of shards")
            continue
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                if entry["path"] in listed:
                    problems.append(f"{entry['path']}: listed twice in the manifest")
                listed.add(entry["path"])
            try:
                problems += _verify_shard(directory, entry)
            except Exception as e:  # e.g. unreadable file: report it
                problems.append(f"{entry.get('path', entry)}: cannot verify ({type(e).__name__}: {e})")
    problems += _verify_files(directory, manifest.get("ngrams") or [])
    try:
        present = sorted(os.listdir(directory))
    except OSError as e:
        return problems + [f"{directory}: cannot list ({e})"]
    for name in present:
        if name.endswith(".tar") and name not in listed:
            problems.append(f"{name}: shard not listed in the manifest")
        elif name.endswith(".tar.tmp"):
            problems.append(f"{name}: leftover temporary shard")
    return problems


def _verify_files(directory: str, entries: object) -> list[str]:
    """Other files the manifest lists with a sha256 (the n-gram Bloom filters, one file each or, for a
    filter in partitions, every file of its `parts`): present and unaltered."""
    if not isinstance(entries, list):
        return ["manifest: 'ngrams' is not a list of filters"]
    problems, files = [], []
    for entry in entries:
        parts = entry.get("parts") if isinstance(entry, dict) else None
        if parts is None:
            files.append(entry)
        elif isinstance(parts, list):
            files += parts
        else:
            problems.append(f"manifest: bad ngrams entry {entry!r} ('parts' is not a list of files)")
    for entry in files:
        name = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not PLAIN_NAME_RE.match(name):
            problems.append(f"manifest: bad ngrams entry {entry!r}")
            continue
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            problems.append(f"{name}: listed in the manifest but missing")
        elif file_sha256(path) != (entry.get("sha256"), entry.get("bytes")):
            problems.append(f"{name}: sha256 or size differs from the manifest")
    return problems
