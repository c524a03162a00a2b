"""The ngrams stage's pipelines: a release's train split -> `release/ngrams-N-<sha256 prefix>.bloom`, a Bloom
filter of its n-grams, added to the release's manifest.

Two Beam pipelines over the train shards (GPT-2 section 4), each document its own text (no n-gram spans
two documents):

    1. CountNgrams: shards -> n-gram hashes per batch of documents -> distinct per batch -> bucketed by the
       hashes' top bits -> GroupByKey per bucket -> distinct per bucket -> summed: the exact number of
       distinct 64-bit n-gram hashes.
    2. BuildFilter: the filter is sized from that count and the FPR bound (`corpus.bloom.plan`); the driver
       prints its memory and refuses when it exceeds --max-memory. shards -> hashes -> CombineGlobally
       (`BloomCombine`: every worker fills its own filter, filters merge by bitwise OR) -> the file.

The filter is added to the committed release folder, whose manifest.json is the commit point: it is written
under a temporary name, then given a name of its own content (`ngrams-N-<sha256 prefix>.bloom`, never one the
manifest lists for other bytes), then the manifest gets its `ngrams` entry (n, bits, hashes, hash function,
item count, FPR bound, sha256) in one atomic write, and only then is a filter it replaced removed. A reader
sees the old entry with the old file or the new entry with the new file; the same release gives
byte-identical files. Every file goes through Beam's FileSystems (pipelines/files.py), so the release may be
on any filesystem Beam has (gs://, s3://, hdfs:// with the SDK's extras); shards are streamed, never seeked.

Counters: `ngrams:in` (documents), `ngrams:out` (distinct n-grams, counted by CountNgrams),
`ngrams:ngrams` (n-gram occurrences) and `ngrams:short_documents` (documents shorter than n words).
"""

from __future__ import annotations

import json
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from corpus.bloom import BloomFilter, BloomFormatError, BloomParams, plan
from corpus.errors import InputError
from corpus.manifest import Manifest
from corpus.ngrams import NgramHasher
from pipelines.files import (
    exists,
    join,
    open_read,
    open_write,
    read_json,
    read_manifest,
    sha256_and_size,
    write_bytes,
    write_manifest,
)

STAGE = "ngrams"
DOCS_PER_BATCH = 1000
BUCKETS_PER_SHARD = 16  # count buckets: ~20 MB of hashes each for a 256 MB shard


@dataclass(frozen=True)
class NgramsOptions:
    release: str  # the release directory
    n: int = 8
    fpr: float = 1e-8
    max_memory: int = 16 * 2**30  # bytes


# --- reading a release ----------------------------------------------------------------------------------
def train_shards(release: str, manifest: Manifest) -> list[str]:
    return [join(release, shard.path) for shard in manifest.shards("train")]


def shard_texts(path: str) -> Iterator[str]:
    """The texts of a shard, in order, streamed: only its `.txt` members are decoded (the tokens and
    metadata are not needed, and loading them would double the time a shard takes)."""
    with open_read(path) as handle, tarfile.open(fileobj=handle, mode="r|") as tar:
        for member in tar:
            if member.isreg() and member.name.endswith(".txt"):
                yield tar.extractfile(member).read().decode("utf-8")


def train_texts(release: str) -> Iterator[str]:
    """The texts of a release's train split, shard after shard (for exact, in-memory comparisons)."""
    for path in train_shards(release, read_manifest(release)):
        yield from shard_texts(path)


def filter_path(release: str, n: int) -> str:
    """The path of the release's n-gram filter, from its manifest; one clear error when there is none."""
    for entry in read_manifest(release).ngrams:
        if entry.n == n:
            return join(release, entry.path)
    raise InputError(f"{release}: no {n}-gram filter in the manifest; run webtext ngrams --release first")


def read_filter(path: str) -> BloomFilter:
    """A filter file: mapped read-only from a local disk (it may be larger than memory), read whole from
    any other filesystem."""
    if FileSystems.get_scheme(path) is None:
        return BloomFilter.load(path)
    try:
        with open_read(path) as handle:
            return BloomFilter.read_from(handle, path)
    except BloomFormatError:
        raise
    except (OSError, ValueError) as err:  # ValueError: a scheme whose filesystem is not installed
        raise BloomFormatError(f"{path}: cannot read the Bloom filter ({err})") from None


