"""The links stage reads Arctic Shift / Pushshift submissions as their fields drift, month by month.

tests/fixtures/arctic_shift/field_types.json holds, per month 2005-06..2018-12, the JSON types each field
takes in Arctic Shift's RS field schemas (see SOURCES.md there). Every (month, field, type) becomes a record
that must parse and pass the rules, or land in the ledger under the reason named here.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from corpus.link_rules import Dropped, LinkConfig, LinkRules
from corpus.submissions import Rejection, Submission, parse_submission

TYPES = json.loads((Path(__file__).parents[1] / "fixtures" / "arctic_shift" / "field_types.json").read_text())
RULES = LinkRules(LinkConfig())


def months() -> dict[str, dict[str, list[str]]]:
    by_month = {}
    for run in TYPES["runs"]:
        year, month = map(int, run["first"].split("-"))
        while f"{year:04d}-{month:02d}" <= run["last"]:
            by_month[f"{year:04d}-{month:02d}"] = run["types"]
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return by_month


MONTHS = months()


def value(field: str, json_type: str, epoch: int):
    """A value of `json_type` for `field` as the dumps hold it."""
    if json_type == "null":
        return None
    if field == "created_utc":
        return {"int": epoch, "float": float(epoch), "string": str(epoch)}[json_type]
    if field == "_meta":
        return {"retrieved_2nd_on": epoch + 86400, "was_deleted_later": False, "note": "no_2nd_retrieval"}
    return {
        "int": 5,
        "float": 5.0,
        "bool": field == "promoted",  # promoted appears only on ads, always true; the others: a plain post
        "string": {"crosspost_parent": "t3_6x1abc", "id": "6x1abd", "subreddit": "news"}.get(
            field, "http://example.com/story"
        ),
    }[json_type]


# What a record with this (field, type) must become; anything not named must parse and pass the rules.
EXPECTED = {
    ("score", "null"): ("missing_field", "score is null"),
    ("url", "null"): ("missing_field", "url is null"),
    ("promoted", "bool"): ("promoted", "an ad"),
}


def outcome(record: dict) -> tuple[str, str]:
    parsed = parse_submission(json.dumps(record).encode())
    if isinstance(parsed, Rejection):
        return parsed.reason, parsed.detail
    decided = RULES.apply(parsed)
    return (decided.reason, decided.detail) if isinstance(decided, Dropped) else ("kept", "")


def test_the_fixture_covers_every_month_of_the_webtext_era():
    assert TYPES["months"] == len(MONTHS) == 163
    webtext = [m for m in MONTHS if m <= "2017-12"]
    assert webtext[0] == "2005-06" and len(webtext) == 151  # 2005-06 .. 2017-12, no gap


@pytest.mark.parametrize("month", sorted(MONTHS))
def test_every_field_type_of_every_month_parses_or_has_a_named_reason(month):
    types = MONTHS[month]
    epoch = int(datetime.fromisoformat(f"{month}-15").replace(tzinfo=UTC).timestamp())
    base = {
        field: value(field, variants[0], epoch)
        for field, variants in types.items()
        if variants and field not in ("promoted", "crosspost_parent", "_meta")
    }
    assert outcome(base) == ("kept", ""), month
    for field, variants in types.items():
        for json_type in variants:
            got = outcome({**base, field: value(field, json_type, epoch)})
            reason, detail = EXPECTED.get((field, json_type), ("kept", ""))
            assert got[0] == reason and detail in got[1], (month, field, json_type, got)


def test_arctic_shift_2023_records_with_meta_and_float_dates():
    record = {
        "id": "1afwvvx",
        "url": "https://example.com/a",
        "score": 12,
        "created_utc": 1706745600.0,
        "subreddit": "news",
        "is_self": False,
        "over_18": False,
        "removed_by_category": None,
        "url_overridden_by_dest": "https://example.com/a",
        "_meta": {"retrieved_2nd_on": 1706832000, "was_deleted_later": True, "removal_type": "deleted"},
    }
    parsed = parse_submission(json.dumps(record).encode())
    assert isinstance(parsed, Submission) and parsed.created_utc == 1706745600
    assert outcome(record) == ("kept", "")  # a post deleted later still linked to its page


def test_absent_flags_and_string_dates():
    record = {"id": "2f4i96", "url": "http://example.com/b", "score": "4", "created_utc": "1409529600"}
    parsed = parse_submission(json.dumps(record).encode())
    assert parsed == Submission("2f4i96", "http://example.com/b", 4, 1409529600, "", False, False)


def test_ads_without_subreddit_or_score_are_promoted_not_links():
    ad = {
        "id": "6x1ad",
        "url": "https://shop.example/",
        "score": None,
        "created_utc": 1508000000,
        "promoted": True,
    }
    assert outcome(ad)[0] == "promoted"
    assert outcome({**ad, "score": 50, "subreddit": "ads"})[0] == "promoted"
    assert outcome({**ad, "score": 50, "promoted": False})[0] == "kept"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/r/pics/comments/6x1abc/a_title/", "crosspost"),  # relative permalink to the parent
        ("https://www.reddit.com/r/pics/comments/6x1abc/a_title/", "crosspost"),
        ("https://redd.it/6x1abc", "crosspost"),
        ("https://v.redd.it/74ah6jubbvec1", "blocked_domain"),  # a video: blocked as media, crosspost or not
        ("https://example.com/story", "kept"),  # the parent's outbound link: a user sharing it again
    ],
)
def test_crossposts(url, reason):
    record = {"id": "6x2", "url": url, "score": 9, "created_utc": 1508000000, "crosspost_parent": "t3_6x1abc"}
    got = outcome(record)
    assert got[0] == reason
    if reason == "crosspost":
        assert got[1].startswith("of t3_6x1abc")
    del record["crosspost_parent"]
    assert outcome(record)[0] in ("bad_scheme", "blocked_domain", "kept")  # without the field: as before
