"""`webtext`: one console script for every stage (DESIGN.md fixes the verbs).

Beam stages take their own flags first; everything argparse does not recognise is handed to Beam as
pipeline options (`--runner`, `--direct_num_workers`, `--temp_location`, ...). Bad input ends the
command with one line on stderr naming the file and the problem, exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from importlib import resources

from corpus.errors import InputError

log = logging.getLogger("webtext")

# Named flag bundles. The WebText replication: GPT-2 used links created before 2018 with >= 3 karma.
PRESETS = {
    "webtext": {"min_karma": 3, "karma_rule": "per-submission", "before": "2018-01-01"},
}
LINKS_DEFAULTS = {"min_karma": 3, "karma_rule": "per-submission", "before": None, "after": None}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _date(text: str) -> str:
    from corpus.link_rules import parse_date

    try:
        parse_date(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def add_links_parser(sub) -> None:
    p = sub.add_parser(
        "links", allow_abbrev=False, help="Reddit submission dumps -> outbound links with karma (Beam)"
    )
    p.add_argument(
        "--dumps",
        action="append",
        required=True,
        metavar="GLOB",
        help="Pushshift submission dumps (.zst .jsonl .jsonl.gz .bz2 .xz); repeatable",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/links, DIR/ledger")
    p.add_argument("--preset", choices=sorted(PRESETS), help="webtext: karma >= 3, before 2018-01-01")
    p.add_argument("--min-karma", type=int, help="minimum karma of a link (default 3)")
    p.add_argument(
        "--karma-rule",
        choices=["per-submission", "sum"],
        help="per-submission (default, WebText): one submission reaches the karma; "
        "sum (OpenWebText2): scores summed per URL",
    )
    p.add_argument("--before", type=_date, help="keep submissions created before this date (UTC, exclusive)")
    p.add_argument("--after", type=_date, help="keep submissions created at or after this date (UTC)")
    p.add_argument("--keep-nsfw", action="store_true", help="keep submissions marked over_18")
    p.add_argument("--domain-blocklist", metavar="PATH", help="replace the packaged domain blocklist")
    p.add_argument("--extension-blocklist", metavar="PATH", help="replace the packaged extension blocklist")
    p.add_argument("--wikipedia-domains", metavar="PATH", help="replace the packaged Wikipedia host list")
    p.add_argument(
        "--splits-per-file",
        type=_positive_int,
        default=1,
        help="read each file as N parallel splits (each split decompresses the whole stream "
        "and parses 1/N of it); raise it when files are fewer than workers",
    )
    p.add_argument(
        "--max-line-bytes",
        type=_positive_int,
        default=16 * 2**20,
        help="longer lines go to the ledger as line_too_long (default 16 MiB)",
    )
    p.add_argument(
        "--num-shards",
        type=_positive_int,
        help="Parquet files per output (default: one per 256 MiB of input dumps)",
    )
    p.set_defaults(handler=run_links_command)


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


def run_links_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines.links import LinksOptions, match_dumps, run_links
    from pipelines.outputs import DEFAULT_INPUT_BYTES_PER_SHARD, shards_for_input
    from pipelines.summary import links_summary

    dumps = sorted({path for pattern in args.dumps for path in match_dumps(pattern)})
    if not dumps:
        raise InputError(f"no dump files match {' '.join(args.dumps)}")
    num_shards = args.num_shards or shards_for_input(dumps, DEFAULT_INPUT_BYTES_PER_SHARD)
    options = LinksOptions(dumps, links_config(args), num_shards, args.splits_per_file, args.max_line_bytes)
    log.info("links: %d dump file(s) -> %s", len(dumps), args.out)
    return run_and_report("links", lambda: run_links(options, args.out, beam_args), links_summary, args.out)


def run_and_report(stage: str, run: Callable[[], object], summary: Callable[[str], str], out: str) -> int:
    """Run a stage, then print its summary and how long it took."""
    started = time.monotonic()
    run()
    print(summary(out))
    print(f"{stage}: done in {time.monotonic() - started:.1f} s")
    return 0


def add_reddit_parser(sub) -> None:
    from corpus.reddit_api import LISTINGS, TIME_FILTERS

    p = sub.add_parser(
        "reddit", allow_abbrev=False, help="harvest live Reddit listings (praw) into a Pushshift-format dump"
    )
    p.add_argument("--subreddit", action="append", required=True, help="subreddit name; repeatable")
    p.add_argument("--listing", action="append", choices=LISTINGS, help="listing(s) to read (default: new)")
    p.add_argument("--time-filter", default="all", choices=TIME_FILTERS, help="for top and controversial")
    p.add_argument(
        "--limit", type=_positive_int, default=1000, help="submissions per listing (Reddit caps at 1000)"
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output .jsonl, .jsonl.gz or .jsonl.zst")
    p.add_argument(
        "--site",
        default=os.environ.get("praw_site", "DEFAULT"),  # noqa: SIM112 - praw reads lower-case names
        help="praw.ini site; credentials may also come from the environment "
        "(praw_client_id, praw_client_secret, praw_user_agent)",
    )
    p.add_argument(
        "--api-url",
        metavar="URL",
        help="Reddit API base URL for a proxy or a local test server "
        "(default: praw's, https://oauth.reddit.com)",
    )
    p.set_defaults(handler=run_reddit_command)


def run_reddit_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from corpus.reddit_api import harvest, make_reddit, write_jsonl

    if beam_args:
        raise InputError(f"unknown arguments: {' '.join(beam_args)}")
    overrides = {"reddit_url": args.api_url, "oauth_url": args.api_url} if args.api_url else {}
    reddit = make_reddit(args.site, **overrides)
    records = harvest(reddit, args.subreddit, args.listing or ["new"], args.time_filter, args.limit)
    count = write_jsonl(records, args.out)
    print(f"reddit: wrote {count} submissions from {len(args.subreddit)} subreddit(s) to {args.out}")
    return 0


def add_fetch_parser(sub) -> None:
    from corpus.fetcher import FetchConfig

    d = FetchConfig()
    p = sub.add_parser("fetch", allow_abbrev=False, help="links -> WARC files + fetch index (Beam)")
    p.add_argument(
        "--links", required=True, metavar="DIR", help="work directory (or its links/) of a links run"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/fetch, DIR/ledger")
    p.add_argument(
        "--from-warc",
        action="append",
        metavar="GLOB",
        help="read responses from existing WARC/ARC files instead of the network; repeatable",
    )
    p.add_argument(
        "--per-host-delay", type=float, default=d.per_host_delay, help="seconds between requests to a host"
    )
    p.add_argument("--ignore-robots", action="store_true", help="do not fetch or honour robots.txt")
    p.add_argument("--user-agent", default=d.user_agent)
    p.add_argument("--max-bytes", type=_positive_int, default=d.max_bytes, help="body cap (default 5 MB)")
    p.add_argument("--connect-timeout", type=float, default=d.connect_timeout)
    p.add_argument("--read-timeout", type=float, default=d.read_timeout)
    p.add_argument("--max-seconds", type=float, default=d.max_seconds, help="wall-clock cap per URL")
    p.add_argument("--max-retries", type=int, default=d.max_retries, help="on 429, 5xx and connection errors")
    p.add_argument("--concurrency", type=_positive_int, default=16, help="fetching threads per worker")
    p.add_argument(
        "--buckets",
        type=_positive_int,
        default=8,
        help="host groups; a group is fetched by one worker, so a host is paced in one place",
    )
    p.add_argument(
        "--allow-private-network",
        action="store_true",
        help="allow private, loopback and link-local addresses (tests and intranets only)",
    )
    p.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="allow one private network (e.g. 127.0.0.0/8 for a local test server); repeatable",
    )
    p.add_argument("--num-shards", type=_positive_int, help="index files (default: one per million links)")
    p.set_defaults(handler=run_fetch_command)


def run_fetch_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from apache_beam.io.filesystems import FileSystems

    from corpus.fetcher import FetchConfig
    from pipelines.fetch import FetchLinks, FetchOptions, resolve_links, run_fetch
    from pipelines.fetch_archive import ArchiveOptions, FetchFromArchives
    from pipelines.links import match_dumps
    from pipelines.outputs import parquet_rows, shards_for_rows
    from pipelines.summary import fetch_summary

    links = resolve_links(args.links)
    count = parquet_rows(links)
    if not count and not match_dumps(links):
        raise InputError(f"{args.links}: no links table (links/part-*.parquet); run webtext links first")
    num_shards = args.num_shards or shards_for_rows(count, 1_000_000)
    if args.from_warc:
        archives = sorted({path for pattern in args.from_warc for path in match_dumps(pattern)})
        if not archives:
            raise InputError(f"no archives match {' '.join(args.from_warc)}")
        options = ArchiveOptions(links, archives, num_shards=num_shards)
        log.info("fetch: %d links from %d archive(s) -> %s", count, len(archives), args.out)
        return run_and_report(
            "fetch",
            lambda: run_fetch(
                lambda output: FetchFromArchives(options, output), args.out, beam_args, keep=()
            ),
            fetch_summary,
            args.out,
        )
    else:
        config = FetchConfig(
            user_agent=args.user_agent,
            connect_timeout=args.connect_timeout,
            read_timeout=args.read_timeout,
            max_seconds=args.max_seconds,
            max_bytes=args.max_bytes,
            max_retries=args.max_retries,
            per_host_delay=args.per_host_delay,
            respect_robots=not args.ignore_robots,
            allow_private_network=args.allow_private_network,
            allowed_networks=tuple(args.allow_network),
        )
        previous = FileSystems.join(args.out, "fetch", "index-*.parquet")
        options = FetchOptions(
            links,
            config,
            args.concurrency,
            args.buckets,
            num_shards,
            previous if match_dumps(previous) else None,
        )
        log.info(
            "fetch: %d links over the network -> %s%s",
            count,
            args.out,
            " (resuming)" if options.previous_index else "",
        )
        return run_and_report(
            "fetch",
            lambda: run_fetch(
                lambda output: FetchLinks(options, output), args.out, beam_args, keep=("*.warc.gz",)
            ),
            fetch_summary,
            args.out,
        )


def add_extract_parser(sub) -> None:
    p = sub.add_parser(
        "extract", allow_abbrev=False, help="fetched pages -> documents with trafilatura (Beam)"
    )
    p.add_argument(
        "--fetch", required=True, metavar="DIR", help="work directory (or its fetch/) of a fetch run"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/docs, DIR/ledger")
    p.add_argument("--min-words", type=int, help="drop documents with fewer words (reason too_short)")
    p.add_argument("--timeout", type=float, help="seconds per document before extract_timeout")
    p.add_argument("--num-shards", type=_positive_int, help="docs files (default: one per 100,000 pages)")
    p.set_defaults(handler=run_extract_command)


def run_extract_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    import dataclasses

    from apache_beam.io.filesystems import FileSystems

    from corpus.extract import ExtractConfig
    from pipelines.extract import ExtractOptions, run_extract
    from pipelines.outputs import parquet_rows, shards_for_rows
    from pipelines.summary import extract_summary

    fetch_dir = args.fetch.rstrip("/")
    work_dir = fetch_dir.rsplit("/", 1)[0] if fetch_dir.endswith("/fetch") else fetch_dir
    index = FileSystems.join(work_dir, "fetch", "index-*.parquet")
    count = parquet_rows(index)
    if not FileSystems.match([index])[0].metadata_list:
        raise InputError(f"{args.fetch}: no fetch index (fetch/index-*.parquet); run webtext fetch first")
    changes = {"min_words": args.min_words, "timeout_seconds": args.timeout}
    config = dataclasses.replace(ExtractConfig(), **{k: v for k, v in changes.items() if v is not None})
    options = ExtractOptions(
        index, work_dir, config, num_shards=args.num_shards or shards_for_rows(count, 100_000)
    )
    log.info("extract: %d index rows -> %s", count, args.out)
    return run_and_report(
        "extract", lambda: run_extract(options, args.out, beam_args), extract_summary, args.out
    )


def add_dedup_parser(sub) -> None:
    p = sub.add_parser(
        "dedup", allow_abbrev=False, help="documents -> exact and near duplicates removed (Beam)"
    )
    p.add_argument(
        "--docs", required=True, metavar="DIR", help="work directory (or its docs/) of an extract run"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/dedup, DIR/ledger")
    p.add_argument("--threshold", type=float, default=0.8, help="Jaccard similarity of near duplicates")
    p.add_argument("--num-perm", type=_positive_int, default=128, help="MinHash permutations")
    p.add_argument("--shingle", type=_positive_int, default=5, help="words per shingle")
    p.add_argument(
        "--rounds",
        type=_positive_int,
        default=10,
        help="connected-components rounds (each halves the longest chain left)",
    )
    p.add_argument("--num-shards", type=_positive_int, help="docs files (default: one per 100,000 documents)")
    p.set_defaults(handler=run_dedup_command)


def _docs_table(path: str, stage: str, folders: tuple[str, ...]) -> tuple[str, int]:
    """(glob, row count) of the documents a stage reads; one clear error when there are none."""
    from pipelines.filter import resolve_docs
    from pipelines.links import match_dumps
    from pipelines.outputs import parquet_rows

    pattern = resolve_docs(path, folders)
    if not match_dumps(pattern):
        raise InputError(
            f"{path}: no documents ({'/ or '.join(folders)}/part-*.parquet); run the earlier stages first"
        )
    return pattern, parquet_rows(pattern)


def run_dedup_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from corpus.minhash import MinHashConfig
    from pipelines.dedup import DedupOptions, run_dedup
    from pipelines.outputs import shards_for_rows
    from pipelines.summary import dedup_summary

    if not 0 < args.threshold <= 1:
        raise InputError(f"--threshold must be in (0, 1], got {args.threshold}")
    docs, count = _docs_table(args.docs, "dedup", ("docs",))
    config = MinHashConfig(num_perm=args.num_perm, shingle=args.shingle, threshold=args.threshold)
    options = DedupOptions(docs, config, args.rounds, args.num_shards or shards_for_rows(count, 100_000))
    log.info("dedup: %s -> %s", docs, args.out)
    return run_and_report("dedup", lambda: run_dedup(options, args.out, beam_args), dedup_summary, args.out)


def add_filter_parser(sub) -> None:
    from corpus.quality import QualityConfig

    d = QualityConfig()
    p = sub.add_parser(
        "filter", allow_abbrev=False, help="documents -> Wikipedia and low quality removed (Beam)"
    )
    p.add_argument(
        "--docs",
        required=True,
        metavar="DIR",
        help="work directory: its dedup/ output when present, else docs/",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="work directory; writes DIR/filter, DIR/ledger"
    )
    p.add_argument(
        "--wikipedia-reference",
        metavar="PATH",
        help="text of Wikipedia articles: also drop documents whose 8-grams overlap it",
    )
    p.add_argument(
        "--wikipedia-overlap",
        type=float,
        default=0.5,
        help="share of a document's 8-grams found in the reference above which it is dropped",
    )
    p.add_argument("--wikipedia-domains", metavar="PATH", help="replace the packaged Wikipedia host list")
    for name in d.__dataclass_fields__:
        value = getattr(d, name)
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(value),
            default=value,
            help=f"quality rule (default {value}; see README)",
        )
    p.add_argument("--num-shards", type=_positive_int, help="docs files (default: one per 100,000 documents)")
    p.set_defaults(handler=run_filter_command)


def run_filter_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from corpus.link_rules import read_list
    from corpus.quality import QualityConfig
    from corpus.wikipedia import WikipediaReference
    from pipelines.filter import FilterOptions, run_filter
    from pipelines.outputs import shards_for_rows
    from pipelines.summary import filter_summary

    docs, count = _docs_table(args.docs, "filter", ("dedup", "docs"))
    quality = QualityConfig(**{name: getattr(args, name) for name in QualityConfig.__dataclass_fields__})
    reference = None
    if args.wikipedia_reference:
        try:
            reference = WikipediaReference.from_file(args.wikipedia_reference)
        except OSError as err:
            raise InputError(
                f"{args.wikipedia_reference}: cannot read the Wikipedia reference ({err.strerror})"
            ) from None
    options = FilterOptions(
        docs,
        quality,
        reference,
        wikipedia_overlap=args.wikipedia_overlap,
        wikipedia_domains=read_list(args.wikipedia_domains) if args.wikipedia_domains else None,
        num_shards=args.num_shards or shards_for_rows(count, 100_000),
    )
    log.info("filter: %d documents from %s -> %s", count, docs, args.out)
    return run_and_report(
        "filter", lambda: run_filter(options, args.out, beam_args), filter_summary, args.out
    )


def add_release_parser(sub) -> None:
    p = sub.add_parser("release", allow_abbrev=False, help="documents -> WebDataset shards + manifest (Beam)")
    p.add_argument(
        "--docs",
        required=True,
        metavar="DIR",
        help="work directory: its filter/ output when present, else dedup/, else docs/",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/release")
    p.add_argument(
        "--tokenizer",
        default="train:50257",
        metavar="SPEC",
        help="train:VOCAB (byte-level BPE trained on the train split) or gpt2:DIR (encoder.json + vocab.bpe)",
    )
    p.add_argument("--val-fraction", type=float, default=0.005, help="share of documents in the val split")
    p.add_argument("--shard-bytes", type=_positive_int, default=256 * 10**6, help="target shard size")
    p.add_argument("--shard-docs", type=_positive_int, help="documents per shard (instead of --shard-bytes)")
    p.set_defaults(handler=run_release_command)


def run_release_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from corpus.tokenizer import gpt2_tokenizer, parse_spec, train_tokenizer
    from pipelines.release import ReleaseOptions, run_release, split_of, stage_stats, train_texts
    from pipelines.summary import release_summary

    docs, count = _docs_table(args.docs, "release", ("filter", "dedup", "docs"))
    if not 0 <= args.val_fraction < 1:
        raise InputError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    try:
        kind, value = parse_spec(args.tokenizer)
    except ValueError as err:
        raise InputError(f"--tokenizer: {err}") from None
    if kind == "gpt2":
        try:
            tokenizer = gpt2_tokenizer(str(value))
        except OSError as err:
            raise InputError(f"{value}: cannot read GPT-2's encoder.json and vocab.bpe ({err})") from None
    else:
        log.info("release: training a byte-level BPE of %s tokens on the train split", value)
        tokenizer = train_tokenizer(
            train_texts(docs, lambda i: split_of(i, args.val_fraction) == "train"), int(value)
        )
    options = ReleaseOptions(
        docs,
        tokenizer.to_json(),
        args.tokenizer,
        args.val_fraction,
        args.shard_bytes,
        args.shard_docs,
        stage_stats(args.docs),
    )
    log.info("release: %d documents from %s -> %s", count, docs, args.out)
    return run_and_report(
        "release", lambda: run_release(options, args.out, beam_args), release_summary, args.out
    )


def add_verify_parser(sub) -> None:
    p = sub.add_parser("verify", allow_abbrev=False, help="check a release: hashes, counts, tar safety")
    p.add_argument(
        "release", metavar="DIR", help="a release directory (or the work directory holding release/)"
    )
    p.set_defaults(handler=run_verify_command)


def run_verify_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    import json
    from pathlib import Path

    from corpus.shards import verify_release

    if beam_args:
        raise InputError(f"unknown arguments: {' '.join(beam_args)}")
    directory = Path(args.release)
    if not (directory / "manifest.json").is_file() and (directory / "release" / "manifest.json").is_file():
        directory = directory / "release"
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{directory / 'manifest.json'}: cannot read the manifest ({err})") from None
    problems = verify_release(str(directory), manifest)
    for problem in problems:
        print(f"verify: {problem}", file=sys.stderr)
    shards = [shard for split in manifest["splits"].values() for shard in split]
    if problems:
        return 1
    print(
        f"verify: ok: {len(shards)} shards, {sum(s['docs'] for s in shards)} documents, "
        f"{sum(s['tokens'] for s in shards)} tokens match {directory / 'manifest.json'}"
    )
    return 0


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", allow_abbrev=False, help="run the chain built so far on the embedded sample")
    p.add_argument("--out", default="build/demo", metavar="DIR")
    p.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    """links -> fetch (the sample's WARC, no network) -> extract -> dedup -> filter -> release -> verify."""
    sample = resources.files("corpus") / "sample"
    steps = [
        ["links", "--dumps", f"{sample}/reddit/*", "--out", args.out],
        ["fetch", "--links", args.out, "--from-warc", f"{sample}/warc/*.warc.gz", "--out", args.out],
        ["extract", "--fetch", args.out, "--out", args.out],
        ["dedup", "--docs", args.out, "--out", args.out],
        ["filter", "--docs", args.out, "--out", args.out],
        [
            "release",
            "--docs",
            args.out,
            "--out",
            args.out,
            "--val-fraction",
            "0.2",
            "--tokenizer",
            "train:2000",
        ],
        ["verify", args.out],
    ]
    print(f"demo: links -> fetch (the sample WARC) -> extract -> dedup -> filter -> release on {sample}\n")
    for step in steps:
        step_args = build_parser().parse_args(step)
        code = step_args.handler(step_args, beam_args)
        if code:
            return code
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webtext", allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show Beam's own logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    adders = (
        add_links_parser,
        add_reddit_parser,
        add_fetch_parser,
        add_extract_parser,
        add_dedup_parser,
        add_filter_parser,
        add_release_parser,
        add_verify_parser,
        add_demo_parser,
    )
    for add in adders:
        add(sub)
    return parser


