"""`webtext fetch` over the network against the hostile local server: outcomes, pacing, resume, round trip."""

import gzip
import json
from pathlib import Path

import pytest

from corpus.warc import iter_responses, read_response
from pipelines.outputs import read_table
from tests.conftest import committed, submission, write_dump
from tests.fake_web import FakeWeb
from webtext.cli import main

ARTICLE = max(  # the largest real article page of the fixtures
    (Path(__file__).resolve().parent.parent / "fixtures" / "html" / "scrapinghub_aeb" / "html").glob(
        "*.html.gz"
    ),
    key=lambda path: path.stat().st_size,
)
HOST = "127.0.0.1"
DELAY = 0.05
EXPECTED = {  # path -> outcome
    "/article": "ok",
    "/gzip-page": "ok",
    "/flaky": "ok",  # 503, then 200 on the retry
    "/drip": "timeout",
    "/huge": "too_large",
    "/gzip-bomb": "too_large",
    "/redirect-private": "blocked_address",
    "/status/404": "http_error",
    "/binary": "bad_content_type",
    "/pdf": "bad_content_type",
    "/loop/a": "redirect_loop",
    "/private/page": "robots_disallowed",
    "/reset": "connection_error",
}
FLAGS = [
    "--allow-network",
    "127.0.0.0/8",
    "--per-host-delay",
    str(DELAY),
    "--max-seconds",
    "2",
    "--read-timeout",
    "1",
    "--connect-timeout",
    "1",
    "--max-bytes",
    "1000000",
    "--max-retries",
    "1",
    "--concurrency",
    "4",
    "--buckets",
    "2",
]


def index_of(out: Path) -> dict[str, dict]:
    rows = read_table(str(committed(out, "fetch") / "index-*.parquet")).to_pylist()
    return {row["url"]: row for row in rows}


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("net")
    with FakeWeb(pages={"/article": gzip.decompress(ARTICLE.read_bytes())}) as web:
        web.robots[HOST] = "User-agent: *\nDisallow: /private\n"
        urls = {path: web.url(path, host=HOST) for path in EXPECTED}
        dump = write_dump(
            tmp / "RS_net.jsonl", [submission(f"n{i}", url) for i, url in enumerate(urls.values())]
        )
        out = tmp / "work"
        assert main(["links", "--dumps", str(dump), "--out", str(out)]) == 0
        assert main(["fetch", "--links", str(out), "--out", str(out), *FLAGS]) == 0
        first = {"index": index_of(out), "hits": list(web.hits())}
        assert main(["fetch", "--links", str(out), "--out", str(out), *FLAGS]) == 0  # resume
        second_hits = web.hits()[len(first["hits"]) :]
        yield {"out": out, "urls": urls, "first": first, "second_hits": second_hits, "index": index_of(out)}


def test_every_url_ends_with_its_documented_outcome(fetched):
    index, urls = fetched["first"]["index"], fetched["urls"]
    assert len(index) == len(EXPECTED)  # links in = index rows out
    assert {path: index[url]["outcome"] for path, url in urls.items()} == EXPECTED
    stats = json.loads((committed(fetched["out"], "fetch") / "stats.json").read_text())
    assert stats["in"] == len(EXPECTED) and stats["out"] == 3
    assert stats["in"] == stats["out"] + sum(stats["dropped"].values())
    ledger = read_table(str(committed(fetched["out"], "fetch") / "ledger" / "fetch-*.parquet")).to_pylist()
    assert sorted((r["id"], r["reason"]) for r in ledger) == sorted(
        (urls[p], o) for p, o in EXPECTED.items() if o != "ok"
    )


def test_nothing_reached_a_private_address_and_robots_kept_the_page_private(fetched):
    paths = [hit.path for hit in fetched["first"]["hits"]]
    assert "/private/page" not in paths and paths.count("/robots.txt") == 1


def test_requests_to_one_host_are_paced(fetched):
    stamps = sorted(hit.time for hit in fetched["first"]["hits"])
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= DELAY * 0.9


def test_responses_are_in_the_warc_where_the_index_says(fetched):
    out, index, urls = fetched["out"], fetched["first"]["index"], fetched["urls"]
    for path in ("/article", "/gzip-page", "/huge"):
        row = index[urls[path]]
        data = (out / row["warc_file"]).read_bytes()[row["offset"] : row["offset"] + row["length"]]
        record = read_response(data, row["warc_file"], row["offset"])
        assert record.url == urls[path] and record.status == 200
    assert (
        read_response(
            (out / index[urls["/gzip-page"]]["warc_file"]).read_bytes()[
                index[urls["/gzip-page"]]["offset"] :
            ],
            "w",
            0,
        ).content_encoding
        == "gzip"
    )  # stored as received
    assert index[urls["/huge"]]["bytes"] == 1_000_000  # cut at --max-bytes
    archived = []
    for warc in sorted((out / "fetch").rglob("*.warc.gz")):  # both runs' generations
        with open(warc, "rb") as stream:
            archived += [record.url for record in iter_responses(stream, str(warc))]
    assert sum(url.endswith("/robots.txt") for url in archived) == 2  # once per run, written to the WARC


def test_a_rerun_fetches_only_what_has_no_terminal_outcome(fetched):
    again = sorted({hit.path for hit in fetched["second_hits"]} - {"/robots.txt"})
    assert again == ["/drip", "/reset"]
    assert len(fetched["index"]) == len(EXPECTED)
    ok_rows = [row for row in fetched["index"].values() if row["outcome"] == "ok"]
    for row in ok_rows:  # carried rows still point at the first run's WARC files, which were kept
        assert (fetched["out"] / row["warc_file"]).exists()


def test_fetched_warcs_read_back_with_from_warc_and_extract(fetched, tmp_path):
    out = fetched["out"]
    again = tmp_path / "again"
    argv = [
        "fetch",
        "--links",
        str(out),
        "--out",
        str(again),
        "--from-warc",
        str(out / "fetch" / "*" / "*.warc.gz"),
    ]
    assert main(argv) == 0
    replay = {url: row["outcome"] for url, row in index_of(again).items()}
    urls = fetched["urls"]
    live = {path: fetched["index"][url]["outcome"] for path, url in urls.items()}
    # Archived records are judged by their metadata: truncation marks give back the live outcome; a gzip
    # bomb and a binary body under text/html look fine until the extract stage decodes them.
    assert {path: replay[url] for path, url in urls.items() if live[path] != "ok"} == {
        "/drip": "timeout",
        "/huge": "too_large",
        "/gzip-bomb": "ok",
        "/redirect-private": "http_error",
        "/status/404": "http_error",
        "/binary": "ok",
        "/pdf": "bad_content_type",
        "/loop/a": "http_error",
        "/private/page": "not_in_archive",
        "/reset": "connection_error",
    }
    assert all(replay[urls[path]] == "ok" for path in ("/article", "/gzip-page", "/flaky"))
    assert main(["extract", "--fetch", str(again), "--out", str(again)]) == 0
    extracted = committed(again, "extract")
    docs = {row["url"] for row in read_table(str(extracted / "part-*.parquet")).to_pylist()}
    assert urls["/article"] in docs
    drops = {
        row["id"]: row["reason"]
        for row in read_table(str(extracted / "ledger" / "extract-*.parquet")).to_pylist()
    }
    reasons = {
        row["detail"].split(": ")[0]: row["reason"]
        for row in read_table(str(extracted / "ledger" / "extract-*.parquet")).to_pylist()
    }
    assert reasons[urls["/gzip-bomb"]] == "too_large" and urls["/binary"] in reasons and drops
