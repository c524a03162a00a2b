"""`webtext fetch --from-warc` on real archives, `webtext extract` on what it indexes, and the demo chain."""

import json
import shutil
from pathlib import Path

import pytest

from corpus.warc import read_response
from pipelines.outputs import read_table
from tests.conftest import committed, submission, write_dump
from webtext.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "warc"
CC = FIXTURES / "resiliparse_warcfile.warc.gz"  # a real Common Crawl excerpt


def stats(out: Path, stage: str) -> dict:
    return json.loads((committed(out, stage) / "stats.json").read_text())


def links_run(tmp_path: Path, urls: list[str]) -> Path:
    dump = write_dump(tmp_path / "RS_test.jsonl", [submission(f"s{i}", url) for i, url in enumerate(urls)])
    out = tmp_path / "work"
    assert main(["links", "--dumps", str(dump), "--out", str(out)]) == 0
    return out


def from_warc(out: Path, *archives: Path) -> int:
    return main(["fetch", "--links", str(out), "--out", str(out), *(f"--from-warc={a}" for a in archives)])


def test_from_warc_keeps_the_linked_responses(tmp_path):
    urls = [
        "http://003338.cn/l41/481397.html",
        "http://01spb.ru/company/",  # canonical form drops the trailing slash, the archive has it
        "http://example.com/",  # in the warcio example, a second archive
        "http://example.org/never-archived",
    ]
    out = links_run(tmp_path, urls)
    assert from_warc(out, CC, FIXTURES / "warcio_example.warc.gz") == 0
    fetched = committed(out, "fetch")
    index = {row["url"]: row for row in read_table(str(fetched / "index-*.parquet")).to_pylist()}
    assert len(index) == 4  # one row per link, exactly
    assert index["http://example.org/never-archived"]["outcome"] == "not_in_archive"
    ok = [row for row in index.values() if row["outcome"] == "ok"]
    assert len(ok) == 3 and all(row["karma"] == 5 and row["submission_ids"] for row in ok)
    for row in ok:  # the row points at the record in the source archive
        data = Path(row["warc_file"]).read_bytes()[row["offset"] : row["offset"] + row["length"]]
        assert read_response(data, row["warc_file"], row["offset"]).url == row["final_url"]
    assert index["http://01spb.ru/company"]["content_type"] == "text/html; charset=windows-1251"
    fetch_stats = stats(out, "fetch")
    assert (fetch_stats["in"], fetch_stats["out"], fetch_stats["dropped"]) == (4, 3, {"not_in_archive": 1})
    ledger = read_table(str(fetched / "ledger" / "fetch-*.parquet")).to_pylist()
    assert [(r["id"], r["reason"]) for r in ledger] == [
        ("http://example.org/never-archived", "not_in_archive")
    ]

    assert main(["extract", "--fetch", str(out), "--out", str(out)]) == 0
    extract_stats = stats(out, "extract")
    assert extract_stats["in"] == 3 and extract_stats["in"] == extract_stats["out"] + sum(
        extract_stats["dropped"].values()
    )


def test_a_relative_archive_path_is_found_from_any_directory(tmp_path, monkeypatch):
    """The index stores where an archive is, not how the command named it: extract, started from another
    directory, still reads every page."""
    archives = tmp_path / "archives"
    archives.mkdir()
    shutil.copy(CC, archives / "p.warc.gz")
    out = links_run(tmp_path, ["http://003338.cn/l41/481397.html", "http://01spb.ru/company/"])
    monkeypatch.chdir(archives)
    assert main(["fetch", "--links", str(out), "--out", str(out), "--from-warc", "p.warc.gz"]) == 0
    rows = read_table(str(committed(out, "fetch") / "index-*.parquet")).to_pylist()
    assert [(row["outcome"], row["warc_file"]) for row in rows] == [("ok", str(archives / "p.warc.gz"))] * 2
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["extract", "--fetch", str(out), "--out", str(out)]) == 0
    extract_stats = stats(out, "extract")
    assert extract_stats["in"] == 2 and "warc_unreadable" not in extract_stats["dropped"]


def test_a_truncated_archive_fails_with_one_line(tmp_path, capsys):
    out = links_run(tmp_path, ["http://www.houstonpress.com/music/a"])
    assert from_warc(out, FIXTURES / "resiliparse_clipped.warc.gz") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err.startswith("webtext fetch: error: ")
        and "resiliparse_clipped.warc.gz" in err
        and "cut short" in err
    )
    assert not (out / "fetch").exists() and not (out / ".staging").exists()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out)]) == 0
    return out


def test_demo_runs_links_fetch_extract_dedup_filter_release(demo):
    release = committed(demo, "release")
    manifest = json.loads((release / "manifest.json").read_text())
    assert sorted(manifest["stages"]) == ["dedup", "extract", "fetch", "filter", "links"]  # its own history
    assert (release / "datasheet.md").is_file()
    for stage in ("links", "fetch", "extract", "dedup", "filter", "release"):
        s = stats(demo, stage)
        assert s["in"] == s["out"] + sum(s["dropped"].values())
    docs = {
        row["url"]: row for row in read_table(str(committed(demo, "extract") / "part-*.parquet")).to_pylist()
    }
    extract = stats(demo, "extract")
    assert extract["in"] == 9  # 8 real pages (one linked with karma 2 only) and 2 constructed copies
    assert len(docs) == extract["out"] >= 5
    aljazeera = docs[
        "https://www.aljazeera.com/news/2019/11/service-members-killed-afghanistan-helicopter-crash-191120070028895.html"
    ]
    assert (
        aljazeera["submission_ids"] == ["demo10", "demo11"] and aljazeera["karma"] == 12
    )  # utm_ variant merged
    assert "helicopter" in aljazeera["text"].lower() and aljazeera["words"] > 100
    assert all(row["extractor"].startswith("trafilatura ") and len(row["id"]) == 40 for row in docs.values())


def test_demo_dedup_finds_the_constructed_copies(demo):
    ledger = read_table(str(committed(demo, "dedup") / "ledger" / "dedup-*.parquet")).to_pylist()
    docs = {
        row["id"]: row["url"]
        for row in read_table(str(committed(demo, "extract") / "part-*.parquet")).to_pylist()
    }
    dropped = {docs[row["id"]]: (row["reason"], docs[row["detail"]]) for row in ledger}
    helicopter = (
        "www.aljazeera.com/news/2019/11/service-members-killed-afghanistan-helicopter-crash-"
        "191120070028895.html"
    )
    wework = "venturebeat.com/2019/11/18/new-york-state-attorney-general-investigating-wework-and-former-ceo"
    assert dropped == {
        f"http://{helicopter}": ("exact_duplicate", f"https://{helicopter}"),  # karma 3 vs 12
        f"https://{wework}/amp": ("near_duplicate", f"https://{wework}"),  # one paragraph less, karma 5 vs 18
    }
