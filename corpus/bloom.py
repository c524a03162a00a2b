"""A Bloom filter of 64-bit n-gram hashes, sized for a false-positive bound (GPT-2 section 4), and its file.

Sizing. For `items` distinct keys and a bound `fpr`, the textbook choice is m = -items ln(fpr) / ln(2)^2 bits
and k = m/items ln 2 hashes. Here k is a multiple of 8 (see below), and for each candidate k the number of
bits is the least m with (1 - e^(-k items/m))^k <= fpr, the standard estimate of the false-positive rate;
the k of the smallest m wins. At fpr = 1e-8 that is k = 24 and 38.5 bits per key, 0.3% more than the
unconstrained optimum (k = 26.6). The bit array is rounded up to whole 64-bit words.

Positions. Kirsch-Mitzenmacher double hashing, in groups of 8 hashes: for group j, two 64-bit values h1, h2
are mixed from the key (MurmurHash3's fmix64 of the key xor constants of j), and hash i of the group picks
byte g_i = (h1 + i h2) mod B of the B bytes and sets bit i of it. A key thus sets one bit in each of the 8
bit positions of a byte per group, so the array is 8 interleaved slices that each see the same load, and the
estimate above holds as for a plain Bloom filter. Fresh (h1, h2) per group matter for small filters: with
one pair for all k hashes, two keys with equal (h1 mod B, h2 mod B) collide on every bit, a floor of ~items /
B^2 under the false-positive rate (3e-5 for a 7 KB filter); with k/8 pairs the floor is ~items / B^(2k/8).
What the layout buys is speed: all writes of hash i set the same bit, so numpy's `bytes[g] |= bit` is
correct even when g repeats (a repeated index writes the same value twice), and an insert is k
gather-or-scatter passes instead of an unbuffered `np.bitwise_or.at` (3x slower), on preallocated scratch
arrays. On a filter larger than the CPU caches the k random bytes per key are the cost (24 cache misses at
1e-8, each read and written back): inserts and queries of present keys are memory-bound. Smaller chunks,
sorted positions and fewer temporaries did not move the rate; a layout with a key's bits in one cache line
would, but needs ~60 bits per key instead of 38.5 for 1e-8 (block load variance), so v1 keeps this one.

Queries test hash 0 for every key, then hash 1 only for the keys still possibly present, and so on: a key
that is absent is rejected after ~2 probes on average (each probe passes with the fill ratio, ~1/2).

Partitions. A filter too large for one worker is built as P = 2^b partitions (`PartitionedBloom`): a key
belongs to the partition its top b bits name, and each partition is an ordinary filter sized by `plan` for
its own exact number of distinct keys at the same bound. A query of an absent key probes exactly one
partition, so the false-positive rate of the whole is at most the bound; a present key is always found in
its partition. Given the same keys, the partitioned filter therefore answers exactly as one filter would,
except for false positives, which both keep under the bound. P = 1 is the plain filter, byte for byte.

File: a 64-byte little-endian header (`HEADER`: magic, version, n, bits, hashes, partition, items, fpr
bound, hash function name), then the B bytes of the array (bit j of the filter is bit j mod 8 of byte
j // 8). `load` maps the array read-only with numpy, so a filter larger than memory can still be queried;
`save_to` and `read_from` write and read the same bytes through a file object (how pipelines/ reaches
gs://, s3://, ...). The partition field (a reserved 0 before partitions existed, so every earlier file
reads as a whole filter) is 0 for a whole filter and b << 16 | i for partition i of 2^b: a partition file
says what it is, so it is never mistaken for a whole filter.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np

from corpus.ngrams import NGRAM_HASH

MAGIC = b"WTBLOOM\x00"
VERSION = 1
HEADER = struct.Struct("<8sIIQIIQd16s")  # magic, version, n, bits, hashes, partition, items, fpr, hash name
_CHUNK = 1 << 16  # keys per vectorized pass: the working arrays stay in the CPU cache
MAX_PARTITIONS = 1 << 12  # partitions are named by at most the top 12 bits of a key
_GOLDEN = 0x9E3779B97F4A7C15  # the key is mixed with multiples of it to derive (h1, h2) per group
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


class BloomFormatError(ValueError):
    """A file that is not a Bloom filter of this format (the message names the file)."""


@dataclass(frozen=True)
class BloomParams:
    """What a filter is: n (words per n-gram), bits m, hashes k, the distinct items it was sized for, the
    false-positive bound it was sized for, the hash function of its keys, and which partition of how many
    it is (0 of 1: a whole filter)."""

    n: int
    bits: int
    hashes: int
    items: int
    fpr: float
    hash: str = NGRAM_HASH
    partition: int = 0
    partitions: int = 1

    @property
    def nbytes(self) -> int:
        return self.bits // 8

    def expected_fpr(self, items: int | None = None) -> float:
        """(1 - e^(-k items/m))^k: the false-positive rate with `items` keys inserted (default: as sized)."""
        items = self.items if items is None else items
        return (1.0 - math.exp(-self.hashes * items / self.bits)) ** self.hashes

    def to_dict(self) -> dict:
        """The parameters as the manifest records them (a whole filter's keys are those of before
        partitions existed)."""
        out = {
            "n": self.n,
            "bits": self.bits,
            "hashes": self.hashes,
            "items": self.items,
            "fpr": self.fpr,
            "hash": self.hash,
        }
        if self.partitions > 1:
            out |= {"partition": self.partition, "partitions": self.partitions}
        return out


def _bits_for(items: int, fpr: float, k: int) -> int:
    """The least m, in whole 64-bit words, with (1 - e^(-k items/m))^k <= fpr."""
    m = math.ceil(-k * items / math.log1p(-(fpr ** (1.0 / k)))) if items else 64
    m = -(-m // 64) * 64
    while (1.0 - math.exp(-k * items / m)) ** k > fpr:  # guards the rounding of the closed form
        m += 64
    return m


def plan(items: int, fpr: float, n: int) -> BloomParams:
    """The parameters of a filter for `items` distinct n-grams with false-positive rate at most `fpr`."""
    if not 0 < fpr < 1:
        raise ValueError(f"the false-positive bound must be in (0, 1), got {fpr}")
    if items < 0:
        raise ValueError(f"items must be >= 0, got {items}")
    optimum = math.log2(1.0 / fpr)  # k = m/items ln 2 at the textbook m
    candidates = {max(8, 8 * math.floor(optimum / 8)), max(8, 8 * math.ceil(optimum / 8))}
    bits, k = min((_bits_for(items, fpr, k), k) for k in sorted(candidates))
    return BloomParams(n=n, bits=bits, hashes=k, items=items, fpr=fpr)


def partition_bits(partitions: int) -> int:
    """b for P = 2^b partitions; ValueError for a P that is not a power of two up to MAX_PARTITIONS."""
    if not (1 <= partitions <= MAX_PARTITIONS and partitions & (partitions - 1) == 0):
        raise ValueError(f"partitions must be a power of two from 1 to {MAX_PARTITIONS}, got {partitions}")
    return partitions.bit_length() - 1


def partition_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """The partition of each key (int64): its top b bits for P = 2^b partitions."""
    bits = partition_bits(partitions)
    keys = np.asarray(keys, dtype=np.uint64)
    if not bits:
        return np.zeros(len(keys), dtype=np.int64)
    return (keys >> np.uint64(64 - bits)).astype(np.int64)


def split_sorted(keys: np.ndarray, partitions: int) -> list[np.ndarray]:
    """Sorted keys cut into their partitions (views, in partition order; an empty one where none falls)."""
    bits = partition_bits(partitions)
    bounds = np.arange(1, partitions, dtype=np.uint64) << np.uint64(64 - bits) if bits else []
    return np.split(keys, np.searchsorted(keys, bounds))


def plan_partitions(items: list[int], fpr: float, n: int) -> list[BloomParams]:
    """The parameters of P = len(items) partitions (a power of two), partition i sized by `plan` for its own
    items[i] distinct keys at the bound `fpr`, so that the whole keeps the bound. One item: `plan`'s whole
    filter, unchanged."""
    partition_bits(len(items))
    if len(items) == 1:
        return [plan(items[0], fpr, n)]
    return [replace(plan(c, fpr, n), partition=i, partitions=len(items)) for i, c in enumerate(items)]


_M1, _M2, _SHIFT = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(33)


def _fmix_into(h: np.ndarray, tmp: np.ndarray) -> None:
    """`corpus.ngrams.fmix64` in place, with a scratch array of the same size (no temporaries)."""
    for multiplier in (_M1, _M2, None):
        np.right_shift(h, _SHIFT, out=tmp)
        np.bitwise_xor(h, tmp, out=h)
        if multiplier is not None:
            np.multiply(h, multiplier, out=h)


class _Scratch:
    """Preallocated working arrays of one chunk: positions, strides, a mixing buffer, gathered bytes."""

    def __init__(self, size: int) -> None:
        self.g, self.step = np.empty(size, dtype=np.uint64), np.empty(size, dtype=np.uint64)
        self.tmp, self.byte = np.empty(size, dtype=np.uint64), np.empty(size, dtype=np.uint8)

    def views(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.g[:size], self.step[:size], self.tmp[:size], self.byte[:size]


class BloomFilter:
    """A Bloom filter of uint64 keys (n-gram hashes from `corpus.ngrams.NgramHasher`)."""

    def __init__(self, params: BloomParams, array: np.ndarray | None = None) -> None:
        if params.bits <= 0 or params.bits % 64 or params.hashes <= 0 or params.hashes % 8:
            raise ValueError(f"bits must be a positive multiple of 64 and hashes of 8: {params}")
        partition_bits(params.partitions)
        if not 0 <= params.partition < params.partitions:
            raise ValueError(f"partition {params.partition} of {params.partitions}")
        self.params = params
        self.array = np.zeros(params.nbytes, dtype=np.uint8) if array is None else array
        if self.array.dtype != np.uint8 or self.array.shape != (params.nbytes,):
            raise ValueError(f"array must be {params.nbytes} uint8, got {self.array.dtype}{self.array.shape}")

    def _starts(self, keys: np.ndarray, group: int, scratch: _Scratch) -> tuple[np.ndarray, np.ndarray]:
        """(g_0, step - B) of every key in a group of 8 hashes, as int64 views of the scratch arrays: the
        byte of its first hash, and the stride to the next one less the array size (so that `_advance`
        wraps with a sign test, not a mod)."""
        size = self.params.nbytes
        g, step, tmp, _ = scratch.views(len(keys))
        np.bitwise_xor(keys, np.uint64(_GOLDEN * (2 * group + 1) % 2**64), out=g)
        _fmix_into(g, tmp)
        np.remainder(g, np.uint64(size), out=g)
        np.bitwise_xor(keys, np.uint64(_GOLDEN * (2 * group + 2) % 2**64), out=step)
        _fmix_into(step, tmp)
        np.remainder(step, np.uint64(size - 1), out=step)
        signed = step.view(np.int64)
        signed += 1 - size  # (h2 mod (B - 1) + 1) - B, in [1 - B, -1]
        return g.view(np.int64), signed

    def _advance(self, g: np.ndarray, step: np.ndarray, tmp: np.ndarray) -> None:
        """g <- (g + step) mod B, in place: g + step - B lies in [-B, B), so add B back where negative."""
        g += step
        np.right_shift(g, 63, out=tmp)
        tmp &= self.params.nbytes
        g += tmp

    def add(self, keys: np.ndarray) -> None:
        """Insert the keys (uint64); repeats are harmless."""
        keys = np.asarray(keys, dtype=np.uint64)
        array, scratch = self.array, _Scratch(min(_CHUNK, len(keys)))
        for lo in range(0, len(keys), _CHUNK):
            chunk = keys[lo : lo + _CHUNK]
            _, _, tmp, byte = scratch.views(len(chunk))
            signed_tmp = tmp.view(np.int64)
            for group in range(self.params.hashes // 8):
                g, step = self._starts(chunk, group, scratch)
                for bit in range(8):
                    np.take(array, g, out=byte)
                    byte |= np.uint8(1 << bit)
                    array[g] = byte
                    self._advance(g, step, signed_tmp)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Boolean mask of the keys that are possibly in the filter (absent keys pass with the FPR)."""
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.zeros(len(keys), dtype=bool)
        array, scratch = self.array, _Scratch(min(_CHUNK, len(keys)))
        for lo in range(0, len(keys), _CHUNK):
            alive = np.arange(lo, min(lo + _CHUNK, len(keys)))  # keys whose bits were all set so far
            for group in range(self.params.hashes // 8):
                g, step = self._starts(keys[alive], group, scratch)
                for bit in range(8):
                    _, _, tmp, byte = scratch.views(len(alive))
                    np.take(array, g, out=byte)
                    byte &= np.uint8(1 << bit)
                    hit = byte != 0
                    if not hit.all():
                        alive, g, step = alive[hit], g[hit], step[hit]
                    self._advance(g, step, tmp[: len(alive)].view(np.int64))
                if not len(alive):
                    break
            found[alive] = True
        return found

    def merge(self, other: BloomFilter) -> BloomFilter:
        """OR another filter with the same parameters into this one (the union of their keys)."""
        if other.params != self.params:
            raise ValueError(f"cannot merge filters with different parameters: {self.params} {other.params}")
        np.bitwise_or(self.array.view(np.uint64), other.array.view(np.uint64), out=self.array.view(np.uint64))
        return self

    def fill(self) -> float:
        """The fraction of bits set."""
        return self.ones() / self.params.bits

    def ones(self) -> int:
        """The number of bits set."""
        return sum(
            int(_POPCOUNT[self.array[lo : lo + _CHUNK * 64]].sum(dtype=np.int64))
            for lo in range(0, len(self.array), _CHUNK * 64)
        )

    def estimated_fpr(self) -> float:
        """fill^k: the false-positive rate the filter's actual content gives."""
        return self.fill() ** self.params.hashes

    def describe(self) -> dict:
        """What a report says of the filter: its parameters."""
        return self.params.to_dict()

    def header(self) -> bytes:
        """The file's 64-byte header."""
        p = self.params
        field = (partition_bits(p.partitions) << 16 | p.partition) if p.partitions > 1 else 0
        return HEADER.pack(MAGIC, VERSION, p.n, p.bits, p.hashes, field, p.items, p.fpr, _hash_name(p.hash))

    def save_to(self, handle: BinaryIO) -> None:
        """Write the file's bytes (the header, then the array) to a binary file object."""
        handle.write(self.header())
        handle.write(memoryview(self.array))

    def save(self, path: str) -> None:
        """Write the filter to `path` (through a temporary file, renamed when complete)."""
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as handle:
            self.save_to(handle)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str, mmap: bool = True) -> BloomFilter:
        """Read a filter written by `save`; the array is mapped read-only unless `mmap` is False."""
        try:
            with open(path, "rb") as handle:
                head = handle.read(HEADER.size)
            size = os.path.getsize(path)
        except OSError as err:
            raise BloomFormatError(f"{path}: cannot read the Bloom filter ({err.strerror})") from None
        params = _read_header(head, path)
        _check_size(size, params, path)
        if mmap and params.nbytes:
            array = np.memmap(path, dtype=np.uint8, mode="r", offset=HEADER.size, shape=(params.nbytes,))
        else:
            array = np.fromfile(path, dtype=np.uint8, offset=HEADER.size, count=params.nbytes)
        return cls._checked(params, array, path)

    @classmethod
    def read_from(cls, handle: BinaryIO, name: str) -> BloomFilter:
        """Read a filter from a binary file object at its start, the whole array into memory (for files on
        storage that cannot be mapped); `name` names the file in errors."""
        params = _read_header(handle.read(HEADER.size), name)
        array = np.empty(params.nbytes, dtype=np.uint8)
        view, got = memoryview(array), 0
        while got < params.nbytes and (count := handle.readinto(view[got:])):
            got += count
        _check_size(HEADER.size + got + len(handle.read()), params, name)
        return cls._checked(params, array, name)

    @classmethod
    def _checked(cls, params: BloomParams, array: np.ndarray, name: str) -> BloomFilter:
        try:
            return cls(params, array)
        except ValueError as err:
            raise BloomFormatError(f"{name}: {err}") from None


