"""How every stage writes: deterministic Parquet shards into a staging area, published only on success.

Determinism: the number of shards follows from the row count (`rows_per_shard`), a row's shard from a
stable hash of its sort key, and rows are sorted inside each shard, so the bytes do not depend on how
many workers ran or in which order bundles finished. Atomicity: a stage writes under
`OUT/.staging/<stage>-<run>/`; `publish` replaces the stage's previous outputs only after the pipeline
succeeded, and `discard` removes the staging area after a failure, so no later stage ever reads a
partial output.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

DEFAULT_ROWS_PER_SHARD = 1_000_000
STAGING = ".staging"


def stable_shard(key: str, num_shards: int) -> int:
    """Shard of a key, the same in every process and on every machine (unlike `hash`)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


def shard_name(prefix: str, index: int, num_shards: int) -> str:
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.parquet"


def write_table(path: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    with FileSystems.create(
        path, mime_type="application/octet-stream", compression_type=CompressionTypes.UNCOMPRESSED
    ) as handle:
        pq.write_table(table, handle, compression="zstd", row_group_size=100_000)


def read_table(pattern: str) -> pa.Table:
    """All Parquet files matching `pattern`, concatenated in path order (for summaries and tests)."""
    paths = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    tables = []
    for path in paths:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables) if tables else pa.table({})


class WriteParquetShards(beam.PTransform):
    """Write dict rows as `{prefix}-NNNNN-of-MMMMM.parquet`, sorted by `sort_key` within each shard.

    At least one (possibly empty) shard is written, so readers always find the schema.
    """

    def __init__(
        self,
        prefix: str,
        schema: pa.Schema,
        sort_key: Callable[[dict], Any],
        rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    ) -> None:
        super().__init__()
        self.prefix, self.schema, self.sort_key, self.rows_per_shard = (
            prefix,
            schema,
            sort_key,
            rows_per_shard,
        )

    def expand(self, rows):
        per_shard = self.rows_per_shard
        num_shards = (
            rows
            | "Count" >> beam.combiners.Count.Globally()
            | "NumShards" >> beam.Map(lambda n: max(1, -(-n // per_shard)))
        )
        shards = beam.pvalue.AsSingleton(num_shards)
        keyed = rows | "Key" >> beam.Map(
            lambda row, n, key=self.sort_key: (stable_shard(str(key(row)), n), row), shards
        )
        every_shard = num_shards | "EveryShard" >> beam.FlatMap(lambda n: [(i, None) for i in range(n)])
        return (
            (keyed, every_shard)
            | "Flatten" >> beam.Flatten()
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.Map(self._write, shards)
        )

    def _write(self, shard: tuple[int, list], num_shards: int) -> tuple[str, int]:
        index, rows = shard
        ordered = sorted((row for row in rows if row is not None), key=self.sort_key)
        path = shard_name(self.prefix, index, num_shards)
        write_table(path, ordered, self.schema)
        return path, len(ordered)


class StageOutput:
    """The staging area of one run of one stage, and where its files go when it succeeds.

    A stage named S writes `S/...` (its own directory, with `stats.json`) and `ledger/S-*.parquet`.
    """

    def __init__(self, out_dir: str, stage: str) -> None:
        self.out_dir = out_dir.rstrip("/")
        self.stage = stage
        self.staging = FileSystems.join(self.out_dir, STAGING, f"{stage}-{uuid.uuid4().hex[:12]}")

    def staged(self, *parts: str) -> str:
        return FileSystems.join(self.staging, *parts)

    def final(self, *parts: str) -> str:
        return FileSystems.join(self.out_dir, *parts)

    def _previous_outputs(self) -> list[str]:
        patterns = [self.final(self.stage, "*"), self.final("ledger", f"{self.stage}-*")]
        return [m.path for result in FileSystems.match(patterns) for m in result.metadata_list]

    def publish(self) -> None:
        """Replace the stage's previous outputs with the staged ones."""
        staged = sorted(m.path for m in FileSystems.match([self.staged("**")])[0].metadata_list)
        previous = self._previous_outputs()
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
