"""GPT-2's text normalization for n-grams (section 4): lower-cased alphanumeric words separated by single
spaces. The one implementation every n-gram user shares: near-duplicate shingles, Wikipedia overlap, the
8-gram Bloom filter and decontamination.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re

import numpy as np

# Runs of letters and digits in any script; "_" and punctuation separate words.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The normalized words of a text: lower-case alphanumeric runs."""
    return _WORD.findall(text.lower())


def normalize(text: str) -> str:
    """Lower-cased alphanumeric words separated by single spaces."""
    return " ".join(words(text))


def ngrams(tokens: list[str], n: int) -> list[str]:
    """The n-grams of a word list as space-joined strings (a text shorter than n gives none)."""
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def stable_hash64(text: str) -> int:
    """A 64-bit hash that is the same in every process and on every machine (never Python's `hash`)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


# --- Vectorized n-gram hashes --------------------------------------------------------------------------
#
# The 64-bit hash of an n-gram combines the stable hashes of its n words: fmix64(P_0 w_0 + ... + P_{n-1}
# w_{n-1} mod 2^64), with fixed odd multipliers P_i (`ngram_hash` is the scalar definition). Each distinct
# word is hashed once (BLAKE2b, cached), and the n-grams of a whole batch of texts are n shifted
# multiply-adds over the concatenated word hashes in numpy. The result is the same in every process and on
# every machine. Two n-grams that differ in one word never collide (P_i is odd, fmix64 a bijection); other
# pairs collide with the ~2^-64 rate of any 64-bit hash.

NGRAM_HASH = "ngram64-v1"  # the name of this definition, recorded next to the hashes it produced
_CACHE_WORDS = 1 << 20  # word-hash cache bound (~150 MB); cleared when full
_VECTOR_CHARS = 4096  # a batch of fewer characters is hashed word by word (numpy's per-call cost dominates)
_TABLE_MIX, _TABLE_MIX2 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F  # a word's halves -> its table slot
_ROW = np.dtype((np.void, 32))  # a WordTable row as one item
_PAIR = np.dtype((np.void, 16))  # a word's (lo, hi) as one item


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (a bijection of uint64), elementwise."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@functools.cache
def _multipliers(n: int) -> np.ndarray:
    """The odd 64-bit multiplier of each word position in an n-gram (fixed, so hashes are stable)."""
    return np.array([stable_hash64(f"ngram position {i}") | 1 for i in range(n)], dtype=np.uint64)


def ngram_hash(gram: str, n: int) -> int:
    """The 64-bit hash of one n-gram (its n normalized words joined by single spaces), as `NgramHasher`
    computes it in bulk."""
    parts = gram.split(" ")
    if len(parts) != n:
        raise ValueError(f"expected {n} words, got {len(parts)}: {gram!r}")
    total = sum(p * stable_hash64(word) for p, word in zip(_multipliers(n).tolist(), parts, strict=True))
    return int(fmix64(np.array([total % (1 << 64)], dtype=np.uint64))[0])


def combine_word_hashes(word_hashes: np.ndarray) -> np.ndarray:
    """The n-gram hashes of a (count, n) uint64 array of word hashes, one n-gram per row."""
    n = word_hashes.shape[1]
    combined = np.zeros(len(word_hashes), dtype=np.uint64)
    for i, p in enumerate(_multipliers(n).tolist()):
        combined += word_hashes[:, i] * np.uint64(p)
    return fmix64(combined)


class NgramHasher:
    """The 64-bit hashes of the n-grams of many texts at once. Each text is its own document: no n-gram
    spans two texts; inside a text, line breaks are whitespace like any other. Not thread-safe (it caches
    word hashes)."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self._words = _WordHashes()
        self._table = WordTable()

    def __getstate__(self) -> dict:
        """Pickled without its caches (it travels to Beam workers inside DoFns; they refill there)."""
        return {"n": self.n}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["n"])

    def hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, counts): every text's n-gram hashes in text order, repeats included, concatenated
        (uint64), and the number of n-grams per text (a text of fewer than n words has none).

        A batch of some size takes the vectorized path (`text_word_hashes`: the words found and looked up
        in numpy, no Python object per word); a few short texts take `words` and a dict, which costs less
        than numpy's fixed overhead per call. Both give the same hashes (tested)."""
        if sum(map(len, texts)) < _VECTOR_CHARS:
            return self.hashes_of_words([words(text) for text in texts])
        flat, lengths = text_word_hashes(texts, self._table, self._words)
        return rolling_hashes(flat, lengths, self.n)

    def hashes_of_words(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """As `hashes`, from each text's normalized words."""
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        if len(self._words) > _CACHE_WORDS:
            self._words = _WordHashes()
        flat = np.fromiter(
            map(self._words.__getitem__, itertools.chain.from_iterable(docs)),
            dtype=np.uint64,
            count=int(lengths.sum()),
        )
        return rolling_hashes(flat, lengths, self.n)


def rolling_hashes(flat: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, counts) of texts given as their word hashes (uint64), concatenated, and each text's number
    of words: the combination at every window start of the concatenation (n shifted multiply-adds), then
    only the windows inside one text. What every way in (text, words, word ids) ends with."""
    counts = np.maximum(lengths - (n - 1), 0)
    if not counts.any():
        return np.empty(0, dtype=np.uint64), counts
    total = len(flat)
    starts = total - (n - 1)
    multipliers = _multipliers(n)
    combined = flat[:starts] * multipliers[0]
    for i, p in enumerate(multipliers[1:].tolist(), 1):
        combined += flat[i : i + starts] * np.uint64(p)
    if len(counts) > 1:
        ends = np.cumsum(lengths)  # one past each text's last word
        combined = combined[np.arange(starts) + n <= np.repeat(ends, lengths)[:starts]]
    return fmix64(combined), counts


class _WordHashes(dict):
    """word -> stable_hash64(word), filled on first lookup (one C-level dict lookup per cached word)."""

    def __missing__(self, word: str) -> int:
        value = self[word] = stable_hash64(word)
        return value


class WordTable:
    """Words of at most 16 UTF-8 bytes -> their `stable_hash64`, as a numpy open-addressing hash table, so
    that a batch's words are looked up without a Python object per word. A word is its bytes zero-padded
    to 16 and read as two uint64 (lo, hi): exact (no word byte is 0), so the table never confuses two
    words. lo == 0 marks an empty slot. Cleared when it holds more than `_CACHE_WORDS` words, like the
    dict of `hashes_of_words`; 32 bytes per slot, at most half full (~64 MiB at the bound)."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of two, got {capacity}")  # slots are masked
        self.rows = np.zeros((capacity, 4), dtype=np.uint64)  # lo, hi, hash, unused (a row is 32 bytes)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def lookup(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The hashes of the words (lo, hi), adding those not yet in the table."""
        values, missing = self._find(lo, hi)
        if missing.any():
            new_lo, new_hi, new = _new_words(lo[missing], hi[missing])
            if self.count + len(new_lo) > _CACHE_WORDS:  # the bound, as the dict's: start over
                self.rows, self.count = np.zeros((1 << 12, 4), dtype=np.uint64), 0  # grows as it fills
            self._insert(new_lo, new_hi, new)
            values[missing], still = self._find(lo[missing], hi[missing])
            if still.any():
                raise AssertionError("a word just added is not in the table")
        return values

    def _slots(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Multiplicative hashing: the top bits of lo * M1 + hi * M2 (odd multipliers)."""
        bits = len(self.rows).bit_length() - 1
        mixed = lo * np.uint64(_TABLE_MIX) + hi * np.uint64(_TABLE_MIX2)
        return (mixed >> np.uint64(64 - bits)).astype(np.int64)

    def _find(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, missing): linear probing, all keys at once, then the shrinking rest. Rows are gathered
        as 32-byte items (`np.take` of a void view: ~8x a 2-D fancy index)."""
        values, missing = np.zeros(len(lo), dtype=np.uint64), np.zeros(len(lo), dtype=bool)
        todo, slots, mask = None, self._slots(lo, hi), len(self.rows) - 1
        items = self.rows.view(_ROW).ravel()
        while len(slots):
            rows = np.take(items, slots).view(np.uint64).reshape(-1, 4)
            want_lo, want_hi = (lo, hi) if todo is None else (lo[todo], hi[todo])
            hit = (rows[:, 0] == want_lo) & (rows[:, 1] == want_hi)
            empty = rows[:, 0] == 0
            if todo is None and hit.all():
                return rows[:, 2].copy(), missing
            todo = np.arange(len(lo)) if todo is None else todo
            values[todo[hit]] = rows[hit, 2]
            missing[todo[empty]] = True
            more = ~(hit | empty)
            todo, slots = todo[more], (slots[more] + 1) & mask
        return values, missing

    def _insert(self, lo: np.ndarray, hi: np.ndarray, values: np.ndarray) -> None:
        """Add distinct words that are not in the table (growing it to stay at most half full)."""
        if 2 * (self.count + len(lo)) > len(self.rows):
            old = self.rows[self.rows[:, 0] != 0]
            capacity = len(self.rows)
            while 2 * (self.count + len(lo)) > capacity:
                capacity *= 2
            self.rows, self.count = np.zeros((capacity, 4), dtype=np.uint64), 0
            self._insert(old[:, 0], old[:, 1], old[:, 2])
        todo, slots, mask = np.arange(len(lo)), self._slots(lo, hi), len(self.rows) - 1
        while len(todo):
            free = self.rows[slots, 0] == 0
            # One word per free slot (the first of those probing it); the others probe on.
            taken, first = np.unique(slots[free], return_index=True)
            placed = todo[free][first]
            self.rows[taken] = np.stack([lo[placed], hi[placed], values[placed], values[placed] * 0], axis=1)
            keep = np.ones(len(todo), dtype=bool)
            keep[np.flatnonzero(free)[first]] = False
            todo, slots = todo[keep], (slots[keep] + 1) & mask
        self.count += len(lo)


def _new_words(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct words among (lo, hi) pairs and their `stable_hash64`: BLAKE2b of each word's bytes, which
    are its 16-byte key without the zero padding (little-endian, as `packed_words` reads them)."""
    pairs = np.unique(np.stack([lo, hi], axis=1).astype("<u8").view(_PAIR).ravel())  # as 16-byte strings
    keys = pairs.tobytes()
    digests = b"".join(
        hashlib.blake2b(keys[i : i + 16].rstrip(b"\x00"), digest_size=8).digest()
        for i in range(0, len(keys), 16)
    )
    words = pairs.view("<u8").reshape(-1, 2).astype(np.uint64)
    hashes = np.frombuffer(digests, dtype=">u8").astype(np.uint64)  # as stable_hash64 reads a digest
    return words[:, 0], words[:, 1], hashes


# --- Words found in numpy ----------------------------------------------------------------------------------
#
# `words` in bulk, without a Python object per word: the lower-cased texts are encoded to UTF-8 and joined
# by "\n" (a separator, so no word spans two texts); every byte is classed as part of a word (an ASCII
# letter or digit) or not (other ASCII). A non-ASCII character is decoded from its bytes in numpy and classed
# by a table of all code points made with the very regular expression of `words`, and all its bytes get its
# class. Words are then the runs of word bytes: the same words as `words` gives, in the same order. A word
# of at most 16 bytes is looked up by its bytes in a `WordTable`; a longer one (~0.02% of WebText's words)
# through the dict.

PAD = 16  # zero bytes after the last text, so that every word can be read as 16 bytes
# Bits of a word's first (second) 8 bytes that belong to a word of 0..16 bytes (little-endian reads).
_LOW_MASK = np.array([(1 << 8 * min(size, 8)) - 1 for size in range(17)], dtype=np.uint64)
_HIGH_MASK = np.array([(1 << 8 * max(size - 8, 0)) - 1 for size in range(17)], dtype=np.uint64)


@functools.cache
def _word_code_points() -> np.ndarray:
    """1 for every code point that `words` counts as part of a word, 0 for the others (~50 ms, once)."""
    table = np.zeros(0x110000, dtype=np.uint8)
    every = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    for match in _WORD.finditer(every):
        table[match.start() : match.end()] = 1
    return table


def text_word_hashes(
    texts: list[str], table: WordTable, long_words: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(word hashes of all texts, concatenated; words per text): `words` and `stable_hash64` in bulk. Words of
    up to 16 bytes are cached in `table`, longer ones in `long_words`."""
    encoded = [text.lower().encode("utf-8", "surrogatepass") for text in texts]
    data = b"\n".join(encoded) + bytes(PAD)
    starts, ends = word_spans(data)
    offsets = np.cumsum([0] + [len(e) + 1 for e in encoded])  # where each text starts in `data`
    lengths = np.diff(np.searchsorted(starts, offsets))
    sizes = ends - starts
    short = sizes <= 16
    if short.all():
        return table.lookup(*packed_words(data, starts, sizes)), lengths
    flat = np.empty(len(starts), dtype=np.uint64)
    flat[short] = table.lookup(*packed_words(data, starts[short], sizes[short]))
    longer = np.flatnonzero(~short)
    for i, a, b in zip(longer.tolist(), starts[longer].tolist(), ends[longer].tolist(), strict=True):
        word = data[a:b].decode("utf-8")
        if (value := long_words.get(word)) is None:
            value = long_words[word] = stable_hash64(word)
        flat[i] = value
    return flat, lengths


def word_spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends): the byte offsets where each word of lower-cased UTF-8 `data` begins and one past where
    it ends, the words of `words` in their order. `data` must end with a byte that is not in a word (the
    callers pad it with PAD zero bytes)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    classes = _ascii_word_bytes(raw)
    if not data.isascii():
        _class_non_ascii(raw, classes)
    edges = np.diff(classes.view(np.int8), prepend=np.int8(0))  # +1 where a word starts, -1 after it ends
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _ascii_word_bytes(raw: np.ndarray) -> np.ndarray:
    """1 for the bytes 0-9, A-Z and a-z, 0 for every other byte (wrapping uint8 arithmetic: ~8x a table
    lookup, which numpy does through int64 indices)."""
    digit = (raw - np.uint8(ord("0"))) < 10
    letter = raw | np.uint8(0x20)  # upper -> lower case; no other byte lands in a-z
    letter -= np.uint8(ord("a"))
    return (digit | (letter < 26)).view(np.uint8)


def _class_non_ascii(raw: np.ndarray, classes: np.ndarray) -> None:
    """Class the bytes of non-ASCII characters (well-formed UTF-8, surrogates passed through) by their
    code point: decode the 2-, 3- and 4-byte sequences from their lead bytes in numpy."""
    leads = np.flatnonzero(raw >= 0xC0)  # continuation bytes are 0x80-0xBF
    first = raw[leads].astype(np.int64)
    size = 2 + (first >= 0xE0) + (first >= 0xF0)
    point = first & np.where(size == 2, 0x1F, np.where(size == 3, 0x0F, 0x07))
    for i in range(1, 4):
        more = size > i
        point[more] = (point[more] << 6) | (raw[leads[more] + i] & 0x3F)
    word = _word_code_points()[point]
    for i in range(4):
        inside = size > i
        classes[leads[inside] + i] = word[inside]


def packed_words(data: bytes, starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Words of at most 16 bytes as (lo, hi) uint64 pairs: their bytes, zero-padded to 16, read as two
    little-endian integers (unaligned reads of the buffer at every word start)."""
    every = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))  # 8 bytes from each offset
    lo = every[starts] & _LOW_MASK[sizes]
    hi = every[starts + 8] & _HIGH_MASK[sizes]
    return lo, hi
