"""Bloom filter speed, in 8-grams per second on one core, beside the targets and the rbloom peer (run by
`make bench`; no timing asserts).

Three ways in, as issue 16 names them:

- pre-hashed: random uint64 keys, the filter alone (insert, query of present and absent keys, merge, and
  the query of a filter in 4 partitions, which routes every key to its partition first);
- from token ids: texts as word ids (a vocabulary's ids, made untimed), each id's word hash looked up in a
  table and combined into 8-gram hashes (`corpus.ngrams.rolling_hashes`), then inserted. Target 4M/s;
- from text: GPT-2's normalization, word hashing and 8-gram hashing included, as `webtext ngrams` and
  `webtext overlap` do it (`NgramHasher.hashes`, cold word table as a fresh worker starts), then inserted.
  Target 2M/s. Printed beside it: normalization alone (`words`), the word-by-word hashing this replaced, and
  the vectorized hashing alone.

Peer: rbloom (`pip install '.[bench]'`) on the same 64-bit keys, fed as Python ints (its default hash of
an int is the int itself mod 2^61-1; converting the keys is not timed), sized for the same items and FPR.

The filter is sized for BENCH_BLOOM_ITEMS distinct keys at FPR 1e-8 (default 20M: 92 MiB, far larger than
the CPU caches, so every probe is a memory access as on a real corpus); BENCH_BLOOM_KEYS keys are inserted
and queried (default 5M). Text: the real LAMBADA test and WebText test/valid samples of
$WEBTEXT_SHARED_DATA (default <repo>/../shared/data), else the bundled samples, repeated to
BENCH_BLOOM_TEXT_NGRAMS 8-grams (default 3M). BENCH_BLOOM_REPEATS (default 1) takes the best of that many
runs of each figure. Every figure is printed as `name: value` and, with BENCH_RESULTS=FILE, appended there
as a JSON line.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from corpus.bloom import BloomFilter, PartitionedBloom, plan, plan_partitions, split_sorted
from corpus.ngrams import NgramHasher, rolling_hashes, stable_hash64, words
from tests.benchmarks.results import record

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
ITEMS = int(os.environ.get("BENCH_BLOOM_ITEMS", "20000000"))
KEYS = int(os.environ.get("BENCH_BLOOM_KEYS", "5000000"))
TEXT_NGRAMS = int(os.environ.get("BENCH_BLOOM_TEXT_NGRAMS", "3000000"))
REPEATS = int(os.environ.get("BENCH_BLOOM_REPEATS", "1"))
TARGET_TEXT = 2_000_000  # 8-grams/s/core from text: normalize + hash + insert
TARGET_IDS = 4_000_000  # 8-grams/s/core from token ids: hash + insert


def figure(name: str, value: float, unit: str = "8-grams/s") -> float:
    """Print one figure as `name: value` and append it to $BENCH_RESULTS as a JSON line."""
    shown = f"{value / 1e6:.2f}M {unit}" if unit == "8-grams/s" else f"{value:.2f} {unit}".rstrip()
    print(f"{name}: {shown}")
    record("bloom", name, value, unit=unit)
    return value


def best(fn, count: int, fresh=None) -> float:
    """`count` items per second, the best of REPEATS runs of fn(); fresh() makes fn's argument anew each run
    (an empty filter), untimed."""
    seconds = []
    for _ in range(REPEATS):
        arg = fresh() if fresh else None
        start = time.perf_counter()
        fn(arg) if fresh else fn()
        seconds.append(time.perf_counter() - start)
    return count / min(seconds)


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


@pytest.fixture(scope="module")
def keys() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "present": rng.integers(0, 2**64, size=KEYS, dtype=np.uint64, endpoint=False),
        "absent": rng.integers(0, 2**64, size=KEYS, dtype=np.uint64, endpoint=False),
    }


def filled(keys: dict[str, np.ndarray]) -> BloomFilter:
    bloom = BloomFilter(plan(ITEMS, 1e-8, n=8))
    bloom.add(keys["present"])
    return bloom


def test_prehashed_insert_and_query(keys):
    params = plan(ITEMS, 1e-8, n=8)
    print(
        f"\nfilter sized for {ITEMS:,} keys: {params.bits:,} bits ({params.nbytes / 2**20:.0f} MiB), "
        f"k = {params.hashes}; {KEYS:,} keys; load {os.getloadavg()[0]:.2f}"
    )
    figure(
        "bloom insert, pre-hashed", best(lambda b: b.add(keys["present"]), KEYS, lambda: BloomFilter(params))
    )
    bloom = filled(keys)
    assert bloom.contains(keys["present"]).all()
    figure("bloom query present, pre-hashed", best(lambda: bloom.contains(keys["present"]), KEYS))
    figure("bloom query absent, pre-hashed", best(lambda: bloom.contains(keys["absent"]), KEYS))
    print(f"  false positives among {KEYS:,} absent keys: {int(bloom.contains(keys['absent']).sum())}")
    other = BloomFilter(params)
    figure("bloom merge (bitwise OR)", best(lambda: bloom.merge(other), params.nbytes) / 2**30, "GiB/s")
    parts = split_sorted(np.sort(keys["present"]), 4)
    four = PartitionedBloom.planned(plan_partitions([ITEMS // 4] * 4, 1e-8, n=8))
    four.add(keys["present"])
    assert sum(len(p) for p in parts) == KEYS
    figure("bloom query present, 4 partitions", best(lambda: four.contains(keys["present"]), KEYS))


def test_rbloom_on_the_same_keys(keys):
    try:
        from rbloom import Bloom
    except ImportError:
        print("\npeer rbloom: not installed (pip install '.[bench]')")
        return
    present, absent = keys["present"].tolist(), keys["absent"].tolist()  # Python ints: untimed
    ours = filled(keys)
    theirs = Bloom(ITEMS, 1e-8)
    print(f"\nrbloom {ITEMS:,} items at 1e-8: {theirs.size_in_bits:,} bits, {theirs.approx_items:.0f} items")
    insert = figure("rbloom insert", best(lambda b: b.update(present), KEYS, lambda: Bloom(ITEMS, 1e-8)))
    theirs.update(present)
    query = figure("rbloom query present", best(lambda: sum(k in theirs for k in present), KEYS))
    figure("rbloom query absent", best(lambda: sum(k in theirs for k in absent), KEYS))
    ours_insert = best(lambda b: b.add(keys["present"]), KEYS, lambda: BloomFilter(plan(ITEMS, 1e-8, n=8)))
    ours_query = best(lambda: ours.contains(keys["present"]), KEYS)
    figure("insert ours / rbloom", ours_insert / insert, "x")
    figure("query present ours / rbloom", ours_query / query, "x")


def test_from_text_and_from_token_ids():
    corpus = texts()
    per_pass = sum(max(len(words(t)) - 7, 0) for t in corpus)
    repeat = max(1, -(-TEXT_NGRAMS // per_pass))
    batches = [corpus[i : i + 1000] for i in range(0, len(corpus), 1000)] * repeat  # the stage's batches
    total = per_pass * repeat
    print(
        f"\ntext: {len(corpus):,} real documents x {repeat} = {total:,} 8-grams; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    params = plan(ITEMS, 1e-8, n=8)

    normalized = [[words(t) for t in batch] for batch in batches]
    figure(
        "normalization alone (corpus.ngrams.words)",
        best(lambda: [[words(t) for t in b] for b in batches], total),
    )
    hasher = NgramHasher(8)
    figure(
        "hashing, word by word (words + dict)",
        best(lambda: [hasher.hashes_of_words(d) for d in normalized], total),
    )
    figure("hashing from text, vectorized, warm", best(lambda: [hasher.hashes(b) for b in batches], total))

    def from_text(bloom: BloomFilter) -> None:
        cold = NgramHasher(8)  # an empty word table, as a fresh worker starts
        for batch in batches:
            bloom.add(cold.hashes(batch)[0])

    text_rate = figure(
        "insert from text (normalize + hash + insert)", best(from_text, total, lambda: BloomFilter(params))
    )
    figure("insert from text / target 2M", text_rate / TARGET_TEXT, "x")
    bloom = BloomFilter(params)
    from_text(bloom)
    found = [bloom.contains(hasher.hashes(batch)[0]) for batch in batches]
    assert all(f.all() for f in found)
    figure(
        "query present from text", best(lambda: [bloom.contains(hasher.hashes(b)[0]) for b in batches], total)
    )
    other = [[t[::-1] for t in batch] for batch in batches]  # the same letters, reversed: absent 8-grams
    figure(
        "query absent from text", best(lambda: [bloom.contains(hasher.hashes(b)[0]) for b in other], total)
    )

    # Token ids: each text as ids of its words in a vocabulary, the vocabulary's word hashes in a table.
    vocabulary: dict[str, int] = {}
    id_batches = []
    for docs in normalized:
        ids = np.array(
            [vocabulary.setdefault(w, len(vocabulary)) for doc in docs for w in doc], dtype=np.int64
        )
        id_batches.append((ids, np.array([len(doc) for doc in docs], dtype=np.int64)))
    table = np.array([stable_hash64(w) for w in vocabulary], dtype=np.uint64)

    def from_ids(bloom: BloomFilter) -> None:
        for ids, lengths in id_batches:
            bloom.add(rolling_hashes(table[ids], lengths, 8)[0])

    figure(
        "hashing from token ids alone",
        best(lambda: [rolling_hashes(table[i], n, 8) for i, n in id_batches], total),
    )
    ids_rate = figure(
        "insert from token ids (hash + insert)", best(from_ids, total, lambda: BloomFilter(params))
    )
    figure("insert from token ids / target 4M", ids_rate / TARGET_IDS, "x")
