"""How every stage writes: deterministic Parquet shards into a staging area, published only on success.

Determinism: the number of shards is fixed before the run (from the input size), a row's shard is a
stable hash of its key, and rows are sorted inside each shard, so the bytes do not depend on how many
workers ran or in which order bundles finished. Rows travel between steps in batches keyed by shard,
so Beam's per-element cost is paid per batch, not per row. Atomicity: a stage writes under
`OUT/.staging/<stage>-<run>/`; `publish` replaces the stage's previous outputs only after the pipeline
succeeded, and `discard` removes the staging area after a failure, so no later stage ever reads a
partial output.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

DEFAULT_INPUT_BYTES_PER_SHARD = 256 * 2**20
STAGING = ".staging"


def stable_shard(key: str, num_shards: int) -> int:
    """Shard of a key, the same in every process and on every machine (unlike `hash`)."""
    if num_shards == 1:
        return 0
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a step builds a large heap of acyclic rows (dicts, lists,
    tuples of str and int). Reference counting still frees them; without the pause, full collections
    rescan the growing heap again and again and the step runs ~2x slower."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def shard_name(prefix: str, index: int, num_shards: int) -> str:
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.parquet"


def write_table(path: str, rows: list[dict[str, Any]] | pa.Table, schema: pa.Schema | None = None) -> None:
    """Write rows (dicts with `schema`, or a ready table) as one zstd-compressed Parquet file."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    with FileSystems.create(
        path, mime_type="application/octet-stream", compression_type=CompressionTypes.UNCOMPRESSED
    ) as handle:
        pq.write_table(table, handle, compression="zstd", row_group_size=100_000)


def match_files(pattern: str) -> list[str]:
    """Files matching a glob (any Beam filesystem), sorted; empty when none match."""
    results = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in results if not m.path.endswith("/"))


def read_parquet(pattern: str, columns: list[str] | None = None) -> beam.PTransform:
    """The rows of the Parquet files matching `pattern` as dicts: how every stage reads its input."""
    return beam.io.ReadFromParquet(pattern, columns=columns)


def read_table(pattern: str, columns: list[str] | None = None) -> pa.Table:
    """All Parquet files matching `pattern`, concatenated in path order (for summaries and tests).

    Read with ParquetFile, synchronously: pq.read_table on a Python file object goes through the dataset
    scanner, whose background thread can release the file after interpreter shutdown began and abort it.
    """
    paths = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    tables = []
    for path in paths:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            tables.append(pq.ParquetFile(handle).read(columns=columns))
    return pa.concat_tables(tables) if tables else pa.table({})


class ShardBatcher:
    """Buffers items per output shard inside a DoFn and hands them out as (shard, [items]) batches."""

    def __init__(self, num_shards: int, max_items: int = 20_000) -> None:
        self.num_shards, self.max_items = num_shards, max_items
        self.batches: dict[int, list] = {}
        self.size = 0

    def add(self, key: str, item: Any) -> None:
        self.batches.setdefault(stable_shard(key, self.num_shards), []).append(item)
        self.size += 1

    def full(self) -> bool:
        return self.size >= self.max_items

    def drain(self) -> list[tuple[int, list]]:
        batches, self.batches, self.size = sorted(self.batches.items()), {}, 0
        return batches


class GroupShards(beam.PTransform):
    """(shard, [items]) batches -> (shard, iterable of batches), one element for every shard in
    [0, num_shards), also for shards that received nothing, so every output file gets written."""

    def __init__(self, num_shards: int) -> None:
        super().__init__()
        self.num_shards = num_shards

    def expand(self, batches):
        every_shard = batches.pipeline | "EveryShard" >> beam.Create(
            [(i, []) for i in range(self.num_shards)]
        )
        return (batches, every_shard) | "Flatten" >> beam.Flatten() | "Group" >> beam.GroupByKey()


