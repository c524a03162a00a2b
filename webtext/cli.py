"""`webtext`: one console script for every stage (docs/design.md fixes the verbs).

Beam stages take their own flags first; everything argparse does not recognise is handed to Beam as
pipeline options (`--runner`, `--direct_num_workers`, `--temp_location`, ...). Bad input ends the
command with one line on stderr naming the file and the problem, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import re
import sys
from collections.abc import Callable
from importlib import resources
from typing import NoReturn

from corpus.errors import InputError, interrupted
from pipelines.build import add_build_parser
from pipelines.cli_ngrams import add_ngrams_parser, add_overlap_parser
from pipelines.cli_stages import (
    add_dedup_parser,
    add_extract_parser,
    add_fetch_parser,
    add_filter_parser,
    add_release_parser,
    add_verify_parser,
)
from pipelines.commands import log, positive_int, run_and_report
from training.cli import add_export_parser, add_train_parser
from training.cli_eval import add_eval_parser
from training.cli_finetune import add_finetune_parser

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
    p.add_argument("--out", required=True, metavar="DIR", help="work directory; writes DIR/links")
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
    from pipelines.links import LinksOptions, run_links
    from pipelines.outputs import DEFAULT_INPUT_BYTES_PER_SHARD, match_files, shards_for_input
    from pipelines.summary import links_summary

    dumps = sorted({path for pattern in args.dumps for path in match_files(pattern)})
    if not dumps:
        raise InputError(f"no dump files match {' '.join(args.dumps)}")
    num_shards = args.num_shards or shards_for_input(dumps, DEFAULT_INPUT_BYTES_PER_SHARD)
    options = LinksOptions(dumps, links_config(args), num_shards, args.splits_per_file, args.max_line_bytes)
    log.info("links: %d dump file(s) -> %s", len(dumps), args.out)
    return run_and_report("links", lambda: run_links(options, args.out, beam_args), links_summary, args.out)


def add_reddit_parser(sub) -> None:
    from corpus.reddit_api import LISTINGS, TIME_FILTERS

    p = sub.add_parser(
        "reddit", allow_abbrev=False, help="harvest live Reddit listings (praw) into a Pushshift-format dump"
    )
    p.add_argument("--subreddit", action="append", required=True, help="subreddit name; repeatable")
    p.add_argument("--listing", action="append", choices=LISTINGS, help="listing(s) to read (default: new)")
    p.add_argument("--time-filter", default="all", choices=TIME_FILTERS, help="for top and controversial")
    p.add_argument(
        "--limit", type=positive_int, default=1000, help="submissions per listing (Reddit caps at 1000)"
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


def run_reddit_command(args: argparse.Namespace, _beam_args: list[str]) -> int:
    from corpus.reddit_api import harvest, make_reddit, write_jsonl

    overrides = {"reddit_url": args.api_url, "oauth_url": args.api_url} if args.api_url else {}
    reddit = make_reddit(args.site, **overrides)
    records = harvest(reddit, args.subreddit, args.listing or ["new"], args.time_filter, args.limit)
    count = write_jsonl(records, args.out)
    print(f"reddit: wrote {count} submissions from {len(args.subreddit)} subreddit(s) to {args.out}")
    return 0


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", allow_abbrev=False, help="run the chain built so far on the embedded sample")
    p.add_argument("--out", default="build/demo", metavar="DIR")
    p.add_argument("--train-steps", type=positive_int, default=300, help="steps of the tiny model")
    p.set_defaults(handler=run_demo_command)


def run_step(argv: list[str], beam_args: list[str]) -> int:
    """Run one `webtext` command line in this process (build and demo chain stages this way)."""
    step_args = build_parser().parse_args(argv)
    return step_args.handler(step_args, beam_args)


def run_demo_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    """build (links .. ngrams on the sample, its WARC instead of the network) -> verify -> overlap of the
    bundled evaluation samples -> train the tiny model on the release -> zero-shot evaluation of it ->
    GPT-1-style fine-tuning on an SST-2 sample."""
    sample = resources.files("corpus") / "sample"
    out = args.out
    steps = [
        [
            "build",
            "--dumps",
            f"{sample}/reddit/*",
            "--from-warc",
            f"{sample}/warc/*.warc.gz",
            "--out",
            out,
            "--stage-flags",
            "release=--val-fraction 0.2 --tokenizer train:2000",
            "--force",  # the demo shows every stage; `webtext build` alone skips complete ones
        ],
        ["verify", out],
        [
            "overlap",
            "--release",
            out,
            "--eval",
            f"lambada={sample}/eval/lambada_test.first200.jsonl",
            "--eval",
            f"webtext={sample}/eval/webtext.test.first200.jsonl",
            "--out",
            f"{out}/overlap",
        ],
        [
            "train",
            "--data",
            f"{out}/release",
            "--out",
            f"{out}/train",
            "--preset",
            "tiny",
            "--max-steps",
            str(args.train_steps),
            "--warmup-steps",
            "30",
            "--log-every",
            "50",
            "--eval-every",
            "100",
            "--save-every",
            "100",
        ],
        [
            "eval",
            "--checkpoint",
            f"{out}/train",
            "--task",
            f"lambada={sample}/zero_shot/lambada_test.first100.jsonl",
            "--task",
            f"wikitext2={sample}/zero_shot/wikitext-2_tokens.test.first116.txt",
            "--task",
            f"ptb={sample}/zero_shot/ptb.test.first200.txt",
            "--task",
            f"storycloze:cloze={sample}/zero_shot/storycloze_val.first50.jsonl",
            "--detokenize",
            "--out",
            f"{out}/eval",
        ],
        [
            "finetune",
            "--checkpoint",
            f"{out}/train",
            "--task",
            "classification",
            "--dev",
            f"{sample}/finetune/sst2_dev.first40.tsv",
            "--batch-size",
            "8",
            "--out",
            f"{out}/finetune",
        ],
    ]
    print(f"demo: build (links .. ngrams) -> verify -> overlap -> train -> eval -> finetune, on {sample}\n")
    for step in steps:
        code = run_step(step, [] if step[0] in NO_BEAM_OPTIONS else beam_args)
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
        add_ngrams_parser,
        add_overlap_parser,
        add_build_parser,
        add_train_parser,
        add_export_parser,
        add_eval_parser,
        add_finetune_parser,
        add_demo_parser,
    )
    for add in adders:
        add(sub)
    for verb_parser in sub.choices.values():
        verb_parser.set_defaults(parser=verb_parser)  # errors print the verb's usage, not the top level
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


_BEAM_SUFFIX = re.compile(r" \[while running '[^']*'\]")
_WRAPPED_INPUT_ERROR = re.compile(r"(?:DumpError|InputError|RedditCredentialsError): (.+)")
# Verbs that run no Beam pipeline: every argument they do not know is an error (refused here, once, before
# any handler runs). The training verbs also end the process normally (see `run`).
TRAINING_VERBS = {"train", "export", "eval", "finetune"}
NO_BEAM_OPTIONS = {"reddit", "verify", "overlap", *TRAINING_VERBS}
RESUME_HINTS = {
    "stage": "nothing was published; run the same command again",
    "build": "run the same command again: complete stages are kept, the interrupted one starts over",
    "demo": "run it again to start over",
}


def user_error(exc: BaseException) -> str | None:
    """The one-line message of an input error, also when Beam re-raised it from a worker as text."""
    if isinstance(exc, InputError):
        return _BEAM_SUFFIX.sub("", str(exc)).strip()
    match = _WRAPPED_INPUT_ERROR.search(str(exc))
    return _BEAM_SUFFIX.sub("", match.group(1)).strip() if match else None


def unknown_beam_options(args: list[str]) -> list[str]:
    """The arguments that no registered Beam `PipelineOptions` class declares (Beam itself would only log
    and discard them, so a misspelt or misplaced flag would silently change nothing)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    pending = [PipelineOptions]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # A subclass re-declaring its parent's option raises; that option is known already.
        with contextlib.suppress(argparse.ArgumentError):
            cls._add_argparse_args(parser)  # the one way Beam exposes its option names
    return parser.parse_known_args(args)[1]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    configure_logging(args.verbose)
    unknown = extra if args.command in NO_BEAM_OPTIONS else unknown_beam_options(extra)
    if unknown:
        args.parser.error(
            f"unrecognized arguments: {' '.join(unknown)} (not a flag of {args.command}, nor a Beam option)"
        )
    handler: Callable[[argparse.Namespace, list[str]], int] = args.handler
    try:
        return handler(args, extra)
    except KeyboardInterrupt:
        return interrupted(args.command, RESUME_HINTS.get(args.command, RESUME_HINTS["stage"]))
    except Exception as exc:  # the CLI boundary: input errors become one line
        message = user_error(exc)
        if message is None:
            raise
        print(f"webtext {args.command}: error: {message}", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The console script. A Beam verb's work is done and its summary printed when `main` returns; the
    process then ends without interpreter teardown. Native thread pools that Beam and Arrow start (Arrow's
    Parquet reader threads, gRPC's) are not joined at teardown, and one still alive when its C++ runtime
    is destroyed aborts the process ("terminate called without an active exception", exit -6) after a
    successful run. Collecting garbage first releases every Arrow reader while Arrow is alive; `os._exit`
    then skips the teardown itself. Training verbs exit normally: their loader workers and process
    groups are cleaned up by their own exit handlers."""
    argv = sys.argv[1:]
    code = main(argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb in TRAINING_VERBS:
        sys.exit(code)
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
