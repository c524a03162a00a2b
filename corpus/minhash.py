"""MinHash signatures, exact shingle sets and LSH band hashes of documents, for a whole batch at once.

A document is the set of its word k-shingles (`shingle_set`: k consecutive normalized words from
`corpus.ngrams.words`). Its signature is datasketch's MinHash of that set under datasketch's default
"affine32" scheme: each 32-bit shingle hash `h` is mixed with the MurmurHash3 finalizer and permuted by
`a * fmix32(h) + b mod 2^32` for `num_perm` pairs `(a, b)` drawn from `seed` exactly as datasketch draws them;
the signature keeps the minimum per permutation. Given the same shingle hashes, `MinHasher.signatures` equals
`datasketch.MinHash(num_perm, seed)` updated with them, value for value (tested), so `lean()` wraps a
signature as a `datasketch.LeanMinHash` that compares with datasketch's own sketches.

What differs is how it gets there, because datasketch hashes each shingle string with SHA-1 in Python and
applies the permutations one document at a time:

- Words, in numpy (`word_hashes`). The lower-cased texts of a batch are encoded to UTF-8 and joined by "\n";
  a byte belongs to a word when it is an ASCII letter or digit, or part of a non-ASCII character that the
  regular expression of `words` counts (its code point decoded from the lead byte, classed once per code
  point). Words are the runs of word bytes: the words of `words`, in the same order (tested). A word's hash
  mixes its bytes read as 16-byte blocks, two little-endian uint64 each, straight from the buffer
  (`word_hash` is the scalar definition): no Python object per word and no cache, so a cold worker is as
  fast as a warm one (the BLAKE2b of each word that this replaced, cached, cost ~4x the rest for a batch of
  unseen words). Words of at most 8 bytes never collide (the mix is a bijection); others at ~2^-64.
- Shingle hashes. A shingle's hash combines the 64-bit hashes of its k words with fixed odd multipliers and
  mixes the sum, `fmix64(P_0 w_0 + ... + P_{k-1} w_{k-1} mod 2^64) >> 32` (`shingle_hash`): k shifted
  multiply-adds over the concatenated words of the batch. Two shingles that differ in one word never collide
  before the truncation to 32 bits (P_i is odd, fmix64 a bijection); otherwise collisions have the ~2^-32
  rate of any 32-bit hash, which is datasketch's own (SHA-1 truncated to 32 bits). The mix matters: without
  it the hashes of a document and its edited copy are linearly related, and over 80 seeds recall near the
  threshold came out 0.008 (2.6 standard errors) below SHA-1's; with it the difference is noise.
- Permutations. The shingle hashes of many documents go through the permutations in chunks of `chunk`
  shingles as one (num_perm, chunk) uint32 array (bounded memory whatever the document sizes), and
  `np.minimum.reduceat` takes each document's minimum over its slice of the chunk. Repeated shingles are not
  removed: they cannot change a minimum.

`MinHasher.sketch` also returns what the dedup stage needs besides signatures: each document's distinct
shingle hashes, sorted (the exact Jaccard of two documents is computed on them, `sorted_jaccard`), and a
16-byte key of its word sequence (equal exactly when the normalized texts are equal, up to 64-bit word-hash
collisions). `band_hashes` turns signatures into one 64-bit hash per LSH band.

Everything is a pure function of the text and the config (no process-dependent state, explicit byte order),
so it is the same in every process and on every machine. An empty document (no words) has no shingles and
gets the signature of datasketch's empty MinHash: every value 2^32 - 1.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash

from corpus.ngrams import PAD, fmix64, ngrams, packed_words, stable_hash64, word_spans, words

SCHEME = "affine32"  # datasketch's default permutation scheme since 2.0
EMPTY = np.uint32(0xFFFFFFFF)  # the value of an empty MinHash (no shingles)
KEY_BYTES = 16  # digest size of a document's word-sequence key


@dataclass(frozen=True)
class MinHashConfig:
    num_perm: int = 128
    shingle: int = 5  # words per shingle
    threshold: float = 0.8  # Jaccard threshold of a near-duplicate
    seed: int = 1
    # (false positive, false negative) weights of the band choice, as datasketch's MinHashLSH(weights=...).
    # Every candidate pair is verified on the exact Jaccard of its shingle sets, so a false positive of the
    # LSH costs one comparison of two sorted arrays and can never merge documents; a false negative is a
    # near duplicate never seen. (0.01, 0.99) gives 18 bands of 7 rows at 0.8: a pair at Jaccard 0.80 is a
    # candidate with probability 0.986, at 0.81 0.991 (16 x 8, the former choice, 0.947 and 0.962).
    weights: tuple[float, float] = (0.01, 0.99)

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
    same choice as datasketch's MinHashLSH (tested), integrated on a fine grid: every choice at once, in
    the order datasketch tries them (bands, then rows), the first of equal errors winning."""
    split = int(np.searchsorted(_GRID, threshold))
    below, above = _GRID[: split + 1], _GRID[split:]
    choices = np.array(
        [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=np.float64
    )
    bands, rows = choices[:, :1], choices[:, 1:]
    false_positive = np.trapezoid(candidate_probability(below[None, :], bands, rows), below, axis=1)
    false_negative = np.trapezoid(1.0 - candidate_probability(above[None, :], bands, rows), above, axis=1)
    error = weights[0] * false_positive + weights[1] * false_negative
    best = int(np.argmin(error))  # the first minimum, as the loop's strict "<" kept it
    return int(choices[best, 0]), int(choices[best, 1])


def shingle_set(text: str, k: int) -> list[str]:
    """Distinct word k-shingles of the normalized text, sorted; a text shorter than k words is one shingle."""
    tokens = words(text)
    if not tokens:
        return []
    if len(tokens) < k:
        return [" ".join(tokens)]
    return sorted(set(ngrams(tokens, k)))


# --- Words and their hashes, in numpy ------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_MIX_IN, _MIX_HIGH = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)
_BATCH_CHARS = 1 << 18  # characters per numpy pass: bounds the temporaries (~20 bytes per character)


def _mix(low: np.ndarray, high: np.ndarray, state: np.ndarray) -> np.ndarray:
    """One 16-byte block (two little-endian uint64) into the running hash of a word."""
    return fmix64(fmix64(low ^ (state * _MIX_IN)) + high * _MIX_HIGH)


def word_hash(word: str) -> int:
    """The 64-bit hash of one normalized word, as `word_hashes` computes it in bulk: its UTF-8 bytes in
    zero-padded 16-byte blocks, each mixed into a state that starts at the byte length."""
    data = word.encode("utf-8", "surrogatepass")
    state = np.array([len(data)], dtype=np.uint64)
    for start in range(0, max(len(data), 1), 16):
        block = data[start : start + 16].ljust(16, b"\0")
        low, high = (np.frombuffer(block[i : i + 8], dtype="<u8").astype(np.uint64) for i in (0, 8))
        state = _mix(low, high, state)
    return int(state[0])


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, counts): the `word_hash` of every word of every text, concatenated in text order (uint64),
    and the number of words per text; the words are those of `corpus.ngrams.words` (tested)."""
    hashes, counts, group, size = [], [], [], 0
    for text in texts:
        group.append(text.lower().encode("utf-8", "surrogatepass"))
        size += len(text) + 1
        if size >= _BATCH_CHARS:
            _hash_group(group, hashes, counts)
            group, size = [], 0
    _hash_group(group, hashes, counts)
    return np.concatenate(hashes), np.concatenate(counts)


def _hash_group(encoded: list[bytes], hashes: list, counts: list) -> None:
    """`word_hashes` of lower-cased UTF-8 texts in one numpy pass; appends to `hashes` and `counts`.

    Words are those of `corpus.ngrams.word_spans` (the words of `words`, found in numpy)."""
    data = b"\n".join(encoded) + bytes(PAD)
    starts, ends = word_spans(data)
    sizes = ends - starts
    first = np.minimum(sizes, 16)
    state = _mix(*packed_words(data, starts, first), sizes.astype(np.uint64))
    longer, offset = np.flatnonzero(sizes > 16), 16  # ~0.4% of words: one more block per pass
    while longer.size:
        left = sizes[longer] - offset
        state[longer] = _mix(
            *packed_words(data, starts[longer] + offset, np.minimum(left, 16)), state[longer]
        )
        longer, offset = longer[left > 16], offset + 16
    hashes.append(state)
    text_starts = np.cumsum([0] + [len(text) + 1 for text in encoded])
    counts.append(np.diff(np.searchsorted(starts, text_starts)))


# --- Shingles and signatures ---------------------------------------------------------------------------


@functools.cache
def _multipliers(k: int) -> np.ndarray:
    """The odd 64-bit multiplier of each word position in a shingle (fixed, so hashes are stable)."""
    return np.array([stable_hash64(f"minhash shingle position {i}") | 1 for i in range(k)], dtype=np.uint64)


def shingle_hash(shingle: str, k: int) -> int:
    """The 32-bit hash of one shingle (space-joined normalized words), as `MinHasher` computes it in bulk."""
    total = 0
    for p, word in zip(_multipliers(k).tolist(), shingle.split(" "), strict=False):
        total = (total + p * word_hash(word)) & _MASK64
    return int(fmix64(np.array([total], dtype=np.uint64))[0]) >> 32


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (what datasketch applies to every input hash before permuting)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@dataclass(frozen=True)
class Sketch:
    """What dedup needs of a batch of documents, in batch order."""

    keys: list[
        bytes
    ]  # KEY_BYTES digest of each document's word sequence: equal when the normalized texts are
    signatures: np.ndarray  # (documents, num_perm) uint32
    shingles: list[np.ndarray]  # each document's distinct shingle hashes, sorted (uint32)


class MinHasher:
    """Vectorized MinHash: signatures for a whole batch of documents at once (numpy), deterministic across
    processes and machines."""

    def __init__(self, config: MinHashConfig, chunk: int = 16_384):
        self.config = config
        self.chunk = chunk  # 16k shingles x 128 permutations = an 8 MB block: the fastest measured
        a, b = MinHash(num_perm=config.num_perm, seed=config.seed, scheme=SCHEME).permutations
        self._a = a.astype(np.uint32)[:, None]
        self._b = b.astype(np.uint32)[:, None]

    def signatures(self, texts: list[str]) -> np.ndarray:
        """The (len(texts), num_perm) uint32 signatures of the texts.

        Memory is ~60 bytes per character of a 1M-character slice of the batch plus a fixed num_perm x chunk
        block; larger batches amortize numpy's per-call cost."""
        hashes, counts = self.shingle_hashes(texts)
        return self.signatures_of_hashes(hashes, counts)

    def sketch(self, texts: list[str]) -> Sketch:
        """Signatures, sorted distinct shingle hashes and word-sequence keys of the texts (one pass)."""
        flat, lengths = word_hashes(texts)
        hashes, counts = self._shingles_of_words(flat, lengths)
        ends = np.cumsum(lengths)
        keys = [
            hashlib.blake2b(flat[end - n : end].tobytes(), digest_size=KEY_BYTES).digest()
            for end, n in zip(ends.tolist(), lengths.tolist(), strict=True)
        ]
        return Sketch(keys, self.signatures_of_hashes(hashes, counts), distinct_sorted(hashes, counts))

    def shingle_hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The uint32 hashes of every document's shingles, concatenated, and the number per document.

        A document's shingles in word order, repeats included (they cannot change a minimum)."""
        return self._shingles_of_words(*word_hashes(texts))

    def _shingles_of_words(self, flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes from the concatenated word hashes and words per document."""
        k = self.config.shingle
        # Each document's words followed by k - 1 zeros, so a window never reaches into the next document
        # (a zero adds nothing to a shingle's sum).
        doc_of_word = np.repeat(np.arange(len(lengths)), lengths)
        padded = np.zeros(len(flat) + len(lengths) * (k - 1) + k - 1, dtype=np.uint64)
        padded[np.arange(len(flat)) + doc_of_word * (k - 1)] = flat
        n = len(padded) - (k - 1)
        combined = np.zeros(n, dtype=np.uint64)
        for i, p in enumerate(_multipliers(k)):
            combined += padded[i : i + n] * p
        # Window starts: every position with k words left in its document; one window for a shorter one.
        counts = np.where(lengths >= k, lengths - k + 1, np.minimum(lengths, 1))
        doc_starts = np.cumsum(lengths + k - 1) - (lengths + k - 1)
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


def distinct_sorted(hashes: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """Each document's distinct values of `hashes` (concatenated per document, `counts` each), sorted: one
    sort of (document, hash) pairs for the whole batch."""
    if not len(counts):
        return []
    doc = np.repeat(np.arange(len(counts), dtype=np.uint64), counts)
    keys = _distinct((doc << np.uint64(32)) | hashes.astype(np.uint64))
    values = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    bounds = np.searchsorted(keys >> np.uint64(32), np.arange(1, len(counts), dtype=np.uint64))
    return np.split(values, bounds)


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (a sort and a mask: ~10x numpy 2's hash-based `np.unique` here)."""
    values = np.sort(values)
    keep = np.empty(len(values), dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


# --- LSH bands and Jaccard -----------------------------------------------------------------------------


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One key per band: the band index (2 bytes) and its rows as big-endian uint32, so two documents get
    equal keys exactly where their bands are equal, on any machine."""
    values = np.asarray(signature, dtype=">u4")
    return [i.to_bytes(2, "big") + values[i * rows : (i + 1) * rows].tobytes() for i in range(bands)]


@functools.cache
def _band_multipliers(bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Odd multipliers of a band's rows, and a distinct offset per band (fixed, so hashes are stable)."""
    rows_ = np.array([stable_hash64(f"minhash band row {j}") | 1 for j in range(rows)], dtype=np.uint64)
    offsets = np.array([stable_hash64(f"minhash band {i}") for i in range(bands)], dtype=np.uint64)
    return rows_, offsets


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64: a hash of each band's index and rows. Equal bands give equal hashes;
    unequal ones collide with probability ~2^-64, which at worst makes one more candidate pair, and every
    candidate is verified on exact Jaccard."""
    values = np.asarray(signatures, dtype=np.uint32)[:, : bands * rows].astype(np.uint64)
    values = values.reshape(len(values), bands, rows)
    multipliers, offsets = _band_multipliers(bands, rows)
    total = np.broadcast_to(offsets, (len(values), bands)).copy()
    for j, p in enumerate(multipliers):
        total += values[:, :, j] * p
    return fmix64(total)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of equal signature values: MinHash's estimate of the Jaccard similarity."""
    return float(np.count_nonzero(np.asarray(a) == np.asarray(b))) / len(a)


def exact_jaccard(a: set | list, b: set | list) -> float:
    """|a & b| / |a | b| of two sets (two empty sets are equal: 1.0)."""
    a, b = set(a), set(b)
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def sorted_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """`exact_jaccard` of two sorted arrays of distinct values (the shorter binary-searched in the longer)."""
    if len(a) > len(b):
        a, b = b, a
    if not len(b):
        return 1.0
    found = np.searchsorted(b, a)
    common = int(np.count_nonzero(b[np.minimum(found, len(b) - 1)] == a))
    return common / (len(a) + len(b) - common)
