"""The ngrams stage: a release's train split -> `release/ngrams-N.bloom`, a Bloom filter of its n-grams.

Two Beam pipelines over the train shards (GPT-2 section 4), each document its own text (no n-gram spans
two documents):

    1. count: shards -> n-gram hashes per batch of documents -> distinct per batch -> bucketed by the hashes'
       top bits -> GroupByKey per bucket -> distinct per bucket -> summed: the exact number of distinct
       64-bit n-gram hashes.
    2. build: the filter is sized from that count and the FPR bound (`corpus.bloom.plan`); the driver
       prints its memory and refuses when it exceeds --max-memory. shards -> hashes -> CombineGlobally
       (`BloomCombine`: every worker fills its own filter, filters merge by bitwise OR) -> the file.

The filter is added to the committed release folder, whose manifest.json is the commit point: it is written
under a temporary name, then given a name of its own content (`ngrams-N-<sha256 prefix>.bloom`, never one the
manifest lists for other bytes), then the manifest gets its `ngrams` entry (n, bits, hashes, hash function,
item count, FPR bound, sha256) in one atomic write, and only then is a filter it replaced removed. A reader
sees the old entry with the old file or the new entry with the new file; the same release gives
byte-identical files. Every file goes through Beam's FileSystems, so the release may be on any filesystem
Beam has (gs://, s3://, hdfs:// with the SDK's extras); shards are streamed, never seeked.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from corpus.bloom import BloomFilter, BloomFormatError, BloomParams, plan
from corpus.errors import InputError
from corpus.ngrams import NgramHasher
from pipelines.outputs import write_atomic

STAGE = "ngrams"
DOCS_PER_BATCH = 1000
BUCKETS_PER_SHARD = 16  # count buckets: ~20 MB of hashes each for a 256 MB shard


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _create(path: str):
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _sha256_and_size(path: str) -> tuple[str, int]:
    with _open(path) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest(), handle.tell()


def read_manifest(release: str) -> dict:
    path = FileSystems.join(release, "manifest.json")
    try:
        with _open(path) as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read the manifest ({err})") from None


def write_manifest(release: str, manifest: dict) -> None:
    """As the release stage writes it (sorted keys, 2-space indent), in one atomic write: the commit point."""
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(FileSystems.join(release, "manifest.json"), text.encode("utf-8"))


def train_shards(release: str, manifest: dict) -> list[str]:
    return [FileSystems.join(release, shard["path"]) for shard in manifest["splits"].get("train", [])]


def shard_texts(path: str) -> Iterator[str]:
    """The texts of a shard, in order, streamed: only its `.txt` members are decoded (the tokens and
    metadata are not needed, and loading them would double the time a shard takes)."""
    with _open(path) as handle, tarfile.open(fileobj=handle, mode="r|") as tar:
        for member in tar:
            if member.isreg() and member.name.endswith(".txt"):
                yield tar.extractfile(member).read().decode("utf-8")


def train_texts(release: str) -> Iterator[str]:
    """The texts of a release's train split, shard after shard (for exact, in-memory comparisons)."""
    for path in train_shards(release, read_manifest(release)):
        yield from shard_texts(path)


def filter_path(release: str, n: int) -> str:
    """The path of the release's n-gram filter, from its manifest; one clear error when there is none."""
    for entry in read_manifest(release).get("ngrams", []):
        if entry["n"] == n:
            return FileSystems.join(release, entry["path"])
    raise InputError(f"{release}: no {n}-gram filter in the manifest; run webtext ngrams --release first")


def read_filter(path: str) -> BloomFilter:
    """A filter file: mapped read-only from a local disk (it may be larger than memory), read whole from
    any other filesystem."""
    if FileSystems.get_scheme(path) is None:
        return BloomFilter.load(path)
    try:
        with _open(path) as handle:
            return BloomFilter.read_from(handle, path)
    except BloomFormatError:
        raise
    except (OSError, ValueError) as err:  # ValueError: a scheme whose filesystem is not installed
        raise BloomFormatError(f"{path}: cannot read the Bloom filter ({err})") from None


