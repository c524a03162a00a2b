"""MinHash signatures: equal to datasketch's for the same shingle hashes, deterministic, accurate."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

import corpus.minhash as minhash
from corpus.minhash import (
    MinHashConfig,
    MinHasher,
    band_hashes,
    band_keys,
    estimated_jaccard,
    exact_jaccard,
    shingle_hash,
    shingle_set,
    sorted_jaccard,
    word_hash,
    word_hashes,
)
from corpus.ngrams import words
from tests.fixtures.near_duplicates import RECIPES, load_gold, plant

ROOT = Path(__file__).resolve().parents[2]
GOLD = load_gold()
EDGE_TEXTS = [
    "",
    "  ...  ",
    "One",
    "two words",
    "Exactly five words here, friend!",
    "a a a a a a a a",
    "Ünïcödé текст 日本語",
]


def datasketch_signature(text: str, config: MinHashConfig) -> np.ndarray:
    """datasketch's own MinHash of the text's shingles, fed our shingle hash."""
    m = MinHash(
        num_perm=config.num_perm, seed=config.seed, hashfunc=lambda s: shingle_hash(s, config.shingle)
    )
    m.update_batch(shingle_set(text, config.shingle))
    return m.hashvalues


def test_shingle_set_edge_cases():
    assert shingle_set("", 5) == []
    assert shingle_set(" -- ... !! ", 5) == []
    assert shingle_set("Hello, World!", 5) == ["hello world"]
    assert shingle_set("one two three four five", 5) == ["one two three four five"]
    assert shingle_set("A b C d E f", 5) == ["a b c d e", "b c d e f"]
    assert shingle_set("x y x y x y x", 2) == ["x y", "y x"]  # distinct and sorted
    assert shingle_set("snake_case it's", 2) == ["case it", "it s", "snake case"]  # corpus.ngrams.words


@pytest.mark.parametrize("config", [MinHashConfig(), MinHashConfig(num_perm=64, shingle=3, seed=7)])
def test_signatures_equal_datasketch_for_the_same_shingle_hashes(config):
    texts = [*GOLD.values(), *EDGE_TEXTS]
    signatures = MinHasher(config).signatures(texts)
    assert signatures.shape == (len(texts), config.num_perm)
    assert signatures.dtype == np.uint32
    for text, signature in zip(texts, signatures, strict=True):
        assert np.array_equal(signature, datasketch_signature(text, config))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(["ab", "cd", "ef", "gh", "ij", "kl", "mn"]), max_size=12), max_size=6)
)
def test_signatures_equal_datasketch_on_random_word_lists(docs):
    config = MinHashConfig(num_perm=16, shingle=3)
    texts = [" ".join(doc) for doc in docs]
    signatures = MinHasher(config, chunk=5).signatures(texts)
    for text, signature in zip(texts, signatures, strict=True):
        assert np.array_equal(signature, datasketch_signature(text, config))


def test_signatures_of_hashes_equal_datasketch_whatever_the_chunk():
    rng = np.random.default_rng(0)
    counts = np.array([0, 1, 7, 0, 300, 2, 5000, 3, 0])
    hashes = rng.integers(0, 2**32, int(counts.sum()), dtype=np.uint32)
    expected, offset = [], 0
    for count in counts:
        m = MinHash(num_perm=128, seed=1, hashfunc=int)
        m.update_batch(hashes[offset : offset + count].tolist())
        expected.append(m.hashvalues)
        offset += count
    for chunk in (1, 3, 64, 4096, 100_000):
        got = MinHasher(MinHashConfig(), chunk=chunk).signatures_of_hashes(hashes, counts)
        assert np.array_equal(got, np.array(expected)), chunk


def test_a_signature_does_not_depend_on_the_batch():
    hasher = MinHasher(MinHashConfig())
    texts = list(GOLD.values())
    together = hasher.signatures(texts)
    alone = np.array([MinHasher(MinHashConfig()).signatures([t])[0] for t in texts])
    assert np.array_equal(together, alone)
    assert np.array_equal(hasher.signatures(texts[::-1]), together[::-1])


def test_empty_document_has_the_empty_minhash():
    signature = MinHasher(MinHashConfig()).signatures(["", "!!!"])
    assert (signature == 0xFFFFFFFF).all()
    assert np.array_equal(signature[0], MinHash(num_perm=128, seed=1).hashvalues)


def test_batch_bound_changes_nothing(monkeypatch):
    # Texts are hashed in numpy passes of at most _BATCH_CHARS characters: where a pass ends changes nothing.
    texts = [*GOLD.values(), *EDGE_TEXTS]
    expected = MinHasher(MinHashConfig()).signatures(texts)
    monkeypatch.setattr(minhash, "_BATCH_CHARS", 10)
    assert np.array_equal(MinHasher(MinHashConfig()).signatures(texts), expected)


SUBPROCESS = """
import hashlib, json, sys
from corpus.minhash import MinHashConfig, MinHasher
texts = json.loads(sys.stdin.read())
print(hashlib.sha256(MinHasher(MinHashConfig()).signatures(texts).astype('>u4').tobytes()).hexdigest())
"""


def test_signatures_are_the_same_in_another_process():
    import json

    texts = [*GOLD.values(), *EDGE_TEXTS]
    here = hashlib.sha256(MinHasher(MinHashConfig()).signatures(texts).astype(">u4").tobytes()).hexdigest()
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    there = subprocess.run(
        [sys.executable, "-c", SUBPROCESS],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    assert there == here


def test_estimated_jaccard_is_close_to_exact():
    config = MinHashConfig()
    variants = plant(GOLD, RECIPES, seed=1)
    sources = list(GOLD)
    hasher = MinHasher(config)
    source_signatures = dict(zip(sources, hasher.signatures(list(GOLD.values())), strict=True))
    variant_signatures = hasher.signatures([v.text for v in variants])
    errors = []
    for variant, signature in zip(variants, variant_signatures, strict=True):
        exact = exact_jaccard(shingle_set(GOLD[variant.source], 5), shingle_set(variant.text, 5))
        errors.append(estimated_jaccard(signature, source_signatures[variant.source]) - exact)
    errors = np.array(errors)
    # One estimate has a standard deviation of sqrt(J(1-J)/128) <= 0.044.
    assert np.abs(errors).mean() < 0.035
    assert abs(errors.mean()) < 0.015
    assert np.abs(errors).max() < 0.15


def test_lean_minhash_interoperates_with_datasketch():
    config = MinHashConfig()
    hasher = MinHasher(config)
    a, b = hasher.signatures([GOLD[k] for k in sorted(GOLD)[:2]])
    lean_a = hasher.lean(a)
    assert isinstance(lean_a, LeanMinHash)
    assert lean_a.jaccard(hasher.lean(b)) == estimated_jaccard(a, b)
    text = GOLD[sorted(GOLD)[0]]
    theirs = MinHash(num_perm=128, seed=1, hashfunc=lambda s: shingle_hash(s, 5))
    theirs.update_batch(shingle_set(text, 5))
    assert lean_a.jaccard(theirs) == 1.0
    buffer = bytearray(lean_a.bytesize())
    lean_a.serialize(buffer)
    assert np.array_equal(LeanMinHash.deserialize(buffer).hashvalues, a)


def test_band_keys_are_equal_exactly_where_bands_are_equal():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**32, 128, dtype=np.uint32)
    b = a.copy()
    b[30] ^= 1  # band 2 of (9, 13)
    keys_a, keys_b = band_keys(a, 9, 13), band_keys(b, 9, 13)
    assert len(keys_a) == 9
    assert [x == y for x, y in zip(keys_a, keys_b, strict=True)] == [i != 2 for i in range(9)]
    assert len(set(keys_a)) == 9
    # Equal rows in two different bands still give different keys.
    same = np.zeros(128, dtype=np.uint32)
    assert len(set(band_keys(same, 9, 13))) == 9
    # Keys are bytes of big-endian values: the same from a uint64 copy of the signature.
    assert band_keys(a.astype(np.uint64), 9, 13) == keys_a
    assert keys_a[0] == bytes([0, 0]) + a[:13].astype(">u4").tobytes()


@pytest.mark.parametrize("threshold,num_perm", [(0.8, 128), (0.5, 128), (0.9, 256), (0.7, 64)])
def test_bands_are_datasketch_optimal_choice(threshold, num_perm):
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    equal = MinHashConfig(num_perm=num_perm, threshold=threshold, weights=(0.5, 0.5))
    assert equal.bands() == (lsh.b, lsh.r)
    weighted = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=MinHashConfig().weights)
    assert MinHashConfig(num_perm=num_perm, threshold=threshold).bands() == (weighted.b, weighted.r)
    # Candidates are verified on exact Jaccard, so the default weighs false negatives 0.99: 18 x 7 at 0.8.
    assert MinHashConfig().bands() == (18, 7)


def test_exact_jaccard():
    assert exact_jaccard({"a", "b"}, ["b", "c"]) == pytest.approx(1 / 3)
    assert exact_jaccard([], []) == 1.0
    assert exact_jaccard(["a"], []) == 0.0


def test_shingle_hashes_are_well_spread():
    # The ~4000 distinct shingles of the planted documents (many differ in one word): no collision, and
    # every bit is set half of the time (within 4.5 standard deviations).
    texts = [v.text for v in plant(GOLD, RECIPES, seed=2)]
    shingles = sorted({s for t in texts for s in shingle_set(t, 5)})
    hashes = np.array([shingle_hash(s, 5) for s in shingles], dtype=np.uint32)
    assert len(np.unique(hashes)) == len(hashes)
    bits = (hashes[:, None] >> np.arange(32, dtype=np.uint32)) & 1
    assert np.abs(bits.mean(axis=0) - 0.5).max() < 4.5 * 0.5 / np.sqrt(len(hashes))


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("num_perm", [32, 128])
def test_bands_and_rows_are_datasketchs_choice(threshold, num_perm):
    from datasketch.lsh import _optimal_param  # the reference; our code does not import its private API

    ours = minhash._optimal_bands(threshold, num_perm, (0.5, 0.5))
    assert ours == _optimal_param(threshold, num_perm, 0.5, 0.5)


TEXT = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "Z", "S", "M"]) | st.sampled_from(" \n_-'İΣß"),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, max_size=5))
def test_word_hashes_find_the_words_of_words(texts):
    # The numpy tokenizer finds exactly corpus.ngrams.words (lower case, letters and digits of any script),
    # and hashes each word as the scalar word_hash does.
    hashes, counts = word_hashes(texts)
    assert counts.tolist() == [len(words(text)) for text in texts]
    assert hashes.tolist() == [word_hash(word) for text in texts for word in words(text)]


def test_word_hashes_of_real_text_and_edge_cases():
    texts = [*GOLD.values(), *EDGE_TEXTS, "ΣΑΣ İstanbul Straße \ud800 lone surrogate", "x" * 300_000]
    hashes, counts = word_hashes(texts)
    expected = [word for text in texts for word in words(text)]
    assert counts.tolist() == [len(words(text)) for text in texts]
    assert hashes.tolist() == [word_hash(word) for word in expected]
    distinct = {word: h for word, h in zip(expected, hashes.tolist(), strict=True)}
    assert len(set(distinct.values())) == len(distinct)  # no collision among the fixture's words


def test_sketch_gives_sorted_distinct_shingles_and_keys_of_the_normalized_text():
    config = MinHashConfig()
    texts = [
        *list(GOLD.values())[:20],
        *EDGE_TEXTS,
        "Hello,   WORLD!! again",
        "hello world again",
        "hello world",
    ]
    sketch = MinHasher(config).sketch(texts)
    assert np.array_equal(sketch.signatures, MinHasher(config).signatures(texts))
    for text, shingles in zip(texts, sketch.shingles, strict=True):
        assert shingles.tolist() == sorted({shingle_hash(s, 5) for s in shingle_set(text, 5)})
    for i, a in enumerate(texts):
        for j, b in enumerate(texts):
            assert (sketch.keys[i] == sketch.keys[j]) == (words(a) == words(b)), (a, b)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 40)), st.sets(st.integers(0, 40)))
def test_sorted_jaccard_is_exact_jaccard(a, b):
    sorted_a, sorted_b = (np.array(sorted(x), dtype=np.uint32) for x in (a, b))
    assert sorted_jaccard(sorted_a, sorted_b) == exact_jaccard(a, b)


def test_band_hashes_are_equal_exactly_where_bands_are_equal():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**32, 128, dtype=np.uint32)
    b = a.copy()
    b[30] ^= 1  # band 4 of (18, 7)
    ha, hb = band_hashes(np.stack([a, b]), 18, 7)
    assert ha.dtype == np.uint64 and ha.shape == (18,)
    assert [x == y for x, y in zip(ha, hb, strict=True)] == [i != 4 for i in range(18)]
    # Equal rows in two bands still give two hashes; bands beyond bands * rows are ignored.
    assert len(set(band_hashes(np.zeros((1, 128), dtype=np.uint32), 18, 7)[0].tolist())) == 18
    c = a.copy()
    c[127] ^= 1
    assert np.array_equal(band_hashes(np.stack([c]), 18, 7)[0], ha)