# --- the transforms ---------------------------------------------------------------------------------------
class HashShards(beam.DoFn):
    """A shard path -> (documents, uint64 n-gram hashes) per batch of its documents."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.documents = Metrics.counter(STAGE, "in")
        self.ngrams = Metrics.counter(STAGE, "ngrams")
        self.short = Metrics.counter(STAGE, "short_documents")

    def setup(self) -> None:
        self.hasher = NgramHasher(self.n)

    def process(self, path: str) -> Iterator[tuple[int, np.ndarray]]:
        texts = []
        for text in shard_texts(path):
            texts.append(text)
            if len(texts) == DOCS_PER_BATCH:
                yield self._hash(texts)
                texts = []
        if texts:
            yield self._hash(texts)

    def _hash(self, texts: list[str]) -> tuple[int, np.ndarray]:
        hashes, counts = self.hasher.hashes(texts)
        self.documents.inc(len(texts))
        self.ngrams.inc(len(hashes))
        self.short.inc(int(np.count_nonzero(counts == 0)))
        return len(texts), hashes


def by_bucket(batch: tuple[int, np.ndarray], bits: int) -> Iterator[tuple[int, np.ndarray]]:
    """A batch's distinct hashes split by their top `bits` bits: (bucket, sorted hashes) per bucket."""
    distinct = np.unique(batch[1])
    if not len(distinct):
        return
    buckets = (distinct >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(distinct), int)
    present, starts = np.unique(buckets, return_index=True)
    yield from zip(present.tolist(), np.split(distinct, starts[1:]), strict=True)


class CountDistinct(beam.DoFn):
    """(bucket, its hash arrays) -> (0, 0, distinct hashes in the bucket); buckets share no hash."""

    def __init__(self) -> None:
        self.distinct = Metrics.counter(STAGE, "out")

    def process(self, element: tuple[int, Any]) -> Iterator[tuple[int, int, int]]:
        _, parts = element
        distinct = len(np.unique(np.concatenate(list(parts))))
        self.distinct.inc(distinct)
        yield 0, 0, distinct


class BloomCombine(beam.CombineFn):
    """Hash arrays -> the filter's bit array. Each worker fills its own (allocated at its first input), and
    the partial filters merge by bitwise OR, which is exact: the result is the filter of all the keys."""

    def __init__(self, params: BloomParams) -> None:
        self.params = params

    def create_accumulator(self) -> np.ndarray | None:
        return None

    def add_input(self, array: np.ndarray | None, hashes: np.ndarray) -> np.ndarray:
        bloom = BloomFilter(self.params, array)
        bloom.add(hashes)
        return bloom.array

    def merge_accumulators(self, arrays) -> np.ndarray | None:
        merged = None
        for array in arrays:
            if array is None:
                continue
            if merged is None:
                merged = array
            else:
                BloomFilter(self.params, merged).merge(BloomFilter(self.params, array))
        return merged

    def extract_output(self, array: np.ndarray | None) -> np.ndarray:
        return BloomFilter(self.params, array).array


@dataclass(frozen=True)
class Count:
    documents: int
    ngrams: int  # occurrences
    distinct: int  # distinct 64-bit n-gram hashes


def _sum_counts(counts) -> tuple[int, int, int]:
    totals = [0, 0, 0]
    for count in counts:
        totals = [a + b for a, b in zip(totals, count, strict=True)]
    return tuple(totals)


def _shard_paths(root: beam.pvalue.PBegin, shards: list[str]) -> beam.PCollection:
    return root | "Shards" >> beam.Create(shards) | "Spread" >> beam.Reshuffle()


def _write_json(value, path: str) -> None:
    write_bytes(path, json.dumps(list(value)).encode("utf-8"))


def _write_filter(array: np.ndarray, params: BloomParams, path: str) -> None:
    with open_write(path) as handle:
        BloomFilter(params, array).save_to(handle)


class CountNgrams(beam.PTransform):
    """Pipeline 1: [documents, n-grams, distinct n-gram hashes] of the shards, written to `out` as JSON."""

    def __init__(self, shards: list[str], n: int, out: str) -> None:
        super().__init__()
        self.shards, self.n, self.out = shards, n, out

    def expand(self, root):
        bits = max(0, (BUCKETS_PER_SHARD * max(1, len(self.shards)) - 1).bit_length())
        batches = _shard_paths(root, self.shards) | "Hash" >> beam.ParDo(HashShards(self.n))
        distinct = (
            batches
            | "Bucket" >> beam.FlatMap(by_bucket, bits)
            | "Group" >> beam.GroupByKey()
            | "Distinct" >> beam.ParDo(CountDistinct())
        )
        sizes = batches | "Sizes" >> beam.MapTuple(lambda documents, hashes: (documents, len(hashes), 0))
        return (
            (distinct, sizes)
            | "All" >> beam.Flatten()
            | "Total" >> beam.CombineGlobally(_sum_counts)
            | "Write" >> beam.Map(_write_json, self.out)
        )


class BuildFilter(beam.PTransform):
    """Pipeline 2: the filter of the shards' n-grams, written to `out`."""

    def __init__(self, shards: list[str], params: BloomParams, out: str) -> None:
        super().__init__()
        self.shards, self.params, self.out = shards, params, out

    def expand(self, root):
        return (
            _shard_paths(root, self.shards)
            | "Hash" >> beam.ParDo(HashShards(self.params.n))
            | "Hashes" >> beam.MapTuple(lambda _, hashes: hashes)
            | "Filter" >> beam.CombineGlobally(BloomCombine(self.params))
            | "Write" >> beam.Map(_write_filter, self.params, self.out)
        )


