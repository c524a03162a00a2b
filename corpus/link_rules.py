"""WebText's link rules: which Reddit submissions give an outbound link, and how links aggregate.

Submission-level rules (date window, self posts, NSFW, URL validity, blocklists, Wikipedia) run on each
submission; the karma rule runs on the aggregate of all submissions of one canonical URL, because under
`--karma-rule sum` (OpenWebText2) no single submission decides. GPT-2 kept links with >= 3 karma; under
`per-submission` (the default) a URL qualifies when one of its submissions scored at least `min_karma`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import NamedTuple

import pyarrow as pa

from corpus.hashing import file_sha256
from corpus.submissions import Submission
from corpus.urls import (
    InvalidURL,
    UnsupportedScheme,
    canonicalize_url,
    domain_of,
    host_in,
    host_of,
    path_extension,
    without_userinfo,
)

# Drop reasons of the submission-level rules, in the order they are checked.
DATE_TOO_EARLY = "date_too_early"
DATE_TOO_LATE = "date_too_late"
SELF_POST = "self_post"
NSFW = "nsfw"
BAD_SCHEME = "bad_scheme"
INVALID_URL = "invalid_url"
WIKIPEDIA = "wikipedia"
BLOCKED_DOMAIN = "blocked_domain"
BLOCKED_EXTENSION = "blocked_extension"
# A crosspost whose url is its parent's permalink (v.redd.it media stay blocked_domain).
CROSSPOST = "crosspost"
_REDDIT = frozenset({"reddit.com"})
# Drop reasons decided on the aggregate of one URL.
LOW_KARMA = "low_karma"
DUPLICATE_SUBMISSION = "duplicate_submission"

KARMA_RULES = ("per-submission", "sum")


def read_list(path: str) -> frozenset[str]:
    """A list file: one lower-cased entry per line, `#` comments and blank lines ignored."""
    with open(path, encoding="utf-8") as handle:
        entries = (line.split("#", 1)[0].strip().lower() for line in handle)
        return frozenset(entry for entry in entries if entry)


def packaged_list(name: str) -> str:
    """Path of a list file shipped in corpus/data."""
    return str(resources.files("corpus") / "data" / name)


def list_name(path: str) -> str:
    """How a list is named in stats and manifests: `corpus/data/NAME` for a packaged list (the same in every
    checkout and install of one version), else the path as given."""
    packaged = resources.files("corpus") / "data"
    if os.path.dirname(os.path.abspath(path)) == os.path.abspath(str(packaged)):
        return f"corpus/data/{os.path.basename(path)}"
    return path


def parse_date(text: str) -> int:
    """`YYYY-MM-DD` or an ISO datetime (UTC unless it says otherwise) to epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date: {text!r} (expected YYYY-MM-DD or an ISO 8601 datetime)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@dataclass(frozen=True)
class LinkConfig:
    min_karma: int = 3
    karma_rule: str = "per-submission"
    after: int | None = None  # inclusive, epoch seconds
    before: int | None = None  # exclusive, epoch seconds
    keep_nsfw: bool = False
    domain_blocklist: str = field(default_factory=lambda: packaged_list("blocked_domains.txt"))
    extension_blocklist: str = field(default_factory=lambda: packaged_list("blocked_extensions.txt"))
    wikipedia_domains: str = field(default_factory=lambda: packaged_list("wikipedia_domains.txt"))

    def __post_init__(self) -> None:
        if self.karma_rule not in KARMA_RULES:
            raise ValueError(f"karma rule must be one of {KARMA_RULES}, got {self.karma_rule!r}")

    def describe(self) -> dict:
        """The config as it goes into stats.json and the release manifest (lists identified by hash)."""
        lists = {
            name: {"path": list_name(path), "sha256": file_sha256(path).sha256}
            for name, path in (
                ("domain_blocklist", self.domain_blocklist),
                ("extension_blocklist", self.extension_blocklist),
                ("wikipedia_domains", self.wikipedia_domains),
            )
        }
        return {
            "min_karma": self.min_karma,
            "karma_rule": self.karma_rule,
            "after": self.after,
            "before": self.before,
            "keep_nsfw": self.keep_nsfw,
            **lists,
        }


class Contribution(NamedTuple):
    """What one accepted submission brings to its canonical URL."""

    submission_id: str
    score: int
    created_utc: int
    subreddit: str
    posted_url: str


class Dropped(NamedTuple):
    reason: str
    detail: str


