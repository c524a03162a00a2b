import bz2
import gzip
import json
import lzma

import pytest
import zstandard

from corpus.dumps import iter_dump_lines
from corpus.link_rules import LinkConfig, LinkRules
from corpus.submissions import Rejection
from corpus.url_lists import (
    ListedURL,
    base36,
    is_comment,
    list_format,
    month_of,
    parse_header,
    parse_url_line,
)

WIRED = "http://www.wired.com/news/culture/0,1284,67982,00.html"  # commas: CSV must quote it
JAN_2011 = 1293840000


def one(parsed) -> ListedURL:
    assert isinstance(parsed, list) and len(parsed) == 1, parsed
    return parsed[0]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("RS_2011-01.bz2.deduped.txt", "lines"),  # OpenWebText: the .bz2 is part of the name, not a suffix
        ("clean_urls.txt", "lines"),
        ("urls", "lines"),
        ("list.tsv", "tsv"),
        ("list.TSV.gz", "tsv"),
        ("list.csv.xz", "csv"),
        ("urls_0.jsonl.zst", "jsonl"),
        ("RS_2011-01.urk.ndjson.bz2", "jsonl"),
        ("x.json", "jsonl"),
    ],
)
def test_format_follows_the_name_without_its_compression(name, fmt):
    assert list_format(name) == fmt


def test_month_of_a_pushshift_style_name():
    assert month_of("RS_2011-01.bz2.deduped.txt") == JAN_2011
    assert month_of("RS_v2_2005-06.xz.deduped.txt") == 1117584000
    assert month_of("clean_urls.txt") is None and month_of("RS_2011-13.txt") is None


def test_plain_line_is_unscored_and_dated_by_the_file_name():
    got = one(parse_url_line(b"  http://example.com/a  ", "lines", "RS_2011-01.txt:7", month_utc=JAN_2011))
    sub = got.submission
    assert (sub.url, sub.id, sub.subreddit, sub.created_utc) == (
        "http://example.com/a",
        "RS_2011-01.txt:7",
        "",
        JAN_2011,
    )
    assert not got.scored and got.dated


def test_plain_line_without_a_month_is_undated():
    got = one(parse_url_line(b"http://example.com/a", "lines", "clean_urls.txt:1"))
    assert not got.dated and got.submission.created_utc == 0


def test_comments_and_headers():
    assert is_comment(b"# OpenWebText 2011-01") and is_comment(b"  #x") and not is_comment(b"http://a/#frag")
    assert parse_header(b"\xef\xbb\xbfURL\tKarma\tsubreddit\tcreated_utc\tid", "tsv") == (
        "url",
        "score",
        "subreddit",
        "created_utc",
        "id",
    )
    assert parse_header(b"link,score", "csv") == "the header has no url column (got 'link, score')"


def test_tsv_row():
    cols = parse_header(b"id\turl\tscore\tsubreddit\tcreated_utc", "tsv")
    got = one(parse_url_line(f"t3_91\t{WIRED}\t10\treddit.com\t1119552602".encode(), "tsv", "l.tsv:2", cols))
    assert got.scored and got.dated
    assert (
        got.submission.id == "91" and got.submission.score == 10 and got.submission.created_utc == 1119552602
    )


def test_csv_row_with_a_quoted_url_and_empty_cells():
    cols = parse_header(b"url,score,subreddit,created_utc,id", "csv")
    got = one(parse_url_line(f'"{WIRED}",10,,,'.encode(), "csv", "l.csv:2", cols))
    assert got.submission.url == WIRED and got.submission.id == "l.csv:2" and got.submission.subreddit == ""
    assert got.scored and not got.dated