def _read_header(head: bytes, name: str) -> BloomParams:
    if len(head) < HEADER.size or head[:8] != MAGIC:
        raise BloomFormatError(f"{name}: not a webtext Bloom filter (bad magic)")
    magic, version, n, bits, hashes, field, items, fpr, hash_name = HEADER.unpack(head)
    if version != VERSION:
        raise BloomFormatError(f"{name}: Bloom filter format version {version}, this reads {VERSION}")
    partitions, partition = 1 << (field >> 16), field & 0xFFFF
    if partitions > MAX_PARTITIONS or partition >= partitions:
        raise BloomFormatError(f"{name}: bad partition field {field:#x} in the header")
    hash_name = hash_name.rstrip(b"\x00").decode("ascii")
    return BloomParams(n, bits, hashes, items, fpr, hash_name, partition, partitions)


def _check_size(size: int, params: BloomParams, name: str) -> None:
    promised = HEADER.size + params.nbytes
    if size != promised:
        why = " (truncated?)" if size < promised else ""
        raise BloomFormatError(f"{name}: {size} bytes, the header promises {promised}{why}")


def _hash_name(name: str) -> bytes:
    raw = name.encode("ascii")
    if len(raw) > 16:
        raise ValueError(f"hash function name longer than 16 bytes: {name!r}")
    return raw


