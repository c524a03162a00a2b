"""Beam side of the ledger and stats.json every stage writes (shapes in corpus/accounting.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.accounting import LEDGER_SCHEMA, LedgerRow, StageStats
from pipelines.outputs import WriteParquetShards


def ledger_key(row: dict) -> tuple[str, str, str]:
    return row["id"], row["reason"], row["detail"]


class WriteLedger(beam.PTransform):
    """LedgerRows -> `ledger/<stage>-NNNNN-of-MMMMM.parquet` in the staging area."""

    def __init__(self, output, rows_per_shard: int) -> None:
        super().__init__()
        self.output, self.rows_per_shard = output, rows_per_shard

    def expand(self, ledger):
        return (
            ledger
            | "AsDict" >> beam.Map(LedgerRow._asdict)
            | "Shards"
            >> WriteParquetShards(
                self.output.staged("ledger", self.output.stage),
                LEDGER_SCHEMA,
                ledger_key,
                self.rows_per_shard,
            )
        )


def _sum_counters(counters) -> dict[str, int]:
    total: Counter[str] = Counter()
    for counter in counters:
        total.update(counter)
    return dict(total)


class WriteStats(beam.PTransform):
    """Write `<stage>/stats.json` to the staging area and fail the run unless the counts reconcile.

    Input: a PCollection of `Counter`s that the stage emits as it goes. The key `in` counts items read,
    `out` items kept; every other key is an extra figure reported as is. Drops are counted from the
    ledger itself (`ledger`), so stats and ledger cannot disagree.
    """

    def __init__(self, output, ledger, config: dict[str, Any]) -> None:
        super().__init__()
        self.output, self.ledger, self.config = output, ledger, config

    def expand(self, counters):
        totals = counters | "Total" >> beam.CombineGlobally(_sum_counters)
        dropped = (
            self.ledger
            | "Reasons" >> beam.Map(lambda row: Counter({row.reason: 1}))
            | "Dropped" >> beam.CombineGlobally(_sum_counters)
        )
        return totals | "Write" >> beam.Map(self._write, beam.pvalue.AsSingleton(dropped))

    def _write(self, totals: dict[str, int], dropped: dict[str, int]) -> StageStats:
        extra = {key: totals[key] for key in sorted(totals) if key not in ("in", "out")}
        stats = StageStats(
            self.output.stage,
            totals.get("in", 0),
            totals.get("out", 0),
            dropped,
            {**extra, "config": self.config},
        ).check()
        path = self.output.staged(self.output.stage, "stats.json")
        with FileSystems.create(
            path, mime_type="application/json", compression_type=CompressionTypes.UNCOMPRESSED
        ) as handle:
            handle.write(stats.to_json().encode("utf-8"))
        return stats
