"""`webtext reddit`: live Reddit listings (praw) -> a Pushshift-format dump that `webtext links` reads."""

from __future__ import annotations

import argparse
import os

from corpus.command_line import positive_int


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
