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

    def hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, counts): every text's n-gram hashes in text order, repeats included, concatenated
        (uint64), and the number of n-grams per text (a text of fewer than n words has none)."""
        return self.hashes_of_words([words(text) for text in texts])

    def hashes_of_words(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """As `hashes`, from each text's normalized words."""
        n = self.n
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        counts = np.maximum(lengths - (n - 1), 0)
        total = int(lengths.sum())
        if not counts.any():
            return np.empty(0, dtype=np.uint64), counts
        if len(self._words) > _CACHE_WORDS:
            self._words = _WordHashes()
        flat = np.fromiter(
            map(self._words.__getitem__, itertools.chain.from_iterable(docs)), dtype=np.uint64, count=total
        )
        # The combination at every window start of the concatenation, then the starts inside a text.
        starts = total - (n - 1)
        combined = flat[:starts] * _multipliers(n)[0]
        for i, p in enumerate(_multipliers(n)[1:].tolist(), 1):
            combined += flat[i : i + starts] * np.uint64(p)
        ends = np.cumsum(lengths)  # one past each text's last word
        inside = np.arange(starts) + n <= np.repeat(ends, lengths)[:starts]
        return fmix64(combined[inside]), counts


class _WordHashes(dict):
    """word -> stable_hash64(word), filled on first lookup (one C-level dict lookup per cached word)."""

    def __missing__(self, word: str) -> int:
        value = self[word] = stable_hash64(word)
        return value
