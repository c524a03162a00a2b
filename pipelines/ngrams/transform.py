"""The ngrams stage's pipelines: a release's train split -> `release/ngrams-N-<sha256 prefix>.bloom`, a Bloom
filter of its n-grams (or P partitions of one, `ngrams-N-partIIIIofPPPP-<sha256 prefix>.bloom`), added to the
release's manifest.

Two Beam pipelines over the train shards (GPT-2 section 4), each document its own text (no n-gram spans
two documents):

    1. CountNgrams: shards -> n-gram hashes per batch of documents -> distinct per batch -> bucketed by the
       hashes' top bits -> GroupByKey per bucket -> distinct per bucket -> summed: the exact number of
       distinct 64-bit n-gram hashes, and of those under each 12-bit prefix (what sizes any P <= 4096
       partitions exactly), and the largest batch.
    2. The driver chooses P (`partitions.choose_partitions`: --partitions, or the fewest that fit
       --max-memory per worker), prints the plan and refuses when even that exceeds --max-memory. Then
       P = 1, BuildFilter: shards -> hashes -> CombineGlobally (`BloomCombine`: every worker fills its own
       filter, filters merge by bitwise OR) -> the file. P > 1, `partitions.BuildPartitions`: hashes routed
       by their top bits -> GroupByKey on the partition -> one worker fills and writes each partition.

The filter is added to the committed release folder, whose manifest.json is the commit point: each file is
written under a temporary name, then given a name of its own content (never one the manifest lists for
other bytes), then the manifest gets its `ngrams` entry (n, bits, hashes, hash function, item count, FPR
bound, sha256; for P > 1 `"partitions": P` and each partition's file, bits, hashes, items, bytes and sha256
under `"parts"`) in one atomic write, and only then are the files of an entry it replaced removed. A reader
sees the old entry with the old files or the new entry with the new files; the same release and P give
byte-identical files. Every file goes through Beam's FileSystems (pipelines/files.py), so the release may be
on any filesystem Beam has (gs://, s3://, hdfs:// with the SDK's extras); shards are streamed, never seeked.

Counters: `ngrams:in` (documents), `ngrams:out` (distinct n-grams, counted by CountNgrams),
`ngrams:ngrams` (n-gram occurrences) and `ngrams:short_documents` (documents shorter than n words).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from corpus.bloom import BloomFilter, BloomFormatError, BloomParams, PartitionedBloom
from corpus.errors import InputError
from corpus.manifest import Manifest
from pipelines.files import (
    exists,
    join,
    match_files,
    open_read,
    open_write,
    read_json,
    read_manifest,
    sha256_and_size,
    write_manifest,
)
from pipelines.ngrams.hashing import (
    STAGE,
    HashShards,
    by_bucket,
    run_transform,
    shard_paths,
    shard_texts,
    write_json_value,
)
from pipelines.ngrams.partitions import PREFIX_BITS, build_parts, choose_partitions, partitioned_entry

BUCKETS_PER_SHARD = 16  # count buckets: ~20 MB of hashes each for a 256 MB shard


@dataclass(frozen=True)
class NgramsOptions:
    release: str  # the release directory
    n: int = 8
    fpr: float = 1e-8
    max_memory: int = 16 * 2**30  # bytes
    partitions: int | None = None  # None: the fewest that fit max_memory per worker


# --- reading a release ----------------------------------------------------------------------------------
def train_shards(release: str, manifest: Manifest) -> list[str]:
    return [join(release, shard.path) for shard in manifest.shards("train")]


def train_texts(release: str) -> Iterator[str]:
    """The texts of a release's train split, shard after shard (for exact, in-memory comparisons)."""
    for path in train_shards(release, read_manifest(release)):
        yield from shard_texts(path)


def filter_paths(release: str, n: int) -> list[str]:
    """The paths of the release's n-gram filter, from its manifest (one file, or P partitions in order); one
    clear error when there is none."""
    for entry in read_manifest(release).ngrams:
        if entry.n == n:
            return [join(release, f.path) for f in entry.files()]
    raise InputError(f"{release}: no {n}-gram filter in the manifest; run webtext ngrams --release first")


