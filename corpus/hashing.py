"""The one way a file is hashed for a manifest: SHA-256 hex and size, read in blocks.

Manifests record both (shards, n-gram filters, block lists), and a size mismatch tells a truncated file
from an altered one, so every caller gets both from one read instead of hashing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import IO, Any, NamedTuple

BLOCK = 1 << 20


class FileDigest(NamedTuple):
    """SHA-256 (lower-case hex) and size in bytes; a tuple, so ``sha, size = file_sha256(p)`` works."""

    sha256: str
    size: int


def stream_sha256(handle: IO[bytes]) -> FileDigest:
    """Digest of what is left to read in an open binary file (any file-like with read())."""
    sha, size = hashlib.sha256(), 0
    while block := handle.read(BLOCK):
        sha.update(block)
        size += len(block)
    return FileDigest(sha.hexdigest(), size)


def file_sha256(path: str, open_fn: Callable[..., Any] = open) -> FileDigest:
    """Digest of the file at `path`; `open_fn(path, "rb")` opens it (fsspec.open, or a wrapper around Beam's
    FileSystems.open, for remote paths)."""
    with open_fn(path, "rb") as handle:
        return stream_sha256(handle)
