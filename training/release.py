"""A release as the trainer reads it: its manifest (checked), the agreed steps per epoch, and the token arrays
of one shard (local path or any fsspec URL), read whole and checked against the manifest's size and sha256
before any of it is used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import fsspec
import numpy as np

from corpus.errors import InputError
from corpus.manifest import Manifest, parse_manifest
from corpus.shard_index import decode_index, index_name, keys_of, layout_problem, token_spans
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
    return _read_checked(entry["url"], entry.get("bytes"), entry.get("sha256"), "shard")


def read_index_bytes(entry: dict) -> bytes:
    """The shard's byte-offset index (corpus/shard_index.py), checked against the manifest entry's `index`."""
    index = entry["index"]
    return _read_checked(index_name(entry["url"]), index.get("bytes"), index.get("sha256"), "index")


def _read_checked(url: str, size: object, sha256: object, what: str) -> bytes:
    """The file at `url`, read whole; ShardError unless its size and sha256 are the manifest's."""
    if not isinstance(size, int) or not isinstance(sha256, str):
        raise ShardError(f"{url}: the manifest gives no 'bytes' and 'sha256' to check the {what} against")
    try:
        with fsspec.open(url, "rb") as f:
            if getattr(f, "size", None) not in (None, size):
                raise ShardError(f"{url}: corrupt {what} ({f.size} bytes, the manifest says {size})")
            data = f.read(size + 1)  # one byte more tells a file that grew
    except FileNotFoundError:
        raise ShardError(f"{url}: {what} missing") from None
    except OSError as e:
        raise ShardError(f"{url}: cannot read the {what} ({e})") from None
    if len(data) != size:
        raise ShardError(f"{url}: corrupt {what} ({len(data)} bytes, the manifest says {size})")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ShardError(f"{url}: corrupt {what} (sha256 differs from the manifest)")
    return data


def read_shard_tokens(entry: dict, vocab_size: int, skip: int = 0) -> Iterator[tuple[int, str, np.ndarray]]:
    """(sample index, key, tokens) of a shard's samples from index `skip` on; ShardError names any damage.

    The shard is read whole and checked (read_shard_bytes) and all of it is checked before the first sample
    is handed over, so a damaged shard gives no document at all. With an index (the manifest entry's
    `index`, checked the same way, and checked to describe exactly the tar's members: layout_problem) the
    token ids are sliced out of the shard's bytes at its offsets, and the shard's bytes are let go. A release
    without one, or a shard its index does not describe, is parsed with tarfile (which names a member that
    must not be read), decoding only the `tokens.npy` members from sample `skip` on.
    """
    url = entry["url"]
    data = read_shard_bytes(entry)
    index = read_index_bytes(entry) if entry.get("index") else None
    try:
        table = None if index is None else decode_index(index, len(data))
        why = None if table is None else layout_problem(table, data)
        if table is not None and why is None:
            samples, count = _indexed(data, table, skip, vocab_size)
        else:
            samples, count = _parsed(data, url, skip, vocab_size)
            if why is not None:  # the tar itself is sound: the index is what is wrong
                raise ValueError(
                    f"its index {index_name(url).rsplit('/', 1)[-1]} does not describe it: {why}"
                )
    except Exception as e:  # anything a damaged tar, npy or index raises means a corrupt shard
        detail = " ".join(str(e).removeprefix(f"{url}: ").split())
        raise ShardError(f"{url}: corrupt shard ({type(e).__name__}: {detail})") from None
    del data
    if count != entry["docs"]:
        raise ShardError(f"{url}: corrupt shard ({count} documents, the manifest says {entry['docs']})")
    yield from samples


Samples = list[tuple[int, str, np.ndarray]]


def read_ahead(entries: list[dict], vocab_size: int, skip: int = 0) -> Generator[Future[Samples], None, None]:
    """For each shard entry in order, a Future of its samples (read_shard_tokens, from sample `skip` of the
    first): the next shard is read in a background thread while the caller uses the one before.

    Reading a shard (its bytes, their sha256, the index and its checks, the copy of the token ids) runs
    mostly outside the GIL, so it overlaps the caller's packing instead of stopping it once per shard. A
    damaged shard's ShardError comes out of its Future's result(), when the caller reaches it. Memory: the
    shard in use and the next one.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
    try:
        following: Future[Samples] | None = None
        for i, entry in enumerate(entries):
            current = following or pool.submit(_samples, entry, vocab_size, skip if i == 0 else 0)
            following = pool.submit(_samples, entries[i + 1], vocab_size, 0) if i + 1 < len(entries) else None
            yield current
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _samples(entry: dict, vocab_size: int, skip: int) -> Samples:
    return list(read_shard_tokens(entry, vocab_size, skip))


def _parsed(data: bytes, url: str, skip: int, vocab_size: int) -> tuple[Samples, int]:
    """(samples from `skip` on, number of samples) of a shard without an index, its tar headers parsed."""
    samples, count = [], 0
    for count, (key, payload) in enumerate(token_members(data, url), start=1):
        if count <= skip:
            continue
        tokens = load_tokens(payload)
        _check_vocab(tokens, [key], [0, len(tokens)], vocab_size)
        samples.append((count - 1, key, tokens))
    return samples, count


def _indexed(data: bytes, table: np.ndarray, skip: int, vocab_size: int) -> tuple[Samples, int]:
    """(samples from `skip` on, number of samples) of a shard read through its checked index: the token ids
    copied into one array (one itemsize, as the release stage writes), each sample a view of it, so the
    shard's bytes can go; a shard mixing uint16 and uint32 samples gets a view of the shard per sample."""
    rest = table[skip:]
    keys, (starts, ends) = keys_of(rest), token_spans(rest)
    itemsizes = np.unique(rest["itemsize"]).tolist()
    if len(itemsizes) > 1:
        spans = zip(rest["itemsize"].tolist(), starts.tolist(), ends.tolist(), strict=True)
        views = [np.frombuffer(data, f"<u{n}", (end - start) // n, start) for n, start, end in spans]
        for key, view in zip(keys, views, strict=True):
            _check_vocab(view, [key], [0, len(view)], vocab_size)
    else:
        raw = np.frombuffer(data, np.uint8)
        pieces = [raw[start:end] for start, end in zip(starts.tolist(), ends.tolist(), strict=True)]
        tokens = np.concatenate(pieces or [raw[:0]]).view(f"<u{(itemsizes or [2])[0]}")
        bounds = [0, *np.cumsum((ends - starts) // tokens.itemsize).tolist()]
        _check_vocab(tokens, keys, bounds, vocab_size)
        views = [tokens[low:high] for low, high in zip(bounds, bounds[1:], strict=False)]
    return [(skip + i, key, view) for i, (key, view) in enumerate(zip(keys, views, strict=True))], len(table)


def _check_vocab(tokens: np.ndarray, keys: list[str], bounds: list[int], vocab_size: int) -> None:
    """ValueError naming the first sample (of `keys`, whose tokens are tokens[bounds[i]:bounds[i + 1]]) with
    a token id >= `vocab_size`; one vectorized max when all are fine."""
    if not tokens.size or int(tokens.max()) < vocab_size:
        return
    first = int(np.argmax(tokens >= vocab_size))
    sample = int(np.searchsorted(bounds, first, side="right")) - 1
    raise ValueError(f"sample {keys[sample]!r} has token id {tokens[first]} >= vocab_size {vocab_size}")
