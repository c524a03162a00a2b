"""The fetch stage's network transform: links -> WARC files + `fetch/index-*.parquet` (one row per link),
ledger, stats.json.

    links (+ the previous index, when rerun into the same output)
      -> CoGroupByKey on URL: a terminal earlier outcome is carried over, the rest is fetched
      -> (bucket = stable hash of the host) -> GroupByKey -> FetchBucket: a thread pool over hosts; every
         URL of a host goes through one Fetcher, which paces the host and checks robots.txt once
      -> index rows -> sorted shards; non-ok rows -> ledger (reason = outcome)

Grouping by host bucket is what makes `--per-host-delay` hold across the stage's workers: a host's URLs
all reach one worker. `--from-warc` reads existing archives instead (archive.py).

Nothing a server sends can fail the stage: the fetcher classifies it, and each URL's whole path (fetch,
WARC records, index row) is one `try` whose failure, a bug of ours, is the row `internal_error` with the
exception text, a ledger row and a count in stats.json like any other outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from corpus.fetch_index import INDEX_SCHEMA, INTERNAL_ERROR, index_row
from corpus.fetcher import Exchange, FetchConfig, Fetcher, FetchResult, is_terminal
from corpus.urls import host_of
from corpus.warc import WarcFileWriter
from pipelines.accounting import WriteLedger, WriteStats
from pipelines.files import open_write
from pipelines.outputs import StageOutput, WriteSortedShards, read_parquet, stable_shard

STAGE = "fetch"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchOptions:
    links: str  # glob of the links table
    config: FetchConfig
    concurrency: int = 16
    buckets: int = 8
    num_shards: int = 1
    previous_index: str | None = None  # glob of an earlier run's index in the same output, to resume


class FetchBucket(beam.DoFn):
    """(bucket, links) -> index rows; responses go to one WARC file per bucket in the run's generation."""

    def __init__(self, options: FetchOptions, output: StageOutput, run_id: str) -> None:
        self.options, self.output, self.run_id = options, output, run_id

    def setup(self) -> None:
        self.fetcher = Fetcher(self.options.config)
        self.robots_archived = 0  # robots.txt exchanges of this Fetcher already written to a WARC

    def process(self, element: tuple[int, Iterable[dict]]) -> Iterator[dict]:
        bucket, links = element
        by_host: dict[str, list[dict]] = {}
        for link in sorted(links, key=lambda link: link["url"]):
            by_host.setdefault(_host(link["url"]), []).append(link)
        name = f"{self.run_id}-{bucket:05d}.warc.gz"
        path = self.output.path(name)
        lock, started = threading.Lock(), time.monotonic()
        with open_write(path) as handle:
            writer = WarcFileWriter(handle)

            def fetch_one(link: dict) -> dict:
                try:
                    result = self.fetcher.fetch(link["url"])
                    with lock:
                        location = self._archive(writer, result.exchanges)
                    return _row(link, result, self.output.relative(name) if location else None, location)
                except Exception as e:  # a bug of ours: this URL's row, never a lost run
                    log.warning("fetch: %s: internal error: %s: %s", link["url"], type(e).__name__, e)
                    return index_row(link, INTERNAL_ERROR, f"{type(e).__name__}: {e}")

            def fetch_host(host_links: list[dict]) -> list[dict]:
                return [fetch_one(link) for link in host_links]

            with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="fetch") as pool:
                for rows in pool.map(fetch_host, by_host.values()):
                    yield from rows
            robots = self.fetcher.robots_fetches()
            for exchange in robots[self.robots_archived :]:
                try:
                    self._archive(writer, [exchange])
                except Exception as e:  # no URL's row depends on it: counted and logged
                    Metrics.counter(STAGE, "robots_not_archived").inc()
                    log.warning("fetch: %s not archived: %s: %s", exchange.url, type(e).__name__, e)
            self.robots_archived = len(robots)
            written = writer.out.position
        if not written:
            FileSystems.delete([path])
        log.info(
            "fetch: bucket %d: %d URLs on %d hosts in %.1f s",
            bucket,
            len(links),
            len(by_host),
            time.monotonic() - started,
        )

    @staticmethod
    def _archive(writer: WarcFileWriter, exchanges: list[Exchange]) -> tuple[int, int] | None:
        """Write the exchanges (request and response records); the location of the last response."""
        location = None
        for exchange in exchanges:
            location = writer.write_exchange(
                exchange.url,
                exchange.ip,
                exchange.fetched_at,
                exchange.request,
                exchange.response_head + exchange.body,
                exchange.truncated,
            )
        return location


