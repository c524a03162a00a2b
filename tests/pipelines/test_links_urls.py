"""`webtext links --urls`: frozen URL lists of the held-in sample give the links its dumps give."""

import bz2
import csv
import gzip
import json
from pathlib import Path

import pytest
import zstandard

from corpus.dumps import iter_dump_lines
from corpus.submissions import Submission, parse_submission
from tests.conftest import SAMPLE
from tests.pipelines.test_links_pipeline import outputs
from webtext.cli import main

COLUMNS = ("url", "score", "subreddit", "created_utc", "id")


def run(out: Path, *args: str) -> int:
    return main(["links", "--out", str(out), *args])


def sample_submissions() -> list[Submission]:
    subs = []
    for path in sorted(SAMPLE.iterdir()):
        with open(path, "rb") as raw:
            for line in iter_dump_lines(raw, str(path)):
                if isinstance(parsed := parse_submission(line.data), Submission):
                    subs.append(parsed)
    return subs


@pytest.fixture(scope="module")
def lists(tmp_path_factory) -> dict:
    """The dumps' links, and the URL lists made from the submissions behind them."""
    root = tmp_path_factory.mktemp("urls")
    assert run(root / "dumps", "--dumps", f"{SAMPLE}/*") == 0
    from_dumps = outputs(root / "dumps")
    kept_ids = {sub_id for row in from_dumps["links"] for sub_id in row["submission_ids"]}
    selected = [s for s in sample_submissions() if s.id in kept_ids]
    rows = [(s.url, s.score, s.subreddit, s.created_utc, s.id) for s in selected]

    tsv = root / "lists" / "selected.tsv.gz"
    tsv.parent.mkdir()
    body = "\t".join(COLUMNS) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    tsv.write_bytes(gzip.compress(body.encode()))
    jsonl = root / "lists" / "selected.jsonl.bz2"
    jsonl.write_bytes(
        bz2.compress("".join(json.dumps(dict(zip(COLUMNS, r, strict=True))) + "\n" for r in rows).encode())
    )
    csv_path = root / "lists" / "selected.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    # OpenWebText's shape: URLs only, one per line, with a comment and a blank line.
    posted = sorted({url for row in from_dumps["links"] for url in row["posted_urls"]})
    plain = root / "plain" / "clean_urls.txt.zst"
    plain.parent.mkdir()
    plain.write_bytes(zstandard.compress(("# selected sample URLs\n\n" + "\n".join(posted) + "\n").encode()))
    return {
        "root": root,
        "dumps": from_dumps,
        "rows": len(rows),
        "tsv": tsv,
        "jsonl": jsonl,
        "csv": csv_path,
        "plain": plain,
    }


def reconciles(got: dict) -> None:
    stats = got["stats"]
    assert (
        stats.items_in
        == stats.items_out + sum(stats.dropped.values())
        == stats.items_out + len(got["ledger"])
    )


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "csv"])
def test_a_list_with_scores_gives_exactly_the_dumps_links(lists, fmt):
    out = lists["root"] / f"from-{fmt}"
    assert run(out, "--urls", str(lists[fmt])) == 0
    got = outputs(out)
    reconciles(got)
    assert got["links"] == lists["dumps"]["links"]
    # "88" and "91" are in two of the dumps, so in the list twice: counted once, as the dumps do.
    assert sorted((r["id"], r["reason"]) for r in got["ledger"]) == [
        ("88", "duplicate_submission"),
        ("91", "duplicate_submission"),
    ]
    assert got["stats"].extra.get("header_lines", 0) == (1 if fmt != "jsonl" else 0)
    assert "unscored_submissions" not in got["stats"].extra