class HashShards(beam.DoFn):
    """A shard path -> (documents, uint64 n-gram hashes) per batch of its documents."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.documents = Metrics.counter(STAGE, "documents")
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


def _pipeline(beam_args: list[str]) -> beam.Pipeline:
    from apache_beam.options.pipeline_options import PipelineOptions

    return beam.Pipeline(options=PipelineOptions(beam_args))


def _shard_paths(pipeline: beam.Pipeline, shards: list[str]):
    return pipeline | "Shards" >> beam.Create(shards) | "Spread" >> beam.Reshuffle()


def count_ngrams(shards: list[str], n: int, out: str, beam_args: list[str]) -> Count:
    """Pipeline 1: documents, n-grams and distinct n-gram hashes of the shards (written to `out`)."""
    bits = max(0, (BUCKETS_PER_SHARD * max(1, len(shards)) - 1).bit_length())
    pipeline = _pipeline(beam_args)
    batches = _shard_paths(pipeline, shards) | "Hash" >> beam.ParDo(HashShards(n))
    distinct = (
        batches
        | "Bucket" >> beam.FlatMap(by_bucket, bits)
        | "Group" >> beam.GroupByKey()
        | "Distinct" >> beam.MapTuple(lambda _, parts: (0, 0, len(np.unique(np.concatenate(list(parts))))))
    )
    sizes = batches | "Sizes" >> beam.MapTuple(lambda documents, hashes: (documents, len(hashes), 0))
    _ = (
        (distinct, sizes)
        | "All" >> beam.Flatten()
        | "Total" >> beam.CombineGlobally(_sum_counts)
        | "Write" >> beam.Map(_write_json, out)
    )
    pipeline.run().wait_until_finish()
    with _open(out) as handle:
        return Count(*json.loads(handle.read().decode("utf-8")))


def _write_json(value, path: str) -> None:
    with _create(path) as handle:
        handle.write(json.dumps(list(value)).encode("utf-8"))


def _write_filter(array: np.ndarray, params: BloomParams, path: str) -> None:
    with _create(path) as handle:
        BloomFilter(params, array).save_to(handle)


def build_filter(shards: list[str], params: BloomParams, out: str, beam_args: list[str]) -> None:
    """Pipeline 2: the filter of the shards' n-grams, written to `out`."""
    pipeline = _pipeline(beam_args)
    _ = (
        _shard_paths(pipeline, shards)
        | "Hash" >> beam.ParDo(HashShards(params.n))
        | "Hashes" >> beam.MapTuple(lambda _, hashes: hashes)
        | "Filter" >> beam.CombineGlobally(BloomCombine(params))
        | "Write" >> beam.Map(_write_filter, params, out)
    )
    pipeline.run().wait_until_finish()


@dataclass(frozen=True)
class NgramsOptions:
    release: str  # the release directory
    n: int = 8
    fpr: float = 1e-8
    max_memory: int = 16 * 2**30  # bytes


def plan_memory(params: BloomParams) -> int:
    """What building needs at most on one worker: its own filter and the one it is merged into."""
    return 2 * params.nbytes


def run_ngrams(options: NgramsOptions, beam_args: list[str]) -> dict:
    """Count, plan, build and publish the filter (see the module's docstring); returns its manifest entry."""
    release, n = options.release, options.n
    manifest = read_manifest(release)
    shards = train_shards(release, manifest)
    scratch = FileSystems.join(release, f"ngrams-{n}.{uuid.uuid4().hex[:12]}")
    counted, built = f"{scratch}.count.tmp", f"{scratch}.bloom.tmp"
    try:
        count = count_ngrams(shards, n, counted, beam_args)
        params = plan(count.distinct, options.fpr, n)
        print(
            f"ngrams: {count.documents} documents, {count.ngrams} {n}-grams, {count.distinct} distinct -> "
            f"{params.bits} bits ({human_bytes(params.nbytes)}), {params.hashes} hashes, FPR bound "
            f"{params.fpr:g}; building holds up to {human_bytes(plan_memory(params))} per worker",
            flush=True,
        )
        if plan_memory(params) > options.max_memory:
            raise InputError(
                f"{release}: the {n}-gram filter needs {human_bytes(plan_memory(params))} per worker "
                f"({count.distinct} distinct {n}-grams at FPR {options.fpr:g}), over --max-memory "
                f"{human_bytes(options.max_memory)}; raise --max-memory or --fpr"
            )
        build_filter(shards, params, built, beam_args)
        sha256, size = _sha256_and_size(built)
        name = f"ngrams-{n}-{sha256[:16]}.bloom"
        if not FileSystems.exists(FileSystems.join(release, name)):  # else a rerun made the same bytes
            FileSystems.rename([built], [FileSystems.join(release, name)])
    finally:
        leftovers = [path for path in (counted, built) if FileSystems.exists(path)]
        if leftovers:
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
    replaced = [e["path"] for e in manifest.get("ngrams", []) if e["n"] == n and e["path"] != name]
    others = [e for e in manifest.get("ngrams", []) if e["n"] != n]
    manifest["ngrams"] = sorted([*others, entry], key=lambda e: e["n"])
    write_manifest(release, manifest)
    # A killed run may have removed some of them already.
    if stale := [p for p in (FileSystems.join(release, r) for r in replaced) if FileSystems.exists(p)]:
        FileSystems.delete(stale)
    return entry


def human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
