"""What every stage owes its users: a ledger row for each thing it drops and a `stats.json` that reconciles.

docs/design.md fixes the shapes: ledger rows are (`id`, `stage`, `reason`, `detail`); stats are
`{"stage": NAME, "in": N, "out": M, "dropped": {REASON: n, ...}, ...}` with in = out + sum(dropped) exactly.
This module is the one place those shapes are built and checked; stages only supply their counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa


class LedgerRow(NamedTuple):
    """One dropped item: `id` is the item's own id, or `file:line` when the item could not be parsed."""

    id: str
    stage: str
    reason: str
    detail: str


LEDGER_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ]
)


class ReconciliationError(RuntimeError):
    """Counts that do not add up: a bug in a stage, never the user's input."""


@dataclass(frozen=True)
class StageStats:
    stage: str
    items_in: int
    items_out: int
    dropped: Mapping[str, int]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def check(self) -> StageStats:
        """Raise ReconciliationError unless in = out + sum(dropped) and every count is non-negative."""
        counts = [self.items_in, self.items_out, *self.dropped.values()]
        if any(n < 0 for n in counts):
            raise ReconciliationError(f"{self.stage}: negative count in {self.to_dict()}")
        total = self.items_out + sum(self.dropped.values())
        if self.items_in != total:
            raise ReconciliationError(
                f"{self.stage}: in={self.items_in} but out + dropped = {self.items_out} + "
                f"{sum(self.dropped.values())} = {total}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        dropped = {reason: n for reason, n in sorted(self.dropped.items()) if n}
        return {
            "stage": self.stage,
            "in": self.items_in,
            "out": self.items_out,
            "dropped": dropped,
            **self.extra,
        }

    def to_json(self) -> str:
        """Deterministic JSON text: sorted reasons, stable key order, trailing newline."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


def load_stats(text: str) -> StageStats:
    """Parse and check a stats.json written by `StageStats.to_json`."""
    raw = json.loads(text)
    fixed = {"stage", "in", "out", "dropped"}
    extra = {k: v for k, v in raw.items() if k not in fixed}
    return StageStats(raw["stage"], raw["in"], raw["out"], raw["dropped"], extra).check()
