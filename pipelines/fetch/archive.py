"""`webtext fetch --from-warc GLOB`: the fetch index built from existing archives instead of the network.

The C4 "webtextlike" approach: keep the responses whose canonical URL is in the links table. Every link
gets one index row (`not_in_archive` when no archive holds it); the row points at the record in the
source archive, which is not copied, by its absolute path (or URI): a relative `--from-warc p.warc.gz`
is made absolute where the command starts, so later stages find it from any directory.

    archives -> ReadArchive (response metadata, keyed by canonical URL) --+
    links (keyed by URL) ------------------------------------------------+-> CoGroupByKey -> index rows
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from corpus.fetch_index import NOT_IN_ARCHIVE, index_row
from corpus.fetcher import FetchConfig
from corpus.http_wire import media_type
from corpus.urls import InvalidURL, canonicalize_url
from corpus.warc import iter_responses
from pipelines.fetch.transform import STAGE, finish_index
from pipelines.files import open_read
from pipelines.outputs import read_parquet


@dataclass(frozen=True)
class ArchiveOptions:
    links: str  # glob of the links table
    archives: list[str]  # paths or URIs; relative paths are read from the current directory
    content_types: tuple[str, ...] = FetchConfig().content_types
    num_shards: int = 1


class ReadArchive(beam.DoFn):
    """Archive path -> (canonical URL, response metadata) for every response record."""

    def process(self, path: str):
        with open_read(path) as stream:
            for response in iter_responses(stream, path, max_body=0):
                try:
                    url = canonicalize_url(response.url)
                except InvalidURL:
                    Metrics.counter(STAGE, "archive_bad_url").inc()
                    continue
                yield (
                    url,
                    {
                        "warc_file": path,
                        "offset": response.offset,
                        "length": response.length,
                        "status": response.status,
                        "content_type": response.content_type,
                        "fetched_at": response.date,
                        "final_url": response.url,
                        "size": response.size,
                        "truncated": response.truncated,
                    },
                )


def choose(responses: list[dict]) -> dict:
    """Of several captures of one URL: a 2xx first, then the latest, then the first in the archives."""
    ranked = sorted(responses, key=lambda r: (r["warc_file"], r["offset"]))
    ranked.sort(key=lambda r: r["fetched_at"], reverse=True)  # stable sorts: the last key decides first
    ranked.sort(key=lambda r: not _is_2xx(r["status"]))
    return ranked[0]


def absolute_location(path: str) -> str:
    """A local path made absolute; a URI (gs://, s3://, file://...) as it is."""
    return path if "://" in path else os.path.abspath(path)


def _is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


# WARC-Truncated values (the fetch stage writes them; Common Crawl cuts records at 1 MiB with "length").
TRUNCATED_OUTCOMES = {"length": "too_large", "time": "timeout", "disconnect": "connection_error"}


def archive_row(link: dict, responses: list[dict], content_types: tuple[str, ...]) -> dict:
    """The index row of a link from its captures. Judged from the record's metadata (status, type,
    WARC-Truncated); the body is decoded and checked by the extract stage."""
    if not responses:
        return index_row(link, NOT_IN_ARCHIVE, "no response for this URL in the archives")
    chosen = dict(choose(responses))
    status, content_type, truncated = chosen["status"], chosen["content_type"], chosen.pop("truncated")
    if not _is_2xx(status):
        outcome, detail = "http_error", f"archived status {status}"
        if status is not None and 300 <= status < 400:
            detail += " (a redirect; its target is another capture)"
    elif media_type(content_type) not in content_types:
        outcome, detail = "bad_content_type", f"archived content type {content_type!r}"
    elif truncated:
        outcome, detail = (
            TRUNCATED_OUTCOMES.get(truncated, "too_large"),
            f"archived record truncated ({truncated})",
        )
    else:
        outcome, detail = "ok", ""
    return index_row(link, outcome, detail, **chosen)


class FetchFromArchives(beam.PTransform):
    def __init__(self, options: ArchiveOptions, output) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts = self.options
        columns = ["url", "domain", "karma", "submission_ids", "subreddits", "first_created_utc"]
        links = pbegin | "ReadLinks" >> read_parquet(opts.links, columns)
        responses = (
            pbegin
            | "Archives" >> beam.Create([absolute_location(path) for path in opts.archives])
            | "Spread" >> beam.Reshuffle()
            | "ReadArchive" >> beam.ParDo(ReadArchive())
        )
        rows = (
            {"link": links | "KeyLinks" >> beam.Map(lambda r: (r["url"], r)), "response": responses}
            | "Join" >> beam.CoGroupByKey()
            | "Rows" >> beam.FlatMap(self._rows)
        )
        config = {
            "fetch": {
                "from_warc": [os.path.basename(p) for p in opts.archives],
                "content_types": list(opts.content_types),
            }
        }
        return finish_index(rows, self.output, opts.num_shards, config)

    def _rows(self, element):
        _, groups = element
        links = list(groups["link"])
        if not links:
            Metrics.counter(STAGE, "archive_not_linked").inc()
            return
        yield archive_row(links[0], list(groups["response"]), self.options.content_types)
