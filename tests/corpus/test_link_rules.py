from pathlib import Path

import pytest

from corpus.link_rules import (
    Contribution,
    Dropped,
    LinkConfig,
    LinkRules,
    accumulate,
    decide_link,
    parse_date,
    read_list,
)
from corpus.submissions import Submission

RULES = LinkRules(LinkConfig())


def sub(url: str, **fields) -> Submission:
    base = {
        "id": "s1",
        "url": url,
        "score": 5,
        "created_utc": 1_500_000_000,
        "subreddit": "news",
        "is_self": False,
        "over_18": False,
    }
    return Submission(**{**base, **fields})


@pytest.mark.parametrize(
    ("submission", "reason"),
    [
        (sub("https://www.reddit.com/r/x/comments/1/t/", is_self=True), "self_post"),
        (sub("http://example.com/story", over_18=True), "nsfw"),
        (sub("ftp://example.com/file"), "bad_scheme"),
        (sub("mailto:someone@example.com"), "bad_scheme"),
        (sub("http://"), "invalid_url"),
        (sub("https://en.wikipedia.org/wiki/Reddit"), "wikipedia"),
        (sub("https://de.m.wikipedia.org/wiki/Reddit"), "wikipedia"),
        (sub("https://upload.wikimedia.org/x.png"), "wikipedia"),
        (sub("https://i.imgur.com/abc"), "blocked_domain"),
        (sub("https://v.redd.it/74ah6jubbvec1"), "blocked_domain"),
        (sub("https://youtu.be/dQw4w9WgXcQ"), "blocked_domain"),
        (sub("http://example.com/photo.JPG"), "blocked_extension"),
        (sub("http://example.com/paper.pdf"), "blocked_extension"),
    ],
)
def test_submission_rules(submission, reason):
    got = RULES.apply(submission)
    assert isinstance(got, Dropped) and got.reason == reason


def test_a_good_link_passes_canonicalized():
    url, contribution = RULES.apply(sub("HTTP://Example.com:80/story/?utm_source=rss#top"))
    assert url == "http://example.com/story"
    assert contribution == Contribution(
        "s1", 5, 1_500_000_000, "news", "HTTP://Example.com:80/story/?utm_source=rss#top"
    )


def test_lookalike_hosts_are_not_blocked():
    assert not isinstance(RULES.apply(sub("https://notimgur.com/story")), Dropped)
    assert not isinstance(RULES.apply(sub("https://en.wiktionary.org/wiki/karma")), Dropped)


def test_nsfw_kept_on_request():
    rules = LinkRules(LinkConfig(keep_nsfw=True))
    assert not isinstance(rules.apply(sub("http://example.com/story", over_18=True)), Dropped)


def test_date_window_after_inclusive_before_exclusive():
    rules = LinkRules(LinkConfig(after=parse_date("2017-01-01"), before=parse_date("2018-01-01")))
    first_2018, first_2017 = parse_date("2018-01-01"), parse_date("2017-01-01")
    assert rules.apply(sub("http://a.com/x", created_utc=first_2018)).reason == "date_too_late"
    assert rules.apply(sub("http://a.com/x", created_utc=first_2017 - 1)).reason == "date_too_early"
    assert not isinstance(rules.apply(sub("http://a.com/x", created_utc=first_2017)), Dropped)
    assert not isinstance(rules.apply(sub("http://a.com/x", created_utc=first_2018 - 1)), Dropped)


def test_parse_date():
    assert parse_date("2018-01-01") == 1514764800
    assert parse_date("2018-01-01T01:00:00+01:00") == 1514764800
    with pytest.raises(ValueError, match="not a date"):
        parse_date("Dec 2017")


def contributions(*scores: int) -> dict:
    acc: dict = {}
    for i, score in enumerate(scores):
        accumulate(acc, Contribution(f"s{i}", score, 1000 + i, f"r{i % 2}", "http://a.com/x/"))
    return acc


def test_karma_per_submission_versus_sum():
    acc = contributions(2, 1, 1)
    low = decide_link("http://a.com/x", acc, LinkConfig())
    assert low.row is None and [d[1] for d in low.drops] == ["low_karma"] * 3
    summed = decide_link("http://a.com/x", acc, LinkConfig(karma_rule="sum"))
    assert summed.drops == []
    assert summed.row["karma"] == 4 and summed.row["max_score"] == 2 and summed.row["sum_score"] == 4
    assert summed.row["submission_ids"] == ["s0", "s1", "s2"] and summed.row["subreddits"] == ["r0", "r1"]
    assert (summed.row["first_created_utc"], summed.row["last_created_utc"]) == (1000, 1002)


def test_one_qualifying_submission_carries_the_link():
    row = decide_link("http://a.com/x", contributions(0, 3), LinkConfig()).row
    assert row["karma"] == 3 and row["num_submissions"] == 2


def test_duplicate_submission_counts_once_whatever_the_order():
    low = Contribution("s0", 2, 1000, "r", "http://a.com/x")
    high = Contribution("s0", 9, 1000, "r", "http://a.com/x")
    one = accumulate(accumulate({}, low), high)
    other = accumulate(accumulate({}, high), low)
    assert one == other
    decision = decide_link("http://a.com/x", one, LinkConfig())
    assert decision.row["num_submissions"] == 1 and decision.row["karma"] == 9
    assert [(d[0], d[1]) for d in decision.drops] == [("s0", "duplicate_submission")]


def test_lists_are_data_files(tmp_path: Path):
    custom = tmp_path / "domains.txt"
    custom.write_text("# mine\nExample.COM  # trailing comment\n\n")
    assert read_list(str(custom)) == frozenset({"example.com"})
    rules = LinkRules(LinkConfig(domain_blocklist=str(custom)))
    assert rules.apply(sub("http://www.example.com/a")).reason == "blocked_domain"
    assert not isinstance(rules.apply(sub("https://i.imgur.com/abc")), Dropped)
    with pytest.raises(ValueError, match="karma rule"):
        LinkConfig(karma_rule="median")


def test_lists_are_identified_by_the_sha256_of_their_bytes() -> None:
    import hashlib

    lists = LinkConfig().describe()
    blocked = lists["domain_blocklist"]
    assert blocked["path"] == "corpus/data/blocked_domains.txt"
    with open(LinkConfig().domain_blocklist, "rb") as handle:
        assert blocked["sha256"] == hashlib.sha256(handle.read()).hexdigest()
