"""Every file the pipelines read or write goes through here: Beam's filesystems (local paths, gs://,
s3://, ...), opened uncompressed (a stage decides itself how its bytes are compressed), JSON in one
canonical form, atomic replacement and hashing.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import IO, TYPE_CHECKING, Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.errors import InputError
from corpus.hashing import FileDigest, stream_sha256

if TYPE_CHECKING:
    from corpus.manifest import Manifest

UNCOMPRESSED = CompressionTypes.UNCOMPRESSED
MANIFEST = "manifest.json"


def open_read(path: str) -> IO[bytes]:
    return FileSystems.open(path, compression_type=UNCOMPRESSED)


def open_write(path: str, mime_type: str = "application/octet-stream") -> IO[bytes]:
    """A new file at `path` (its folders made as needed); on object stores it appears when closed."""
    return FileSystems.create(path, mime_type=mime_type, compression_type=UNCOMPRESSED)


def join(*parts: str) -> str:
    return FileSystems.join(*parts)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def match_files(pattern: str) -> list[str]:
    """Files matching a glob (any Beam filesystem), sorted; empty when none match."""
    results = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in results if not m.path.endswith("/"))


def read_bytes(path: str) -> bytes | None:
    """A file's bytes, None when there is none (a corpus.workdir `Reader`)."""
    if not FileSystems.exists(path):
        return None
    with open_read(path) as handle:
        return handle.read()


def write_bytes(path: str, data: bytes) -> None:
    with open_write(path) as handle:
        handle.write(data)


def json_bytes(value: Any) -> bytes:
    """The JSON form of every file we write (the manifest's, corpus/manifest.py): the same value always
    gives the same bytes."""
    from corpus.manifest import manifest_bytes

    return manifest_bytes(value)


def read_json(path: str, what: str) -> Any:
    """The JSON value in the file at `path`; one InputError naming the file and `what` it should be when it
    is missing or unreadable."""
    data = read_bytes(path)
    if data is None:
        raise InputError(f"{path}: missing (expected the {what})")
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as err:
        raise InputError(f"{path}: cannot read the {what} ({err})") from None


def write_json(path: str, value: Any) -> None:
    """`json_bytes(value)` written atomically at `path`."""
    write_atomic(path, json_bytes(value))


def write_atomic(path: str, data: bytes) -> None:
    """Replace the file at `path` with `data` so that a reader sees the old bytes or the new, never a part.

    Local disk: a temporary file, fsync, os.replace, fsync of the folder (the rename reaches the disk).
    Object stores (gs://, s3://): one object write, which is atomic there.
    """
    if FileSystems.get_scheme(path) is not None:
        write_bytes(path, data)
        return
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sha256_and_size(path: str) -> FileDigest:
    """The SHA-256 (hex) and size of a file on any Beam filesystem (corpus/hashing.py)."""
    with open_read(path) as handle:
        return stream_sha256(handle)


def read_manifest(release: str) -> Manifest:
    """The release's manifest.json, read and checked (corpus/manifest.py); one InputError naming it."""
    from corpus.manifest import parse_manifest

    path = join(release, MANIFEST)
    data = read_bytes(path)
    if data is None:
        raise InputError(f"{path}: missing (is {release} a release directory?)")
    return parse_manifest(data, path)


def write_manifest(release: str, data: dict) -> None:
    """The manifest in its one form (corpus/manifest.py), in one atomic write: a release's commit point."""
    from corpus.manifest import manifest_bytes

    write_atomic(join(release, MANIFEST), manifest_bytes(data))
