"""The Bloom filter: sized for an FPR bound, no false negatives, the measured rate, merging, its file."""

import hashlib
import io
import math
import os
import threading
from dataclasses import replace

import numpy as np
import pytest

from corpus.bloom import (
    HEADER,
    BloomFilter,
    BloomFormatError,
    PartitionedBloom,
    partition_bits,
    partition_of,
    plan,
    plan_partitions,
    split_sorted,
)
from corpus.ngrams import NgramHasher
from corpus.overlap import random_ngram_hashes


def keys(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, size=count, dtype=np.uint64, endpoint=False)


def filled(items: int, fpr: float, seed: int = 0) -> tuple[BloomFilter, np.ndarray]:
    inserted = keys(items, seed)
    bloom = BloomFilter(plan(items, fpr, n=8))
    bloom.add(inserted)
    return bloom, inserted


def test_sizing_meets_the_bound_with_the_textbook_number_of_bits():
    params = plan(1_000_000, 1e-8, n=8)
    textbook = -1_000_000 * math.log(1e-8) / math.log(2) ** 2  # m = -n ln p / ln(2)^2
    assert params.hashes == 24 and params.hashes % 8 == 0
    assert textbook <= params.bits <= 1.005 * textbook  # k a multiple of 8 costs 0.3%
    assert params.expected_fpr() <= 1e-8 and params.bits % 64 == 0
    assert params.nbytes == params.bits // 8
    for fpr in (0.1, 0.01, 1e-4, 1e-12):
        assert plan(12_345, fpr, n=8).expected_fpr() <= fpr
    assert plan(0, 1e-8, n=8).bits == 64  # an empty corpus still gives a valid (empty) filter
    with pytest.raises(ValueError):
        plan(10, 1.5, n=8)


def test_no_false_negatives_and_repeats_are_harmless():
    bloom, inserted = filled(200_000, 1e-8)
    assert bloom.contains(inserted).all()
    before = bloom.array.copy()
    bloom.add(inserted[:1000])
    assert np.array_equal(before, bloom.array)


def test_measured_false_positive_rate_matches_the_estimate():
    """At a bound loose enough to measure: 1M absent keys hit at the estimated rate (within 5 sigma)."""
    bloom, _ = filled(100_000, 0.01)
    rate = bloom.params.expected_fpr()
    hits = int(bloom.contains(keys(1_000_000, seed=1)).sum())
    sigma = math.sqrt(1_000_000 * rate * (1 - rate))
    assert abs(hits - 1_000_000 * rate) < 5 * sigma
    expected_fill = 1 - math.exp(-bloom.params.hashes * 100_000 / bloom.params.bits)
    assert abs(bloom.fill() - expected_fill) < 0.001 and rate <= 0.01


def test_a_small_filter_has_no_double_hashing_floor():
    """With one (h1, h2) pair for all k hashes, keys equal modulo the filter size collide on every bit: a
    7 KB filter of 1,551 keys answered 32 of 1M random strings. A fresh pair per 8 hashes removes that."""
    bloom, _ = filled(1_551, 1e-8)
    assert bloom.params.nbytes < 8_000
    assert int(bloom.contains(random_ngram_hashes(1_000_000, 8)).sum()) == 0


def test_the_filter_does_not_depend_on_insertion_order_or_batches():
    inserted = keys(50_000, seed=2)
    params = plan(len(inserted), 1e-6, n=8)
    one, other = BloomFilter(params), BloomFilter(params)
    one.add(inserted)
    for part in np.array_split(inserted[::-1], 7):
        other.add(part)
    assert np.array_equal(one.array, other.array)


def test_merging_is_the_filter_of_the_union():
    inserted = keys(60_000, seed=3)
    params = plan(len(inserted), 1e-8, n=8)
    whole, left, right = BloomFilter(params), BloomFilter(params), BloomFilter(params)
    whole.add(inserted)
    left.add(inserted[:25_000])
    right.add(inserted[25_000:])
    assert np.array_equal(left.merge(right).array, whole.array)
    with pytest.raises(ValueError, match="different parameters"):
        whole.merge(BloomFilter(plan(10, 1e-8, n=8)))


