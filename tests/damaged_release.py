"""Damaged copies of a release, for the damaged-release suites of `webtext verify` and the training loader.

`damage(release, kind)` copies a release (made by tests.training.release_fixture.write_release) and damages
its shard DAMAGED. Two families:
- at rest (the manifest is left as written): a flipped token byte that stays inside the vocabulary, a
  truncated shard, a deleted shard;
- hostile (a member inserted after the shard's first sample, and the manifest's sha256 and size updated to
  match, as a release built to attack its readers would be): '..' and absolute names, symlinks, hardlinks,
  character devices, fifos, directories, a GNU sparse member declaring 1 GiB in a few hundred bytes, and
  members over the size cap (a header declaring 1 GiB; a real member over a lowered cap, see OVERSIZED).

MEMBER[kind] is the member name a refusal must quote, PROBLEM[kind] the text the refusal gives.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np

DAMAGED = "train-000001.tar"
BLOCK = tarfile.BLOCKSIZE
GIB = 2**30
# Tests of the "oversized" kind lower corpus.shards.MAX_MEMBER_BYTES to this (above every real member).
OVERSIZED = 4096

AT_REST = ("flipped", "truncated", "deleted")
HOSTILE = (
    "traversal", "absolute", "symlink", "hardlink", "device", "fifo", "directory", "sparse",
    "declared-huge", "oversized",
)  # fmt: skip
MEMBER = {
    "traversal": "../evil.txt",
    "absolute": "/tmp/webtext-evil.txt",
    "symlink": "zz.txt",
    "hardlink": "zz.json",
    "device": "zz.tokens.npy",
    "fifo": "zz.txt",
    "directory": "zz",
    "sparse": "zz.tokens.npy",
    "declared-huge": "zz.txt",
    "oversized": "zz.txt",
}
PROBLEM = {
    "traversal": "path traversal",
    "absolute": "absolute path",
    "symlink": "link to '/etc/passwd'",
    "hardlink": "link to ",
    "device": "device or fifo",
    "fifo": "device or fifo",
    "directory": "not a regular file",
    "sparse": f"sparse file (declares {GIB} bytes)",
    "declared-huge": f"declares {GIB} bytes, over the",
    "oversized": f"declares {OVERSIZED + 1} bytes, over the",
}


def damage(release: Path, kind: str, into: Path) -> Path:
    """A copy of `release` at `into` with shard DAMAGED damaged as `kind` (AT_REST or HOSTILE)."""
    shutil.copytree(release, into)
    shard = into / DAMAGED
    data = shard.read_bytes()
    if kind == "deleted":
        shard.unlink()
    elif kind == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif kind == "flipped":
        shard.write_bytes(flip_token_byte(data))
    else:
        shard.write_bytes(insert_after_first_sample(data, hostile_member(kind, first_name(data))))
        rehash(into / "manifest.json", shard)
    return into


def flip_token_byte(shard: bytes) -> bytes:
    """`shard` with bit 0 of the first token id of a tokens.npy member flipped: still a valid tar and npy, and
    the id stays inside the vocabulary (the release fixture's ids are below 399, its EOT)."""
    with tarfile.open(fileobj=io.BytesIO(shard)) as tar:
        member = next(m for m in tar if m.name.endswith(".tokens.npy") and m.size > 130)
    payload = shard[member.offset_data : member.offset_data + member.size]
    header = 10 + int.from_bytes(payload[8:10], "little")
    assert np.frombuffer(payload, "<u2", offset=header)[0] < 398
    out = bytearray(shard)
    out[member.offset_data + header] ^= 0x01
    return bytes(out)


def first_name(shard: bytes) -> str:
    with tarfile.open(fileobj=io.BytesIO(shard)) as tar:
        return tar.next().name  # type: ignore[union-attr]


def hostile_member(kind: str, existing: str) -> bytes:
    """The tar blocks (header and data) of one member of `kind`; `existing` is a member a hardlink targets."""
    info = tarfile.TarInfo(MEMBER[kind])
    info.mode = 0o644
    data = b""
    if kind in ("traversal", "absolute", "oversized"):
        data = b"x" * (OVERSIZED + 1)
        info.size = len(data)
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, existing
    elif kind == "device":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 5  # /dev/zero
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    elif kind == "directory":
        info.type = tarfile.DIRTYPE
    elif kind == "sparse":
        return sparse_header(MEMBER[kind], GIB)
    elif kind == "declared-huge":
        info.size = GIB  # the header alone: the data that follows is the rest of the shard
        return info.tobuf(tarfile.GNU_FORMAT)
    else:
        raise ValueError(kind)
    return info.tobuf(tarfile.GNU_FORMAT) + data + b"\0" * (-len(data) % BLOCK)


def sparse_header(name: str, real_size: int) -> bytes:
    """An old-GNU sparse member (type 'S') holding no data at all, whose file is `real_size` bytes of holes:
    tarfile reads it back as that many zero bytes."""
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = tarfile.GNUTYPE_SPARSE, 0, 0o644
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    block[386:410] = tarfile.itn(0, 12, tarfile.GNU_FORMAT) + tarfile.itn(0, 12, tarfile.GNU_FORMAT)
    block[483:495] = tarfile.itn(real_size, 12, tarfile.GNU_FORMAT)  # the real (expanded) size
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def insert_after_first_sample(shard: bytes, blocks: bytes) -> bytes:
    """`shard` with `blocks` (whole tar blocks) inserted after its first sample's three members."""
    with tarfile.open(fileobj=io.BytesIO(shard)) as tar:
        third = tar.getmembers()[2]
    end = third.offset_data + third.size + (-third.size % BLOCK)
    return shard[:end] + blocks + shard[end:]


def rehash(manifest_path: Path, shard: Path) -> None:
    """Make the manifest entry of `shard` match the file (sha256 and size), as a hostile release would."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    data = shard.read_bytes()
    for entries in manifest["splits"].values():
        for entry in entries:
            if entry["path"] == shard.name:
                entry |= {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