def test_jsonl_plain_short_and_openwebtext2_shapes():
    plain = one(
        parse_url_line(b'{"url": "http://a.com/", "karma": 4, "created_utc": "1400000000"}', "jsonl", "f:1")
    )
    assert plain.submission.score == 4 and plain.submission.created_utc == 1400000000
    short = one(
        parse_url_line(b'{"u": "http://a.com/", "r": "news", "k": 7, "t": 1500000000.0}', "jsonl", "f:2")
    )
    assert (short.submission.subreddit, short.submission.score, short.submission.created_utc) == (
        "news",
        7,
        1500000000,
    )
    owt2 = {
        "text": "http://a.com/",
        "meta": {
            "id": [1000, 5],  # base36 ids decoded to integers
            "score": [3, 1],
            "title": ["x", "y"],
            "subreddit": ["a", "b"],
            "created_utc": ["2017-05-03T12:34:56", "2017-05-04T00:00:00"],  # naive: read as UTC
        },
    }
    subs = [e.submission for e in parse_url_line(json.dumps(owt2).encode(), "jsonl", "f:3")]
    assert [(s.id, s.score, s.subreddit) for s in subs] == [("rs", 3, "a"), ("5", 1, "b")]
    assert subs[0].created_utc == 1493814896 and base36(int("rs", 36)) == "rs"


def test_a_line_with_several_submissions_but_no_ids_gets_one_id_each():
    line = json.dumps({"text": "http://a.com/", "meta": {"score": [3, 4]}}).encode()
    assert [e.submission.id for e in parse_url_line(line, "jsonl", "f:9")] == ["f:9#1", "f:9#2"]


@pytest.mark.parametrize(
    ("line", "fmt", "reason", "detail"),
    [
        (b"\xff\xfehttp://a.com", "lines", "invalid_utf8", "byte 0"),
        (b'{"url": "http://a.com"', "jsonl", "malformed_json", "column"),
        (b'{"score": 3}', "jsonl", "missing_field", "url"),
        (b'{"url": 5}', "jsonl", "bad_type", "url: expected a string"),
        (b'{"url": "http://a.com", "score": "lots"}', "jsonl", "bad_type", "score"),
        (b'{"url": "http://a.com", "created_utc": "2017-13-01"}', "jsonl", "bad_type", "created_utc"),
        (b'{"url": "http://a.com", "id": 1.5}', "jsonl", "bad_type", "id"),
        (b'{"url": "http://a.com", "subreddit": "\\ud800"}', "jsonl", "invalid_utf8", "lone surrogate"),
        (b'{"text": "http://a.com", "meta": {"score": [1], "id": [1, 2]}}', "jsonl", "bad_type", "different"),
        (b"http://a.com\t3", "tsv", "bad_columns", "2 cells, header has 3"),
    ],
)
def test_bad_lines_are_rejections_with_reasons(line, fmt, reason, detail):
    got = parse_url_line(line, fmt, "f:1", ("url", "score", "id"))
    assert isinstance(got, Rejection) and got.reason == reason and detail in got.detail


def test_the_link_rules_apply_to_listed_urls():
    rules = LinkRules(LinkConfig())
    reasons = {}
    for url in (
        "https://en.wikipedia.org/wiki/X",
        "http://imgur.com/a.png",
        "http://a.com/x.pdf",
        "/r/pics/",
    ):
        reasons[url] = rules.apply(one(parse_url_line(url.encode(), "lines", "f:1")).submission).reason
    assert list(reasons.values()) == ["wikipedia", "blocked_domain", "blocked_extension", "bad_scheme"]
    url, contribution = rules.apply(
        one(parse_url_line(b"HTTP://Example.com:80/a?utm_source=x", "lines", "f:1")).submission
    )
    assert url == "http://example.com/a" and contribution.submission_id == "f:1"


COMPRESS = {
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".zst": zstandard.compress,
    "": bytes,
}


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_every_dump_compression_reads_with_exact_line_numbers(tmp_path, suffix):
    body = b"# a comment\nhttp://a.com/1\n\nhttp://a.com/2\n"
    path = tmp_path / f"RS_2011-01.txt{suffix}"
    path.write_bytes(COMPRESS[suffix](body))
    with open(path, "rb") as raw:
        lines = [(line.number, line.data) for line in iter_dump_lines(raw, str(path))]
    entries = [
        one(parse_url_line(data, list_format(path.name), f"{path.name}:{n}")).submission.id
        for n, data in lines
        if data.strip() and not is_comment(data)
    ]
    assert list_format(path.name) == "lines"
    assert entries == [f"{path.name}:2", f"{path.name}:4"]
