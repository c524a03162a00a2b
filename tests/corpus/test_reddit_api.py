"""corpus.reddit_api against a local fake Reddit server, through real praw (no mocks)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import socket
import time

import prawcore
import pytest
import zstandard

from corpus.reddit_api import (
    LISTINGS,
    RedditAPIError,
    RedditCredentialsError,
    harvest,
    make_reddit,
    to_pushshift,
    write_jsonl,
)
from tests.fake_reddit import CLIENT_ID, NOW, SECRET, USER_AGENT, FakeReddit, make_submission

RETRIEVED_ON = 1_700_100_000


@pytest.fixture(autouse=True)
def _isolated(isolated_praw):
    """Every test here runs with no praw settings from the machine."""


def local(server: FakeReddit) -> dict[str, str]:
    return {"reddit_url": server.url, "oauth_url": server.url, "short_url": server.url}


def test_env_credentials_verified_by_server(server, env_credentials):
    reddit = make_reddit(**local(server))
    records = harvest(reddit, ["Python"], ["new"], retrieved_on=RETRIEVED_ON)

    assert len(records) == 5
    token_calls = [r for r in server.requests if r.path == "/api/v1/access_token"]
    assert len(token_calls) == 1
    expected = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    assert token_calls[0].headers["Authorization"] == f"Basic {expected}"
    assert "grant_type=client_credentials" in token_calls[0].body
    listing = server.listing_requests()[0]
    assert listing.headers["Authorization"].startswith("bearer fake-bearer-")
    assert listing.headers["User-Agent"].startswith(USER_AGENT)
    assert listing.query["raw_json"] == "1"
    assert reddit.config.check_for_updates is False


def test_praw_ini_site(server, tmp_path):
    (tmp_path / "praw.ini").write_text(
        f"[corpus]\nclient_id={CLIENT_ID}\nclient_secret={SECRET}\nuser_agent={USER_AGENT}\n"
    )
    reddit = make_reddit("corpus", **local(server))
    assert len(harvest(reddit, ["news"], ["new"])) == 3


def test_environment_beats_praw_ini(server, tmp_path, monkeypatch):
    (tmp_path / "praw.ini").write_text(
        f"[DEFAULT]\nclient_id={CLIENT_ID}\nclient_secret=stale-secret\nuser_agent={USER_AGENT}\n"
    )
    monkeypatch.setenv("praw_client_secret", SECRET)
    assert len(harvest(make_reddit(**local(server)), ["news"], ["new"])) == 3


def test_missing_credentials_named_without_secret(server, monkeypatch):
    monkeypatch.setenv("praw_client_secret", SECRET)
    with pytest.raises(RedditCredentialsError) as error:
        make_reddit(**local(server))
    message = str(error.value)
    assert "praw_client_id" in message and "praw_user_agent" in message
    assert "praw_client_secret" not in message  # it is set
    assert SECRET not in message and "\n" not in message
    assert server.requests == []


def test_all_missing_credentials_named(server):
    with pytest.raises(RedditCredentialsError, match="praw_client_id, praw_client_secret, praw_user_agent"):
        make_reddit(**local(server))


def test_unknown_praw_ini_site():
    with pytest.raises(RedditCredentialsError, match=r"no \[nowhere\] section"):
        make_reddit("nowhere")


def test_wrong_secret_rejected(server, env_credentials, monkeypatch):
    monkeypatch.setenv("praw_client_secret", "not-the-secret")
    with pytest.raises(RedditCredentialsError, match="rejected"):
        harvest(make_reddit(**local(server)), ["Python"], ["new"])
    assert server.listing_requests() == []


def test_new_and_top_week_union_deduplicated_sorted(server, env_credentials):
    reddit = make_reddit(**local(server))
    new = harvest(reddit, ["Python"], ["new"], retrieved_on=RETRIEVED_ON)
    top_week = harvest(reddit, ["Python"], ["top"], time_filter="week", retrieved_on=RETRIEVED_ON)
    both = harvest(reddit, ["Python"], ["new", "top"], time_filter="week", retrieved_on=RETRIEVED_ON)

    assert {r["id"] for r in top_week} < {r["id"] for r in new}  # the 60-day-old post is outside the week
    assert "17v1aa" in {r["id"] for r in top_week}  # in both listings ...
    ids = [r["id"] for r in both]
    assert len(ids) == len(set(ids)) == 5  # ... but once in the union
    assert [(r["created_utc"], r["id"]) for r in both] == sorted((r["created_utc"], r["id"]) for r in both)
    assert both == new


def test_time_filter_reaches_server(server, env_credentials):
    harvest(make_reddit(**local(server)), ["news"], ["new", "top", "controversial"], time_filter="week")
    by_sort = {r.path.rsplit("/", 1)[1]: r.query for r in server.listing_requests()}
    assert by_sort["top"]["t"] == "week"
    assert by_sort["controversial"]["t"] == "week"
    assert "t" not in by_sort["new"]
    paths = [r.path for r in server.listing_requests()]
    assert paths == ["/r/news/new", "/r/news/top", "/r/news/controversial"]


def test_all_listings_over_two_subreddits(server, env_credentials):
    records = harvest(make_reddit(**local(server)), ["Python", "news"], list(LISTINGS), time_filter="all")
    assert len(records) == 8
    assert {r["subreddit"] for r in records} == {"Python", "news"}
    assert len(server.listing_requests()) == 2 * len(LISTINGS)


def test_pagination_follows_after(env_credentials):
    posts = [make_submission(f"p{i:03d}", "bulk", f"Post {i}", NOW - i * 60) for i in range(250)]
    with FakeReddit(client_id=CLIENT_ID, client_secret=SECRET, submissions=posts) as fake:
        records = harvest(make_reddit(**local(fake)), ["bulk"], ["new"], limit=None)
        pages = fake.listing_requests()
    assert len(records) == 250
    assert len(pages) == 3
    assert "after" not in pages[0].query
    assert pages[1].query["after"] == "t3_p099" and pages[2].query["after"] == "t3_p199"


def test_limit_honoured_across_small_pages(env_credentials):
    with FakeReddit(client_id=CLIENT_ID, client_secret=SECRET, page_size=2) as fake:
        records = harvest(make_reddit(**local(fake)), ["Python"], ["new"], limit=3)
        pages = fake.listing_requests()
    assert [r["id"] for r in records] == ["17u9cc", "17v0bb", "17v1aa"]  # the 3 newest, oldest first
    assert len(pages) == 2
    assert pages[0].query["limit"] == "3" and pages[1].query["after"] == "t3_17v0bb"


def test_pushshift_fields_and_types(server, env_credentials):
    records = harvest(make_reddit(**local(server)), ["Python", "news"], ["new"], retrieved_on=RETRIEVED_ON)
    by_id = {r["id"]: r for r in records}
    link, self_post, deleted, nsfw = by_id["17v1aa"], by_id["17v0bb"], by_id["17u8dd"], by_id["17v1gg"]
    for record in records:
        assert type(record["created_utc"]) is int
        assert type(record["retrieved_on"]) is int and record["retrieved_on"] == RETRIEVED_ON
        assert type(record["subreddit"]) is str and type(record["author"]) is str
        assert isinstance(record["score"], int) and isinstance(record["num_comments"], int)
        assert "comment_limit" not in record and "comment_sort" not in record
        json.dumps(record)  # plain JSON values only
    assert link["created_utc"] == int(NOW - 2 * 3600)
    assert link["subreddit"] == "Python" and link["author"] == "some_user"
    assert link["url"] == "https://www.python.org/downloads/release/python-3121/"
    assert link["domain"] == "www.python.org" and link["is_self"] is False
    assert link["permalink"].startswith("/r/Python/comments/17v1aa/")
    assert self_post["is_self"] is True and self_post["selftext"].startswith("I keep")
    assert self_post["domain"] == "self.Python"
    assert deleted["author"] == "[deleted]"
    assert nsfw["over_18"] is True and link["over_18"] is False


def test_to_pushshift_defaults_retrieved_on_to_now(server, env_credentials):
    submission = next(iter(make_reddit(**local(server)).subreddit("news").new(limit=1)))
    record = to_pushshift(submission)
    assert abs(record["retrieved_on"] - time.time()) < 60


@pytest.mark.parametrize(
    ("listings", "time_filter", "match"),
    [(["new", "best"], "all", "unknown listing.*'best'"), (["top"], "fortnight", "unknown time filter")],
)
def test_invalid_names(server, env_credentials, listings, time_filter, match):
    with pytest.raises(ValueError, match=match):
        harvest(make_reddit(**local(server)), ["Python"], listings, time_filter=time_filter)
    assert server.requests == []


def read_lines(path) -> list[dict]:
    data = path.read_bytes()
    if path.suffix == ".zst":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    elif path.suffix == ".gz":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


@pytest.mark.parametrize("name", ["subs.jsonl", "subs.jsonl.zst", "subs.jsonl.gz"])
def test_write_jsonl_round_trip_and_reproducible(server, env_credentials, tmp_path, name):
    records = harvest(make_reddit(**local(server)), ["Python", "news"], ["new"], retrieved_on=RETRIEVED_ON)
    first, second = tmp_path / "a" / name, tmp_path / "b" / name
    assert write_jsonl(records, str(first)) == len(records) == 8
    assert write_jsonl(records, str(second)) == 8
    assert first.read_bytes() == second.read_bytes()
    assert read_lines(first) == records
    assert not (tmp_path / "a" / (name + ".tmp")).exists()


def test_write_jsonl_utf8_sorted_keys(tmp_path):
    path = tmp_path / "x.jsonl"
    write_jsonl([{"title": "Café ✓", "id": "a"}], str(path))
    assert path.read_bytes() == '{"id": "a", "title": "Café ✓"}\n'.encode()


def test_write_jsonl_rejects_unknown_compression(tmp_path):
    with pytest.raises(ValueError, match="unsupported compression"):
        write_jsonl([{"id": "a"}], str(tmp_path / "x.jsonl.bz2"))
    assert list(tmp_path.iterdir()) == []


def test_secret_never_logged_or_printed(server, env_credentials, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    reddit = make_reddit(**local(server))
    harvest(reddit, ["Python", "news"], ["new", "top"], time_filter="week")
    monkeypatch.setenv("praw_client_secret", "wrong")
    with pytest.raises(RedditCredentialsError):
        harvest(make_reddit(**local(server)), ["Python"], ["new"])
    monkeypatch.delenv("praw_client_id")
    with pytest.raises(RedditCredentialsError):
        make_reddit(**local(server))

    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    captured = capsys.readouterr()
    assert any(record.name.startswith("prawcore") for record in caplog.records)  # logging did happen
    for text in (caplog.text, captured.out, captured.err):
        assert SECRET not in text and basic not in text


# --- an unreachable or failing API: bounded retries with backoff, then one line ---------------------------


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The backoff sleeps of harvest, recorded instead of slept; prawcore's own quick retries do not wait."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(prawcore.sessions.FiniteRetryStrategy, "_sleep_seconds", lambda self: None)
    return slept


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once it is closed


def harvest_error(url: str) -> str:
    reddit = make_reddit(reddit_url=url, oauth_url=url)
    with pytest.raises(RedditAPIError) as error:
        harvest(reddit, ["Python"], ["new"])
    message = str(error.value)
    assert "\n" not in message and SECRET not in message
    return message


def test_an_unreachable_api_is_retried_with_backoff_then_one_line(env_credentials, sleeps):
    url = closed_port_url()
    message = harvest_error(url)
    assert message == (
        f"r/Python/new: the Reddit API at {url} cannot be reached (Connection refused); gave up after 4 tries"
    )
    assert sleeps == [2.0, 4.0, 8.0]


def test_a_host_that_does_not_resolve_is_one_line(env_credentials, sleeps, monkeypatch):
    def no_such_host(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    message = harvest_error("https://reddit.invalid")
    assert message.endswith("cannot be reached (Name or service not known); gave up after 4 tries")


def test_server_errors_are_retried_and_the_listing_resumes_at_the_failed_page(
    server, env_credentials, sleeps, caplog
):
    server.page_size = 2  # three pages for r/Python's five submissions
    whole = harvest(make_reddit(**local(server)), ["Python"], ["new"], retrieved_on=RETRIEVED_ON)
    # The second page fails three times in a row: prawcore's two quick retries, then one of harvest's.
    server.failures["GET"] = [None, *[(500, {"message": "Internal Server Error"}, {})] * 3]
    with caplog.at_level(logging.WARNING, logger="corpus.reddit_api"):
        again = harvest(make_reddit(**local(server)), ["Python"], ["new"], retrieved_on=RETRIEVED_ON)
    assert again == whole and sleeps == [2.0]
    warning = "r/Python/new: the Reddit API answered HTTP 500 Internal Server Error; retrying in 2 s"
    assert warning in caplog.text


FORBIDDEN = "answered HTTP 403 Forbidden (a private, quarantined or banned subreddit?)"
NOT_FOUND = "answered HTTP 404 Not Found (no such subreddit?)"


@pytest.mark.parametrize(
    "reply,problem,retried",
    [
        ((500, {"message": "Internal Server Error"}, {}), "answered HTTP 500 Internal Server Error", True),
        ((503, {}, {}), "answered HTTP 503 Service Unavailable", True),
        ((403, {"message": "Forbidden", "error": 403}, {}), FORBIDDEN, False),
        ((404, {"message": "Not Found", "error": 404}, {}), NOT_FOUND, False),
        ((200, b"<html>upstream gone</html>", {}), "answered HTTP 200 with a body that is not JSON", False),
    ],
)
def test_api_errors_are_one_line_naming_listing_api_and_status(
    server, env_credentials, sleeps, reply, problem, retried
):
    server.failures["GET"] = [reply] * 100
    message = harvest_error(server.url)
    assert message.startswith(f"r/Python/new: the Reddit API at {server.url} {problem}")
    assert sleeps == ([2.0, 4.0, 8.0] if retried else [])
    assert message.endswith("; gave up after 4 tries") == retried


def test_a_failing_token_endpoint_is_retried(server, env_credentials, sleeps):
    server.failures["POST"] = [(502, {}, {})]
    assert len(harvest(make_reddit(**local(server)), ["Python"], ["new"])) == 5
    assert sleeps == [2.0]