def read_filters(paths: list[str]) -> BloomFilter | PartitionedBloom:
    """A whole filter (one path) or the P partitions of one, in order, each file checked to be what it is
    listed as (BloomFormatError naming the file otherwise)."""
    filters = [read_filter(path) for path in paths]
    if len(filters) == 1:
        p = filters[0].params
        if p.partitions > 1:
            raise BloomFormatError(
                f"{paths[0]}: partition {p.partition} of a filter in {p.partitions} partitions, not a whole "
                "filter; query all of them (--release)"
            )
        return filters[0]
    try:
        return PartitionedBloom(filters)
    except ValueError as err:
        raise BloomFormatError(f"{paths[0]} ...: {err}") from None


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
class CountDistinct(beam.DoFn):
    """(bucket, its hash arrays) -> the bucket's `Totals`: its distinct hashes, in all and per 12-bit
    prefix; buckets share no hash."""

    def __init__(self) -> None:
        self.distinct = Metrics.counter(STAGE, "out")

    def process(self, element: tuple[int, Any]) -> Iterator[Totals]:
        _, parts = element
        distinct = np.unique(np.concatenate(list(parts)))
        self.distinct.inc(len(distinct))
        prefixes, counts = np.unique(distinct >> np.uint64(64 - PREFIX_BITS), return_counts=True)
        yield Totals(
            distinct=len(distinct), prefixes=dict(zip(prefixes.tolist(), counts.tolist(), strict=True))
        )


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
class Totals:
    """What pipeline 1 adds up: from each batch its documents, n-grams and size; from each bucket its
    distinct hashes, in all and per 12-bit prefix (sparse)."""

    documents: int = 0
    ngrams: int = 0
    largest_batch: int = 0
    distinct: int = 0
    prefixes: Mapping[int, int] = field(default_factory=dict)


class SumTotals(beam.CombineFn):
    """Totals -> the count as a JSON-ready dict (`Count`), the prefix counts dense."""

    def create_accumulator(self) -> list:
        return [0, 0, 0, 0, np.zeros(1 << PREFIX_BITS, dtype=np.int64)]

    def add_input(self, acc: list, totals: Totals) -> list:
        acc[0] += totals.documents
        acc[1] += totals.ngrams
        acc[2] = max(acc[2], totals.largest_batch)
        acc[3] += totals.distinct
        for prefix, count in totals.prefixes.items():
            acc[4][prefix] += count
        return acc

    def merge_accumulators(self, accumulators) -> list:
        accumulators = list(accumulators)
        merged = accumulators[0]
        for acc in accumulators[1:]:
            merged = [
                merged[0] + acc[0],
                merged[1] + acc[1],
                max(merged[2], acc[2]),
                merged[3] + acc[3],
                merged[4] + acc[4],
            ]
        return merged

    def extract_output(self, acc: list) -> dict:
        keys = ("documents", "ngrams", "largest_batch", "distinct")
        return {**dict(zip(keys, acc[:4], strict=True)), "prefixes": acc[4].tolist()}


@dataclass(frozen=True)
class Count:
    documents: int
    ngrams: int  # occurrences
    distinct: int  # distinct 64-bit n-gram hashes
    largest_batch: int = 0  # n-grams of the largest batch a worker hashed
    prefixes: tuple[int, ...] = ()  # distinct hashes per 12-bit prefix


def _write_filter(array: np.ndarray, params: BloomParams, path: str) -> None:
    with open_write(path) as handle:
        BloomFilter(params, array).save_to(handle)


class CountNgrams(beam.PTransform):
    """Pipeline 1: the shards' documents, n-grams, distinct n-gram hashes (in all and per 12-bit prefix) and
    largest batch, written to `out` as a JSON object."""

    def __init__(self, shards: list[str], n: int, out: str) -> None:
        super().__init__()
        self.shards, self.n, self.out = shards, n, out

    def expand(self, root):
        bits = max(0, (BUCKETS_PER_SHARD * max(1, len(self.shards)) - 1).bit_length())
        batches = shard_paths(root, self.shards) | "Hash" >> beam.ParDo(HashShards(self.n))
        distinct = (
            batches
            | "Bucket" >> beam.FlatMap(by_bucket, bits)
            | "Group" >> beam.GroupByKey()
            | "Distinct" >> beam.ParDo(CountDistinct())
        )
        sizes = batches | "Sizes" >> beam.MapTuple(_batch_totals)
        return (
            (distinct, sizes)
            | "All" >> beam.Flatten()
            | "Total" >> beam.CombineGlobally(SumTotals())
            | "Write" >> beam.Map(write_json_value, self.out)
        )


def _batch_totals(documents: int, hashes: np.ndarray) -> Totals:
    return Totals(documents=documents, ngrams=len(hashes), largest_batch=len(hashes))