class WriteSortedShards(beam.PTransform):
    """Dict rows -> `{prefix}-NNNNN-of-MMMMM.parquet`, each shard sorted by `key`; outputs row counts.

    One shuffle element per row: for stages whose rows are few or costly to make (fetch, extract).
    """

    def __init__(self, prefix: str, num_shards: int, schema: pa.Schema, key: Callable[[dict], str]) -> None:
        super().__init__()
        self.prefix, self.num_shards, self.schema, self.key = prefix, num_shards, schema, key

    def expand(self, rows):
        n, key = self.num_shards, self.key
        return (
            rows
            | "Shard" >> beam.Map(lambda row: (stable_shard(key(row), n), [row]))
            | "Shards" >> GroupShards(n)
            | "Write" >> beam.Map(self._write)
        )

    def _write(self, shard: tuple[int, list[list[dict]]]) -> int:
        index, batches = shard
        rows = sorted((row for batch in batches for row in batch), key=self.key)
        write_table(shard_name(self.prefix, index, self.num_shards), rows, self.schema)
        return len(rows)


def parquet_rows(pattern: str) -> int:
    """Rows in the Parquet files matching `pattern`, from their footers (no data read)."""
    total = 0
    for metadata in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(metadata.path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def shards_for_rows(rows: int, rows_per_shard: int) -> int:
    return max(1, -(-rows // rows_per_shard))


def shards_for_input(paths: list[str], input_bytes_per_shard: int) -> int:
    """Output shard count from the input size: fixed before the run, so it cannot depend on workers."""
    sizes = [m.size_in_bytes for result in FileSystems.match(paths) for m in result.metadata_list]
    return max(1, -(-sum(sizes) // input_bytes_per_shard))


class StageOutput:
    """The staging area of one run of one stage, and where its files go when it succeeds.

    A stage named S writes its directory (S/, or `directory` when DESIGN.md names it otherwise: the
    extract stage writes docs/), with `stats.json` in it, and `ledger/S-*.parquet`.
    """

    def __init__(self, out_dir: str, stage: str, directory: str | None = None) -> None:
        self.out_dir = out_dir.rstrip("/")
        self.stage = stage
        self.directory = directory or stage
        self.staging = FileSystems.join(self.out_dir, STAGING, f"{stage}-{uuid.uuid4().hex[:12]}")

    def staged(self, *parts: str) -> str:
        return FileSystems.join(self.staging, *parts)

    def final(self, *parts: str) -> str:
        return FileSystems.join(self.out_dir, *parts)

    def _previous_outputs(self, keep: tuple[str, ...]) -> list[str]:
        patterns = [self.final(self.directory, "*"), self.final("ledger", f"{self.stage}-*")]
        paths = [m.path for result in FileSystems.match(patterns) for m in result.metadata_list]
        return [path for path in paths if not any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], k) for k in keep)]

    def publish(self, keep: tuple[str, ...] = ()) -> None:
        """Replace the stage's previous outputs with the staged ones; previous files whose names match a
        `keep` pattern stay (a resumed fetch keeps the WARC files its index still points to)."""
        staged = sorted(m.path for m in FileSystems.match([self.staged("**")])[0].metadata_list)
        previous = self._previous_outputs(keep)
        if previous:
            FileSystems.delete(previous)
        targets = [self.final(path[len(self.staging) + 1 :]) for path in staged]
        for directory in sorted({t.rsplit("/", 1)[0] for t in targets}):
            if not FileSystems.exists(directory):
                FileSystems.mkdirs(directory)
        FileSystems.rename(staged, targets)
        self.discard()

    def discard(self) -> None:
        if FileSystems.exists(self.staging):
            FileSystems.delete([self.staging])
        staging_root = self.final(STAGING)
        if FileSystems.exists(staging_root) and not FileSystems.match([staging_root + "/*"])[0].metadata_list:
            FileSystems.delete([staging_root])


def run_stage(
    output: StageOutput, transform: beam.PTransform, beam_args: list[str], keep: tuple[str, ...] = ()
):
    """Run one stage's transform on the runner the Beam options name, then publish its outputs; on any
    failure the staging area is removed and the previous outputs stay. Returns the PipelineResult."""
    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
        _ = pipeline | output.stage.capitalize() >> transform
        result = pipeline.run()
        result.wait_until_finish()
        output.publish(keep)
    except BaseException:
        output.discard()
        raise
    return result
