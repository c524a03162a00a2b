"""`webtext dedup`: documents -> exact and near duplicates removed (the transform: transform.py)."""

from __future__ import annotations

import argparse

from corpus.command_line import positive_int
from corpus.errors import InputError
from pipelines.stage import Stage, StageResult, by_count, docs_table

# Documents per partition of the keyed steps (exact groups, LSH buckets, components, groups): what one
# worker holds there is about this many documents' band hashes and shingle hashes (~1 KB each on WebText).
ROWS_PER_PARTITION = 50_000


class DedupStage(Stage):
    name = "dedup"
    help = "documents -> exact and near duplicates removed (Beam)"
    transform_name = "Dedup"
    reads = ("extract",)

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--docs", required=True, metavar="DIR", help="work directory (or its extract/) of an extract run"
        )
        parser.add_argument(
            "--threshold", type=float, default=0.8, help="Jaccard similarity of near duplicates"
        )
        parser.add_argument("--num-perm", type=positive_int, default=128, help="MinHash permutations")
        parser.add_argument("--shingle", type=positive_int, default=5, help="words per shingle")
        parser.add_argument(
            "--rounds",
            type=positive_int,
            default=10,
            help="connected-components rounds when the input takes more than one partition (about "
            "log2 of the longest chain of candidate pairs, plus 2)",
        )
        parser.add_argument(
            "--num-shards", type=positive_int, help="docs files (default: one per 100,000 documents)"
        )

    def options(self, args: argparse.Namespace):
        from corpus.minhash import MinHashConfig  # imports datasketch (half a second): not for --help
        from pipelines.dedup.transform import DedupOptions
        from pipelines.outputs import shards_for_rows

        if not 0 < args.threshold <= 1:
            raise InputError(f"--threshold must be in (0, 1], got {args.threshold}")
        _, docs, count = docs_table(args.docs, self.reads)
        config = MinHashConfig(num_perm=args.num_perm, shingle=args.shingle, threshold=args.threshold)
        shards = args.num_shards or shards_for_rows(count, 100_000)
        return DedupOptions(docs, config, args.rounds, shards, shards_for_rows(count, ROWS_PER_PARTITION))

    def describe(self, options, out_dir: str) -> str:
        return f"dedup: {options.docs} -> {out_dir}"

    def summary(self, result: StageResult, top: int = 5) -> str:
        from pipelines.outputs import find_stage_output, read_table

        output = result.output
        clusters = read_table(output.join("clusters-*.parquet"))
        source = find_stage_output(output.work_dir, *self.reads)  # the documents dedup read, dropped ones too
        docs = read_table(source.join("part-*.parquet"), ["id", "url"]) if source else None
        url = (
            dict(zip(docs.column("id").to_pylist(), docs.column("url").to_pylist(), strict=True))
            if docs
            else {}
        )
        groups: dict[tuple[str, str], list[str]] = {}
        for row in clusters.to_pylist() if clusters.num_rows else []:
            if not row["reason"].endswith("_kept"):
                groups.setdefault((row["reason"], row["kept_id"]), []).append(row["id"])
        lines = [
            f"dedup: {result.items_in} documents, {result.items_out} kept; {len(groups)} duplicate clusters:"
        ]
        for (reason, kept), dropped in sorted(groups.items())[:top]:
            lines.append(f"    {reason}: kept {url.get(kept, kept)}")
            lines += [f"        dropped {url.get(d, d)}" for d in sorted(dropped)]
        return "\n".join(
            [
                *lines,
                "  dropped by reason:",
                *by_count(result.dropped),
                f"  outputs: {output.path}/: part-*.parquet, clusters-*.parquet, ledger/dedup-*.parquet",
            ]
        )


STAGE = DedupStage()
