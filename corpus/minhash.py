"""MinHash signatures of documents and their LSH band keys, computed for a whole batch at once.

A document is the set of its word k-shingles (`shingle_set`: k consecutive normalized words from
`corpus.ngrams.words`). Its signature is datasketch's MinHash of that set under datasketch's default
"affine32" scheme: each 32-bit shingle hash `h` is mixed with the MurmurHash3 finalizer and permuted by
`a * fmix32(h) + b mod 2^32` for `num_perm` pairs `(a, b)` drawn from `seed` exactly as datasketch draws them;
the signature keeps the minimum per permutation. Given the same shingle hashes, `MinHasher.signatures` equals
`datasketch.MinHash(num_perm, seed)` updated with them, value for value (tested), so `lean()` wraps a
signature as a `datasketch.LeanMinHash` that compares with datasketch's own sketches.

What differs is how it gets there, because datasketch hashes each shingle string with SHA-1 in Python and
applies the permutations one document at a time:

- Shingle hashes. Each distinct word is hashed once (`stable_hash64`, BLAKE2b, cached across batches), and a
  shingle's hash combines the 64-bit hashes of its k words with fixed odd multipliers and mixes the sum,
  `fmix64(P_0 w_0 + ... + P_{k-1} w_{k-1} mod 2^64) >> 32` (`shingle_hash` is the scalar definition). In
  numpy that is k shifted multiply-adds over the concatenated words of the batch. Two shingles that differ
  in one word never collide before the truncation to 32 bits (P_i is odd, fmix64 a bijection); otherwise
  collisions have the ~2^-32 rate of any 32-bit hash, which is datasketch's own (SHA-1 truncated to 32
  bits). The mix matters: without it the hashes of a document and its edited copy are linearly related,
  and over 80 seeds recall near the threshold came out 0.008 (2.6 standard errors) below SHA-1's; with it
  the difference is 0.001 (noise).
- Permutations. The shingle hashes of many documents go through the permutations in chunks of `chunk`
  shingles as one (num_perm, chunk) uint32 array (bounded memory whatever the document sizes), and
  `np.minimum.reduceat` takes each document's minimum over its slice of the chunk. Repeated shingles are not
  removed: they cannot change a minimum.

Signatures are pure functions of the text and the config (no process-dependent state, explicit byte order
in band keys), so they are the same in every process and on every machine. An empty document (no words) has
no shingles and gets the signature of datasketch's empty MinHash: every value 2^32 - 1. Two empty documents
therefore estimate Jaccard 1.0; they are exact duplicates of each other, which dedup removes first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash

from corpus.ngrams import fmix64, ngrams, stable_hash64, words

SCHEME = "affine32"  # datasketch's default permutation scheme since 2.0
EMPTY = np.uint32(0xFFFFFFFF)  # the value of an empty MinHash (no shingles)
_PAD = ""  # never a word: pads the batch between documents, hashes to 0 so it adds nothing to a shingle
_CACHE_WORDS = 1 << 20  # word-hash cache bound (~150 MB); cleared when full


@dataclass(frozen=True)
class MinHashConfig:
    num_perm: int = 128
    shingle: int = 5  # words per shingle
    threshold: float = 0.8  # Jaccard threshold of a near-duplicate
    seed: int = 1
    # (false positive, false negative) weights of the band choice, as datasketch's MinHashLSH(weights=...).
    # A false positive of the LSH only costs one verification; a false negative is a pair never seen, so
    # false negatives weigh more: (0.05, 0.95) gives 16 bands of 8 rows at 0.8 (equal weights give 9 x 13,
    # which finds only ~45% of the pairs at Jaccard 0.80-0.85; tests/benchmarks/test_bench_dedup.py).
    weights: tuple[float, float] = (0.05, 0.95)

    def bands(self) -> tuple[int, int]:
        """(bands, rows) of the LSH: datasketch's optimal choice for the threshold and weights."""
        return _optimal_bands(self.threshold, self.num_perm, self.weights)


_GRID = np.linspace(0.0, 1.0, 2_001)