def configure_logging(verbose: bool) -> None:
    """Our progress lines at INFO; Beam (which logs through the root logger too) only when verbose."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for name in ("webtext", "pipelines", "corpus"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not verbose:
        # Beam logs a traceback for every failed bundle before raising (the CLI reports the cause itself),
        # and some of its modules log through the root logger.
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: "apache_beam" not in record.pathname)


BEAM_HYPHENATED = {"--job-server-timeout"}
_BEAM_SUFFIX = re.compile(r" \[while running '[^']*'\]")
_WRAPPED_INPUT_ERROR = re.compile(r"(?:DumpError|InputError|RedditCredentialsError): (.+)")


def user_error(exc: BaseException) -> str | None:
    """The one-line message of an input error, also when Beam re-raised it from a worker as text."""
    if isinstance(exc, InputError):
        return _BEAM_SUFFIX.sub("", str(exc)).strip()
    match = _WRAPPED_INPUT_ERROR.search(str(exc))
    return _BEAM_SUFFIX.sub("", match.group(1)).strip() if match else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Beam's options are spelt with underscores, so a hyphenated flag nobody knows is a typo of ours:
    # refuse it rather than let Beam discard it with a warning.
    typos = [
        a for a in extra if a.startswith("--") and "-" in a[2:].split("=")[0] and a not in BEAM_HYPHENATED
    ]
    if typos:
        parser.error(f"unrecognized arguments: {' '.join(typos)}")
    configure_logging(args.verbose)
    handler: Callable[[argparse.Namespace, list[str]], int] = args.handler
    try:
        return handler(args, extra)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: input errors become one line
        message = user_error(exc)
        if message is None:
            raise
        print(f"webtext {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
