"""`webtext extract`: fetched pages -> documents with trafilatura (the transform: transform.py)."""

from __future__ import annotations

import argparse
import dataclasses

from corpus.command_line import positive_int
from pipelines.stage import Stage, StageResult, by_count


class ExtractStage(Stage):
    name = "extract"
    help = "fetched pages -> documents with trafilatura (Beam)"
    transform_name = "Extract"
    reads = ("fetch",)

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--fetch", required=True, metavar="DIR", help="work directory (or its fetch/) of a fetch run"
        )
        parser.add_argument(
            "--min-words", type=int, help="drop documents with fewer words (reason too_short)"
        )
        parser.add_argument("--timeout", type=float, help="seconds per document before extract_timeout")
        parser.add_argument(
            "--extensive-date-search",
            action="store_true",
            help="let htmldate search the whole page for a date (slower; finds a date on ~3%% more pages)",
        )
        parser.add_argument(
            "--num-shards", type=positive_int, help="docs files (default: one per 100,000 pages)"
        )

    def options(self, args: argparse.Namespace):
        from corpus.extract import ExtractConfig
        from pipelines.extract.transform import ExtractOptions
        from pipelines.outputs import parquet_rows, shards_for_rows, stage_output

        fetch = stage_output(args.fetch, *self.reads)
        index = fetch.join("index-*.parquet")
        count = parquet_rows(index)
        changes = {
            "min_words": args.min_words,
            "timeout_seconds": args.timeout,
            "extensive_date_search": args.extensive_date_search or None,
        }
        config = dataclasses.replace(ExtractConfig(), **{k: v for k, v in changes.items() if v is not None})
        return ExtractOptions(
            index,
            fetch.work_dir,
            config,
            num_shards=args.num_shards or shards_for_rows(count, 100_000),
            index_rows=count,
        )

    def describe(self, options, out_dir: str) -> str:
        return f"extract: {options.index_rows} index rows -> {out_dir}"

    def summary(self, result: StageResult, top: int = 5) -> str:
        from pipelines.outputs import read_table

        output = result.output
        head = f"extract: {result.items_in} pages, {result.items_out} documents"
        docs = read_table(output.join("part-*.parquet"), ["words", "title", "domain"])
        rows = docs.to_pylist()
        longest = sorted(rows, key=lambda r: -r["words"])[:top]
        words = sum(r["words"] for r in rows)
        return "\n".join(
            [
                f"{head}, {words} words; the longest:",
                *(f"    {r['words']:6d} words  {r['domain']}: {(r['title'] or '')[:60]}" for r in longest),
                "  dropped by reason:",
                *by_count(result.dropped),
                f"  outputs: {output.path}/: part-*.parquet, ledger/extract-*.parquet, stats.json",
            ]
        )


STAGE = ExtractStage()