def candidate_probability(similarity: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """P(a pair of Jaccard `similarity` shares at least one LSH band) = 1 - (1 - s^r)^b (MMDS 3.4)."""
    return 1.0 - (1.0 - similarity**rows) ** bands


@functools.cache
def _optimal_bands(threshold: float, num_perm: int, weights: tuple[float, float]) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm that minimise the weighted false-positive area (pairs
    below `threshold` that become candidates) plus false-negative area (pairs above it that do not), the
    same choice as datasketch's MinHashLSH (tested), integrated on a fine grid."""
    split = int(np.searchsorted(_GRID, threshold))
    below, above = _GRID[: split + 1], _GRID[split:]
    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = np.trapezoid(candidate_probability(below, bands, rows), below)
            false_negative = np.trapezoid(1.0 - candidate_probability(above, bands, rows), above)
            error = weights[0] * false_positive + weights[1] * false_negative
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def shingle_set(text: str, k: int) -> list[str]:
    """Distinct word k-shingles of the normalized text, sorted; a text shorter than k words is one shingle."""
    tokens = words(text)
    if not tokens:
        return []
    if len(tokens) < k:
        return [" ".join(tokens)]
    return sorted(set(ngrams(tokens, k)))


@functools.cache
def _multipliers(k: int) -> np.ndarray:
    """The odd 64-bit multiplier of each word position in a shingle (fixed, so hashes are stable)."""
    return np.array([stable_hash64(f"minhash shingle position {i}") | 1 for i in range(k)], dtype=np.uint64)


def shingle_hash(shingle: str, k: int) -> int:
    """The 32-bit hash of one shingle (space-joined normalized words), as `MinHasher` computes it in bulk."""
    total = 0
    for p, word in zip(_multipliers(k).tolist(), shingle.split(" "), strict=False):
        total = (total + p * stable_hash64(word)) % (1 << 64)
    return int(fmix64(np.array([total], dtype=np.uint64))[0]) >> 32


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (what datasketch applies to every input hash before permuting)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class MinHasher:
    """Vectorized MinHash: signatures for a whole batch of documents at once (numpy), deterministic across
    processes and machines. Not thread-safe (it caches word hashes)."""

    def __init__(self, config: MinHashConfig, chunk: int = 4096):
        self.config = config
        self.chunk = chunk
        a, b = MinHash(num_perm=config.num_perm, seed=config.seed, scheme=SCHEME).permutations
        self._a = a.astype(np.uint32)[:, None]
        self._b = b.astype(np.uint32)[:, None]
        self._word_hashes = _WordHashes()

    def signatures(self, texts: list[str]) -> np.ndarray:
        """The (len(texts), num_perm) uint32 signatures of the texts.

        Memory is ~150 bytes per word of the batch plus a fixed num_perm x chunk block, so batch size
        (hundreds to thousands of documents) bounds it; larger batches amortize numpy's per-call cost."""
        hashes, counts = self.shingle_hashes(texts)
        return self.signatures_of_hashes(hashes, counts)

    def shingle_hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The uint32 hashes of every document's shingles, concatenated, and the number per document.

        A document's shingles in word order, repeats included (they cannot change a minimum)."""
        k = self.config.shingle
        tokens, lengths = [], []
        pad = [_PAD] * (k - 1)
        for text in texts:
            doc = words(text)
            lengths.append(len(doc))
            tokens += doc
            tokens += pad  # so a window never reaches into the next document
        word_hashes = self._hash_words(tokens)
        # Shingle hash at every position: sum over the k words of the window (the pad adds 0).
        padded = np.concatenate([word_hashes, np.zeros(k - 1, dtype=np.uint64)])
        n = len(word_hashes)
        combined = np.zeros(n, dtype=np.uint64)
        for i, p in enumerate(_multipliers(k)):
            combined += padded[i : i + n] * p
        # Window starts: every position with k words left in its document; one window for a shorter one.
        lengths_ = np.array(lengths, dtype=np.int64)
        counts = np.where(lengths_ >= k, lengths_ - k + 1, np.minimum(lengths_, 1))
        doc_starts = np.cumsum(lengths_ + k - 1) - (lengths_ + k - 1)
        first_shingle = np.cumsum(counts) - counts
        within = np.arange(int(counts.sum())) - np.repeat(first_shingle, counts)
        starts = np.repeat(doc_starts, counts) + within
        return (fmix64(combined[starts]) >> np.uint64(32)).astype(np.uint32), counts

    def signatures_of_hashes(self, hashes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Signatures from concatenated uint32 shingle hashes and the number of hashes per document."""
        counts = np.asarray(counts, dtype=np.int64)
        signatures = np.full((len(counts), self.config.num_perm), EMPTY, dtype=np.uint32)
        nonempty = np.flatnonzero(counts)
        if nonempty.size == 0:
            return signatures
        mixed = _fmix32(np.asarray(hashes, dtype=np.uint32))
        ends = np.cumsum(counts[nonempty])  # end of each non-empty document's slice
        starts = ends - counts[nonempty]
        block = np.empty((self.config.num_perm, self.chunk), dtype=np.uint32)
        for lo in range(0, len(mixed), self.chunk):
            hi = min(lo + self.chunk, len(mixed))
            # The documents with shingles in [lo, hi): their slices, clipped to the chunk.
            first = int(np.searchsorted(ends, lo, side="right"))
            last = int(np.searchsorted(starts, hi, side="left"))
            offsets = np.maximum(starts[first:last], lo) - lo
            view = block[:, : hi - lo]
            np.multiply(self._a, mixed[lo:hi], out=view)  # uint32 arithmetic: wraps mod 2^32
            np.add(view, self._b, out=view)
            mins = np.minimum.reduceat(view, offsets, axis=1).T
            rows = nonempty[first:last]
            signatures[rows] = np.minimum(signatures[rows], mins)
        return signatures

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        """The signature as a datasketch LeanMinHash (for its jaccard, serialization, MinHashLSH)."""
        return LeanMinHash(seed=self.config.seed, hashvalues=signature, scheme=SCHEME)

    def _hash_words(self, tokens: list[str]) -> np.ndarray:
        if len(self._word_hashes) > _CACHE_WORDS:
            self._word_hashes = _WordHashes()
        return np.fromiter(map(self._word_hashes.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


class _WordHashes(dict):
    """word -> stable_hash64(word), filled on first lookup (one C-level dict lookup per word when cached)."""

    def __init__(self):
        super().__init__({_PAD: 0})

    def __missing__(self, word: str) -> int:
        value = self[word] = stable_hash64(word)
        return value


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One key per band: the band index (2 bytes) and its rows as big-endian uint32, so two documents get
    equal keys exactly where their bands are equal, on any machine."""
    values = np.asarray(signature, dtype=">u4")
    return [i.to_bytes(2, "big") + values[i * rows : (i + 1) * rows].tobytes() for i in range(bands)]


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of equal signature values: MinHash's estimate of the Jaccard similarity."""
    return float(np.count_nonzero(np.asarray(a) == np.asarray(b))) / len(a)


def exact_jaccard(a: set | list, b: set | list) -> float:
    """|a & b| / |a | b| of two sets (two empty sets are equal: 1.0)."""
    a, b = set(a), set(b)
    union = len(a | b)
    return len(a & b) / union if union else 1.0