class BuildFilter(beam.PTransform):
    """Pipeline 2: the filter of the shards' n-grams, written to `out`."""

    def __init__(self, shards: list[str], params: BloomParams, out: str) -> None:
        super().__init__()
        self.shards, self.params, self.out = shards, params, out

    def expand(self, root):
        return (
            shard_paths(root, self.shards)
            | "Hash" >> beam.ParDo(HashShards(self.params.n))
            | "Hashes" >> beam.MapTuple(lambda _, hashes: hashes)
            | "Filter" >> beam.CombineGlobally(BloomCombine(self.params))
            | "Write" >> beam.Map(_write_filter, self.params, self.out)
        )


# --- the driver -------------------------------------------------------------------------------------------
def count_ngrams(shards: list[str], n: int, out: str, beam_args: list[str]) -> tuple[Count, dict[str, int]]:
    """Pipeline 1's count (see CountNgrams) and its counters."""
    counted = run_transform("CountNgrams", CountNgrams(shards, n, out), beam_args)
    count = read_json(out, "n-gram count")
    return Count(**{**count, "prefixes": tuple(count["prefixes"])}), counted


def build_filter(shards: list[str], params: BloomParams, out: str, beam_args: list[str]) -> dict[str, int]:
    """Pipeline 2: the filter of the shards' n-grams written to `out` (see BuildFilter); its counters."""
    return run_transform("BuildFilter", BuildFilter(shards, params, out), beam_args)


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
    try:
        count, counters = count_ngrams(shards, n, f"{scratch}.count.tmp", beam_args)
        params = plan_filter(options, count)
        if len(params) == 1:
            built = f"{scratch}.bloom.tmp"
            build_filter(shards, params[0], built, beam_args)
            name, sha256, size = name_by_content(built, release, n)
            entry = {"path": name, **params[0].to_dict()}
            entry |= _counts(count) | {"bytes": size, "sha256": sha256}
        else:
            parts = build_parts(release, shards, params, scratch, beam_args)
            entry = partitioned_entry(params, parts) | _counts(count)
    finally:
        if leftovers := match_files(f"{scratch}.*"):
            FileSystems.delete(leftovers)
    publish(release, manifest, entry)
    return Added(entry, counters)


def _counts(count: Count) -> dict[str, Any]:
    return {"split": "train", "documents": count.documents, "ngrams": count.ngrams}


def plan_filter(options: NgramsOptions, count: Count) -> list[BloomParams]:
    """The filter's partitions (one: a whole filter) for the count and the FPR bound, printed; InputError
    over --max-memory."""
    n = options.n
    params, need = choose_partitions(
        list(count.prefixes),
        count.largest_batch,
        options.fpr,
        n,
        options.max_memory,
        options.partitions,
    )
    bits, hashes = sum(p.bits for p in params), max(p.hashes for p in params)
    shape = (
        ""
        if len(params) == 1
        else f" in {len(params)} partitions of up to {human_bytes(max(p.nbytes for p in params))}"
    )
    print(
        f"ngrams: {count.documents} documents, {count.ngrams} {n}-grams, {count.distinct} distinct -> "
        f"{bits} bits ({human_bytes(bits // 8)}){shape}, {hashes} hashes, FPR bound {options.fpr:g}; "
        f"building holds up to {human_bytes(need)} per worker",
        flush=True,
    )
    if need > options.max_memory:
        knobs = "--max-memory, --partitions or --fpr" if options.partitions else "--max-memory or --fpr"
        raise InputError(
            f"{options.release}: the {n}-gram filter needs {human_bytes(need)} per worker "
            f"({count.distinct} distinct {n}-grams at FPR {options.fpr:g}{shape}), over --max-memory "
            f"{human_bytes(options.max_memory)}; raise {knobs}"
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


def entry_files(entry: dict[str, Any]) -> list[str]:
    """The file names a manifest `ngrams` entry lists: its partitions', or its one file."""
    return [part["path"] for part in entry["parts"]] if entry.get("parts") else [entry["path"]]


def publish(release: str, manifest: Manifest, entry: dict[str, Any]) -> None:
    """The manifest's `ngrams` entry for entry's n replaced in one atomic write (the commit point), then
    the files it named before, other than the new entry's, removed."""
    data, n, names = manifest.data, entry["n"], set(entry_files(entry))
    replaced = [
        name for e in data.get("ngrams", []) if e["n"] == n for name in entry_files(e) if name not in names
    ]
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