def test_a_bare_list_gives_the_same_links_karma_aside(lists):
    out = lists["root"] / "from-plain"
    assert run(out, "--urls", str(lists["plain"])) == 0
    got = outputs(out)
    reconciles(got)
    assert not got["ledger"]

    def strip(row: dict) -> tuple:
        return row["url"], row["domain"], row["posted_urls"]

    assert [strip(r) for r in got["links"]] == [strip(r) for r in lists["dumps"]["links"]]
    assert {r["karma"] for r in got["links"]} == {3}  # taken as already selected: karma = min
    assert all(r["subreddits"] == [] and r["first_created_utc"] == 0 for r in got["links"])
    stats = got["stats"]
    assert stats.extra["unscored_submissions"] == stats.extra["undated_submissions"] == stats.items_in
    assert stats.extra["comment_lines"] == stats.extra["blank_lines"] == 1
    assert stats.extra["config"]["urls"] == [{"file": "clean_urls.txt.zst", "format": "lines", "columns": []}]
    assert stats.extra["config"]["karma"].startswith("assumed >= min (3)")
    # Lineage: every id is FILE:LINE, and that line of the file holds one of the link's posted URLs.
    lines = zstandard.decompress(lists["plain"].read_bytes()).decode().split("\n")
    for row in got["links"]:
        for sub_id in row["submission_ids"]:
            name, number = sub_id.rsplit(":", 1)
            assert name == "clean_urls.txt.zst" and lines[int(number) - 1] in row["posted_urls"]


def test_urls_and_dumps_in_one_run_aggregate_together(lists):
    out = lists["root"] / "both"
    assert run(out, "--dumps", f"{SAMPLE}/*", "--urls", str(lists["tsv"])) == 0
    got = outputs(out)
    reconciles(got)
    assert got["links"] == lists["dumps"]["links"]  # each submission counted once across dump and list
    assert got["stats"].items_in == lists["dumps"]["stats"].items_in + lists["rows"]
    assert got["stats"].extra["config"]["dumps"] == lists["dumps"]["stats"].extra["config"]["dumps"]


def test_bad_list_lines_are_ledger_rows_naming_file_and_line(tmp_path):
    path = tmp_path / "RS_2011-01.list.tsv"
    path.write_text(
        "url\tscore\tid\n"
        "http://example.com/a\t5\tabc\n"
        "http://example.com/b\t5\n"  # line 3: a cell short
        "http://example.com/c\tmany\tdef\n"  # line 4: a bad score
        "http://example.com/d\t1\tghi\n"  # line 5: low karma
        "/r/pics/\t9\t\n"  # line 6: no scheme, no id
    )
    out = tmp_path / "out"
    assert run(out, "--urls", str(path), "--before", "2011-01-01") == 0  # the file name's month is 2011-01
    got = outputs(out)
    reconciles(got)
    rows = {(r["id"], r["reason"]): r["detail"] for r in got["ledger"]}
    name = path.name
    assert rows[(f"{name}:3", "bad_columns")].startswith(f"{name}:3: 2 cells")
    assert rows[("def", "bad_type")].startswith(f"{name}:4: score")
    assert rows[("abc", "date_too_late")].startswith(f"{name}:2: created_utc=1293840000")
    assert (f"{name}:6", "date_too_late") in rows and ("ghi", "date_too_late") in rows
    assert got["stats"].items_in == 5 and not got["links"]


def test_a_list_without_dates_passes_the_date_window(tmp_path):
    path = tmp_path / "clean_urls.txt"
    path.write_text("http://example.com/a\nhttp://example.com/a/\n")
    assert run(tmp_path / "out", "--urls", str(path), "--preset", "webtext") == 0
    got = outputs(tmp_path / "out")
    assert [(r["url"], r["num_submissions"]) for r in got["links"]] == [("http://example.com/a", 2)]


def test_a_tsv_without_a_url_column_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "list.csv"
    path.write_text("link,score\nhttp://example.com/a,5\n")
    assert run(tmp_path / "out", "--urls", str(path)) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: the header has no url column" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_neither_dumps_nor_urls_is_refused(tmp_path, capsys):
    assert run(tmp_path / "out") == 2
    assert "--dumps GLOB or --urls GLOB" in capsys.readouterr().err
    assert run(tmp_path / "out", "--urls", str(tmp_path / "none-*.txt")) == 2
    assert "no URL list files match" in capsys.readouterr().err
