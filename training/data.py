"""Streaming data loader: a release's tar shards -> packed (x, y) token batches that resume exactly.

Packing. Each document's tokens are followed by the EOT token and the stream is cut into chunks of
seq_len + 1 tokens, `micro_batch` chunks per batch; a chunk gives x = chunk[:-1], y = chunk[1:] (int64). The
part of a document that does not fill a batch carries over to the next batch (and across epochs).

Readers. Rank r of W with `num_workers` DataLoader workers per rank makes N = W * max(1, num_workers) readers;
reader id = rank * num_workers + worker id. Each epoch the shard order is shuffled with (seed, epoch), the
same on every reader, then split disjointly:
- shard level when the split has at least N shards: reader i opens shards i, i + N, i + 2N, ...;
- sample level otherwise: every reader opens every shard and keeps the documents whose index in the epoch
  (from the manifest's per-shard `docs`) is i modulo N, so no reader is left without data.
A reader's stream is infinite: its epoch ends when its part is exhausted, then the next epoch begins, so
ranks with fewer tokens never make training hang. `steps_per_epoch` is the agreed step count per epoch.

Shuffling. Documents are shuffled in blocks of `shuffle_buffer` consecutive documents of the reader's part;
each block is permuted with (seed, epoch, reader, block). shuffle_buffer=1 turns shuffling off (shards in
manifest order, documents in file order), for validation.

Resume. A reader reads a range of blocks of one part: the part of reader `part` of `parts` in `epoch`, from
block `block` to block `end` (a normal reader: its own whole part). Its state is a handful of integers: that
range, where the current block starts (shard, sample), the document inside the block and how many of its
tokens (EOT included) are already in batches; then the ranges still `pending` (only after an elastic resume)
and the epoch it starts next as itself (in code a ReaderState holding BlockRanges, training/loader_state.py).
The packing remainder is always the tail of that document, so it is rebuilt, not stored, and the shuffle
buffer is stored as a reference (its start), not as tokens. Restoring re-reads the shard (whole, to check its
sha256), decodes nothing of its first `sample` samples and re-reads one block (at most `shuffle_buffer`
documents); no batch is replayed. torchdata's StatefulDataLoader saves one such state per worker (and per
rank through the trainer's checkpoint); the state is ints and lists of ints, loadable with
`torch.load(weights_only=True)`. With the same readers (world size and num_workers) a resume is exact: the
same batches as an uninterrupted run.

Elastic resume (another world size or num_workers): training/elastic.py re-deals what every reader had left
of its epoch to the new readers; a block is read by whoever holds it, with the same permutation key.

Tracing. With WEBTEXT_TRACE_DOCUMENTS=DIR every batch a ReleaseLoader hands over is recorded as lines
"batch<TAB>epoch<TAB>key<TAB>start<TAB>end" (token offsets in the document followed by its EOT) appended to
DIR/{split}-{rank}-of-{world_size}.tsv. `batch` counts the batches this loader handed over before that one
(0, 1, ...; a trainer process makes one train loader, so after resuming from step s batch b is consumed by
step s + b // grad_accum + 1): a run killed between checkpoints handed over batches that the resumed run hands
over again, and the index tells which lines to keep. The elastic and k-times-resume tests prove exactly-once
coverage with it.

Reading. A shard is read whole, its size and sha256 checked against the manifest, and its token ids taken
through its byte-offset index (corpus/shard_index.py, checked the same way and against the tar's headers),
or, in a release without indexes, by parsing the tar (training/release.py); the next shard is read in a
background thread meanwhile. A DataLoader worker sends its batches a BatchGroup at a time
(training/packing.py); the order of batches and the exactness of resume do not change.

Damage. Each shard is read whole into memory and its size and sha256 are checked against the manifest before
any document of it is used (training/release.py), then every member header is checked before its data is
read (corpus/shards.member_problem). A shard that is missing, altered, truncated, holds a member that must
not be read (link, device, sparse, oversized, '..' name), decodes to a wrong document count or holds a token
id outside the vocabulary fails with one InputError line naming the shard (and the member). With
skip_corrupt=True it is skipped whole instead, logged as a warning and counted in the reader's state
(`skipped_shards`). Memory: about two shards per reader (the one in use and the next).
"""

