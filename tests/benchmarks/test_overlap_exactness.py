"""Bloom-based overlap equals the exact set-based overlap on real evaluation text (run by `make bench`).

Data: $WEBTEXT_SHARED_DATA (default <repo>/../shared/data; skipped when absent). Training sides, each built
as a Bloom filter at FPR 1e-8 and as an exact set of 8-gram strings:

- "webtext": the WebText samples (4,723 test + 4,724 valid documents cut to 63 tokens, 10 whole train
  documents), a stand-in for WebText train;
- "wikitext2_raw_test": the raw WikiText-2 test split; "wikitext2_valid" and "ptb_valid": valid splits, the
  way Table 6's "own train split" row compares a test set with text of its own source.

Evaluation sets: LAMBADA test, PTB valid/test, WikiText-2 valid/test (tokenized) and raw test, the WebText
test samples. For every pair the filter's count of 8-grams found must equal the exact count plus false
positives: never fewer (no false negatives), and more only within the FPR bound; and the same filter built
in 4 partitions must find the same count in every example. Prints the table, the time and memory of both
methods.
"""

from __future__ import annotations

import gzip
import math
import os
import sys
import time
from pathlib import Path

import pytest

from corpus.overlap import BloomIndex, ExactNgrams, bloom_from_texts, fpr_check, measure, read_examples

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
FPR = 1e-8
PARTITIONS = 4  # each training side also as a filter in 4 partitions, whose figures must be the same
EVALS = {
    "lambada_test": "lambada/lambada_test.jsonl",
    "ptb_valid": "ptb/ptb.valid.txt",
    "ptb_test": "ptb/ptb.test.txt",
    "wikitext2_valid": "wikitext2/wikitext-2_tokens.valid.txt.gz",
    "wikitext2_test": "wikitext2/wikitext-2_tokens.test.txt.gz",
    "wikitext2_raw_test": "wikitext2/wikitext-2-raw-v1.test.hfrows_joined.txt.gz",
    "webtext_test": "webtext_samples/webtext.test.first63tok.jsonl",
}

pytestmark = pytest.mark.skipif(
    not (SHARED / EVALS["lambada_test"]).is_file(), reason=f"shared data not found: {SHARED}"
)


def load(relative: str) -> list[str]:
    return [example.text for example in read_examples(str(SHARED / relative))]


def training_sides() -> dict[str, list[str]]:
    webtext = load("webtext_samples/webtext.test.first63tok.jsonl") + load(
        "webtext_samples/webtext.valid.first63tok.jsonl"
    )
    webtext += [
        p.read_text(encoding="utf-8") for p in sorted((SHARED / "webtext_samples/webtext_train_10").glob("*"))
    ]
    return {
        "webtext": webtext,
        "wikitext2_raw_test": load(EVALS["wikitext2_raw_test"]),
        "wikitext2_valid": load(EVALS["wikitext2_valid"]),
        "ptb_valid": load(EVALS["ptb_valid"]),
    }


def set_bytes(grams: set[str]) -> int:
    return sys.getsizeof(grams) + sum(sys.getsizeof(g) for g in grams)


def test_bloom_overlap_equals_exact_overlap():
    evals = {name: load(path) for name, path in EVALS.items()}
    queried = sum(len(t) for t in evals.values())
    print(f"\n{len(evals)} evaluation sets, {queried:,} examples")
    rows = []
    for train_name, train in training_sides().items():
        start = time.perf_counter()
        bloom = BloomIndex(bloom_from_texts(train, 8, FPR))
        bloom_build = time.perf_counter() - start
        parts = BloomIndex(bloom_from_texts(train, 8, FPR, partitions=PARTITIONS))
        start = time.perf_counter()
        exact = ExactNgrams.from_texts(train, 8)
        exact_build = time.perf_counter() - start
        check = fpr_check(bloom.bloom, 1_000_000)
        params = bloom.bloom.params
        print(
            f"{train_name}: {params.items:,} distinct 8-grams; filter {params.nbytes / 2**20:.2f} MiB "
            f"built in {bloom_build:.2f} s; exact set {set_bytes(exact.grams) / 2**20:.1f} MiB built in "
            f"{exact_build:.2f} s; {check.hits} hits of 1M random strings"
        )
        assert len(exact) == params.items  # no 64-bit hash collision among these n-grams
        for eval_name, texts in evals.items():
            start = time.perf_counter()
            by_bloom = measure(texts, bloom)
            bloom_query = time.perf_counter() - start
            start = time.perf_counter()
            by_exact = measure(texts, exact)
            exact_query = time.perf_counter() - start
            by_parts = measure(texts, parts)  # the same filter in partitions: the same answer per example
            assert (by_parts.found == by_bloom.found).all() and (by_parts.ngrams == by_bloom.ngrams).all()
            absent = by_exact.total - by_exact.total_found
            extra = by_bloom.total_found - by_exact.total_found
            assert (by_bloom.found >= by_exact.found).all()  # no false negatives
            assert extra <= absent * FPR + 3 * math.sqrt(absent * FPR) + 1  # false positives within the bound
            rows.append((train_name, eval_name, by_exact.total, by_bloom.percent, by_exact.percent, extra))
            rows[-1] += (bloom_query, exact_query)
    print(
        "\n| training side | evaluation set | 8-grams | Bloom % | exact % | false positives | Bloom s "
        "| exact s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for train_name, eval_name, total, bloom_pct, exact_pct, extra, bloom_s, exact_s in rows:
        print(
            f"| {train_name} | {eval_name} | {total:,} | {bloom_pct:.4f} | {exact_pct:.4f} | {extra} "
            f"| {bloom_s:.2f} | {exact_s:.2f} |"
        )
    assert any(row[3] > 50 for row in rows)  # the comparison is not all zeros: raw vs tokenized WikiText


def test_gzip_reader_matches_plain_text():
    """The gzipped WikiText files are read as the text they hold (one example per non-blank line)."""
    path = SHARED / EVALS["wikitext2_test"]
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip()]
    assert load(EVALS["wikitext2_test"]) == lines
