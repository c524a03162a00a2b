"""Beam side of the ledger and stats.json every stage writes (shapes in corpus/accounting.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from corpus.accounting import LEDGER_SCHEMA, LedgerRow, StageStats
from pipelines.files import write_bytes
from pipelines.outputs import GroupShards, gc_paused, shard_name, write_table


def count(stage: str, counts: Mapping[str, int]) -> None:
    """Beam counters `<stage>:<name>` (pipelines/stage.py: the one place stages' counters are named)."""
    for name, n in counts.items():
        if n:
            Metrics.counter(stage, name).inc(n)


class WriteLedger(beam.PTransform):
    """(shard, [LedgerRow as plain tuple]) batches -> `ledger/<stage>-NNNNN-of-MMMMM.parquet`, rows sorted.

    Outputs one Counter of rows per reason for each shard: the stage's drops, counted from what was
    written, so stats.json and the ledger cannot disagree; they are the Beam counters `<stage>:<reason>`.
    """

    def __init__(self, output, num_shards: int) -> None:
        super().__init__()
        self.output, self.num_shards = output, num_shards

    def expand(self, batches):
        return batches | "Shards" >> GroupShards(self.num_shards) | "Write" >> beam.Map(self._write)

    def _write(self, shard: tuple[int, Iterable[list[tuple]]]) -> Counter[str]:
        index, batches = shard
        prefix = self.output.path("ledger", self.output.stage)
        with gc_paused():
            rows = sorted(row for batch in batches for row in batch)
            columns = list(zip(*rows, strict=True)) or [()] * len(LedgerRow._fields)
            table = pa.table(dict(zip(LedgerRow._fields, columns, strict=True)), schema=LEDGER_SCHEMA)
            write_table(shard_name(prefix, index, self.num_shards), table)
        reasons = Counter(columns[LedgerRow._fields.index("reason")])
        count(self.output.stage, reasons)
        return reasons


def _counted(counter: Mapping[str, int], stage: str) -> Mapping[str, int]:
    count(stage, counter)
    return counter


def _sum_counters(counters) -> Counter[str]:
    total: Counter[str] = Counter()
    for counter in counters:
        total.update(counter)
    return total


class WriteStats(beam.PTransform):
    """(counts, dropped) -> `stats.json` in the run's generation; fails the run unless they reconcile.

    `counts` are Counters the stage emits as it goes: `in` counts items read, `out` items kept, any other
    key is an extra figure reported as is; each is also the Beam counter `<stage>:<key>`, counted as they
    flow. `dropped` are the per-reason Counters from WriteLedger.
    """

    def __init__(self, output, config: dict[str, Any]) -> None:
        super().__init__()
        self.output, self.config = output, config

    def expand(self, pcolls):
        counts, dropped = pcolls
        stage = self.output.stage
        totals = (
            counts | "Count" >> beam.Map(_counted, stage) | "Total" >> beam.CombineGlobally(_sum_counters)
        )
        drops = dropped | "Dropped" >> beam.CombineGlobally(_sum_counters)
        return totals | "Write" >> beam.Map(self._write, beam.pvalue.AsSingleton(drops))

    def _write(self, totals: Mapping[str, int], dropped: Mapping[str, int]) -> StageStats:
        # A Counter may arrive as a plain dict (Beam infers a dict coder from the hints): missing keys are 0.
        totals, dropped = Counter(totals), Counter(dropped)
        extra = {key: totals[key] for key in sorted(totals) if key not in ("in", "out")}
        stats = StageStats(
            self.output.stage, totals["in"], totals["out"], dict(dropped), {**extra, "config": self.config}
        ).check()
        write_bytes(self.output.path("stats.json"), stats.to_json().encode("utf-8"))
        return stats
