"""A release as the trainer reads it: its manifest (checked), the agreed steps per epoch, and the token arrays
of one shard (local path or any fsspec URL), read whole and checked against the manifest's size and sha256
before any of it is used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import fsspec
import numpy as np

from corpus.errors import InputError
from corpus.manifest import Manifest, parse_manifest
from corpus.shards import load_tokens, token_members
from corpus.workdir import read_url, require_output


class ShardError(InputError):
    """A shard that is missing or cannot be read; the message names it."""


@dataclass(frozen=True)
class Release:
    """A release directory (local path or fsspec URL) and its checked manifest.json (corpus/manifest.py)."""

    root: str
    typed: Manifest

    @property
    def manifest(self) -> dict:
        """manifest.json as read (kept for callers that index the JSON; new code reads `typed`)."""
        return self.typed.data

    @property
    def eot_id(self) -> int:
        return self.typed.tokenizer.eot_id

    @property
    def vocab_size(self) -> int:
        return self.typed.tokenizer.vocab_size

    def shards(self, split: str) -> list[dict]:
        """The shard entries of `split` as dicts with their full `url` added ([] for an absent split); the
        loader passes these to DataLoader workers and into read_shard_bytes."""
        return [{**asdict(e), "url": f"{self.root}/{e.path}"} for e in self.typed.shards(split)]

    def tokenizer_path(self) -> str:
        """Path or URL of the release's tokenizer.json."""
        return f"{self.root}/{self.typed.tokenizer.path}"


def open_release(path_or_url: str) -> Release:
    """The release `path_or_url` holds (a work directory, its release/ folder or a release directory: the
    committed one, corpus/workdir.py), its manifest.json read and checked; any problem is one InputError
    naming the path or the manifest."""
    root = require_output(str(path_or_url), ("release",), read_url).path
    url = f"{root}/manifest.json"
    data = read_url(url)  # InputError naming the URL when it cannot be read
    if data is None:
        raise InputError(f"{url}: missing (is {root} a release directory?)")
    return Release(root, parse_manifest(data, url))


def steps_per_epoch(
    release: Release, split: str, seq_len: int, micro_batch: int, world_size: int, grad_accum: int = 1
) -> int:
    """Optimizer steps in one pass over `split`, from the manifest's counts (documents add one EOT each).

    The same on every rank. It can be 0 for a split smaller than one step.
    """
    shards = release.shards(split)
    tokens = sum(e["tokens"] + e["docs"] for e in shards)
    return tokens // (seq_len + 1) // (micro_batch * world_size * grad_accum)


def read_shard_bytes(entry: dict) -> bytes:
    """The whole shard at entry["url"], after its size and sha256 are checked against the manifest entry."""
    url, size, sha256 = entry["url"], entry.get("bytes"), entry.get("sha256")
    if not isinstance(size, int) or not isinstance(sha256, str):
        raise ShardError(f"{url}: the manifest gives no 'bytes' and 'sha256' to check the shard against")
    try:
        with fsspec.open(url, "rb") as f:
            if getattr(f, "size", None) not in (None, size):
                raise ShardError(f"{url}: corrupt shard ({f.size} bytes, the manifest says {size})")
            data = f.read(size + 1)  # one byte more tells a file that grew
    except FileNotFoundError:
        raise ShardError(f"{url}: shard missing") from None
    except OSError as e:
        raise ShardError(f"{url}: cannot read the shard ({e})") from None
    if len(data) != size:
        raise ShardError(f"{url}: corrupt shard ({len(data)} bytes, the manifest says {size})")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ShardError(f"{url}: corrupt shard (sha256 differs from the manifest)")
    return data


def read_shard_tokens(entry: dict, vocab_size: int, skip: int = 0) -> Iterator[tuple[int, str, np.ndarray]]:
    """(sample index, key, tokens) of a shard's samples from index `skip` on; ShardError names any damage.

    The shard is read whole and checked (read_shard_bytes) and all of it is parsed before the first sample is
    handed over, so a damaged shard gives no document at all. Only the `tokens.npy` members are decoded, and
    only from sample `skip` on.
    """
    url = entry["url"]
    data = read_shard_bytes(entry)
    samples, count = [], 0
    try:
        for count, (key, payload) in enumerate(token_members(data, url), start=1):
            if count <= skip:
                continue
            tokens = load_tokens(payload)
            if tokens.size and int(tokens.max()) >= vocab_size:
                raise ValueError(f"sample {key!r} has token id {tokens.max()} >= vocab_size {vocab_size}")
            samples.append((count - 1, key, tokens))
    except Exception as e:  # anything a damaged tar or npy raises means a corrupt shard
        detail = " ".join(str(e).removeprefix(f"{url}: ").split())
        raise ShardError(f"{url}: corrupt shard ({type(e).__name__}: {detail})") from None
    if count != entry["docs"]:
        raise ShardError(f"{url}: corrupt shard ({count} documents, the manifest says {entry['docs']})")
    yield from samples
