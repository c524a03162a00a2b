"""A release as the trainer reads it: its manifest (checked), the agreed steps per epoch, and the token arrays
of one shard (local path or any fsspec URL), read whole and checked against the manifest's size and sha256
before any of it is used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np

from corpus.errors import InputError
from corpus.shards import SHARD_RE, load_tokens, token_members
from corpus.workdir import read_url, require_output


class ShardError(InputError):
    """A shard that is missing or cannot be read; the message names it."""


@dataclass(frozen=True)
class Release:
    """A release directory (local path or fsspec URL) and its manifest.json."""

    root: str
    manifest: dict
    eot_id: int
    vocab_size: int

    def shards(self, split: str) -> list[dict]:
        """The manifest's shard entries of `split` with their full `url` added ([] for an absent split)."""
        return [{**e, "url": f"{self.root}/{e['path']}"} for e in self.manifest["splits"].get(split, [])]

    def tokenizer_path(self) -> str:
        """Path or URL of the release's tokenizer.json."""
        return f"{self.root}/{self.manifest['tokenizer']['path']}"


def open_release(path_or_url: str) -> Release:
    """The release `path_or_url` holds (a work directory, its release/ folder or a release directory: the
    committed one, corpus/workdir.py), its manifest.json read and checked; any problem is one InputError
    naming the path or the manifest."""
    root = require_output(str(path_or_url), ("release",), read_url).path
    url = f"{root}/manifest.json"
    try:
        with fsspec.open(url, "rb") as f:
            manifest = json.loads(f.read())
    except FileNotFoundError:
        raise InputError(f"{url}: missing (is {root} a release directory?)") from None
    except ValueError as e:  # bad JSON, or a URL scheme fsspec does not know
        raise InputError(f"{url}: cannot read the manifest ({e})") from None
    except OSError as e:
        raise InputError(f"{url}: cannot read ({e})") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise InputError(f"{url}: {problem}")
    tokenizer = manifest["tokenizer"]
    return Release(root, manifest, tokenizer["eot_id"], tokenizer["vocab_size"])


def _manifest_problem(manifest: object) -> str | None:
    if not isinstance(manifest, dict):
        return "not a JSON object"
    tokenizer = manifest.get("tokenizer")
    if not isinstance(tokenizer, dict) or not isinstance(tokenizer.get("path"), str):
        return "no 'tokenizer' entry with a 'path'"
    vocab, eot = tokenizer.get("vocab_size"), tokenizer.get("eot_id")
    if not (isinstance(vocab, int) and isinstance(eot, int) and 0 <= eot < vocab):
        return (
            f"tokenizer vocab_size {vocab!r} / eot_id {eot!r} are not integers with 0 <= eot_id < vocab_size"
        )
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        return "no 'splits' mapping of split name to a list of shards"
    for split, entries in splits.items():
        for e in entries:
            if not (isinstance(e, dict) and isinstance(e.get("path"), str) and SHARD_RE.match(e["path"])):
                return f"split {split!r}: bad shard entry {e!r} (path must be like {split}-000000.tar)"
            if not all(isinstance(e.get(k), int) and e[k] >= 0 for k in ("docs", "tokens")):
                return f"split {split!r}: shard {e['path']} has no integer 'docs' and 'tokens' counts"
    return None


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
