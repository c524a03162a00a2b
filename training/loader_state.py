"""A data-loader reader's position as named types, and the plain form it is saved in.

In code a reader's position is a ReaderState: who it is (reader of num_readers, seed, shuffle_buffer), the
BlockRange it is reading, the ranges still pending after it (only after an elastic resume), the epoch it
starts next as itself and the shards it skipped. In a checkpoint it is a flat dict of STATE_KEYS whose values
are ints (the current range's fields spread out) and lists of ints (`pending`, one list of RANGE_KEYS values
per range), loadable with `torch.load(weights_only=True)`; as_dict/from_dict convert, so that format stays
what the loader has always saved. training/data.py explains the fields; no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class BlockRange(NamedTuple):
    """Blocks [block, end) of the part of reader `part` of `parts` in `epoch`, read from block `block`,
    which starts at (shard position, sample index) (`shard`, `sample`), at its document `doc`, of which
    `token` tokens (EOT included) are already in batches."""

    epoch: int
    part: int
    parts: int
    shard: int
    sample: int
    block: int
    end: int
    doc: int = 0
    token: int = 0


RANGE_KEYS = BlockRange._fields
IDENTITY_KEYS = ("reader", "num_readers", "seed", "shuffle_buffer")
STATE_KEYS = (*IDENTITY_KEYS, *RANGE_KEYS, "skipped_shards", "next_epoch", "pending")


@dataclass(frozen=True)
class ReaderState:
    """Reader `reader` of `num_readers` reading `current`, then the `pending` ranges, then its own part of
    each epoch from `next_epoch` on; `skipped_shards` damaged shards skipped so far."""

    reader: int
    num_readers: int
    seed: int
    shuffle_buffer: int
    current: BlockRange
    next_epoch: int
    pending: tuple[BlockRange, ...] = ()
    skipped_shards: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The saved form: STATE_KEYS -> ints, `pending` a list of lists of ints."""
        identity = {k: getattr(self, k) for k in IDENTITY_KEYS}
        more = {
            "skipped_shards": self.skipped_shards,
            "next_epoch": self.next_epoch,
            "pending": [list(r) for r in self.pending],
        }
        return identity | self.current._asdict() | more

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ReaderState:
        """The state a dict of as_dict()'s form (a checkpoint's) holds."""
        return cls(
            **{k: state[k] for k in IDENTITY_KEYS},
            current=BlockRange(**{k: state[k] for k in RANGE_KEYS}),
            next_epoch=state["next_epoch"],
            pending=tuple(BlockRange(*r) for r in state["pending"]),
            skipped_shards=state["skipped_shards"],
        )
