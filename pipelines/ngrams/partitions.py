"""How many partitions the ngrams stage builds its filter in, and the Beam transform that builds P > 1.

Per-worker memory. Building holds, besides the filter, one batch of n-gram hashes (`DOCS_PER_BATCH`
documents) and its distinct copy: 16 bytes per n-gram of the largest batch, b. With m the filter's bits:

- P = 1 (`BuildFilter`, a CombineGlobally): a worker fills its own whole filter and merges another
  into it, 2 m/8 + 16 b bytes.
- P > 1 (`BuildPartitions`): one worker fills one partition, max_i m_i/8 + 16 b bytes, where partition i
  is sized by `corpus.bloom.plan` for its own exact number of distinct hashes (~1/P of them: the top bits
  of a 64-bit hash are uniform). The grouped hash arrays a partition is filled from are streamed to it by
  the runners that run at scale (Dataflow, Flink, Spark iterate a GroupByKey's values lazily); the
  DirectRunner holds every PCollection in its own memory anyway and is no test of per-worker memory.

`--partitions` defaults to the smallest power of two whose per-worker memory fits `--max-memory`; P = 1 is
the whole filter of before, byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from corpus.bloom import MAX_PARTITIONS, BloomFilter, BloomParams, partition_bits, plan_partitions
from pipelines.files import exists, join, open_write, read_json
from pipelines.ngrams.hashing import HashShards, by_bucket, run_transform, shard_paths, write_json_value

BATCH_BYTES_PER_NGRAM = 16  # a batch's hashes (uint64) and their distinct copy
PREFIX_BITS = 12  # the count pipeline counts distinct hashes per 12-bit prefix: any P up to 4096 is exact
assert 1 << PREFIX_BITS == MAX_PARTITIONS


def worker_memory(params: list[BloomParams], largest_batch: int) -> int:
    """What building holds at most on one worker (see the module's docstring)."""
    batch = BATCH_BYTES_PER_NGRAM * largest_batch
    if len(params) == 1:
        return 2 * params[0].nbytes + batch
    return max(p.nbytes for p in params) + batch


def per_partition(prefixes: list[int], partitions: int) -> list[int]:
    """Distinct hashes per partition, from the counts per 12-bit prefix (partition i of 2^b holds the
    prefixes whose top b bits are i)."""
    partition_bits(partitions)
    return np.asarray(prefixes, dtype=np.int64).reshape(partitions, -1).sum(axis=1).tolist()


def choose_partitions(
    prefixes: list[int], largest_batch: int, fpr: float, n: int, max_memory: int, partitions: int | None
) -> tuple[list[BloomParams], int]:
    """(the partitions' parameters, per-worker memory): `partitions` when given, else the fewest (a power of
    two) that fit `max_memory`, else the most there may be. The caller refuses when it does not fit."""
    tried = [partitions] if partitions else [1 << b for b in range(PREFIX_BITS + 1)]
    for count in tried:
        params = plan_partitions(per_partition(prefixes, count), fpr, n)
        need = worker_memory(params, largest_batch)
        if need <= max_memory:
            break
    return params, need


def part_path(prefix: str, index: int) -> str:
    """Where partition `index` is written before it gets its name in the release."""
    return f"{prefix}.part{index:04d}.bloom.tmp"


def part_name(n: int, index: int, partitions: int, sha256: str) -> str:
    """A partition's name in the release: its n, which partition of how many, and its content."""
    return f"ngrams-{n}-part{index:04d}of{partitions:04d}-{sha256[:16]}.bloom"


def write_hashed(bloom: BloomFilter, path: str) -> tuple[str, int]:
    """Write a filter file, hashing its bytes on the way: (sha256, size), so that the driver need not read
    the partitions back to name them."""
    digest = hashlib.sha256()
    with open_write(path) as handle:
        for piece in (bloom.header(), memoryview(bloom.array)):
            digest.update(piece)
            handle.write(piece)
    return digest.hexdigest(), len(bloom.header()) + bloom.params.nbytes


class FillPartition(beam.DoFn):
    """(partition, its hash arrays) -> the partition's filter, written to its temporary path, and
    (partition, sha256, bytes). The worker holds this one partition's filter and one array at a time."""

    def __init__(self, params: list[BloomParams], prefix: str) -> None:
        self.params, self.prefix = params, prefix

    def process(self, element: tuple[int, Any]) -> Iterator[tuple[int, str, int]]:
        index, arrays = element
        bloom = BloomFilter(self.params[index])
        for hashes in arrays:
            bloom.add(hashes)
        sha256, size = write_hashed(bloom, part_path(self.prefix, index))
        yield index, sha256, size


class BuildPartitions(beam.PTransform):
    """Pipeline 2 for P > 1: shards -> hashes -> distinct per batch, routed by their top bits -> GroupByKey
    on the partition (every partition gets an empty array too, so that one without n-grams still gets its
    file) -> one worker fills and writes each partition -> [(partition, sha256, bytes)] as JSON in `out`."""

    def __init__(self, shards: list[str], params: list[BloomParams], prefix: str, out: str) -> None:
        super().__init__()
        self.shards, self.params, self.prefix, self.out = shards, params, prefix, out

    def expand(self, root):

        bits = partition_bits(len(self.params))
        routed = (
            shard_paths(root, self.shards)
            | "Hash" >> beam.ParDo(HashShards(self.params[0].n))
            | "Route" >> beam.FlatMap(by_bucket, bits)  # (partition, the batch's distinct hashes in it)
        )
        empty = [(i, np.empty(0, dtype=np.uint64)) for i in range(len(self.params))]
        return (
            (routed, root | "Every" >> beam.Create(empty))
            | "All" >> beam.Flatten()
            | "Group" >> beam.GroupByKey()
            | "Fill" >> beam.ParDo(FillPartition(self.params, self.prefix))
            | "Files" >> beam.combiners.ToList()
            | "Write" >> beam.Map(_write_sorted, self.out)
        )


def _write_sorted(rows: list[tuple[int, str, int]], out: str) -> None:

    write_json_value(sorted(rows), out)


# --- the driver's side -----------------------------------------------------------------------------------
def build_parts(
    release: str, shards: list[str], params: list[BloomParams], scratch: str, beam_args: list[str]
) -> list[dict[str, Any]]:
    """Pipeline 2 for P > 1 (`BuildPartitions`), then each partition named by its content in the release:
    the `parts` of the manifest entry, in partition order."""

    listed = f"{scratch}.parts.tmp"
    run_transform("BuildPartitions", BuildPartitions(shards, params, scratch, listed), beam_args)
    parts = []
    for index, sha256, size in read_json(listed, "list of partitions"):
        p = params[index]
        name = part_name(p.n, index, len(params), sha256)
        if not exists(join(release, name)):  # else a rerun made the same bytes
            FileSystems.rename([part_path(scratch, index)], [join(release, name)])
        parts.append(
            {
                "path": name,
                "bits": p.bits,
                "hashes": p.hashes,
                "items": p.items,
                "bytes": size,
                "sha256": sha256,
            }
        )
    if len(parts) != len(params):
        raise AssertionError(f"{len(parts)} partitions built, {len(params)} planned")
    return parts


def partitioned_entry(params: list[BloomParams], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest entry of a filter in P > 1 partitions, less the counts: n, hash, FPR bound, total bits,
    items and bytes, P, and the partitions' files."""
    first = params[0]
    return {
        "n": first.n,
        "hash": first.hash,
        "fpr": first.fpr,
        "bits": sum(p.bits for p in params),
        "items": sum(p.items for p in params),
        "partitions": len(params),
        "parts": parts,
        "bytes": sum(part["bytes"] for part in parts),
    }
