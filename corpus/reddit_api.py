"""Live Reddit through praw, written out in the Pushshift submission-dump format (one JSON object a line).

Credentials come from praw's usual places: a praw.ini site and the praw_* environment variables
(praw_client_id, praw_client_secret, praw_user_agent, ...). They are never logged or put in messages.
"""

from __future__ import annotations

import configparser
import contextlib
import gzip
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import IO, Any

import praw
import zstandard
from praw.config import Config
from praw.models.base import PRAWBase
from prawcore.exceptions import BadJSON, PrawcoreException, RequestException, ResponseException

from corpus.errors import InputError

log = logging.getLogger(__name__)

LISTINGS = ("new", "top", "hot", "rising", "controversial")
TIME_FILTERS = ("all", "year", "month", "week", "day", "hour")
REQUIRED_SETTINGS = ("client_id", "client_secret", "user_agent")
# Attributes praw sets on a Submission itself; they are not API fields.
PRAW_LOCAL_FIELDS = frozenset({"comment_limit", "comment_sort"})
ZSTD_LEVEL = 10
# A page that fails with a connection error, a timeout, 5xx or 429 is asked for again after 2, 4, 8 s (on top
# of prawcore's own two quick retries); a listing resumes at the page that failed.
RETRIES = 3
BACKOFF_SECONDS = 2.0


class RedditCredentialsError(InputError):
    """Reddit API credentials are missing or were rejected."""


class RedditAPIError(InputError):
    """Reddit's API cannot be reached, or answered with an error, even after retries; says which."""


def make_reddit(site: str = "DEFAULT", **overrides: str) -> praw.Reddit:
    """praw.Reddit from praw.ini site + environment (praw_client_id, praw_client_secret, praw_user_agent
    and praw's other praw_* variables); overrides (e.g. reddit_url, oauth_url for a local server) win.
    check_for_updates is always off. Missing credentials -> RedditCredentialsError naming what to set."""
    settings: dict[str, Any] = {**overrides, "check_for_updates": False}
    try:
        config = Config(site, **settings)
    except configparser.NoSectionError:
        raise RedditCredentialsError(f"praw.ini has no [{site}] section") from None
    missing = [key for key in REQUIRED_SETTINGS if not _is_set(getattr(config, key))]
    if missing:
        variables = ", ".join(f"praw_{key}" for key in missing)
        raise RedditCredentialsError(
            f"Reddit API credentials missing: set {variables} in the environment "
            f"(or {', '.join(missing)} in the [{site}] section of praw.ini)"
        )
    return praw.Reddit(site_name=site, **settings)


def _is_set(value: object) -> bool:
    return value is not None and value is not Config.CONFIG_NOT_SET and value != ""


def to_pushshift(submission: Any, retrieved_on: int | None = None) -> dict:
    """Pushshift-format dict from a praw Submission: its raw API fields with praw objects turned into
    plain JSON values (subreddit and author become names, a deleted author "[deleted]"), created_utc
    as int, plus retrieved_on (int epoch seconds, given or now)."""
    # vars() rather than getattr: touching a missing attribute makes praw fetch it over the network.
    fields = {
        key: value
        for key, value in vars(submission).items()
        if not key.startswith("_") and key not in PRAW_LOCAL_FIELDS
    }
    record = {key: _plain(value) for key, value in fields.items()}
    if fields.get("author") is None:
        record["author"] = "[deleted]"
    record["created_utc"] = int(record["created_utc"])
    record["retrieved_on"] = int(time.time()) if retrieved_on is None else int(retrieved_on)
    return record


