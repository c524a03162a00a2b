"""The links stage: Pushshift submission dumps -> `links/part-*.parquet`, the ledger and stats.json.

dump files -> (file, split) pairs -> Reshuffle -> ReadSubmissions: decompress, parse, submission rules
  -> (canonical URL, contribution) -> CombinePerKey -> karma rule -> links rows
  -> ledger rows (parse errors, rule drops, low karma, duplicate submissions)
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from corpus.accounting import LedgerRow
from corpus.dumps import DEFAULT_MAX_LINE_BYTES, iter_dump_lines
from corpus.link_rules import (
    LINKS_SCHEMA,
    Accumulator,
    Contribution,
    Dropped,
    LinkConfig,
    LinkRules,
    accumulate,
    decide_link,
    merge,
)
from corpus.submissions import LINE_TOO_LONG, Rejection, parse_submission
from pipelines.accounting import WriteLedger, WriteStats
from pipelines.outputs import DEFAULT_ROWS_PER_SHARD, StageOutput, WriteParquetShards

STAGE = "links"
LEDGER = "ledger"
COUNTS = "counts"
log = logging.getLogger(__name__)


def counter(reason: str):
    return Metrics.counter(STAGE, reason)


class ReadSubmissions(beam.DoFn):
    """(path, split, num_splits) -> (canonical URL, Contribution); drops go to the `ledger` output and
    one Counter of figures per split to the `counts` output."""

    def __init__(self, config: LinkConfig, max_line_bytes: int) -> None:
        self.config, self.max_line_bytes = config, max_line_bytes

    def setup(self) -> None:
        self.rules = LinkRules(self.config)

    def process(self, split: tuple[str, int, int]):
        path, index, num_splits = split
        name = os.path.basename(path)
        counts: Counter[str] = Counter()
        started = time.monotonic()
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            for line in iter_dump_lines(raw, path, index, num_splits, max_line_bytes=self.max_line_bytes):
                if not line.data.strip():
                    counts["blank_lines"] += 1
                    continue
                counts["in"] += 1
                where = f"{name}:{line.number}"
                if line.too_long:
                    counts[LINE_TOO_LONG] += 1
                    yield beam.pvalue.TaggedOutput(
                        LEDGER,
                        LedgerRow(
                            where, STAGE, LINE_TOO_LONG, f"{where}: longer than {self.max_line_bytes} bytes"
                        ),
                    )
                    continue
                parsed = parse_submission(line.data)
                if isinstance(parsed, Rejection):
                    counts[parsed.reason] += 1
                    row = LedgerRow(parsed.id or where, STAGE, parsed.reason, f"{where}: {parsed.detail}")
                    yield beam.pvalue.TaggedOutput(LEDGER, row)
                    continue
                decided = self.rules.apply(parsed)
                if isinstance(decided, Dropped):
                    counts[decided.reason] += 1
                    yield beam.pvalue.TaggedOutput(
                        LEDGER, LedgerRow(parsed.id, STAGE, decided.reason, decided.detail)
                    )
                    continue
                yield decided
        for reason, n in counts.items():
            if reason not in ("in", "blank_lines"):
                counter(reason).inc(n)
        counter("submissions_read").inc(counts["in"])
        log.info(
            "links: %s split %d/%d: %d submissions in %.1f s",
            name,
            index + 1,
            num_splits,
            counts["in"],
            time.monotonic() - started,
        )
        yield beam.pvalue.TaggedOutput(
            COUNTS, Counter({"in": counts["in"], "blank_lines": counts["blank_lines"]})
        )


class CombineContributions(beam.CombineFn):
    def create_accumulator(self) -> Accumulator:
        return {}

    def add_input(self, acc: Accumulator, contribution: Contribution) -> Accumulator:
        return accumulate(acc, contribution)

    def merge_accumulators(self, accumulators) -> Accumulator:
        return merge(accumulators)

    def extract_output(self, acc: Accumulator) -> Accumulator:
        return acc


class DecideLinks(beam.DoFn):
    """The URL-level karma rule: kept links to the main output, low karma and duplicates to the ledger."""

    def __init__(self, config: LinkConfig) -> None:
        self.config = config

    def process(self, element: tuple[str, Accumulator]):
        url, acc = element
        decision = decide_link(url, acc, self.config)
        for sub_id, reason, detail in decision.drops:
            counter(reason).inc()
            yield beam.pvalue.TaggedOutput(LEDGER, LedgerRow(sub_id, STAGE, reason, detail))
        if decision.row is not None:
            counter("links_kept").inc()
            yield decision.row


@dataclass(frozen=True)
class LinksOptions:
    dumps: list[str]
    config: LinkConfig
    splits_per_file: int = 1
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD


class ExtractLinks(beam.PTransform):
    """Dump paths -> links rows, writing shards, ledger and stats into `output`'s staging area."""

    def __init__(self, options: LinksOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts = self.options
        splits = [(path, k, opts.splits_per_file) for path in opts.dumps for k in range(opts.splits_per_file)]
        read = (
            pbegin
            | "Splits" >> beam.Create(splits)
            | "Spread" >> beam.Reshuffle()
            | "Read"
            >> beam.ParDo(ReadSubmissions(opts.config, opts.max_line_bytes)).with_outputs(
                LEDGER, COUNTS, main="contributions"
            )
        )
        decided = (
            read.contributions
            | "PerURL" >> beam.CombinePerKey(CombineContributions())
            | "Karma" >> beam.ParDo(DecideLinks(opts.config)).with_outputs(LEDGER, main="links")
        )
        links = decided.links
        ledger = (read[LEDGER], decided[LEDGER]) | "AllDrops" >> beam.Flatten()
        links | "WriteLinks" >> WriteParquetShards(
            self.output.staged(STAGE, "part"), LINKS_SCHEMA, lambda row: row["url"], opts.rows_per_shard
        )
        ledger | "WriteLedger" >> WriteLedger(self.output, opts.rows_per_shard)
        out_counts = links | "OutCounts" >> beam.Map(
            lambda row: Counter({"out": row["num_submissions"], "links": 1})
        )
        # Execution settings (splits, workers, runner) change no output byte and are not recorded.
        config = {
            **opts.config.describe(),
            "dumps": [os.path.basename(p) for p in opts.dumps],
            "max_line_bytes": opts.max_line_bytes,
        }
        return (
            (read[COUNTS], out_counts)
            | "Counts" >> beam.Flatten()
            | "Stats" >> WriteStats(self.output, ledger, config)
        )


def match_dumps(pattern: str) -> list[str]:
    """Files matching a glob (any Beam filesystem), sorted; empty when none match."""
    results = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in results if not m.path.endswith("/"))


def run_links(options: LinksOptions, out_dir: str, beam_args: list[str]) -> None:
    """Run the links stage and publish its outputs under `out_dir`; on failure nothing is published."""
    from apache_beam.options.pipeline_options import PipelineOptions

    output = StageOutput(out_dir, STAGE)
    try:
        with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
            _ = pipeline | "Links" >> ExtractLinks(options, output)
        output.publish()
    except BaseException:
        output.discard()
        raise