from __future__ import annotations

import copy
import logging
import os
from collections import defaultdict, deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from itertools import count, islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torchdata.stateful_dataloader import StatefulDataLoader

from corpus.errors import InputError
from training.config import DEFAULT_SHUFFLE_BUFFER, LoaderConfig
from training.loader_state import RANGE_KEYS, STATE_KEYS, BlockRange, ReaderState
from training.packing import GROUP_BATCHES, BatchGroup, Packer, Span
from training.release import Release, ShardError, read_ahead

# The loader's config and state types are defined torch-free elsewhere and offered here too.
__all__ = ["DEFAULT_SHUFFLE_BUFFER", "RANGE_KEYS", "STATE_KEYS", "TRACE_ENV", "BlockRange", "LoaderConfig",
           "PackedDataset", "Packer", "ReaderState", "ReaderStream", "ReleaseLoader", "build_loader",
           "reader_documents", "reader_states"]  # fmt: skip

log = logging.getLogger(__name__)
TRACE_ENV = "WEBTEXT_TRACE_DOCUMENTS"


class ReaderStream:
    """The documents one reader (of `num_readers`) sees, epoch by epoch, in blocks of `shuffle_buffer`."""

    def __init__(
        self,
        release: Release,
        split: str,
        seed: int,
        reader: int,
        num_readers: int,
        shuffle_buffer: int,
        skip_corrupt: bool = False,
    ) -> None:
        self.release, self.split, self.seed = release, split, seed
        self.reader, self.num_readers = reader, num_readers
        self.shuffle_buffer, self.skip_corrupt = shuffle_buffer, skip_corrupt
        self.all_shards = release.shards(split)
        self.skipped_shards = 0

    @property
    def shuffle(self) -> bool:
        return self.shuffle_buffer > 1

    def part(self, epoch: int) -> tuple[list[dict], list[int], int]:
        """(shards this reader opens, epoch index of each one's first sample, stride) for `epoch`.

        A sample with epoch index g belongs to this reader when g % stride == reader % stride.
        """
        shards = self.all_shards
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(shards))
            shards = [shards[i] for i in order]
        if len(shards) >= self.num_readers:
            mine = shards[self.reader :: self.num_readers]
            return mine, [0] * len(mine), 1
        bases = np.cumsum([0] + [e["docs"] for e in shards])[:-1].tolist()
        return shards, bases, self.num_readers

    def num_blocks(self, epoch: int) -> int:
        """Blocks of this reader's part of `epoch`, from the manifest's counts."""
        shards, bases, stride = self.part(epoch)
        mine = self.reader % stride
        docs = sum(_count(b, b + e["docs"], mine, stride) for e, b in zip(shards, bases, strict=True))
        return -(-docs // self.shuffle_buffer)

    def block_start(self, epoch: int, block: int) -> tuple[int, int]:
        """(shard position, sample index) of the first document of block `block` of `epoch`, from the
        manifest's counts; (number of shards, 0) past the last block."""
        shards, bases, stride = self.part(epoch)
        mine, k = self.reader % stride, block * self.shuffle_buffer  # k: the block's first document
        for position, (entry, base) in enumerate(zip(shards, bases, strict=True)):
            docs = _count(base, base + entry["docs"], mine, stride)
            if k < docs:
                return position, (mine - base) % stride + k * stride
            k -= docs
        return len(shards), 0

    def documents(
        self, epoch: int, shard: int = 0, sample: int = 0, stop: tuple[int, int] | None = None
    ) -> Iterator[tuple[tuple[int, int], str, np.ndarray]]:
        """((shard position, sample index), key, tokens) of this reader's documents of `epoch`, in file order,
        from sample `sample` of its `shard`-th shard on, up to (not including) position `stop`."""
        shards, bases, stride = self.part(epoch)
        mine, stop = self.reader % stride, stop or (len(shards), 0)
        end = min(len(shards), stop[0] + (stop[1] > 0))  # the shards holding a position before `stop`
        loads = read_ahead(shards[shard:end], self.release.vocab_size, sample)
        try:
            for position, load in zip(range(shard, end), loads, strict=True):
                try:
                    for index, key, tokens in load.result():
                        if (position, index) >= stop:
                            return
                        if (bases[position] + index) % stride == mine:
                            yield (position, index), key, tokens
                except ShardError as e:
                    if not self.skip_corrupt:
                        raise
                    self.skipped_shards += 1
                    log.warning("skipping %s", e)
        finally:
            loads.close()

    def blocks(
        self, epoch: int, shard: int = 0, sample: int = 0, block: int = 0, stop: tuple[int, int] | None = None
    ) -> Iterator[tuple[int, tuple[int, int], list[tuple[str, np.ndarray]]]]:
        """(block index, its start (shard position, sample index), its documents in shuffled order) of
        `epoch`, starting with block number `block` at (`shard`, `sample`), up to position `stop`."""
        docs = self.documents(epoch, shard, sample, stop)
        for index in count(block):
            chunk = list(islice(docs, self.shuffle_buffer))
            if not chunk:
                return
            order = range(len(chunk))
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch, self.reader, index]).permutation(len(chunk))
            yield index, chunk[0][0], [chunk[i][1:] for i in order]