def _plain(value: Any) -> Any:
    """A JSON value for an attribute praw may have turned into an object."""
    if isinstance(value, praw.models.Redditor):
        return value.name
    if isinstance(value, praw.models.Subreddit):
        return value.display_name
    if isinstance(value, PRAWBase):
        return {k: _plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def check_listings(listings: list[str], time_filter: str) -> None:
    """ValueError naming the allowed values when a listing or the time filter is unknown."""
    unknown = [name for name in listings if name not in LISTINGS]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ValueError(f"unknown listing(s) {names}; choose from {', '.join(LISTINGS)}")
    if time_filter not in TIME_FILTERS:
        raise ValueError(f"unknown time filter {time_filter!r}; choose from {', '.join(TIME_FILTERS)}")


def _listing(subreddit: Any, name: str, time_filter: str, limit: int | None) -> Iterator[Any]:
    if name in ("top", "controversial"):
        return getattr(subreddit, name)(time_filter=time_filter, limit=limit)
    return getattr(subreddit, name)(limit=limit)


def harvest(
    reddit: praw.Reddit,
    subreddits: list[str],
    listings: list[str],
    time_filter: str = "all",
    limit: int | None = 1000,
    retrieved_on: int | None = None,
) -> list[dict]:
    """All submissions of each subreddit's listings (top and controversial use time_filter), at most
    limit per listing, de-duplicated by id (first seen wins), sorted by (created_utc, id)."""
    check_listings(listings, time_filter)
    retrieved_on = int(time.time()) if retrieved_on is None else retrieved_on
    by_id: dict[str, dict] = {}
    for name in subreddits:
        subreddit = reddit.subreddit(name)
        for listing in listings:
            where = f"r/{name}/{listing}"
            submissions = iter(_listing(subreddit, listing, time_filter, limit))
            count = 0
            while (submission := _next_page_item(submissions, where, reddit.config.oauth_url)) is not None:
                count += 1
                if submission.id not in by_id:
                    by_id[submission.id] = to_pushshift(submission, retrieved_on)
            log.info("%s: %d submissions", where, count)
    return sorted(by_id.values(), key=lambda record: (record["created_utc"], record["id"]))


def _next_page_item(submissions: Iterator[Any], where: str, api_url: str) -> Any | None:
    """The next submission of a listing (None at its end). Transient failures are retried RETRIES times with
    exponential backoff (praw's listing asks for the failed page again); a failure left is one
    RedditCredentialsError or RedditAPIError line naming the listing and the API."""
    attempt = 0
    while True:
        try:
            return next(submissions, None)
        except PrawcoreException as exc:
            if not _transient(exc) or attempt == RETRIES:
                raise _api_error(exc, where, api_url, attempt + 1) from None
            delay = BACKOFF_SECONDS * 2**attempt
            log.warning("%s: the Reddit API %s; retrying in %.0f s", where, _api_problem(exc), delay)
            time.sleep(delay)
            attempt += 1


def _api_error(exc: PrawcoreException, where: str, api_url: str, tries: int) -> InputError:
    if isinstance(exc, ResponseException) and exc.response.status_code == 401:
        return RedditCredentialsError("Reddit rejected the client id/secret (HTTP 401)")
    gave_up = f"; gave up after {tries} tries" if tries > 1 else ""
    return RedditAPIError(f"{where}: the Reddit API at {api_url} {_api_problem(exc)}{gave_up}")


def _transient(exc: PrawcoreException) -> bool:
    """Worth asking again: no connection, a timeout, a server error or rate limiting."""
    if isinstance(exc, RequestException):
        return True
    if isinstance(exc, ResponseException) and not isinstance(exc, BadJSON):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return False


def _api_problem(exc: PrawcoreException) -> str:
    """What went wrong, for a message: "cannot be reached (Connection refused)", "answered HTTP 403"..."""
    if isinstance(exc, RequestException):
        return f"cannot be reached ({_root_cause(exc)})"
    if isinstance(exc, BadJSON):
        return f"answered HTTP {exc.response.status_code} with a body that is not JSON"
    if isinstance(exc, ResponseException):
        status = exc.response.status_code
        hint = {403: " (a private, quarantined or banned subreddit?)", 404: " (no such subreddit?)"}
        return f"answered HTTP {status} {exc.response.reason}{hint.get(status, '')}".rstrip()
    return f"failed ({type(exc).__name__}: {' '.join(str(exc).split())})"


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a failed request: the OS's words ("Connection refused", "Name or service not
    known") when there are some, else the deepest exception's message."""
    pending, seen, last = [exc], set(), exc
    while pending:
        error = pending.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        last = error
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        # prawcore, requests and urllib3 each wrap the error below in their own way.
        below = (getattr(error, "original_exception", None), getattr(error, "reason", None), error.__cause__)
        pending += [e for e in (*below, error.__context__, *error.args) if isinstance(e, BaseException)]
    return " ".join(str(last).split()) or type(last).__name__


@contextlib.contextmanager
def _compressed(raw: IO[bytes], path: str) -> Iterator[IO[bytes]]:
    """A writer over raw that compresses by the suffix of path (.zst, .gz, or none)."""
    lower = path.lower()
    if lower.endswith((".zst", ".zstd")):
        with zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(raw, closefd=False) as out:
            yield out
    elif lower.endswith(".gz"):
        # filename="" and mtime=0 keep the gzip header free of names and times: reproducible bytes.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            yield out
    elif lower.endswith((".bz2", ".xz")):
        raise ValueError(f"unsupported compression for {path}: use .zst, .gz or no compression")
    else:
        yield raw


def write_jsonl(records: list[dict], path: str) -> int:
    """Write records as JSON lines (sort_keys, ensure_ascii=False, UTF-8) to path, compressed by suffix;
    written to path + '.tmp' and renamed into place when complete. Returns the count."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    count = 0
    try:
        with open(tmp, "wb") as raw, _compressed(raw, path) as out:
            for record in records:
                line = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
                out.write(line.encode("utf-8"))
                count += 1
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
    return count
