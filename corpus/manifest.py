"""The schema of a release's manifest.json, its one reader and its one serialization.

Pure functions on bytes and dicts: callers do the I/O (local files, fsspec URLs, Beam filesystems), so the
trainer, `webtext verify` and the Beam stages all read a manifest the same way and fail with the same one-line
ManifestError naming the file. Nothing here imports Beam, torch or fsspec, so both halves can use it.

A Manifest keeps `data`, the JSON object exactly as read, next to the typed, checked view: a stage that adds
to a manifest (n-grams, build counts) changes `data` and writes it back with manifest_bytes, keeping every
key it does not know about. The typed fields are not updated by such changes; parse the result again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from corpus.errors import InputError

FORMAT_VERSION = 1
SHARD_RE = re.compile(r"^[a-z]+-\d{6}\.tar$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# A file next to manifest.json, named in it: no folder, so no '..' or absolute path can be smuggled in.
PLAIN_NAME_RE = re.compile(r"^[0-9A-Za-z_-][0-9A-Za-z._-]*$")
MAX_REPR = 160  # an entry quoted in an error is cut here, so the error stays a readable line


class ManifestError(InputError):
    """A manifest.json that cannot be used; the one-line message names the file and the problem."""


@dataclass(frozen=True)
class IndexEntry:
    """A shard's byte-offset index (corpus/shard_index.py), pinned like the shard: its size and sha256. Its
    name follows from the shard's (`train-000000.tar` -> `train-000000.idx.npy`), so it is not stored."""

    bytes: int
    sha256: str


@dataclass(frozen=True)
class ShardEntry:
    """One tar shard of a split: its file name next to manifest.json and what the release stage counted;
    `index` when the release wrote one (releases made before it have none and stay valid)."""

    path: str
    docs: int
    tokens: int
    bytes: int
    sha256: str
    index: IndexEntry | None = None


@dataclass(frozen=True)
class TokenizerEntry:
    """The release's tokenizer.json (path relative to the release) and the ids the trainer needs."""

    path: str
    sha256: str
    vocab_size: int
    eot_id: int


@dataclass(frozen=True)
class NgramFile:
    """One file of an n-gram filter: its name next to manifest.json, size and SHA-256."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class NgramEntry:
    """An n-gram Bloom filter the manifest lists (`webtext ngrams`); its other keys stay in Manifest.data.

    A whole filter (partitions 1, the entry of every release made before partitions) is one file: `path`,
    `sha256`, `bytes`. A filter in P > 1 partitions (`"partitions": P`, a power of two) lists its files in
    `"parts"`, partition i at index i, each with its own path, sha256, bytes (and bits, hashes, items, which
    the typed view leaves in `data`); the entry's `path` and `sha256` are then None and `bytes` the total."""

    path: str | None
    sha256: str | None
    bytes: int
    n: int
    partitions: int = 1
    parts: tuple[NgramFile, ...] = ()

    def files(self) -> list[NgramFile]:
        """The filter's files in partition order (one for a whole filter)."""
        if self.partitions == 1:
            return [NgramFile(self.path, self.sha256, self.bytes)]
        return list(self.parts)


@dataclass(frozen=True)
class Manifest:
    """A checked manifest.json: `data` as read, and the typed entries the readers use."""

    data: dict[str, Any]
    splits: dict[str, list[ShardEntry]]
    tokenizer: TokenizerEntry
    ngrams: list[NgramEntry]
    format_version: int | None

    def shards(self, split: str) -> list[ShardEntry]:
        """The shards of `split` in manifest order ([] for a split the release does not have)."""
        return list(self.splits.get(split, []))

    def all_shards(self) -> list[ShardEntry]:
        """Every shard of every split, splits in name order."""
        return [entry for split in sorted(self.splits) for entry in self.splits[split]]

    def documents(self, split: str | None = None) -> int:
        """Documents in `split`, or in the whole release when None."""
        return sum(e.docs for e in (self.all_shards() if split is None else self.shards(split)))

    def tokens(self, split: str | None = None) -> int:
        """Tokens (EOTs not counted) in `split`, or in the whole release when None."""
        return sum(e.tokens for e in (self.all_shards() if split is None else self.shards(split)))

    @property
    def allow_empty(self) -> bool:
        """Whether the release was made empty on purpose (`webtext release --allow-empty`)."""
        config = self.data.get("config")
        release = config.get("release") if isinstance(config, dict) else None
        return bool(release.get("allow_empty")) if isinstance(release, dict) else False


