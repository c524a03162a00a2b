"""`webtext reddit` harvests live listings (a local fake Reddit) into a dump that `webtext links` reads."""

import json
import socket
import time

import pytest
import zstandard

from pipelines.outputs import read_table
from tests.conftest import committed
from tests.fake_reddit import SECRET, FakeReddit
from webtext.cli import main


def test_harvest_then_links(tmp_path, server: FakeReddit, env_credentials, isolated_praw, capsys):
    dump = tmp_path / "dumps" / "RS_live.jsonl.zst"
    argv = [
        "reddit",
        "--subreddit",
        "Python",
        "--subreddit",
        "news",
        "--listing",
        "new",
        "--listing",
        "top",
        "--time-filter",
        "week",
        "--out",
        str(dump),
        "--api-url",
        server.url,
    ]
    assert main(argv) == 0
    records = [
        json.loads(line)
        for line in zstandard.ZstdDecompressor().decompressobj().decompress(dump.read_bytes()).splitlines()
    ]
    assert records and all(isinstance(r["created_utc"], int) for r in records)
    assert len({r["id"] for r in records}) == len(records)
    assert any(r.query.get("t") == "week" for r in server.listing_requests())

    assert main(["links", "--dumps", str(dump), "--out", str(tmp_path / "out")]) == 0
    stats = json.loads((committed(tmp_path / "out", "links") / "stats.json").read_text())
    assert stats["in"] == len(records) == stats["out"] + sum(stats["dropped"].values())
    links = read_table(str(committed(tmp_path / "out", "links") / "part-*.parquet")).to_pylist()
    kept = {sid for row in links for sid in row["submission_ids"]}
    assert kept <= {r["id"] for r in records if not r["is_self"] and not r["over_18"] and r["score"] >= 3}
    assert SECRET not in capsys.readouterr().out


def test_missing_credentials_is_one_line(tmp_path, server: FakeReddit, isolated_praw, capsys):
    argv = ["reddit", "--subreddit", "Python", "--out", str(tmp_path / "x.jsonl"), "--api-url", server.url]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("webtext reddit: error: Reddit API credentials missing: set praw_client_id")
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(
    "failure,problem",
    [
        ("unreachable", "cannot be reached (Connection refused); gave up after 4 tries"),
        ("no such host", "cannot be reached (Name or service not known); gave up after 4 tries"),
        ("500", "answered HTTP 500 Internal Server Error; gave up after 4 tries"),
        ("403", "answered HTTP 403 Forbidden (a private, quarantined or banned subreddit?)"),
        ("bad JSON", "answered HTTP 200 with a body that is not JSON"),
    ],
)
def test_an_unreachable_or_failing_api_is_one_line(
    tmp_path, server: FakeReddit, env_credentials, isolated_praw, capsys, monkeypatch, failure, problem
):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    url = server.url
    if failure == "unreachable":
        server.stop()  # nothing listens on its port any more
    elif failure == "no such host":
        url = "https://reddit.invalid"
        monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    else:
        reply = {"500": (500, {}, {}), "403": (403, {}, {}), "bad JSON": (200, b"<html>oops</html>", {})}
        server.failures["GET"] = [reply[failure]] * 100
    out = tmp_path / "RS_live.jsonl"
    assert main(["reddit", "--subreddit", "Python", "--out", str(out), "--api-url", url]) == 2
    err = capsys.readouterr().err
    *_, last = err.strip().splitlines()
    assert last == f"webtext reddit: error: r/Python/new: the Reddit API at {url} {problem}"
    assert "Traceback" not in err and SECRET not in err
    assert not out.exists()


def no_such_host(host, *args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