def _count(low: int, high: int, residue: int, modulus: int) -> int:
    """How many g in [low, high) have g % modulus == residue (low >= 0, residue < modulus)."""
    return (high - residue + modulus - 1) // modulus - (low - residue + modulus - 1) // modulus


def reader_documents(
    release: Release,
    split: str,
    seed: int,
    epoch: int,
    reader: int,
    num_readers: int,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    skip_corrupt: bool = False,
) -> Iterator[tuple[str, np.ndarray]]:
    """(key, tokens) of every document reader `reader` of `num_readers` packs in `epoch`, in packing order."""
    stream = ReaderStream(release, split, seed, reader, num_readers, shuffle_buffer, skip_corrupt)
    for _, _, docs in stream.blocks(epoch):
        yield from docs


class PackedDataset(IterableDataset):
    """One rank's infinite stream of packed batches, each [micro_batch, seq_len + 1] token ids in the token
    dtype (ReleaseLoader makes (x, y) of them); each DataLoader worker is its own reader.

    state_dict()/load_state_dict() give and take the reader's position (see the module docstring and
    training/loader_state.py); torchdata's StatefulDataLoader calls them in each worker. When tracing, it
    yields (rows, spans) instead, spans being the (epoch, key, start, end) document pieces of the rows.
    """

    def __init__(self, release: Release, config: LoaderConfig) -> None:
        super().__init__()
        self.release, self.config = release, config
        self.trace = os.environ.get(TRACE_ENV) or None
        self._state: ReaderState | None = None  # the position after the last batch handed over
        self._loaded: dict[str, Any] = {}  # the state to resume from, as load_state_dict() got it
        self._resume = False

    def state_dict(self) -> dict[str, Any]:
        return self._state.as_dict() if self._state else dict(self._loaded)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._state, self._loaded, self._resume = None, dict(state), bool(state)

    def stream(self, part: int, parts: int) -> ReaderStream:
        """The documents of part `part` of `parts` (reader `part`'s, when `parts` readers began the epoch)."""
        c = self.config
        return ReaderStream(self.release, c.split, c.seed, part, parts, c.shuffle_buffer, c.skip_corrupt)

    def whole_part(self, epoch: int, part: int, parts: int) -> BlockRange:
        """The range of every block of part `part` of `parts` in `epoch`."""
        end = self.stream(part, parts).num_blocks(epoch)
        return BlockRange(epoch=epoch, part=part, parts=parts, shard=0, sample=0, block=0, end=end)

    def identity(self, reader: int, num_readers: int) -> dict[str, int]:
        """What a state must match to be reader `reader` of `num_readers` of this loader."""
        return dict(
            reader=reader,
            num_readers=num_readers,
            seed=self.config.seed,
            shuffle_buffer=self.config.shuffle_buffer,
        )

    def reader_state(
        self,
        reader: int,
        num_readers: int,
        current: BlockRange,
        pending: Sequence[BlockRange],
        next_epoch: int,
    ) -> ReaderState:
        """Reader `reader` of `num_readers` reading range `current`, then the `pending` ranges, then its own
        part of each epoch from `next_epoch` on."""
        c = self.config
        return ReaderState(reader, num_readers, c.seed, c.shuffle_buffer, current, next_epoch, tuple(pending))

    def fresh_state(self, reader: int, num_readers: int, epoch: int) -> ReaderState:
        """Reader `reader` of `num_readers` at the start of its part of `epoch`."""
        return self.reader_state(
            reader, num_readers, self.whole_part(epoch, reader, num_readers), [], epoch + 1
        )

    def _reader(self) -> tuple[int, int]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return self.config.rank * workers + worker, self.config.world_size * workers

    def _start(self, reader: int, num_readers: int) -> ReaderState:
        """The state to start from: the loaded one (checked to belong to this reader) or the beginning."""
        if not self._resume:
            return self.fresh_state(reader, num_readers, 0)
        self._resume = False
        saved = self._loaded
        identity = self.identity(reader, num_readers)
        if {k: saved.get(k) for k in identity} != identity or not set(STATE_KEYS) <= saved.keys():
            raise InputError(
                f"data loader state {saved} is not for this loader ({identity}): resume with the same "
                "world size, num_workers, seed and shuffle_buffer (training.elastic.load_run_state re-deals "
                "a run's states to other readers)"
            )
        return ReaderState.from_dict(saved)

    def _next_range(self, state: ReaderState) -> ReaderState:
        """`state` moved on to its first pending range, or else to its own part of its next epoch."""
        if state.pending:
            return replace(state, current=state.pending[0], pending=state.pending[1:])
        epoch = state.next_epoch
        whole = self.whole_part(epoch, state.reader, state.num_readers)
        return replace(state, current=whole, next_epoch=epoch + 1)

    def __iter__(self) -> Iterator[np.ndarray | tuple[np.ndarray, list[Span]] | BatchGroup]:
        """Batches in the main process; BatchGroups of GROUP_BATCHES batches in a DataLoader worker."""
        state = self._start(*self._reader())
        dtype = np.uint16 if self.release.vocab_size <= 1 << 16 else np.uint32
        eot = np.array([self.release.eot_id], dtype)
        packer = Packer(self.config.micro_batch, self.config.seq_len, eot, trace=bool(self.trace))
        batches = self._batches(state, packer)
        info = get_worker_info()
        if info is None:
            yield from batches
            return
        while True:
            start, group, states = self.state_dict(), [], []
            for rows in islice(batches, GROUP_BATCHES):
                group.append(rows)
                states.append(self._state.as_dict())  # type: ignore[union-attr]  # set with each batch
            yield BatchGroup(info.id, start, group, states)

    def _batches(
        self, state: ReaderState, packer: Packer
    ) -> Generator[np.ndarray | tuple[np.ndarray, list[Span]], None, None]:
        """Every batch from `state` on, forever (self._state: the position after the last one)."""
        while True:
            state = yield from self._read_range(state, packer)
            state = self._next_range(state)

    def _read_range(
        self, state: ReaderState, packer: Packer
    ) -> Generator[np.ndarray | tuple[np.ndarray, list[Span]], None, ReaderState]:
        """Pack the documents of `state`'s current range from its position on, yielding every batch that
        fills up (and setting the position after it); returns the state at the range's end."""
        r = state.current
        stream = self.stream(r.part, r.parts)
        stream.skipped_shards = state.skipped_shards
        stop = stream.block_start(r.epoch, r.end)
        resume: tuple[int, int] | None = (r.doc, r.token)
        for block, (shard, sample), docs in stream.blocks(r.epoch, r.shard, r.sample, r.block, stop):
            first, drop = resume or (0, 0)  # the state points into the first block read
            if first >= len(docs):
                raise InputError(f"data loader state {state.as_dict()} does not match {self.release.root}")
            resume = None
            for doc in range(first, len(docs)):
                key, tokens = docs[doc]
                packer.add(r.epoch, key, tokens, drop if doc == first else 0)
                for rows, rest in packer.batches():
                    token = len(tokens) + 1 - rest
                    at = r._replace(shard=shard, sample=sample, block=block, doc=doc, token=token)
                    self._state = replace(state, current=at, skipped_shards=stream.skipped_shards)
                    yield rows
        if resume is not None:  # the range gave no block at all
            raise InputError(
                f"{self.release.root}: split {self.config.split!r} gives reader {r.part} of {r.parts} no "
                f"documents in epoch {r.epoch} (fewer documents than readers, or every shard skipped)"
            )
        return replace(state, skipped_shards=stream.skipped_shards)