def parse_manifest(data: bytes | str, where: str) -> Manifest:
    """The Manifest in the JSON text `data`; ManifestError naming `where` (the file or URL) when it is not
    JSON or not a usable manifest."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:  # ValueError covers bad JSON and bytes that are not UTF-8
        detail = str(e) if isinstance(e, ValueError) else "nested too deeply"
        raise ManifestError(f"{where}: cannot read the manifest ({_one_line(detail)})") from None
    return validate_manifest(obj, where)


def validate_manifest(obj: object, where: str) -> Manifest:
    """The Manifest of an already decoded JSON value (for callers that parsed it themselves)."""
    try:
        return _typed(obj)
    except _Invalid as e:
        raise ManifestError(f"{where}: {_one_line(str(e))}") from None


def manifest_bytes(manifest: dict[str, Any] | Manifest) -> bytes:
    """The canonical manifest.json bytes (sorted keys, 2-space indent, UTF-8, final newline): the same
    manifest always gives the same bytes, so a rebuilt release is byte-identical."""
    data = manifest.data if isinstance(manifest, Manifest) else manifest
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


class _Invalid(Exception):
    """A problem found while building the typed view; validate_manifest adds the file name."""


def _typed(obj: object) -> Manifest:
    if not isinstance(obj, dict):
        raise _Invalid("not a JSON object")
    version = obj.get("format_version")
    if version is not None and not _is_count(version):
        raise _Invalid(f"format_version {_short(version)} is not an integer")
    if version is not None and version > FORMAT_VERSION:
        raise _Invalid(f"format_version {version} is newer than this webtext reads ({FORMAT_VERSION})")
    tokenizer = _tokenizer(obj.get("tokenizer"))  # first: the order keeps which error a manifest gets stable
    splits = _splits(obj.get("splits"))
    return Manifest(obj, splits, tokenizer, _ngrams(obj.get("ngrams")), version)


def _tokenizer(tokenizer: object) -> TokenizerEntry:
    if not isinstance(tokenizer, dict) or not isinstance(tokenizer.get("path"), str):
        raise _Invalid("no 'tokenizer' entry with a 'path'")
    vocab, eot = tokenizer.get("vocab_size"), tokenizer.get("eot_id")
    if not (_is_count(vocab) and _is_count(eot) and eot < vocab):
        raise _Invalid(
            f"tokenizer vocab_size {vocab!r} / eot_id {eot!r} are not integers with 0 <= eot_id < vocab_size"
        )
    sha256 = tokenizer.get("sha256")
    if not _is_sha256(sha256):
        raise _Invalid(f"tokenizer sha256 {_short(sha256)} is not a SHA-256 hex digest")
    return TokenizerEntry(tokenizer["path"], sha256, vocab, eot)


def _splits(splits: object) -> dict[str, list[ShardEntry]]:
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise _Invalid("no 'splits' mapping of split name to a list of shards")
    typed: dict[str, list[ShardEntry]] = {}
    seen: set[str] = set()
    for split, entries in splits.items():
        typed[split] = [_shard(split, e) for e in entries]
        for entry in typed[split]:
            if entry.path in seen:
                raise _Invalid(f"split {split!r}: shard {entry.path} is listed twice")
            seen.add(entry.path)
    return typed


def _shard(split: str, e: object) -> ShardEntry:
    if not (isinstance(e, dict) and isinstance(e.get("path"), str) and SHARD_RE.match(e["path"])):
        raise _Invalid(f"split {split!r}: bad shard entry {_short(e)} (path must be like {split}-000000.tar)")
    path = e["path"]
    if not all(_is_count(e.get(k)) for k in ("docs", "tokens")):
        raise _Invalid(f"split {split!r}: shard {path} has no integer 'docs' and 'tokens' counts")
    if not (_is_count(e.get("bytes")) and _is_sha256(e.get("sha256"))):
        raise _Invalid(f"split {split!r}: shard {path} has no integer 'bytes' and hex 'sha256' to check")
    index = _index(split, path, e.get("index"))
    return ShardEntry(path, e["docs"], e["tokens"], e["bytes"], e["sha256"], index)


def _index(split: str, path: str, index: object) -> IndexEntry | None:
    """A shard entry's optional `index`: absent in releases made before indexes, checked when present."""
    if index is None:
        return None
    if not (isinstance(index, dict) and _is_count(index.get("bytes")) and _is_sha256(index.get("sha256"))):
        raise _Invalid(f"split {split!r}: shard {path} has an 'index' without integer 'bytes' and hex sha256")
    return IndexEntry(index["bytes"], index["sha256"])


def _ngrams(entries: object) -> list[NgramEntry]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise _Invalid("'ngrams' is not a list of filters")
    typed = []
    needs = "a file name 'path', hex 'sha256', integer 'bytes' and 'n'"
    for e in entries:
        partitions = e.get("partitions", 1) if isinstance(e, dict) else 1
        if not (isinstance(e, dict) and _is_count(e.get("n"))):
            raise _Invalid(f"bad ngrams entry {_short(e)} (needs {needs})")
        if partitions == 1 and not isinstance(partitions, bool):  # a whole filter: one file
            if not _is_file(e):
                raise _Invalid(f"bad ngrams entry {_short(e)} (needs {needs})")
            typed.append(NgramEntry(e["path"], e["sha256"], e["bytes"], e["n"]))
        else:
            typed.append(_partitioned(e, partitions))
    return typed


def _partitioned(e: dict, partitions: object) -> NgramEntry:
    """The entry of a filter in P > 1 partitions: P a power of two, `parts` its P files, distinct names."""
    if not (_is_count(partitions) and partitions > 1 and partitions & (partitions - 1) == 0):
        raise _Invalid(
            f"ngrams entry for n={e['n']}: 'partitions' {_short(partitions)} is not a power of two"
        )
    parts = e.get("parts")
    if not (isinstance(parts, list) and len(parts) == partitions and all(_is_file(p) for p in parts)):
        needs = f"a list 'parts' of {partitions} files, each with a file name 'path', hex 'sha256', 'bytes'"
        raise _Invalid(f"ngrams entry for n={e['n']}: needs {needs}")
    files = tuple(NgramFile(p["path"], p["sha256"], p["bytes"]) for p in parts)
    if len({f.path for f in files}) != len(files):
        raise _Invalid(f"ngrams entry for n={e['n']}: a partition file is listed twice")
    return NgramEntry(None, None, sum(f.bytes for f in files), e["n"], partitions, files)


def _is_file(e: object) -> bool:
    """A dict naming a file next to manifest.json, with its SHA-256 and size."""
    return (
        isinstance(e, dict)
        and isinstance(e.get("path"), str)
        and PLAIN_NAME_RE.match(e["path"]) is not None
        and _is_sha256(e.get("sha256"))
        and _is_count(e.get("bytes"))
    )


def _is_count(value: object) -> bool:
    """A JSON integer >= 0 (true/false are not counts, though Python's bool is an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and SHA256_RE.match(value) is not None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text