# --- the driver -------------------------------------------------------------------------------------------
def run_transform(label: str, transform: beam.PTransform, beam_args: list[str]) -> dict[str, int]:
    """Run one pipeline to the end on the runner the Beam options name; its `ngrams:*` counters."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.stage import counters

    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    _ = pipeline | label >> transform
    result = pipeline.run()
    result.wait_until_finish()
    return counters(result, STAGE)


def count_ngrams(shards: list[str], n: int, out: str, beam_args: list[str]) -> tuple[Count, dict[str, int]]:
    """Pipeline 1's count (see CountNgrams) and its counters."""
    counted = run_transform("CountNgrams", CountNgrams(shards, n, out), beam_args)
    return Count(*read_json(out, "n-gram count")), counted


def build_filter(shards: list[str], params: BloomParams, out: str, beam_args: list[str]) -> dict[str, int]:
    """Pipeline 2: the filter of the shards' n-grams written to `out` (see BuildFilter); its counters."""
    return run_transform("BuildFilter", BuildFilter(shards, params, out), beam_args)


def plan_memory(params: BloomParams) -> int:
    """What building needs at most on one worker: its own filter and the one it is merged into."""
    return 2 * params.nbytes


@dataclass(frozen=True)
class Added:
    """What `add_filter` put into the release: the manifest entry, and the counters of the count."""

    entry: dict[str, Any]
    counters: Mapping[str, int]


def add_filter(options: NgramsOptions, beam_args: list[str]) -> Added:
    """Count, plan, build and publish the filter (see the module's docstring)."""
    release, n = options.release, options.n
    manifest = read_manifest(release)
    shards = train_shards(release, manifest)
    scratch = join(release, f"ngrams-{n}.{uuid.uuid4().hex[:12]}")
    counted, built = f"{scratch}.count.tmp", f"{scratch}.bloom.tmp"
    try:
        count, counters = count_ngrams(shards, n, counted, beam_args)
        params = plan_filter(options, count)
        build_filter(shards, params, built, beam_args)
        name, sha256, size = name_by_content(built, release, n)
    finally:
        if leftovers := [path for path in (counted, built) if exists(path)]:
            FileSystems.delete(leftovers)
    entry = {
        "path": name,
        **params.to_dict(),
        "split": "train",
        "documents": count.documents,
        "ngrams": count.ngrams,
        "bytes": size,
        "sha256": sha256,
    }
    publish(release, manifest, entry)
    return Added(entry, counters)


def plan_filter(options: NgramsOptions, count: Count) -> BloomParams:
    """The filter's size for the count and the FPR bound, printed; InputError over --max-memory."""
    n = options.n
    params = plan(count.distinct, options.fpr, n)
    print(
        f"ngrams: {count.documents} documents, {count.ngrams} {n}-grams, {count.distinct} distinct -> "
        f"{params.bits} bits ({human_bytes(params.nbytes)}), {params.hashes} hashes, FPR bound "
        f"{params.fpr:g}; building holds up to {human_bytes(plan_memory(params))} per worker",
        flush=True,
    )
    if plan_memory(params) > options.max_memory:
        raise InputError(
            f"{options.release}: the {n}-gram filter needs {human_bytes(plan_memory(params))} per worker "
            f"({count.distinct} distinct {n}-grams at FPR {options.fpr:g}), over --max-memory "
            f"{human_bytes(options.max_memory)}; raise --max-memory or --fpr"
        )
    return params


def name_by_content(built: str, release: str, n: int) -> tuple[str, str, int]:
    """Give the built filter its name in the release, `ngrams-N-<sha256 prefix>.bloom`: (name, sha256,
    bytes)."""
    sha256, size = sha256_and_size(built)
    name = f"ngrams-{n}-{sha256[:16]}.bloom"
    if not exists(join(release, name)):  # else a rerun made the same bytes
        FileSystems.rename([built], [join(release, name)])
    return name, sha256, size


def publish(release: str, manifest: Manifest, entry: dict[str, Any]) -> None:
    """The manifest's `ngrams` entry for entry's n replaced in one atomic write (the commit point), then
    the filter it named before, if another, removed."""
    data, n, name = manifest.data, entry["n"], entry["path"]
    replaced = [e["path"] for e in data.get("ngrams", []) if e["n"] == n and e["path"] != name]
    others = [e for e in data.get("ngrams", []) if e["n"] != n]
    data["ngrams"] = sorted([*others, entry], key=lambda e: e["n"])
    write_manifest(release, data)
    # A killed run may have removed some of them already.
    if stale := [p for p in (join(release, r) for r in replaced) if exists(p)]:
        FileSystems.delete(stale)


def human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
