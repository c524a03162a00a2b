"""The extract stage's transform: ok rows of the fetch index -> `extract/part-*.parquet`, ledger, stats.json.

index rows (outcome ok) -> Reshuffle -> ExtractDocs: read the WARC record at (warc_file, offset, length),
  decode its body (gzip/deflate, capped), trafilatura in a child process with a per-document time limit
  -> docs rows, each with its language and quality signals (corpus.docs.annotations)
  -> sorted shards (by id); pages without usable text -> ledger
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam

from corpus.docs import DOCS_SCHEMA, annotations, doc_id, doc_row
from corpus.extract import EXTRACTOR, ExtractConfig, TimedExtractor
from corpus.http_wire import decode_body
from corpus.language import LanguageIdentifier
from corpus.warc import WarcError, read_response
from pipelines.accounting import WriteLedger, WriteStats
from pipelines.files import join, open_read
from pipelines.outputs import StageOutput, WriteSortedShards, read_parquet, stable_shard

STAGE = "extract"
LEDGER = "ledger"
WARC_UNREADABLE = "warc_unreadable"
TOO_LARGE = "too_large"
UNDECODABLE = "undecodable"


@dataclass(frozen=True)
class ExtractOptions:
    index: str  # glob of the fetch index
    work_dir: str  # where relative warc_file paths start
    config: ExtractConfig
    max_bytes: int = 5 * 2**20
    num_shards: int = 1
    index_rows: int = 0  # rows of the index (the log line only)


def read_record(warc_file: str, offset: int, length: int) -> bytes:
    with open_read(warc_file) as handle:
        handle.seek(offset)
        return handle.read(length)


class ExtractDocs(beam.DoFn):
    def __init__(self, options: ExtractOptions) -> None:
        self.options = options

    def setup(self) -> None:
        self.extractor = TimedExtractor(self.options.config)
        self.identifier = LanguageIdentifier()

    def teardown(self) -> None:
        self.extractor.close()

    def process(self, row: dict):
        opts, url = self.options, row["url"]
        path = row["warc_file"]
        if "://" not in path and not path.startswith("/"):
            path = join(opts.work_dir, path)
        try:
            response = read_response(read_record(path, row["offset"], row["length"]), path, row["offset"])
        except (WarcError, OSError) as err:
            yield self._drop(url, WARC_UNREADABLE, str(err))
            return
        try:
            payload, too_large = decode_body(response.body, response.content_encoding or "", opts.max_bytes)
        except (ValueError, zlib.error) as err:
            yield self._drop(url, UNDECODABLE, f"Content-Encoding {response.content_encoding!r}: {err}")
            return
        if too_large:
            yield self._drop(url, TOO_LARGE, f"decoded body over {opts.max_bytes} bytes")
            return
        extracted = self.extractor.extract(payload, response.content_type or row["content_type"], url)
        if extracted.outcome != "ok":
            yield self._drop(url, extracted.outcome, extracted.detail)
            return
        doc = doc_row(row, extracted, payload, EXTRACTOR)
        yield {**doc, **annotations(doc["text"], self.identifier)}

    @staticmethod
    def _drop(url: str, reason: str, detail: str):
        return beam.pvalue.TaggedOutput(LEDGER, (doc_id(url), STAGE, reason, f"{url}: {detail}"[:500]))


class Extract(beam.PTransform):
    """The fetch index -> documents, ledger and stats.json in `output`'s generation."""

    def __init__(self, options: ExtractOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts, n = self.options, self.options.num_shards
        pages = (
            pbegin
            | "ReadIndex" >> read_parquet(opts.index)
            | "Ok" >> beam.Filter(lambda row: row["outcome"] == "ok")
            | "Spread" >> beam.Reshuffle()
        )
        docs = pages | "Extract" >> beam.ParDo(ExtractDocs(opts)).with_outputs(LEDGER, main="docs")
        docs.docs | "WriteDocs" >> WriteSortedShards(
            self.output.path("part"), n, DOCS_SCHEMA, lambda row: row["id"]
        )
        dropped = (
            docs[LEDGER]
            | "LedgerBatches" >> beam.Map(lambda row: (stable_shard(row[0], n), [row]))
            | "WriteLedger" >> WriteLedger(self.output, n)
        )
        counts = (
            pages | "In" >> beam.Map(lambda _: Counter({"in": 1})),
            docs.docs | "Out" >> beam.Map(lambda _: Counter({"out": 1})),
        ) | "AllCounts" >> beam.Flatten()
        return (counts, dropped) | "Stats" >> WriteStats(self.output, self._config())

    def _config(self) -> dict:
        opts = self.options
        return {
            "extract": {
                "extractor": EXTRACTOR,
                "max_bytes": opts.max_bytes,
                **{k: getattr(opts.config, k) for k in opts.config.__dataclass_fields__},
            }
        }