def _as_is(rows: np.ndarray) -> np.ndarray:
    return rows


def _prefetch_factor(dataset: PackedDataset) -> int:
    """BatchGroups a worker may run ahead: about one shuffle block's worth of batches (a few MB of tokens).

    Workers read a whole block before packing it, and batches are taken from them in turn; with the default
    2 items ahead, the other workers stall while one reads a block.
    """
    c = dataset.config
    shards = dataset.release.shards(c.split)
    doc_tokens = sum(e["tokens"] + e["docs"] for e in shards) / max(1, sum(e["docs"] for e in shards))
    per_block = c.shuffle_buffer * doc_tokens / (c.micro_batch * (c.seq_len + 1))
    return int(min(512, max(2, per_block + 1)) // GROUP_BATCHES + 1)


class ReleaseLoader(StatefulDataLoader):
    """A StatefulDataLoader of (x, y) batches made from the dataset's packed rows.

    Workers send the rows in the token dtype (uint16 for GPT-2's vocabulary): a pickled array costs a fraction
    of what passing two int64 tensors through shared memory does. They send them a BatchGroup at a time
    (training/packing.py); state_dict() then gives the state after the last batch handed over, not after the
    group. InputErrors from worker processes arrive as their one line, not a traceback.
    """

    def __init__(self, dataset: PackedDataset) -> None:
        c = dataset.config
        # Its own generator for the worker seeds, so that making an iterator leaves torch's global RNG alone.
        generator = torch.Generator().manual_seed(c.seed)
        super().__init__(
            dataset,
            None,
            num_workers=c.num_workers,
            collate_fn=_as_is,
            generator=generator,
            prefetch_factor=_prefetch_factor(dataset) if c.num_workers else None,
        )
        self.pin = c.pin_memory and torch.cuda.is_available()  # as DataLoader: no-op without a GPU
        self._taken: dict[int, dict[str, Any]] = {}  # worker -> its state after its last batch handed over
        self._last_worker: int | None = None  # the worker of the last batch handed over
        self._traced = 0  # batches traced so far: the next trace line's batch index

    def state_dict(self) -> dict[str, Any]:
        """StatefulDataLoader's state, with each worker's reader state after the last batch handed over (the
        loader's own snapshot has it after the last BatchGroup received) and the last batch's worker as the
        last one served, so that a resumed loader asks the next worker first and continues exactly."""
        state = super().state_dict()
        if not self.num_workers or self._last_worker is None:
            return state
        state = copy.deepcopy(state)  # the loader's own snapshot is in it
        snapshot = state["_snapshot"]
        for worker, reader in self._taken.items():
            snapshot["_worker_snapshots"][f"worker_{worker}"]["dataset_state"] = dict(reader)
        snapshot["_last_yielded_worker_id"] = self._last_worker
        return state

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        items = super().__iter__()
        self._taken, self._last_worker = {}, None
        batches = self._ungrouped(items) if self.num_workers else items
        while True:
            try:
                rows = next(batches)
            except StopIteration:
                return
            except InputError as e:
                error, message = type(e), str(e)
                break
            yield self._tensors(rows)
        # Stop the worker processes now: left to the garbage collector (the traceback keeps the iterator in a
        # reference cycle) their shutdown can wait out a 5 s timeout per worker.
        if hasattr(items, "_shutdown_workers"):
            items._shutdown_workers()
        if "Traceback" in message:  # re-raised from a worker: keep the original message only
            message = message.rstrip().rsplit("\n", 1)[-1].split(": ", 1)[-1]
        raise error(message)

    def _ungrouped(
        self, groups: Iterator[BatchGroup]
    ) -> Iterator[np.ndarray | tuple[np.ndarray, list[Span]]]:
        """The batches of the workers' BatchGroups, one worker at a time in turn (the order of a loader that
        sends one batch per item), keeping each worker's state after its last batch handed over."""
        queues: dict[int, deque] = defaultdict(deque)
        turn: int | None = None  # whose batch comes next: first, the worker of the first group received
        while True:
            while turn is None or not queues[turn]:
                try:
                    group = next(groups)
                except StopIteration:
                    return
                turn = group.worker if turn is None else turn
                self._taken.setdefault(group.worker, group.start)
                queues[group.worker].extend(zip(group.batches, group.states, strict=True))
            rows, self._taken[turn] = queues[turn].popleft()
            self._last_worker = turn
            yield rows
            turn = (turn + 1) % self.num_workers

    def _tensors(self, rows: np.ndarray | tuple[np.ndarray, list[Span]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) int64 of packed rows (traced first when tracing), each made in one casting copy."""
        if self.dataset.trace:
            rows, spans = rows
            self._trace(spans)
        shape = (rows.shape[0], rows.shape[1] - 1)
        x, y = np.empty(shape, np.int64), np.empty(shape, np.int64)
        np.copyto(x, rows[:, :-1])
        np.copyto(y, rows[:, 1:])
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        return (x.pin_memory(), y.pin_memory()) if self.pin else (x, y)

    def _trace(self, spans: list[Span]) -> None:
        d, c = self.dataset, self.dataset.config
        path = Path(d.trace) / f"{c.split}-{c.rank}-of-{c.world_size}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(f"{self._traced}\t{e}\t{key}\t{start}\t{end}\n" for e, key, start, end in spans)
        self._traced += 1


def reader_states(loader_state: dict) -> list[dict[str, Any]]:
    """The reader positions in a ReleaseLoader.state_dict(), one per worker that has delivered a batch."""
    if "dataset_state" in loader_state:  # num_workers=0
        return [loader_state["dataset_state"]] if loader_state["dataset_state"] else []
    workers = loader_state.get("_snapshot", {}).get("_worker_snapshots", {}).values()
    return [w["dataset_state"] for w in sorted(workers, key=lambda w: w["worker_id"]) if w["dataset_state"]]


def build_loader(release: Release, config: LoaderConfig) -> ReleaseLoader:
    """An infinite, exactly resumable loader of (x, y) int64 batches of shape [micro_batch, seq_len]."""
    if not release.shards(config.split):
        raise InputError(f"{release.root}/manifest.json: split {config.split!r} has no shards")
    return ReleaseLoader(PackedDataset(release, config))
