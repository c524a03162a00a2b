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
gather-or-scatter passes instead of an unbuffered `np.bitwise_or.at`.

Queries test hash 0 for every key, then hash 1 only for the keys still possibly present, and so on: a key
that is absent is rejected after ~2 probes on average (each probe passes with the fill ratio, ~1/2).

File: a 64-byte little-endian header (`HEADER`: magic, version, n, bits, hashes, items, fpr bound, hash
function name), then the B bytes of the array (bit j of the filter is bit j mod 8 of byte j // 8). `load`
maps the array read-only with numpy, so a filter larger than memory can still be queried; `save_to` and
`read_from` write and read the same bytes through a file object (how pipelines/ reaches gs://, s3://, ...).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from corpus.ngrams import NGRAM_HASH, fmix64

MAGIC = b"WTBLOOM\x00"
VERSION = 1
HEADER = struct.Struct("<8sIIQIIQd16s")  # magic, version, n, bits, hashes, reserved, items, fpr, hash name
_CHUNK = 1 << 16  # keys per vectorized pass: the working arrays stay in the CPU cache
_GOLDEN = 0x9E3779B97F4A7C15  # the key is mixed with multiples of it to derive (h1, h2) per group
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


class BloomFormatError(ValueError):
    """A file that is not a Bloom filter of this format (the message names the file)."""


@dataclass(frozen=True)
class BloomParams:
    """What a filter is: n (words per n-gram), bits m, hashes k, the distinct items it was sized for, the
    false-positive bound it was sized for, and the hash function of its keys."""

    n: int
    bits: int
    hashes: int
    items: int
    fpr: float
    hash: str = NGRAM_HASH

    @property
    def nbytes(self) -> int:
        return self.bits // 8

    def expected_fpr(self, items: int | None = None) -> float:
        """(1 - e^(-k items/m))^k: the false-positive rate with `items` keys inserted (default: as sized)."""
        items = self.items if items is None else items
        return (1.0 - math.exp(-self.hashes * items / self.bits)) ** self.hashes

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "bits": self.bits,
            "hashes": self.hashes,
            "items": self.items,
            "fpr": self.fpr,
            "hash": self.hash,
        }


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


class BloomFilter:
    """A Bloom filter of uint64 keys (n-gram hashes from `corpus.ngrams.NgramHasher`)."""

    def __init__(self, params: BloomParams, array: np.ndarray | None = None) -> None:
        if params.bits <= 0 or params.bits % 64 or params.hashes <= 0 or params.hashes % 8:
            raise ValueError(f"bits must be a positive multiple of 64 and hashes of 8: {params}")
        self.params = params
        self.array = np.zeros(params.nbytes, dtype=np.uint8) if array is None else array
        if self.array.dtype != np.uint8 or self.array.shape != (params.nbytes,):
            raise ValueError(f"array must be {params.nbytes} uint8, got {self.array.dtype}{self.array.shape}")

    def _starts(self, keys: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
        """(g_0, step - B) of every key in a group of 8 hashes, as int64: the byte of its first hash, and the
        stride to the next one less the array size (so that `_advance` wraps with a sign test, not a mod)."""
        size = np.uint64(self.params.nbytes)
        h1 = fmix64(keys ^ np.uint64(_GOLDEN * (2 * group + 1) % 2**64))
        h2 = fmix64(keys ^ np.uint64(_GOLDEN * (2 * group + 2) % 2**64))
        step = (h2 % (size - np.uint64(1)) + np.uint64(1)).astype(np.int64)
        return (h1 % size).astype(np.int64), step - self.params.nbytes

    def _advance(self, g: np.ndarray, step: np.ndarray) -> None:
        """g <- (g + step) mod B, in place: g + step - B lies in [-B, B), so add B back where negative."""
        g += step
        g += (g >> 63) & self.params.nbytes

    def add(self, keys: np.ndarray) -> None:
        """Insert the keys (uint64); repeats are harmless."""
        keys = np.asarray(keys, dtype=np.uint64)
        array = self.array
        for lo in range(0, len(keys), _CHUNK):
            for group in range(self.params.hashes // 8):
                g, step = self._starts(keys[lo : lo + _CHUNK], group)
                for bit in range(8):
                    array[g] |= np.uint8(1 << bit)
                    self._advance(g, step)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Boolean mask of the keys that are possibly in the filter (absent keys pass with the FPR)."""
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.zeros(len(keys), dtype=bool)
        array = self.array
        for lo in range(0, len(keys), _CHUNK):
            alive = np.arange(lo, min(lo + _CHUNK, len(keys)))  # keys whose bits were all set so far
            for group in range(self.params.hashes // 8):
                g, step = self._starts(keys[alive], group)
                for bit in range(8):
                    hit = (array[g] & np.uint8(1 << bit)) != 0
                    if not hit.all():
                        alive, g, step = alive[hit], g[hit], step[hit]
                    self._advance(g, step)
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
        ones = sum(
            int(_POPCOUNT[self.array[lo : lo + _CHUNK * 64]].sum(dtype=np.int64))
            for lo in range(0, len(self.array), _CHUNK * 64)
        )
        return ones / self.params.bits

    def save_to(self, handle: BinaryIO) -> None:
        """Write the file's bytes (the header, then the array) to a binary file object."""
        p = self.params
        header = HEADER.pack(MAGIC, VERSION, p.n, p.bits, p.hashes, 0, p.items, p.fpr, _hash_name(p.hash))
        handle.write(header)
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
    magic, version, n, bits, hashes, _, items, fpr, hash_name = HEADER.unpack(head)
    if version != VERSION:
        raise BloomFormatError(f"{name}: Bloom filter format version {version}, this reads {VERSION}")
    return BloomParams(n, bits, hashes, items, fpr, hash_name.rstrip(b"\x00").decode("ascii"))


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
