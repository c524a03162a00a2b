"""`webtext links`: Reddit submission dumps and frozen URL lists -> outbound links with karma (the
transform: transform.py)."""

from __future__ import annotations

import argparse

from corpus.command_line import positive_int
from corpus.errors import InputError
from pipelines.stage import Stage, StageResult, by_count, column_counts

# Named flag bundles. The WebText replication: GPT-2 used links created before 2018 with >= 3 karma.
PRESETS = {
    "webtext": {"min_karma": 3, "karma_rule": "per-submission", "before": "2018-01-01"},
}
LINKS_DEFAULTS = {"min_karma": 3, "karma_rule": "per-submission", "before": None, "after": None}


def _date(text: str) -> str:
    from corpus.link_rules import parse_date

    try:
        parse_date(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


class LinksStage(Stage):
    name = "links"
    help = "Reddit submission dumps or frozen URL lists -> outbound links with karma (Beam)"
    transform_name = "Links"

    def add_flags(self, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dumps",
            action="append",
            default=[],
            metavar="GLOB",
            help="Pushshift or Arctic Shift submission dumps (.zst .jsonl .jsonl.gz .bz2 .xz); repeatable",
        )
        p.add_argument(
            "--urls",
            action="append",
            default=[],
            metavar="GLOB",
            help="frozen URL lists (OpenWebText's one URL per line; .tsv/.csv with a header: url, score, "
            "subreddit, created_utc, id; .jsonl with those keys or OpenWebText2's); same compressions as "
            "--dumps; lines without a score are taken as already selected; repeatable, combines with --dumps",
        )
        p.add_argument("--preset", choices=sorted(PRESETS), help="webtext: karma >= 3, before 2018-01-01")
        p.add_argument("--min-karma", type=int, help="minimum karma of a link (default 3)")
        p.add_argument(
            "--karma-rule",
            choices=["per-submission", "sum"],
            help="per-submission (default, WebText): one submission reaches the karma; "
            "sum (OpenWebText2): scores summed per URL",
        )
        p.add_argument(
            "--before", type=_date, help="keep submissions created before this date (UTC, exclusive)"
        )
        p.add_argument("--after", type=_date, help="keep submissions created at or after this date (UTC)")
        p.add_argument("--keep-nsfw", action="store_true", help="keep submissions marked over_18")
        p.add_argument("--domain-blocklist", metavar="PATH", help="replace the packaged domain blocklist")
        p.add_argument(
            "--extension-blocklist", metavar="PATH", help="replace the packaged extension blocklist"
        )
        p.add_argument("--wikipedia-domains", metavar="PATH", help="replace the packaged Wikipedia host list")
        p.add_argument(
            "--splits-per-file",
            type=positive_int,
            default=1,
            help="read each file as N parallel splits (each split decompresses the whole stream "
            "and parses 1/N of it); raise it when files are fewer than workers",
        )
        p.add_argument(
            "--max-line-bytes",
            type=positive_int,
            default=16 * 2**20,
            help="longer lines go to the ledger as line_too_long (default 16 MiB)",
        )
        p.add_argument(
            "--num-shards",
            type=positive_int,
            help="Parquet files per output (default: one per 256 MiB of input dumps)",
        )

    def options(self, args: argparse.Namespace):
        from pipelines.files import match_files
        from pipelines.links.transform import LinksOptions, read_list_header
        from pipelines.outputs import DEFAULT_INPUT_BYTES_PER_SHARD, shards_for_input

        if not args.dumps and not args.urls:
            raise InputError("links needs --dumps GLOB or --urls GLOB (or both)")
        inputs = {}
        for flag, patterns in (("dump", args.dumps), ("URL list", args.urls)):
            inputs[flag] = sorted({path for pattern in patterns for path in match_files(pattern)})
            if patterns and not inputs[flag]:
                raise InputError(f"no {flag} files match {' '.join(patterns)}")
        dumps, url_lists = inputs["dump"], inputs["URL list"]
        if both := set(dumps) & set(url_lists):
            raise InputError(f"{sorted(both)[0]}: given as a dump and as a URL list")
        headers = {path: columns for path in url_lists if (columns := read_list_header(path)) is not None}
        num_shards = args.num_shards or shards_for_input(dumps + url_lists, DEFAULT_INPUT_BYTES_PER_SHARD)
        return LinksOptions(
            dumps,
            links_config(args),
            num_shards,
            args.splits_per_file,
            args.max_line_bytes,
            url_lists,
            headers,
        )

    def describe(self, options, out_dir: str) -> str:
        lists = f" and {len(options.url_lists)} URL list(s)" if options.url_lists else ""
        return f"links: {len(options.dumps)} dump file(s){lists} -> {out_dir}"

    def summary(self, result: StageResult, top: int = 10) -> str:
        from pipelines.outputs import read_table

        output = result.output
        links = read_table(output.join("part-*.parquet"), ["domain"])
        domains = column_counts(links, "domain")
        return "\n".join(
            [
                f"links: {result.items_in} submissions read, {result.items_out} contributed to "
                f"{links.num_rows} links, {sum(result.dropped.values())} dropped",
                *_assumed(result),
                f"  top domains ({len(domains)} in all):",
                *by_count(domains, top),
                "  dropped by reason:",
                *by_count(result.dropped),
                f"  outputs: {output.path}/: part-*.parquet, ledger/links-*.parquet, stats.json",
            ]
        )


def _assumed(result: StageResult) -> list[str]:
    """What URL lists left unsaid, and how it was filled in."""
    lines = []
    if n := result.counters.get("links:unscored_submissions"):
        lines.append(f"  {n} from URL lists without scores: taken as already selected (karma = min)")
    if n := result.counters.get("links:undated_submissions"):
        lines.append(f"  {n} from URL lists without dates: no date window applied (created_utc 0)")
    return lines


def links_config(args: argparse.Namespace):
    from corpus.link_rules import LinkConfig, packaged_list, parse_date

    settings = dict(LINKS_DEFAULTS)
    if args.preset:
        settings.update(PRESETS[args.preset])
    for name in LINKS_DEFAULTS:
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    lists = {
        "domain_blocklist": args.domain_blocklist or packaged_list("blocked_domains.txt"),
        "extension_blocklist": args.extension_blocklist or packaged_list("blocked_extensions.txt"),
        "wikipedia_domains": args.wikipedia_domains or packaged_list("wikipedia_domains.txt"),
    }
    for flag, path in lists.items():
        try:
            open(path, encoding="utf-8").close()
        except OSError as err:
            raise InputError(f"{path}: cannot read the {flag.replace('_', ' ')} ({err.strerror})") from None
    return LinkConfig(
        min_karma=settings["min_karma"],
        karma_rule=settings["karma_rule"],
        after=parse_date(settings["after"]) if settings["after"] else None,
        before=parse_date(settings["before"]) if settings["before"] else None,
        keep_nsfw=args.keep_nsfw,
        **lists,
    )


STAGE = LinksStage()
