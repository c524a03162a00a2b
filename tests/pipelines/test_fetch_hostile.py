"""One `webtext fetch` stage over every behaviour of tests/hostile_web.py, plus one URL on which the stage's
own code fails: the real Beam pipeline on the DirectRunner, through the CLI. The run ends, publishes, and
every URL has a row with a terminal outcome of the taxonomy; the stats reconcile."""

from __future__ import annotations

import json
import time

import pytest

from corpus.fetcher import OUTCOMES
from corpus.warc import WarcFileWriter, iter_responses, read_response
from pipelines.fetch.stage import STAGE as FETCH
from pipelines.outputs import read_table
from tests.conftest import committed, submission, write_dump
from tests.hostile_web import BEHAVIOURS, HOSTILE_IP, START, HostileWeb, only_hostile_connections
from webtext.cli import main

FLAGS = [
    "--allow-network", f"{HOSTILE_IP}/32",
    "--per-host-delay", "0",
    "--max-seconds", "2",
    "--read-timeout", "1.5",
    "--connect-timeout", "1",
    "--max-bytes", "65536",
    "--max-retries", "1",
    "--concurrency", "48",
    "--buckets", "2",
]  # fmt: skip
BUG_HOST = "internal-bug.test"  # archiving its response raises: a planted bug in the stage's own code


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    attempted: list[str] = []
    real_write = WarcFileWriter.write_exchange

    with pytest.MonkeyPatch.context() as patch, HostileWeb() as web:
        urls = {name: web.url_of(name) for name in BEHAVIOURS}
        bug_url = web.url(START, host=BUG_HOST)

        def buggy_write(writer, url, *args, **kwargs):
            if url == bug_url:
                raise RuntimeError("planted bug")
            return real_write(writer, url, *args, **kwargs)

        only_hostile_connections(patch, attempted)
        patch.setattr("corpus.fetcher.system_resolver", web.resolver)  # *.test: no DNS query leaves
        patch.setattr(WarcFileWriter, "write_exchange", buggy_write)
        links = [*urls.values(), bug_url]
        dump = write_dump(tmp / "RS_hostile.jsonl", [submission(f"h{i}", url) for i, url in enumerate(links)])
        out = tmp / "work"
        assert main(["links", "--dumps", str(dump), "--out", str(out)]) == 0
        started = time.monotonic()
        code = main(["fetch", "--links", str(out), "--out", str(out), *FLAGS])
        seconds = time.monotonic() - started
    fetched = committed(out, "fetch")  # the published output
    index = {row["url"]: row for row in read_table(str(fetched / "index-*.parquet")).to_pylist()}
    return {"code": code, "seconds": seconds, "out": out, "fetched": fetched, "urls": urls, "bug": bug_url,
            "index": index, "attempted": attempted}  # fmt: skip


def test_the_stage_ends_and_publishes(run):
    assert run["code"] == 0 and run["seconds"] < 60
    assert set(run["attempted"]) == {HOSTILE_IP}
    summary = FETCH.summary(FETCH.result(str(run["out"])))  # what the command printed
    assert "1  internal_error" in summary


def test_every_url_has_its_outcome_row(run):
    index, urls = run["index"], run["urls"]
    assert len(index) == len(BEHAVIOURS) + 1  # one row per link
    assert {name: index[url]["outcome"] for name, url in urls.items()} == {
        name: b.outcome for name, b in BEHAVIOURS.items()
    }
    assert {row["outcome"] for row in index.values()} <= set(OUTCOMES)
    bug = index[run["bug"]]
    assert (bug["outcome"], bug["detail"]) == ("internal_error", "RuntimeError: planted bug")


def test_stats_and_ledger_reconcile(run):
    fetched, index = run["fetched"], run["index"]
    stats = json.loads((fetched / "stats.json").read_text())
    assert stats["in"] == len(index) == stats["out"] + sum(stats["dropped"].values())
    assert stats["out"] == sum(row["outcome"] == "ok" for row in index.values())
    assert stats["dropped"]["internal_error"] == 1
    ledger = read_table(str(fetched / "ledger" / "fetch-*.parquet")).to_pylist()
    assert sorted((r["id"], r["reason"]) for r in ledger) == sorted(
        (url, row["outcome"]) for url, row in index.items() if row["outcome"] != "ok"
    )


def test_the_warcs_read_back_whole(run):
    out, index = run["out"], run["index"]
    warcs = sorted(run["fetched"].glob("*.warc.gz"))
    assert warcs
    archived = []
    for warc in warcs:  # every file reads from start to end: the planted bug left no partial record
        with open(warc, "rb") as stream:
            archived += [record.url for record in iter_responses(stream, str(warc))]
    assert run["bug"] not in archived
    for row in index.values():
        if row["outcome"] == "ok":
            data = (out / row["warc_file"]).read_bytes()[row["offset"] : row["offset"] + row["length"]]
            assert read_response(data, row["warc_file"], row["offset"]).status == 200
