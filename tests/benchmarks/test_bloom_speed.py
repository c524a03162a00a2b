"""Bloom filter speed, in n-grams per second on one core, against the 1M/s target (run by `make bench`).

Two ways in: from pre-hashed 8-grams (random uint64 keys: the filter alone), and from text (GPT-2's
normalization, word hashing and n-gram hashing included, as `webtext ngrams` and `webtext overlap` do it).
The filter is sized for BENCH_BLOOM_ITEMS distinct keys at FPR 1e-8 (default 20M: 92 MiB, far larger than the
CPU caches, so every probe is a memory access as on a real corpus). Text: the real LAMBADA test and WebText
test/valid samples of $WEBTEXT_SHARED_DATA (default <repo>/../shared/data), else the bundled samples,
repeated to BENCH_BLOOM_TEXT_NGRAMS 8-grams (default 3M). Queries of absent keys stop at the first unset
bit (~2 probes); present keys test all k bits. Prints figures; no timing asserts.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from corpus.bloom import BloomFilter, plan
from corpus.ngrams import NgramHasher, words

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
ITEMS = int(os.environ.get("BENCH_BLOOM_ITEMS", "20000000"))
TEXT_NGRAMS = int(os.environ.get("BENCH_BLOOM_TEXT_NGRAMS", "3000000"))
TARGET = 1_000_000


def texts() -> list[str]:
    files = [
        SHARED / "lambada" / "lambada_test.jsonl",
        SHARED / "webtext_samples" / "webtext.test.first63tok.jsonl",
        SHARED / "webtext_samples" / "webtext.valid.first63tok.jsonl",
    ]
    if not all(path.is_file() for path in files):
        files = sorted((ROOT / "corpus" / "sample" / "eval").glob("*.jsonl"))
    out = []
    for path in files:
        out += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    return out


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds / 1e6:6.2f}M/s ({count / seconds / TARGET:4.1f}x the target)"


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def test_prehashed_insert_and_query():
    params = plan(ITEMS, 1e-8, n=8)
    bloom = BloomFilter(params)
    rng = np.random.default_rng(0)
    present = rng.integers(0, 2**64, size=ITEMS, dtype=np.uint64, endpoint=False)
    absent = rng.integers(0, 2**64, size=ITEMS, dtype=np.uint64, endpoint=False)
    print(
        f"\nfilter: {ITEMS:,} keys, {params.bits:,} bits ({params.nbytes / 2**20:.0f} MiB), "
        f"k = {params.hashes}"
    )
    _, seconds = timed(bloom.add, present)
    print(f"  insert, pre-hashed:        {rate(ITEMS, seconds)}")
    found, seconds = timed(bloom.contains, present)
    print(f"  query present, pre-hashed: {rate(ITEMS, seconds)}")
    assert found.all()
    found, seconds = timed(bloom.contains, absent)
    print(f"  query absent, pre-hashed:  {rate(ITEMS, seconds)}, {int(found.sum())} false positives")
    _, seconds = timed(bloom.merge, BloomFilter(params))
    print(f"  merge (bitwise OR of two filters): {params.nbytes / seconds / 2**30:.1f} GiB/s")


def test_from_text_insert_and_query():
    corpus = texts()
    per_pass = sum(max(len(words(t)) - 7, 0) for t in corpus)
    repeat = max(1, -(-TEXT_NGRAMS // per_pass))
    batches = [corpus[i : i + 2048] for i in range(0, len(corpus), 2048)] * repeat
    total = per_pass * repeat
    print(f"\ntext: {len(corpus):,} real documents x {repeat} = {total:,} 8-grams")

    normalized, seconds = timed(lambda: [[words(t) for t in batch] for batch in batches])
    print(f"  normalization alone (corpus.ngrams.words): {rate(total, seconds)}")
    hasher = NgramHasher(8)
    _, seconds = timed(lambda: [hasher.hashes_of_words(docs) for docs in normalized])
    print(f"  hashing normalized words (cached word hashes): {rate(total, seconds)}")

    hasher = NgramHasher(8)  # cold word cache, as a fresh worker starts
    bloom = BloomFilter(plan(ITEMS, 1e-8, n=8))
    _, seconds = timed(lambda: [bloom.add(hasher.hashes(batch)[0]) for batch in batches])
    print(f"  insert from text (normalize + hash + insert): {rate(total, seconds)}")
    found, seconds = timed(lambda: [bloom.contains(hasher.hashes(batch)[0]) for batch in batches])
    print(f"  query present from text:                      {rate(total, seconds)}")
    assert all(f.all() for f in found)
    other = [[t[::-1] for t in batch] for batch in batches]  # the same words, reversed: absent 8-grams
    _, seconds = timed(lambda: [bloom.contains(hasher.hashes(batch)[0]) for batch in other])
    print(f"  query absent from text:                       {rate(total, seconds)}")