class LinkRules:
    """The submission-level rules with their lists loaded once."""

    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        self.blocked_domains = read_list(config.domain_blocklist)
        self.blocked_extensions = read_list(config.extension_blocklist)
        self.wikipedia_domains = read_list(config.wikipedia_domains)

    def apply(self, sub: Submission) -> tuple[str, Contribution] | Dropped:
        """(canonical URL, contribution) for a submission that passes, else why it was dropped."""
        cfg = self.config
        if cfg.after is not None and sub.created_utc < cfg.after:
            return Dropped(DATE_TOO_EARLY, f"created_utc={sub.created_utc} < after={cfg.after}")
        if cfg.before is not None and sub.created_utc >= cfg.before:
            return Dropped(DATE_TOO_LATE, f"created_utc={sub.created_utc} >= before={cfg.before}")
        if sub.is_self:
            return Dropped(SELF_POST, without_userinfo(sub.url)[:200])
        if sub.over_18 and not cfg.keep_nsfw:
            return Dropped(NSFW, without_userinfo(sub.url)[:200])
        try:
            url = canonicalize_url(without_userinfo(sub.url))  # no credentials in any ledger detail
        except UnsupportedScheme as err:
            if sub.crosspost_parent:  # a relative /r/... permalink to the parent post
                return Dropped(CROSSPOST, f"of {sub.crosspost_parent}: {sub.url[:200]}")
            return Dropped(BAD_SCHEME, str(err)[:200])
        except InvalidURL as err:
            return Dropped(INVALID_URL, str(err)[:200])
        host = host_of(url)
        if matched := host_in(host, self.wikipedia_domains):
            return Dropped(WIKIPEDIA, f"{host} ({matched})")
        if matched := host_in(host, self.blocked_domains):
            if sub.crosspost_parent and (host == "redd.it" or host_in(host, _REDDIT)):  # a permalink
                return Dropped(CROSSPOST, f"of {sub.crosspost_parent}: {url[:200]}")
            return Dropped(BLOCKED_DOMAIN, f"{host} ({matched})")
        if (extension := path_extension(url)) in self.blocked_extensions:
            return Dropped(BLOCKED_EXTENSION, f".{extension}: {url[:200]}")
        return url, Contribution(sub.id, sub.score, sub.created_utc, sub.subreddit, without_userinfo(sub.url))


# Aggregation per canonical URL. The accumulator maps submission id -> (contribution, times seen):
# the same submission in two dumps (re-crawls overlap) must count once.
Accumulator = dict[str, tuple[Contribution, int]]


def accumulate(acc: Accumulator, contribution: Contribution) -> Accumulator:
    seen = acc.get(contribution.submission_id)
    if seen is None:
        acc[contribution.submission_id] = (contribution, 1)
    else:
        # Keep the higher score (a later re-crawl): the same result whatever order batches arrive in.
        acc[contribution.submission_id] = (max(seen[0], contribution), seen[1] + 1)
    return acc


LINKS_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("karma", pa.int64(), nullable=False),
        pa.field("max_score", pa.int64(), nullable=False),
        pa.field("sum_score", pa.int64(), nullable=False),
        pa.field("num_submissions", pa.int64(), nullable=False),
        pa.field("submission_ids", pa.list_(pa.string()), nullable=False),
        pa.field("subreddits", pa.list_(pa.string()), nullable=False),
        pa.field("first_created_utc", pa.int64(), nullable=False),
        pa.field("last_created_utc", pa.int64(), nullable=False),
        pa.field("posted_urls", pa.list_(pa.string()), nullable=False),
    ]
)


@dataclass(frozen=True)
class LinkDecision:
    """The aggregate of one URL: its row if it qualifies, and ledger entries for what it drops."""

    row: dict | None
    drops: list[tuple[str, str, str]]  # (submission id, reason, detail)


def decide_link(url: str, acc: Accumulator, config: LinkConfig) -> LinkDecision:
    contributions = sorted(contribution for contribution, _ in acc.values())
    scores = [c.score for c in contributions]
    karma = max(scores) if config.karma_rule == "per-submission" else sum(scores)
    drops = [
        (sub_id, DUPLICATE_SUBMISSION, f"seen {times} times; counted once for {url[:200]}")
        for sub_id, (_, times) in sorted(acc.items())
        for _ in range(times - 1)
    ]
    if karma < config.min_karma:
        detail = f"karma {karma} < {config.min_karma} ({config.karma_rule}) for {url[:200]}"
        drops += [(c.submission_id, LOW_KARMA, detail) for c in contributions]
        return LinkDecision(None, drops)
    created = [c.created_utc for c in contributions]
    row = {
        "url": url,
        "domain": domain_of(url),
        "karma": karma,
        "max_score": max(scores),
        "sum_score": sum(scores),
        "num_submissions": len(contributions),
        "submission_ids": sorted(c.submission_id for c in contributions),
        "subreddits": sorted({c.subreddit for c in contributions if c.subreddit}),  # "" = not known
        "first_created_utc": min(created),
        "last_created_utc": max(created),
        "posted_urls": sorted({c.posted_url for c in contributions}),
    }
    return LinkDecision(row, drops)