class PartitionedBloom:
    """P = 2^b filters of one set of keys, partition i holding the keys whose top b bits are i (see the
    module's docstring); added to and queried like one BloomFilter. `params` sums the partitions' bits and
    items (k is the largest of theirs); each partition's own are in `parts`."""

    def __init__(self, parts: list[BloomFilter]) -> None:
        partition_bits(len(parts))
        first = parts[0].params
        for i, part in enumerate(parts):
            p = part.params
            if (p.partition, p.partitions) != (i, len(parts)):
                raise ValueError(f"partition {i} of {len(parts)} says it is {p.partition} of {p.partitions}")
            if (p.n, p.fpr, p.hash) != (first.n, first.fpr, first.hash):
                raise ValueError(
                    f"partition {i} holds {p.n}-grams at FPR {p.fpr:g} ({p.hash}), partition 0 "
                    f"{first.n}-grams at FPR {first.fpr:g} ({first.hash})"
                )
        self.parts = parts
        self.params = BloomParams(
            n=first.n,
            bits=sum(part.params.bits for part in parts),
            hashes=max(part.params.hashes for part in parts),
            items=sum(part.params.items for part in parts),
            fpr=first.fpr,
            hash=first.hash,
            partitions=len(parts),
        )

    @classmethod
    def planned(cls, params: list[BloomParams]) -> PartitionedBloom:
        """Empty partitions with these parameters (`plan_partitions`)."""
        return cls([BloomFilter(p) for p in params])

    def _routed(self, keys: np.ndarray) -> Iterator[tuple[BloomFilter, np.ndarray]]:
        """(partition, the positions in `keys` of its keys) for every partition that has some. A stable
        sort of the 16-bit partition numbers is a radix sort in numpy: linear in the keys."""
        if len(self.parts) == 1:
            yield self.parts[0], np.arange(len(keys))
            return
        which = partition_of(keys, len(self.parts)).astype(np.uint16)
        order = np.argsort(which, kind="stable")
        bounds = np.cumsum(np.bincount(which, minlength=len(self.parts)))
        for part, lo, hi in zip(self.parts, [0, *bounds[:-1].tolist()], bounds.tolist(), strict=True):
            if hi > lo:
                yield part, order[lo:hi]

    def add(self, keys: np.ndarray) -> None:
        """Insert the keys (uint64), each into its partition."""
        keys = np.asarray(keys, dtype=np.uint64)
        for part, where in self._routed(keys):
            part.add(keys[where])

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Boolean mask of the keys possibly present, each asked of its partition only."""
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.zeros(len(keys), dtype=bool)
        for part, where in self._routed(keys):
            found[where] = part.contains(keys[where])
        return found

    def fill(self) -> float:
        """The fraction of all partitions' bits set."""
        return sum(part.ones() for part in self.parts) / self.params.bits

    def estimated_fpr(self) -> float:
        """The mean of the partitions' fill^k: a random absent key lands in each with probability 1/P."""
        return sum(part.estimated_fpr() for part in self.parts) / len(self.parts)

    def describe(self) -> dict:
        """What a report says of the filter: the totals, P, and each partition's bits, hashes and items."""
        p = self.params
        return {
            "n": p.n,
            "bits": p.bits,
            "items": p.items,
            "fpr": p.fpr,
            "hash": p.hash,
            "partitions": p.partitions,
            "parts": [
                {"bits": part.params.bits, "hashes": part.params.hashes, "items": part.params.items}
                for part in self.parts
            ],
        }
