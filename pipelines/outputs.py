"""How every stage writes: deterministic Parquet shards into a new generation, published only on success.

Determinism: the number of shards is fixed before the run (from the input size), a row's shard is a
stable hash of its key, and rows are sorted inside each shard, so the bytes do not depend on how many
workers ran or in which order bundles finished. Rows travel between steps in batches keyed by shard,
so Beam's per-element cost is paid per batch, not per row. Atomicity (corpus/workdir.py has the layout): a
run writes into a new generation folder `OUT/<folder>/gen-N/`; `publish` then writes the stage's commit file
(the commit point, one atomic write) and only after it removes the previous generation; `discard` removes
the run's generation after a failure. Readers find outputs through `stage_output`, which follows the commit
file, so no stage ever reads a partial output or a mix of two runs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpus.errors import InputError
from corpus.workdir import (
    COMMIT,
    FOLDERS,
    Output,
    commit_bytes,
    find_output,
    next_generation,
    parse_commit,
    require_output,
)
from pipelines.files import match_files, open_read, open_write, read_bytes, write_atomic

DEFAULT_INPUT_BYTES_PER_SHARD = 256 * 2**20


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
    with open_write(path) as handle:
        pq.write_table(table, handle, compression="zstd", row_group_size=100_000)


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
        with open_read(path) as handle:
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

    def _write(self, shard: tuple[int, Iterable[list[dict]]]) -> int:
        index, batches = shard
        rows = sorted((row for batch in batches for row in batch), key=self.key)
        write_table(shard_name(self.prefix, index, self.num_shards), rows, self.schema)
        return len(rows)


def parquet_rows(pattern: str) -> int:
    """Rows in the Parquet files matching `pattern`, from their footers (no data read)."""
    total = 0
    for metadata in FileSystems.match([pattern])[0].metadata_list:
        with open_read(metadata.path) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def shards_for_rows(rows: int, rows_per_shard: int) -> int:
    return max(1, -(-rows // rows_per_shard))


def shards_for_input(paths: list[str], input_bytes_per_shard: int) -> int:
    """Output shard count from the input size: fixed before the run, so it cannot depend on workers."""
    sizes = [m.size_in_bytes for result in FileSystems.match(paths) for m in result.metadata_list]
    return max(1, -(-sum(sizes) // input_bytes_per_shard))


class StageOutput:
    """One run of one stage: the generation folder it writes, and its publication (corpus/workdir.py).

    The run writes every file into `OUT/<folder>/gen-N/` (N = the committed generation + 1; whatever a killed
    run left there is removed first): the parts, `stats.json`, and the ledger as `ledger/<stage>-*.parquet`.
    Nothing reads a generation before `publish` commits it.
    """

    def __init__(self, out_dir: str, stage: str) -> None:
        self.stage = stage
        self.folder = FileSystems.join(out_dir.rstrip("/") or "/", FOLDERS[stage])
        commit_path = FileSystems.join(self.folder, COMMIT)
        data = read_bytes(commit_path)
        self.generation = next_generation(None if data is None else parse_commit(data, commit_path))
        self.root = FileSystems.join(self.folder, self.generation)
        self.discard()  # what a killed run of this generation left

    def path(self, *parts: str) -> str:
        """Where this run writes `parts` (inside its generation folder)."""
        return FileSystems.join(self.root, *parts)

    def relative(self, *parts: str) -> str:
        """`path(*parts)` relative to the work directory (how a fetch index names its WARC files)."""
        return "/".join([FOLDERS[self.stage], self.generation, *parts])

    def publish(self, keep: tuple[str, ...] = ()) -> None:
        """Commit this run's generation, then remove everything else in the stage's folder: the previous
        generation and any killed run's leftovers. Files whose names match a `keep` pattern stay (a resumed
        fetch keeps the WARC files its index still points to). A kill at any point leaves the previous or the
        new output committed and whole; what is left over, the next publish removes."""
        stale = [
            path
            for path in match_files(FileSystems.join(self.folder, "**"))
            if not path.startswith(self.root + "/")
            and path != FileSystems.join(self.folder, COMMIT)
            and not any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) for pattern in keep)
        ]
        write_atomic(FileSystems.join(self.folder, COMMIT), commit_bytes(self.stage, self.generation))
        if stale:
            FileSystems.delete(stale)
        remove_empty_folders(self.folder)

    def discard(self) -> None:
        """Remove this run's uncommitted generation (after a failure); the committed output stays. Its files
        are listed rather than its folder deleted: on object stores a folder is only a name prefix."""
        if files := match_files(FileSystems.join(self.root, "**")):
            FileSystems.delete(files)
        remove_empty_folders(self.folder)


def remove_empty_folders(folder: str) -> None:
    """Remove the empty folders under `folder`, and `folder` itself when it is left empty (local disk only:
    object stores have no folders)."""
    if FileSystems.get_scheme(folder) is not None or not os.path.isdir(folder):
        return
    for current, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):  # not empty
            os.rmdir(current)


def find_stage_output(path: str, *stages: str) -> Output | None:
    """The committed output of the first of `stages` that `path` holds, or None (corpus.workdir)."""
    _check_filesystem(path)
    return find_output(path, stages, read_bytes)


def _check_filesystem(path: str) -> None:
    try:
        FileSystems.get_filesystem(path)
    except ValueError as err:  # a scheme whose filesystem is not installed (pip install apache-beam[gcp])
        raise InputError(f"{path}: {err}") from None


def stage_output(path: str, *stages: str) -> Output:
    """As find_stage_output, but one clear InputError naming `path` when there is none."""
    _check_filesystem(path)
    return require_output(path, stages, read_bytes)


def run_pipeline(
    output: StageOutput, transform: beam.PTransform, beam_args: list[str], keep: tuple[str, ...] = ()
):
    """Run one stage's transform on the runner the Beam options name, then publish its outputs; on any
    failure the run's generation is removed and the previous output stays. Returns the PipelineResult."""
    from pipelines.runner import new_pipeline

    try:
        pipeline = new_pipeline(beam_args)
        _ = pipeline | output.stage.capitalize() >> transform
        result = pipeline.run()
        result.wait_until_finish()
    except BaseException:
        output.discard()
        raise
    output.publish(keep)
    return result
