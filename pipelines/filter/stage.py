"""`webtext filter`: documents -> Wikipedia and low quality removed (the transform: transform.py)."""

from __future__ import annotations

import argparse
import re

from corpus.command_line import named, positive_int
from corpus.errors import InputError
from corpus.language import UNDETERMINED
from corpus.quality import QualityConfig
from pipelines.stage import Stage, StageResult, by_count, docs_table


class FilterStage(Stage):
    name = "filter"
    help = "documents -> Wikipedia and low quality removed (Beam)"
    transform_name = "Filter"
    reads = ("dedup", "extract")

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--docs",
            required=True,
            metavar="DIR",
            help="work directory: its dedup/ output when present, else extract/",
        )
        parser.add_argument(
            "--wikipedia-reference",
            metavar="PATH",
            help="text of Wikipedia articles: also drop documents whose 8-grams overlap it",
        )
        parser.add_argument(
            "--wikipedia-overlap",
            type=float,
            default=0.5,
            help="share of a document's 8-grams found in the reference above which it is dropped",
        )
        parser.add_argument(
            "--wikipedia-domains", metavar="PATH", help="replace the packaged Wikipedia host list"
        )
        parser.add_argument(
            "--decontaminate",
            action="append",
            default=[],
            metavar="NAME=PATH",
            help="drop documents sharing an n-gram with this evaluation file (text or jsonl); repeatable",
        )
        parser.add_argument(
            "--decontam-n",
            type=positive_int,
            default=13,
            metavar="N",
            help="words per n-gram of --decontaminate (GPT-3: 13)",
        )
        parser.add_argument(
            "--languages",
            metavar="CODES",
            help="keep only documents whose language is one of these ISO 639-1 codes, e.g. en,de "
            "(reason language; default: keep every language, as GPT-2 did)",
        )
        parser.add_argument(
            "--rules",
            default="webtext",
            metavar="SETS",
            help="quality rules, comma-separated: presets webtext, gopher, c4, fineweb, none, or rules files "
            "(.toml); reasons preset:rule, webtext's unprefixed (default webtext; see docs/stages/filter.md)",
        )
        defaults = QualityConfig()
        for name in defaults.__dataclass_fields__:
            value = getattr(defaults, name)
            parser.add_argument(
                f"--{name.replace('_', '-')}",
                type=type(value),
                default=value,
                help=f"the webtext preset's rule (default {value}; see docs/stages/filter.md)",
            )
        parser.add_argument(
            "--scrub-pii",
            action="store_true",
            help="replace e-mail and public IP addresses in the kept documents' text with placeholders "
            "(off by default: GPT-2 did not; see docs/stages/filter.md)",
        )
        parser.add_argument(
            "--num-shards", type=positive_int, help="docs files (default: one per 100,000 documents)"
        )

    def options(self, args: argparse.Namespace):
        from corpus.link_rules import read_list
        from corpus.rules import resolve
        from pipelines.filter.transform import FilterOptions
        from pipelines.outputs import shards_for_rows

        _, docs, count = docs_table(args.docs, self.reads)
        quality = QualityConfig(**{name: getattr(args, name) for name in QualityConfig.__dataclass_fields__})
        return FilterOptions(
            docs,
            quality,
            wikipedia_reference(args.wikipedia_reference),
            wikipedia_overlap=args.wikipedia_overlap,
            wikipedia_domains=read_list(args.wikipedia_domains) if args.wikipedia_domains else None,
            decontaminate=evaluation_sets(args.decontaminate, args.decontam_n),
            languages=languages(args.languages),
            rules=tuple(resolve(args.rules, quality)),
            scrub_pii=args.scrub_pii,
            num_shards=args.num_shards or shards_for_rows(count, 100_000),
            docs_rows=count,
        )

    def describe(self, options, out_dir: str) -> str:
        return f"filter: {options.docs_rows} documents from {options.docs} -> {out_dir}"

    def summary(self, result: StageResult, top: int = 5) -> str:
        from collections import Counter

        from pipelines.outputs import read_table
        from pipelines.stage import read_stats

        kept = read_table(result.output.join("part-*.parquet"), ["language"]).to_pylist()
        mix = Counter(row["language"] for row in kept).most_common(top)
        stats = read_stats(result.output).extra
        pii = (
            [f"  pii scrubbed: {stats['pii_email']} e-mail addresses, {stats['pii_ip']} IP addresses"]
            if stats["config"]["filter"].get("scrub_pii")
            else []
        )
        return "\n".join(
            [
                f"filter: {result.items_in} documents, {result.items_out} kept",
                "  languages kept: " + (", ".join(f"{code} {n}" for code, n in mix) or "none"),
                *pii,
                "  dropped by reason:",
                *by_count(result.dropped),
                f"  outputs: {result.output.path}/: part-*.parquet, ledger/filter-*.parquet, stats.json",
            ]
        )


def languages(text: str | None) -> frozenset[str] | None:
    """--languages en,de -> {"en", "de"} (None without the flag: keep every language)."""
    if text is None:
        return None
    codes = frozenset(code.strip() for code in text.split(","))
    bad = sorted(code for code in codes if not (code == UNDETERMINED or re.fullmatch(r"[a-z]{2}", code)))
    if bad:
        raise InputError(
            f"--languages: expected ISO 639-1 codes (en,de) or {UNDETERMINED}, got {', '.join(bad)}"
        )
    return codes


def wikipedia_reference(path: str | None):
    """--wikipedia-reference PATH read into a WikipediaReference (None without the flag)."""
    if not path:
        return None
    from corpus.wikipedia import WikipediaReference

    try:
        return WikipediaReference.from_file(path)
    except OSError as err:
        raise InputError(f"{path}: cannot read the Wikipedia reference ({err.strerror})") from None


def evaluation_sets(texts: list[str], n: int):
    """The --decontaminate NAME=PATH files' n-grams as EvalNgrams (None without the flag)."""
    if not texts:
        return None
    from corpus.overlap import EvalNgrams

    paths = dict(named(text, "--decontaminate") for text in texts)
    if len(paths) != len(texts):
        raise InputError(f"--decontaminate names must be distinct: {' '.join(texts)}")
    return EvalNgrams.from_files(paths, n)


STAGE = FilterStage()
