"""`webtext fetch`: links -> WARC files + fetch index, over the network (transform.py) or from existing
archives with --from-warc (archive.py)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from corpus.command_line import positive_int
from corpus.errors import InputError
from corpus.fetcher import FetchConfig
from pipelines.stage import Stage, StageResult, by_count, column_counts


@dataclass(frozen=True)
class FetchPlan:
    """What one fetch run does: its transform's options, and how many links it reads."""

    options: object  # network.FetchOptions or archive.ArchiveOptions
    links: int
    archives: int = 0  # archive files read with --from-warc (0: the network)


class FetchStage(Stage):
    name = "fetch"
    help = "links -> WARC files + fetch index (Beam)"
    transform_name = "Fetch"  # --from-warc: FetchFromArchives (archive.py)
    reads = ("links",)

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        d = FetchConfig()
        p = parser
        p.add_argument(
            "--links", required=True, metavar="DIR", help="work directory (or its links/) of a links run"
        )
        p.add_argument(
            "--from-warc",
            action="append",
            metavar="GLOB",
            help="read responses from existing WARC/ARC files instead of the network; repeatable",
        )
        p.add_argument(
            "--per-host-delay",
            type=float,
            default=d.per_host_delay,
            help="seconds between requests to a host",
        )
        p.add_argument("--ignore-robots", action="store_true", help="do not fetch or honour robots.txt")
        p.add_argument("--user-agent", default=d.user_agent)
        p.add_argument("--max-bytes", type=positive_int, default=d.max_bytes, help="body cap (default 5 MB)")
        p.add_argument("--connect-timeout", type=float, default=d.connect_timeout)
        p.add_argument("--read-timeout", type=float, default=d.read_timeout)
        p.add_argument("--max-seconds", type=float, default=d.max_seconds, help="wall-clock cap per URL")
        p.add_argument(
            "--max-retries", type=int, default=d.max_retries, help="on 429, 5xx and connection errors"
        )
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

    def options(self, args: argparse.Namespace) -> FetchPlan:
        from pipelines.files import match_files
        from pipelines.outputs import parquet_rows, shards_for_rows, stage_output

        links = stage_output(args.links, *self.reads).join("part-*.parquet")
        count = parquet_rows(links)
        num_shards = args.num_shards or shards_for_rows(count, 1_000_000)
        if args.from_warc:
            from pipelines.fetch.archive import ArchiveOptions

            archives = sorted({path for pattern in args.from_warc for path in match_files(pattern)})
            if not archives:
                raise InputError(f"no archives match {' '.join(args.from_warc)}")
            return FetchPlan(ArchiveOptions(links, archives, num_shards=num_shards), count, len(archives))
        return FetchPlan(self._network_options(args, links, num_shards), count)

    def _network_options(self, args: argparse.Namespace, links: str, num_shards: int):
        from pipelines.fetch.transform import FetchOptions
        from pipelines.outputs import find_stage_output

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
        previous = find_stage_output(args.out, self.name)  # a rerun resumes: terminal outcomes carry over
        return FetchOptions(
            links,
            config,
            args.concurrency,
            args.buckets,
            num_shards,
            previous.join("index-*.parquet") if previous else None,
        )

    def describe(self, options: FetchPlan, out_dir: str) -> str:
        if options.archives:
            return f"fetch: {options.links} links from {options.archives} archive(s) -> {out_dir}"
        resuming = " (resuming)" if options.options.previous_index else ""
        return f"fetch: {options.links} links over the network -> {out_dir}{resuming}"

    def transform(self, options: FetchPlan, output):
        if options.archives:
            from pipelines.fetch.archive import FetchFromArchives

            return FetchFromArchives(options.options, output)
        return super().transform(options.options, output)

    def keep(self, options: FetchPlan) -> tuple[str, ...]:
        """A network fetch keeps the earlier WARC files: the rows it carries over still point into them."""
        return () if options.archives else ("*.warc.gz",)

    def summary(self, result: StageResult) -> str:
        from pipelines.outputs import read_table

        output = result.output
        index = read_table(output.join("index-*.parquet"), ["outcome"])
        return "\n".join(
            [
                f"fetch: {result.items_in} links, {result.items_out} pages ok",
                "  outcomes:",
                *by_count(column_counts(index, "outcome")),
                f"  outputs: {output.path}/: index-*.parquet, *.warc.gz, ledger/fetch-*.parquet, stats.json",
            ]
        )


STAGE = FetchStage()
