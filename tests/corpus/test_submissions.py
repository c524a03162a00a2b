import json

import pytest

from corpus.submissions import Rejection, Submission, parse_submission
from tests.conftest import SAMPLE, submission


def parse(record) -> Submission | Rejection:
    return parse_submission(json.dumps(record).encode())


def test_real_lines_of_every_era_parse():
    lines = (SAMPLE / "mixed_eras_submissions.shared.ndjson").read_bytes().splitlines()
    parsed = {p.id: p for p in map(parse_submission, lines)}
    assert all(isinstance(p, Submission) for p in parsed.values())
    assert parsed["88"].created_utc == 1119552314 and parsed["88"].score == 8  # int era
    assert parsed["2f4i96"].created_utc == 1409529600  # 2014: created_utc is a string
    assert parsed["1afwvv8"].created_utc == 1706745600 and parsed["1afwvv8"].is_self  # 2024: a float
    assert parsed["1afwvvh"].over_18 and not parsed["1afwvvh"].is_self


@pytest.mark.parametrize(
    ("line", "reason", "detail"),
    [
        (b'{"id": "a", "url": "http://x.com"', "malformed_json", "column"),
        (b"\xff\xfe{}", "invalid_utf8", "byte 0"),
        (b"[1, 2]", "malformed_json", "expected an object"),
        (b'{"body": "hi", "link_id": "t3_x"}', "not_a_submission", "comment"),
        (b'{"url": "http://x.com", "score": 3}', "missing_field", "id"),
        (b'{"id": 7, "url": "http://x.com"}', "bad_type", "id"),
    ],
)
def test_unusable_lines_are_rejections(line, reason, detail):
    got = parse_submission(line)
    assert isinstance(got, Rejection) and got.reason == reason and detail in got.detail


@pytest.mark.parametrize(
    ("fields", "reason", "detail"),
    [
        ({"score": None}, "missing_field", "score is null"),  # 2017-10/11 dumps hold null scores
        ({"url": None}, "missing_field", "url is null"),
        ({"promoted": True, "score": None}, "promoted", "an ad"),  # an ad before any other check
        ({"score": "many"}, "bad_type", "score"),
        ({"score": True}, "bad_type", "score"),
        ({"created_utc": 1.5}, "bad_type", "created_utc"),
        ({"url": ["http://x.com"]}, "bad_type", "url"),
        ({"is_self": "false"}, "bad_type", "is_self"),
        ({"subreddit": 12}, "bad_type", "subreddit"),
    ],
)
def test_wrong_types_name_the_field_and_keep_the_id(fields, reason, detail):
    got = parse({**submission("abc", "http://x.com"), **fields})
    assert got == Rejection(reason, got.detail, "abc") and detail in got.detail


def test_absent_flags_default_to_false():
    record = {"id": "a", "url": "http://x.com/", "score": "4", "created_utc": "1500000000"}
    assert parse(record) == Submission("a", "http://x.com/", 4, 1500000000, "", False, False)


@pytest.mark.parametrize(
    ("line", "reason", "detail"),
    [
        (b'{"id": "a", "url": "http://x.com", "score": ' + b"9" * 5000 + b"}", "malformed_json", "digits"),
        (
            b'{"id": "a\\ud800", "url": "http://x.com", "score": 3, "created_utc": 1}',
            "invalid_utf8",
            "id: a lone",
        ),
        (
            b'{"id": "a", "url": "http://x.com/\\udfff", "score": 3, "created_utc": 1}',
            "invalid_utf8",
            "url: a lone",
        ),
        (
            b'{"id": "a", "url": "http://x.com", "subreddit": "\\ud83d", "score": 3, "created_utc": 1}',
            "invalid_utf8",
            "subreddit",
        ),
    ],
)
def test_hostile_lines_are_rejections_not_crashes(line, reason, detail):
    """Lines that used to raise: an integer past Python's 4,300-digit limit, lone surrogate escapes (which
    the Parquet writer could not encode)."""
    got = parse_submission(line)
    assert isinstance(got, Rejection) and got.reason == reason and detail in got.detail


@pytest.mark.parametrize("score", ["--5", "\u00b2", "\u0663", "5-", "9" * 21, 2**63, -(2**63) - 1, 1e30])
def test_numbers_outside_int64_or_not_ascii_decimal_are_bad_types(score):
    got = parse({**submission("abc", "http://x.com"), "score": score})
    assert isinstance(got, Rejection) and got.reason == "bad_type" and "score" in got.detail


@pytest.mark.parametrize(("score", "value"), [(" 12 ", 12), ("-3", -3), (2**63 - 1, 2**63 - 1), (7.0, 7)])
def test_numbers_in_range_parse(score, value):
    assert parse({**submission("abc", "http://x.com"), "score": score}).score == value


def test_an_absent_field_is_named_without_null():
    record = {"id": "a", "url": "http://x.com/", "created_utc": 1500000000}
    assert parse(record) == Rejection("missing_field", "score", "a")


def test_a_crosspost_keeps_its_parent():
    got = parse(submission("b", "/r/pics/comments/a/x/", crosspost_parent="t3_a"))
    assert isinstance(got, Submission) and got.crosspost_parent == "t3_a"
    assert parse(submission("c", "http://x.com/", promoted=False)).crosspost_parent is None
