"""Elastic resume: continue a run at another world size or num_workers, each document of the epoch read once.

Units of work. An epoch is read in blocks: block b of the part of reader i of N, the N readers that began
the epoch (training/data.py: parts, blocks of `shuffle_buffer` documents). Which documents a block holds and
how they are shuffled ((seed, epoch, i, b)) does not depend on who reads it, and where it starts (shard,
sample) follows from the manifest's counts. So the remaining work of a run is a list of block ranges, and a
reader's state says which ranges it holds and where it is inside the first one.

Re-dealing. load_run_state gathers the states of every old reader (all ranks, all workers; a worker that had
not delivered a batch is at the start of epoch 0) and lists what is left:
- each reader's current range from its saved position: the shuffle block it was in, the document it was in
  and that document's token offset (its tail, the packing remainder that sat in the reader's buffer, is read
  again from the shard, so nothing of it is lost or repeated);
- the ranges it still had pending from an earlier elastic resume;
- the whole parts of the epochs that another reader had begun but it had not (readers drift across epoch
  boundaries), since those epochs are committed to the old split.
The ranges, sorted by (epoch, part, block), are cut into as many contiguous runs of about equal block counts
as there are new readers, dealt in reader order. A new reader reads its runs in that order, each bounded by
(shard, sample) positions so that no two overlap, then goes on as reader j of M from the first epoch no old
reader had begun: later epochs run normally at the new size. A reader left with nothing starts that epoch at
once. The same old states always give the same new ones, on every rank.

Guarantee and granularity. Across any number of resizes every document of an epoch is packed exactly once:
no duplicate, no skip (tests/training/test_elastic.py checks it over document keys and token ranges with
real torchrun processes, 2 -> 1 -> 2; tests/training/test_resume_k_times.py after three SIGKILLs, 1 -> 2 ->
1 -> 2 ranks under DDP and FSDP2, and 0 -> 2 -> 0 -> 2 loader workers). Blocks are dealt whole; the block an
old reader was in goes to one new reader, which continues it from the saved document and token, so a
document is split at most where a checkpoint cut it, at a batch boundary, as in any resume. The batches
are not those of an uninterrupted run (nor bitwise-identical losses). It needs intact shards: after
--skip-corrupt skipped a shard the manifest's counts no longer give the block boundaries, and the resume is
refused.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from corpus.errors import InputError
from training.data import PackedDataset, ReleaseLoader
from training.loader_state import STATE_KEYS, BlockRange, ReaderState


def load_run_state(loader: ReleaseLoader, loader_states: list[dict]) -> bool:
    """Continue `loader` from every rank's saved state_dict() (by rank, as in the trainer's checkpoint).

    With the same world size and num_workers this rank's state is loaded as it was saved (exact resume) and
    False is returned. Otherwise the old readers' remaining work is re-dealt to this run's readers and True
    is returned.
    """
    dataset, workers = loader.dataset, max(1, loader.num_workers)
    rank, world_size = dataset.config.rank, dataset.config.world_size
    if len(loader_states) == world_size and all(_num_workers(s) == loader.num_workers for s in loader_states):
        loader.load_state_dict(loader_states[rank])
        return False
    dealt = deal_reader_states(dataset, run_reader_states(loader_states), world_size * workers)
    mine = dealt[rank * workers : (rank + 1) * workers]
    state = loader.state_dict()  # a fresh loader's state: the slots its workers' states go in
    if loader.num_workers == 0:
        state["dataset_state"] = mine[0]
    else:
        for worker in state["_snapshot"]["_worker_snapshots"].values():
            worker["dataset_state"] = mine[worker["worker_id"]]
    loader.load_state_dict(state)
    return True


def _num_workers(loader_state: dict) -> int | None:
    if "dataset_state" in loader_state:
        return 0
    return loader_state.get("_snapshot", {}).get("_main_snapshot", {}).get("_num_workers")


def run_reader_states(loader_states: list[dict]) -> list[dict[str, Any]]:
    """Every reader's state in a run's loader states (one state_dict() per rank, by rank), in reader order;
    {} for a worker that had not delivered a batch."""
    readers = []
    for rank, state in enumerate(loader_states):
        if "dataset_state" in state:  # num_workers=0
            readers.append(state["dataset_state"] or {})
        elif workers := state.get("_snapshot", {}).get("_worker_snapshots"):
            readers += [
                w["dataset_state"] or {} for w in sorted(workers.values(), key=lambda w: w["worker_id"])
            ]
        else:
            raise InputError(f"the saved data loader state of rank {rank} holds no reader state")
    return readers


def deal_reader_states(
    dataset: PackedDataset, saved: list[dict[str, Any]], num_readers: int
) -> list[dict[str, Any]]:
    """The states (saved form) of `num_readers` readers that together read exactly what the `saved` readers
    (every reader of a run, in reader order) had left of their epochs, then go on normally."""
    states = _checked_states(dataset, saved)
    ranges = [s.current for s in states] + [r for s in states for r in s.pending]
    following = max(r.epoch for r in ranges) + 1  # the first epoch no reader has begun
    for s in states:
        ranges += [dataset.whole_part(e, s.reader, len(states)) for e in range(s.next_epoch, following)]
    ranges = sorted((r for r in ranges if r.block < r.end), key=lambda r: (r.epoch, r.part, r.block))
    dealt = _deal(dataset, ranges, num_readers)
    return [
        (
            dataset.reader_state(j, num_readers, mine[0], mine[1:], following)
            if mine
            else dataset.fresh_state(j, num_readers, following)
        ).as_dict()
        for j, mine in enumerate(dealt)
    ]


def _checked_states(dataset: PackedDataset, saved: list[dict[str, Any]]) -> list[ReaderState]:
    """The `saved` readers' states, checked to be this loader's and re-dealable ({}: the start of epoch 0)."""
    old, states = len(saved), []
    for reader, state in enumerate(saved):
        if not state:
            states.append(dataset.fresh_state(reader, old, 0))
            continue
        identity = dataset.identity(reader, old)
        if {k: state.get(k) for k in identity} != identity or not set(STATE_KEYS) <= state.keys():
            raise InputError(
                f"data loader state {state} is not reader {reader} of the {old} saved ({identity}): an "
                "elastic resume needs the same seed and shuffle_buffer"
            )
        if state["skipped_shards"]:
            raise InputError(
                f"{dataset.release.root}: reader {reader} skipped {state['skipped_shards']} damaged "
                "shard(s); an elastic resume needs intact shards (repair them, or resume with the same world "
                "size and num_workers)"
            )
        states.append(ReaderState.from_dict(state))
    return states


def _deal(dataset: PackedDataset, ranges: list[BlockRange], num_readers: int) -> list[list[BlockRange]]:
    """`ranges` (sorted) cut into `num_readers` contiguous runs of about equal block counts, in order."""
    # Reader j gets blocks [ends[j], ends[j + 1]) of the ranges' blocks laid end to end (offsets).
    offsets = [0]
    for r in ranges:
        offsets.append(offsets[-1] + r.end - r.block)
    ends = [offsets[-1] * j // num_readers for j in range(num_readers + 1)]
    dealt: list[list[BlockRange]] = [[] for _ in range(num_readers)]
    for r, offset in zip(ranges, offsets, strict=False):
        for j in range(max(0, bisect_right(ends, offset) - 1), bisect_left(ends, offset + r.end - r.block)):
            low, high = max(r.block, r.block + ends[j] - offset), min(r.end, r.block + ends[j + 1] - offset)
            if low >= high:
                continue
            if low == r.block:  # keeps the saved position inside its first block
                dealt[j].append(r._replace(end=high))
            else:
                shard, sample = dataset.stream(r.part, r.parts).block_start(r.epoch, low)
                dealt[j].append(r._replace(shard=shard, sample=sample, block=low, end=high, doc=0, token=0))
    return dealt