def test_real_ngrams_are_found_after_a_save_and_load(tmp_path):
    texts = [
        "The quick brown fox jumps over the lazy dog, and then the dog sleeps in the sun.",
        "GPT-2 measured 8-gram overlap with Bloom filters of WebText's training set.",
    ]
    hashes, _ = NgramHasher(8).hashes(texts)
    bloom = BloomFilter(plan(len(np.unique(hashes)), 1e-8, n=8))
    bloom.add(hashes)
    path = tmp_path / "ngrams-8.bloom"
    bloom.save(str(path))
    assert path.stat().st_size == HEADER.size + bloom.params.nbytes
    for mmap in (True, False):
        loaded = BloomFilter.load(str(path), mmap=mmap)
        assert loaded.params == bloom.params and np.array_equal(loaded.array, bloom.array)
        assert loaded.contains(hashes).all()
        query, _ = NgramHasher(8).hashes(["the quick brown fox jumps over the lazy cat"])
        assert loaded.contains(query).tolist() == [True, False]  # "... the lazy dog" is in, "lazy cat" not
    assert [p.name for p in tmp_path.iterdir()] == ["ngrams-8.bloom"]  # no temporary file left


def test_a_damaged_file_is_one_clear_error_naming_it(tmp_path):
    bloom, _ = filled(1000, 1e-8)
    path = tmp_path / "f.bloom"
    bloom.save(str(path))
    data = path.read_bytes()
    (tmp_path / "short.bloom").write_bytes(data[:-10])
    (tmp_path / "text.bloom").write_bytes(b"just some text, not a filter at all" * 4)
    (tmp_path / "future.bloom").write_bytes(data[:8] + (99).to_bytes(4, "little") + data[12:])
    for name, problem in (
        ("short.bloom", "truncated"),
        ("text.bloom", "bad magic"),
        ("future.bloom", "version 99"),
        ("missing.bloom", "cannot read"),
    ):
        with pytest.raises(BloomFormatError, match=problem) as error:
            BloomFilter.load(str(tmp_path / name))
        assert str(error.value).startswith(str(tmp_path / name))


def test_a_file_object_holds_the_same_bytes_as_the_file(tmp_path):
    """save_to / read_from: how pipelines/ writes and reads a filter on gs://, s3://, ... (Beam's handles)."""
    bloom, inserted = filled(50_000, 1e-8)
    path = tmp_path / "f.bloom"
    bloom.save(str(path))
    buffer = io.BytesIO()
    bloom.save_to(buffer)
    assert buffer.getvalue() == path.read_bytes()
    # A pipe: a stream that cannot seek and returns short reads (64 KiB at most), like a download.
    read_end, write_end = os.pipe()

    def feed() -> None:
        with open(write_end, "wb") as writer:
            bloom.save_to(writer)

    feeding = threading.Thread(target=feed)
    feeding.start()
    with open(read_end, "rb", buffering=0) as reader:
        loaded = BloomFilter.read_from(reader, "gs://bucket/f.bloom")
    feeding.join()
    assert bloom.params.nbytes > 3 * 2**16
    assert loaded.params == bloom.params and np.array_equal(loaded.array, bloom.array)
    assert loaded.contains(inserted).all()


def test_a_damaged_file_object_is_one_clear_error_naming_it():
    bloom, _ = filled(1000, 1e-8)
    buffer = io.BytesIO()
    bloom.save_to(buffer)
    data = buffer.getvalue()
    for raw, problem in (
        (data[:-10], r"the header promises \d+ \(truncated\?\)"),
        (data + b"extra", f"{len(data) + 5} bytes, the header promises {len(data)}$"),
        (b"just some text, not a filter at all" * 4, "bad magic"),
        (data[:8] + (99).to_bytes(4, "little") + data[12:], "version 99"),
    ):
        with pytest.raises(BloomFormatError, match=problem) as error:
            BloomFilter.read_from(io.BytesIO(raw), "gs://bucket/f.bloom")
        assert str(error.value).startswith("gs://bucket/f.bloom: ")


def test_a_whole_filter_file_keeps_its_bytes():
    """The bytes of a whole filter (3,000 keys at 1e-8) as the code before partitions wrote them: the
    partition field of the header stays 0, so every existing .bloom file and manifest sha256 stays valid."""
    bloom, _ = filled(3000, 1e-8, seed=5)
    buffer = io.BytesIO()
    bloom.save_to(buffer)
    assert len(buffer.getvalue()) == 14496
    assert hashlib.sha256(buffer.getvalue()).hexdigest() == (
        "18ae3eff7290e48f83f2ffec2c3120b0fcacc00a67dca5f7becc7710b1379722"
    )


