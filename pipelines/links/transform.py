"""The links stage's transform: Pushshift submission dumps and frozen URL lists -> `links/part-*.parquet`,
ledger, stats.json.

    dump and list files -> (file, split, kind) -> Reshuffle -> ReadSubmissions: decompress, parse, rules
      -> (links shard, [(canonical URL, contribution)]) -> GroupByKey -> AggregateLinks: karma rule, write
      -> (ledger shard, [drop]) from both steps -> GroupByKey -> WriteLedger
      -> Counters from every step -> stats.json (must reconcile)

Rows travel in batches keyed by output shard (a stable hash of the URL or id), so Beam's per-element
cost is paid per batch; each shard is aggregated, sorted and written by one worker.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import BinaryIO

import apache_beam as beam

from corpus.dumps import DEFAULT_MAX_LINE_BYTES, iter_dump_lines, unreadable_dump
from corpus.errors import InputError
from corpus.link_rules import (
    LINKS_SCHEMA,
    Accumulator,
    Contribution,
    Dropped,
    LinkConfig,
    LinkRules,
    accumulate,
    decide_link,
)
from corpus.submissions import LINE_TOO_LONG, Rejection, parse_submission
from corpus.url_lists import HEADER_FORMATS, is_comment, list_format, month_of, parse_header, parse_url_line
from pipelines.accounting import WriteLedger, WriteStats
from pipelines.files import open_read
from pipelines.outputs import (
    GroupShards,
    ShardBatcher,
    StageOutput,
    gc_paused,
    shard_name,
    write_table,
)

STAGE = "links"
LEDGER = "ledger"
COUNTS = "counts"
PROGRESS_SECONDS = 30
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinksOptions:
    dumps: list[str]
    config: LinkConfig
    num_shards: int = 1
    splits_per_file: int = 1
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    url_lists: list[str] = field(default_factory=list)
    url_headers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # tsv/csv list -> its columns


DUMP, URLS = "dump", "urls"


def read_list_header(path: str) -> tuple[str, ...] | None:
    """A tsv/csv URL list's column names from its first line (None for the other formats); InputError
    naming the file when there is no usable header, before any worker starts."""
    fmt = list_format(path)
    if fmt not in HEADER_FORMATS:
        return None
    with open_dump(path) as raw:
        first = next(iter_dump_lines(raw, path), None)
    columns = parse_header(first.data, fmt) if first is not None else "the file is empty"
    if isinstance(columns, str):
        raise InputError(f"{path}:1: {columns}; a {fmt} URL list starts with a header (url, score, ...)")
    return columns


class ReadSubmissions(beam.DoFn):
    """(path, split, num_splits, kind) -> (links shard, [(url, contribution)]) batches; drops go to the
    `ledger` output as (ledger shard, [row]) batches and one Counter of figures per split to `counts`."""

    def __init__(self, options: LinksOptions) -> None:
        self.options = options

    def setup(self) -> None:
        self.rules = LinkRules(self.options.config)
        # A list line without a date is taken as already selected: no date window applies to it.
        self.undated_rules = LinkRules(replace(self.options.config, after=None, before=None))

    def process(self, split: tuple[str, int, int, str]):
        path, index, num_splits, kind = split
        name, opts = os.path.basename(path), self.options
        links, ledger = ShardBatcher(opts.num_shards), ShardBatcher(opts.num_shards)
        counts: Counter[str] = Counter()
        started = reported = time.monotonic()
        with open_dump(path) as raw:
            for line in iter_dump_lines(raw, path, index, num_splits, max_line_bytes=opts.max_line_bytes):
                if not line.data.strip():
                    counts["blank_lines"] += 1
                    continue
                if kind == URLS and not line.too_long:
                    if line.number == 1 and path in opts.url_headers:
                        counts["header_lines"] += 1
                        continue
                    if is_comment(line.data):
                        counts["comment_lines"] += 1
                        continue
                counts["in"] += 1
                if counts["in"] % 100_000 == 0 and time.monotonic() - reported > PROGRESS_SECONDS:
                    reported = time.monotonic()
                    log.info(
                        "links: %s split %d/%d: %d submissions so far, %.0f/s",
                        name,
                        index + 1,
                        num_splits,
                        counts["in"],
                        counts["in"] / (reported - started),
                    )
                where = f"{name}:{line.number}"
                if line.too_long:
                    ledger.add(
                        where, (where, STAGE, LINE_TOO_LONG, f"{where}: over {opts.max_line_bytes} bytes")
                    )
                elif kind == URLS:
                    self._list_line(line.data, path, where, links, ledger, counts)
                elif isinstance(parsed := parse_submission(line.data), Rejection):
                    row_id = parsed.id or where
                    ledger.add(row_id, (row_id, STAGE, parsed.reason, f"{where}: {parsed.detail}"))
                else:
                    self._apply(self.rules, parsed, links, ledger)
                if links.full() or ledger.full():
                    yield from _emit(links, ledger)
        yield from _emit(links, ledger)
        log.info(
            "links: %s split %d/%d: %d submissions in %.1f s",
            name,
            index + 1,
            num_splits,
            counts["in"],
            time.monotonic() - started,
        )
        yield beam.pvalue.TaggedOutput(COUNTS, counts)

    def _apply(
        self, rules: LinkRules, sub, links: ShardBatcher, ledger: ShardBatcher, where: str = ""
    ) -> None:
        if isinstance(decided := rules.apply(sub), Dropped):
            detail = f"{where}: {decided.detail}" if where else decided.detail
            ledger.add(sub.id, (sub.id, STAGE, decided.reason, detail))
        else:
            url, contribution = decided
            links.add(url, (url, tuple(contribution)))

    def _list_line(self, data: bytes, path: str, where: str, links, ledger, counts: Counter) -> None:
        """A URL list line: its submissions through the same rules; one without a score gets min_karma
        (the list is taken as already selected), one without a date skips the date window."""
        fmt, columns = list_format(path), self.options.url_headers.get(path, ())
        parsed = parse_url_line(data, fmt, where, columns, month_of(os.path.basename(path)))
        if isinstance(parsed, Rejection):
            row_id = parsed.id or where
            ledger.add(row_id, (row_id, STAGE, parsed.reason, f"{where}: {parsed.detail}"))
            return
        counts["in"] += len(parsed) - 1  # an OpenWebText2 line holds several submissions
        for entry in parsed:
            sub = entry.submission
            if not entry.scored:
                counts["unscored_submissions"] += 1
                sub = replace(sub, score=self.options.config.min_karma)
            if not entry.dated:
                counts["undated_submissions"] += 1
            self._apply(self.rules if entry.dated else self.undated_rules, sub, links, ledger, where)


def open_dump(path: str) -> BinaryIO:
    """The raw bytes of a dump on any Beam filesystem; DumpError naming it when it cannot be opened."""
    try:
        return open_read(path)
    except OSError as err:  # BeamIOError, from remote filesystems, is one too
        raise unreadable_dump(path, err) from None


def _emit(links: ShardBatcher, ledger: ShardBatcher):
    yield from links.drain()
    for batch in ledger.drain():
        yield beam.pvalue.TaggedOutput(LEDGER, batch)


class AggregateLinks(beam.DoFn):
    """(shard, batches of (url, contribution)) -> the shard's Parquet file of links, sorted by URL.

    The karma rule runs here, on the aggregate of each URL; low karma and duplicate submissions go to the
    `ledger` output, the shard's figures to `counts`.
    """

    def __init__(self, options: LinksOptions, output: StageOutput) -> None:
        self.options, self.output = options, output

    def process(self, shard: tuple[int, Iterable[list]]):
        index, batches = shard
        opts = self.options
        with gc_paused():
            per_url: dict[str, Accumulator] = {}
            for batch in batches:
                for url, contribution in batch:
                    accumulate(per_url.setdefault(url, {}), Contribution(*contribution))
            rows, ledger = [], ShardBatcher(opts.num_shards)
            for url in sorted(per_url):
                decision = decide_link(url, per_url[url], opts.config)
                for sub_id, reason, detail in decision.drops:
                    ledger.add(sub_id, (sub_id, STAGE, reason, detail))
                if decision.row is not None:
                    rows.append(decision.row)
            path = shard_name(self.output.path("part"), index, opts.num_shards)
            write_table(path, rows, LINKS_SCHEMA)
        for batch in ledger.drain():
            yield beam.pvalue.TaggedOutput(LEDGER, batch)
        yield beam.pvalue.TaggedOutput(
            COUNTS, Counter({"out": sum(row["num_submissions"] for row in rows), "links": len(rows)})
        )


class Links(beam.PTransform):
    """Dump paths -> links shards, ledger and stats.json in `output`'s generation."""

    def __init__(self, options: LinksOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts = self.options
        files = [(path, DUMP) for path in opts.dumps] + [(path, URLS) for path in opts.url_lists]
        n = opts.splits_per_file
        splits = [(path, k, n, kind) for path, kind in files for k in range(n)]
        read = (
            pbegin
            | "Splits" >> beam.Create(splits)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadSubmissions(opts)).with_outputs(LEDGER, COUNTS, main="links")
        )
        aggregated = (
            read.links
            | "LinkShards" >> GroupShards(opts.num_shards)
            | "Aggregate" >> beam.ParDo(AggregateLinks(opts, self.output)).with_outputs(LEDGER, COUNTS)
        )
        dropped = (
            (read[LEDGER], aggregated[LEDGER])
            | "AllDrops" >> beam.Flatten()
            | "WriteLedger" >> WriteLedger(self.output, opts.num_shards)
        )
        counts = (read[COUNTS], aggregated[COUNTS]) | "AllCounts" >> beam.Flatten()
        # Execution settings (splits, workers, runner) change no output byte and are not recorded.
        config = {
            **opts.config.describe(),
            "dumps": [os.path.basename(p) for p in opts.dumps],
            **(_lists_config(opts) if opts.url_lists else {}),
            "max_line_bytes": opts.max_line_bytes,
            "num_shards": opts.num_shards,
        }
        return (counts, dropped) | "Stats" >> WriteStats(self.output, config)


def _lists_config(opts: LinksOptions) -> dict:
    """What stats.json and the manifest say about URL lists: which, in what format, and what was assumed."""
    return {
        "urls": [
            {
                "file": os.path.basename(p),
                "format": list_format(p),
                "columns": list(opts.url_headers.get(p, [])),
            }
            for p in opts.url_lists
        ],
        "karma": f"assumed >= min ({opts.config.min_karma}) for list lines without scores "
        "(taken as already selected; counted in unscored_submissions)",
        "created_utc": "a list line without a date takes its file name's month (RS_YYYY-MM), else 0 and "
        "no date window (taken as already selected; counted in undated_submissions)",
    }