def _host(url: str) -> str:
    """The URL's host, for grouping; "" (one group) when it has none, so that the fetcher reports why."""
    try:
        return host_of(url)
    except ValueError:
        return ""


def _row(link: dict, result: FetchResult, warc_file: str | None, location: tuple[int, int] | None) -> dict:
    last = result.exchanges[-1] if result.exchanges else None
    return index_row(
        link,
        result.outcome,
        result.detail,
        final_url=result.final_url,
        status=result.status,
        content_type=result.content_type,
        size=len(last.body) if last else 0,
        fetched_at=last.fetched_at if last else None,
        warc_file=warc_file,
        offset=location[0] if location else None,
        length=location[1] if location else None,
        attempts=result.attempts,
    )


def _carry_or_fetch(element: tuple[str, dict]):
    """A link whose earlier outcome is terminal keeps its row (lineage refreshed); the rest is fetched."""
    url, groups = element
    links, previous = list(groups["link"]), list(groups["previous"])
    if not links:
        return  # the link is gone from the table: its old row is not carried
    link = links[0]
    if previous and is_terminal(previous[0]["outcome"], previous[0]["status"]):
        Metrics.counter(STAGE, "carried_over").inc()
        yield beam.pvalue.TaggedOutput("carried", {**previous[0], **{k: link[k] for k in link if k != "url"}})
    else:
        yield link


class Fetch(beam.PTransform):
    """Links table -> index shards, WARC files, ledger and stats in `output`'s generation."""

    def __init__(self, options: FetchOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts = self.options
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        columns = ["url", "domain", "karma", "submission_ids", "subreddits", "first_created_utc"]
        links = pbegin | "ReadLinks" >> read_parquet(opts.links, columns)
        if opts.previous_index:
            previous = pbegin | "ReadPrevious" >> read_parquet(opts.previous_index)
            split = (
                {
                    "link": links | "KeyLinks" >> beam.Map(lambda r: (r["url"], r)),
                    "previous": previous | "KeyPrevious" >> beam.Map(lambda r: (r["url"], r)),
                }
                | "Join" >> beam.CoGroupByKey()
                | "CarryOrFetch" >> beam.FlatMap(_carry_or_fetch).with_outputs("carried", main="fetch")
            )
            to_fetch, carried = split.fetch, split.carried
        else:
            to_fetch, carried = links, pbegin | "NothingCarried" >> beam.Create([])
        buckets = opts.buckets
        fetched = (
            to_fetch
            | "ByHost" >> beam.Map(lambda r: (stable_shard(host_of(r["url"]), buckets), r))
            | "Buckets" >> beam.GroupByKey()
            | "Fetch" >> beam.ParDo(FetchBucket(opts, self.output, run_id))
        )
        rows = (fetched, carried) | "AllRows" >> beam.Flatten()
        return finish_index(rows, self.output, opts.num_shards, {"fetch": _describe(opts)})


def finish_index(rows, output: StageOutput, num_shards: int, config: dict):
    """Index rows -> index shards, ledger rows for every outcome but ok, stats (in = links, out = ok)."""
    rows | "WriteIndex" >> WriteSortedShards(
        output.path("index"), num_shards, INDEX_SCHEMA, lambda row: row["url"]
    )
    dropped = (
        rows
        | "NotOk" >> beam.Filter(lambda row: row["outcome"] != "ok")
        | "LedgerRows"
        >> beam.Map(
            lambda row: (
                stable_shard(row["url"], num_shards),
                [(row["url"], STAGE, row["outcome"], row["detail"])],
            )
        )
        | "WriteLedger" >> WriteLedger(output, num_shards)
    )
    counts = rows | "Counts" >> beam.Map(count_outcome)
    return (counts, dropped) | "Stats" >> WriteStats(output, config)


def count_outcome(row: dict) -> Counter:
    """The row's share of the stats (its outcome, when not ok, is counted by the ledger)."""
    return Counter({"in": 1, "out": int(row["outcome"] == "ok")})


def _describe(opts: FetchOptions) -> dict:
    cfg = opts.config
    return {name: getattr(cfg, name) for name in cfg.__dataclass_fields__} | {"buckets": opts.buckets}