def partitioned(inserted: np.ndarray, partitions: int, fpr: float) -> PartitionedBloom:
    parts = split_sorted(np.unique(inserted), partitions)
    bloom = PartitionedBloom.planned(plan_partitions([len(p) for p in parts], fpr, n=8))
    bloom.add(inserted)
    return bloom


def test_partitions_are_routed_by_the_top_bits_and_sized_each_for_its_own_keys():
    inserted = keys(100_000, seed=6)
    bloom = partitioned(inserted, 8, 1e-8)
    which = partition_of(inserted, 8)
    assert which.tolist() == (inserted >> np.uint64(61)).astype(np.int64).tolist()
    for i, part in enumerate(bloom.parts):
        assert (part.params.partition, part.params.partitions) == (i, 8)
        assert part.params.items == int((which == i).sum()) and part.params.expected_fpr() <= 1e-8
        assert part.contains(inserted[which == i]).all()  # each key is in its own partition
        assert part.params == replace(plan(part.params.items, 1e-8, n=8), partition=i, partitions=8)
    assert bloom.params.items == len(inserted) and bloom.params.bits == sum(
        p.params.bits for p in bloom.parts
    )
    assert plan_partitions([12_345], 1e-8, n=8) == [plan(12_345, 1e-8, n=8)]  # P = 1: the whole filter
    assert [len(p) for p in split_sorted(np.sort(inserted), 8)] == np.bincount(which, minlength=8).tolist()
    for bad in (0, 3, 8192):
        with pytest.raises(ValueError, match="power of two"):
            partition_bits(bad)


def test_partitions_answer_as_one_filter_does():
    """Present keys are found in both, absent ones in neither (at 1e-8: no false positive among 1M), the
    answers identical key for key, in any order and with repeats."""
    inserted = keys(200_000, seed=7)
    whole, _ = filled(200_000, 1e-8, seed=7)
    queries = np.concatenate([inserted[::-1], keys(1_000_000, seed=8), inserted[:5000]])
    answers = whole.contains(queries)
    assert answers[:200_000].all() and not answers[200_000:1_200_000].any()
    for partitions in (1, 2, 4, 64):
        assert np.array_equal(partitioned(inserted, partitions, 1e-8).contains(queries), answers), partitions


def test_partitions_keep_the_false_positive_bound():
    """At a bound loose enough to measure, 1M absent keys hit 4 partitions at the mean of their estimated
    rates, within 5 sigma, and under the bound."""
    bloom = partitioned(keys(100_000, seed=9), 4, 0.01)
    rate = bloom.estimated_fpr()
    hits = int(bloom.contains(keys(1_000_000, seed=10)).sum())
    sigma = math.sqrt(1_000_000 * rate * (1 - rate))
    assert abs(hits - 1_000_000 * rate) < 5 * sigma and rate <= 0.01
    assert rate == pytest.approx(np.mean([p.fill() ** p.params.hashes for p in bloom.parts]))


def test_a_partition_file_says_which_partition_it_is(tmp_path):
    bloom = partitioned(keys(20_000, seed=11), 4, 1e-8)
    paths = []
    for part in bloom.parts:
        paths.append(tmp_path / f"part{part.params.partition}.bloom")
        part.save(str(paths[-1]))
    loaded = [BloomFilter.load(str(p)) for p in paths]
    assert [p.params for p in loaded] == [p.params for p in bloom.parts]
    assert HEADER.unpack(paths[3].read_bytes()[: HEADER.size])[5] == 2 << 16 | 3
    again = PartitionedBloom(loaded)
    assert np.array_equal(again.contains(keys(20_000, seed=11)), np.ones(20_000, dtype=bool))
    with pytest.raises(ValueError, match="partition 0 of 4 says it is 1 of 4"):
        PartitionedBloom([loaded[1], loaded[0], loaded[2], loaded[3]])
    raw = bytearray(paths[0].read_bytes())
    raw[28:32] = (13 << 16).to_bytes(4, "little")  # 2^13 partitions: more than there may be
    (tmp_path / "bad.bloom").write_bytes(bytes(raw))
    with pytest.raises(BloomFormatError, match="bad partition field"):
        BloomFilter.load(str(tmp_path / "bad.bloom"))
