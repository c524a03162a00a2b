"""`webtext fetch | extract | dedup | filter | release | verify`: the commands after the links stage."""

from __future__ import annotations

import argparse
import sys

from corpus.errors import InputError
from pipelines.commands import docs_table, log, positive_int, run_and_report


def add_fetch_parser(sub) -> None:
    from corpus.fetcher import FetchConfig

    d = FetchConfig()
    p = sub.add_parser("fetch", allow_abbrev=False, help="links -> WARC files + fetch index (Beam)")
    p.add_argument(
        "--links", required=True, metavar="DIR", help="work directory (or its links/) of a links run"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/fetch")
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
    p.add_argument("--max-bytes", type=positive_int, default=d.max_bytes, help="body cap (default 5 MB)")
    p.add_argument("--connect-timeout", type=float, default=d.connect_timeout)
    p.add_argument("--read-timeout", type=float, default=d.read_timeout)
    p.add_argument("--max-seconds", type=float, default=d.max_seconds, help="wall-clock cap per URL")
    p.add_argument("--max-retries", type=int, default=d.max_retries, help="on 429, 5xx and connection errors")
    p.add_argument("--concurrency", type=positive_int, default=16, help="fetching threads per worker")
    p.add_argument(
        "--buckets",
        type=positive_int,
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
    p.add_argument("--num-shards", type=positive_int, help="index files (default: one per million links)")
    p.set_defaults(handler=run_fetch_command)


def run_fetch_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from corpus.fetcher import FetchConfig
    from pipelines.fetch import FetchLinks, FetchOptions, run_fetch
    from pipelines.fetch_archive import ArchiveOptions, FetchFromArchives
    from pipelines.outputs import find_stage_output, match_files, parquet_rows, shards_for_rows, stage_output
    from pipelines.summary import fetch_summary

    links = stage_output(args.links, "links").join("part-*.parquet")
    count = parquet_rows(links)
    num_shards = args.num_shards or shards_for_rows(count, 1_000_000)
    if args.from_warc:
        archives = sorted({path for pattern in args.from_warc for path in match_files(pattern)})
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
        previous = find_stage_output(args.out, "fetch")
        options = FetchOptions(
            links,
            config,
            args.concurrency,
            args.buckets,
            num_shards,
            previous.join("index-*.parquet") if previous else None,
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
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/extract")
    p.add_argument("--min-words", type=int, help="drop documents with fewer words (reason too_short)")
    p.add_argument("--timeout", type=float, help="seconds per document before extract_timeout")
    p.add_argument("--num-shards", type=positive_int, help="docs files (default: one per 100,000 pages)")
    p.set_defaults(handler=run_extract_command)


def run_extract_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    import dataclasses

    from corpus.extract import ExtractConfig
    from pipelines.extract import ExtractOptions, run_extract
    from pipelines.outputs import parquet_rows, shards_for_rows, stage_output
    from pipelines.summary import extract_summary

    fetch = stage_output(args.fetch, "fetch")
    index = fetch.join("index-*.parquet")
    count = parquet_rows(index)
    changes = {"min_words": args.min_words, "timeout_seconds": args.timeout}
    config = dataclasses.replace(ExtractConfig(), **{k: v for k, v in changes.items() if v is not None})
    options = ExtractOptions(
        index, fetch.work_dir, config, num_shards=args.num_shards or shards_for_rows(count, 100_000)
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
        "--docs", required=True, metavar="DIR", help="work directory (or its extract/) of an extract run"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/dedup")
    p.add_argument("--threshold", type=float, default=0.8, help="Jaccard similarity of near duplicates")
    p.add_argument("--num-perm", type=positive_int, default=128, help="MinHash permutations")
    p.add_argument("--shingle", type=positive_int, default=5, help="words per shingle")
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=10,
        help="connected-components rounds (each halves the longest chain left)",
    )
    p.add_argument("--num-shards", type=positive_int, help="docs files (default: one per 100,000 documents)")
    p.set_defaults(handler=run_dedup_command)


def run_dedup_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from corpus.minhash import MinHashConfig
    from pipelines.dedup import DedupOptions, run_dedup
    from pipelines.outputs import shards_for_rows
    from pipelines.summary import dedup_summary

    if not 0 < args.threshold <= 1:
        raise InputError(f"--threshold must be in (0, 1], got {args.threshold}")
    _, docs, count = docs_table(args.docs, ("extract",))
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
        help="work directory: its dedup/ output when present, else extract/",
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
    p.add_argument(
        "--decontaminate",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="drop documents sharing an n-gram with this evaluation file (text or jsonl); repeatable",
    )
    p.add_argument(
        "--decontam-n",
        type=positive_int,
        default=13,
        metavar="N",
        help="words per n-gram of --decontaminate (GPT-3: 13)",
    )
    for name in d.__dataclass_fields__:
        value = getattr(d, name)
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(value),
            default=value,
            help=f"quality rule (default {value}; see docs/stages/filter.md)",
        )
    p.add_argument("--num-shards", type=positive_int, help="docs files (default: one per 100,000 documents)")
    p.set_defaults(handler=run_filter_command)


def run_filter_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from corpus.link_rules import read_list
    from corpus.quality import QualityConfig
    from corpus.wikipedia import WikipediaReference
    from pipelines.filter import FilterOptions, run_filter
    from pipelines.outputs import shards_for_rows
    from pipelines.summary import filter_summary

    _, docs, count = docs_table(args.docs, ("dedup", "extract"))
    quality = QualityConfig(**{name: getattr(args, name) for name in QualityConfig.__dataclass_fields__})
    reference = None
    if args.wikipedia_reference:
        try:
            reference = WikipediaReference.from_file(args.wikipedia_reference)
        except OSError as err:
            raise InputError(
                f"{args.wikipedia_reference}: cannot read the Wikipedia reference ({err.strerror})"
            ) from None
    decontaminate = None
    if args.decontaminate:
        from corpus.overlap import EvalNgrams
        from pipelines.cli_ngrams import named

        paths = dict(named(text, "--decontaminate") for text in args.decontaminate)
        if len(paths) != len(args.decontaminate):
            raise InputError(f"--decontaminate names must be distinct: {' '.join(args.decontaminate)}")
        decontaminate = EvalNgrams.from_files(paths, args.decontam_n)
    options = FilterOptions(
        docs,
        quality,
        reference,
        wikipedia_overlap=args.wikipedia_overlap,
        wikipedia_domains=read_list(args.wikipedia_domains) if args.wikipedia_domains else None,
        decontaminate=decontaminate,
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
        help="work directory: its filter/ output when present, else dedup/, else extract/",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/release")
    p.add_argument(
        "--tokenizer",
        default="train:50257",
        metavar="SPEC",
        help="train:VOCAB (byte-level BPE trained on the train split) or gpt2:DIR (encoder.json + vocab.bpe)",
    )
    p.add_argument("--val-fraction", type=float, default=0.005, help="share of documents in the val split")
    p.add_argument("--shard-bytes", type=positive_int, default=256 * 10**6, help="target shard size")
    p.add_argument("--shard-docs", type=positive_int, help="documents per shard (instead of --shard-bytes)")
    p.add_argument(
        "--allow-empty", action="store_true", help="make a release of no documents instead of refusing to"
    )
    p.set_defaults(handler=run_release_command)


def run_release_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from corpus.tokenizer import gpt2_tokenizer, parse_spec, train_tokenizer
    from pipelines.release import ReleaseOptions, run_release, split_of, stage_stats, train_texts
    from pipelines.summary import release_summary

    source, docs, count = docs_table(args.docs, ("filter", "dedup", "extract"))
    if not count and not args.allow_empty:
        raise InputError(
            f"{source.path}: no documents to release; an empty release needs --allow-empty "
            '(webtext build: --stage-flags release="--allow-empty")'
        )
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
        stage_stats(source.work_dir),
        args.allow_empty,
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


def run_verify_command(args: argparse.Namespace, _beam_args: list[str]) -> int:
    import json
    from pathlib import Path

    from corpus.shards import numbering_problems, verify_release
    from pipelines.outputs import stage_output

    directory = Path(stage_output(args.release, "release").path)
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{directory / 'manifest.json'}: cannot read the manifest ({err})") from None
    problems = verify_release(str(directory), manifest) or numbering_problems(manifest) or _empty(manifest)
    for problem in problems:
        print(f"verify: {problem}", file=sys.stderr)
    if problems:
        return 1
    shards = [shard for split in manifest["splits"].values() for shard in split]
    print(
        f"verify: ok: {len(shards)} shards, {sum(s['docs'] for s in shards)} documents, "
        f"{sum(s['tokens'] for s in shards)} tokens match {directory / 'manifest.json'}"
    )
    return 0


def _empty(manifest: dict) -> list[str]:
    """A release without documents is a mistake unless it was made with --allow-empty."""
    docs = sum(shard["docs"] for split in manifest["splits"].values() for shard in split)
    if docs or manifest.get("config", {}).get("release", {}).get("allow_empty"):
        return []
    return ["manifest: the release holds no documents (webtext release --allow-empty makes one on purpose)"]
