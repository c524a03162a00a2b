"""The links stage as users run it: `webtext links ...` on the DirectRunner over real Pushshift dumps."""

import hashlib
import json
from pathlib import Path

import pytest

from corpus.accounting import load_stats
from pipelines.outputs import read_table
from tests.conftest import SAMPLE, committed, submission, write_dump
from webtext.cli import main

MULTI = [
    "--direct_num_workers=2",
    "--direct_running_mode=multi_processing",
    "--default_sdk_harness_log_level=WARNING",
]


def run_links(out: Path, *args: str, dumps: str = f"{SAMPLE}/*") -> int:
    return main(["links", "--dumps", dumps, "--out", str(out), *args])


def outputs(out: Path) -> dict:
    links_dir = committed(out, "links")
    stats = load_stats((links_dir / "stats.json").read_text())
    links = read_table(str(links_dir / "part-*.parquet")).to_pylist()
    ledger = read_table(str(links_dir / "ledger" / "links-*.parquet")).to_pylist()
    return {"stats": stats, "links": links, "ledger": ledger}


def digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sample")
    assert run_links(out) == 0
    return {"out": out, **outputs(out)}


def test_counts_reconcile_with_the_ledger_and_the_links(sample_run):
    stats, links, ledger = sample_run["stats"], sample_run["links"], sample_run["ledger"]
    assert stats.items_in == 62 + 647 + 19 + 11  # every line of the three real files and the demo's own
    assert stats.items_in == stats.items_out + sum(stats.dropped.values())
    assert stats.items_out == sum(row["num_submissions"] for row in links)
    assert len(ledger) == sum(stats.dropped.values())
    by_reason: dict[str, int] = {}
    for row in ledger:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
    assert by_reason == stats.dropped
    assert stats.extra["links"] == len(links)
    assert sorted(p.name for p in (sample_run["out"] / "links").iterdir()) == ["committed.json", "gen-1"]


def test_named_real_submissions_land_where_hand_checking_says(sample_run):
    links = {row["url"]: row for row in sample_run["links"]}
    reasons = {(row["id"], row["reason"]) for row in sample_run["ledger"]}
    # 88: the first wsj.com link on Reddit (score 8), in the 2005-06 dump and again in the mixed-eras file.
    wsj = links[
        "http://online.wsj.com/public/article/0,,SB111948406207267049-_s5eff_5SbJW3B_RdxwYLvU3s6c_"
        "20050723,00.html?mod=blogs"
    ]
    assert wsj["submission_ids"] == ["88"] and wsj["karma"] == 8 and wsj["domain"] == "online.wsj.com"
    assert ("88", "duplicate_submission") in reasons
    assert ("90", "low_karma") in reasons  # macrumors.com, score 2
    assert ("320", "wikipedia") in reasons  # wikimania.wikimedia.org
    assert ("1061", "blocked_extension") in reasons  # a .pdf
    assert ("1afwvv9", "blocked_domain") in reasons  # v.redd.it video
    assert ("2f4i9a", "blocked_domain") in reasons  # a link to reddit.com itself
    assert ("1afwvvh", "nsfw") in reasons
    assert ("1afwvv8", "self_post") in reasons
    # The 3eyes.co.uk link was posted with a trailing slash before its query; canonical form drops it.
    three_eyes = links["http://3eyes.co.uk/views/public?doc=Lapjuicer"]
    assert three_eyes["posted_urls"] == ["http://3eyes.co.uk/views/public/?doc=Lapjuicer"]
    assert all(row["karma"] >= 3 for row in links.values())


def test_same_bytes_for_one_and_two_workers(tmp_path, sample_run):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_links(one, "--num-shards", "6") == 0
    assert run_links(two, "--num-shards", "6", "--splits-per-file", "3", *MULTI) == 0
    assert len(list(committed(one, "links").glob("part-*"))) == 6
    assert digests(one) == digests(two)


def test_portable_runner_gives_the_same_bytes(tmp_path, sample_run):
    out = tmp_path / "portable"
    args = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]
    assert run_links(out, *args) == 0
    assert digests(out) == digests(sample_run["out"])


def test_malformed_lines_are_ledger_rows_naming_file_and_line(tmp_path):
    dump = write_dump(
        tmp_path / "dumps" / "RS_bad.zst",
        [
            submission("ok1", "http://example.com/a"),
            b'{"id": "broken", "url": ',  # line 2: bad JSON
            b"\xff\xfe not utf-8",  # line 3
            b"",  # line 4: blank, not a record
            submission("typed", "http://example.com/b", score="lots"),  # line 5
            b'{"body": "a comment", "link_id": "t3_x"}',  # line 6
            submission("ok2", "http://example.com/a", score=1),
        ],
    )
    out = tmp_path / "out"
    assert run_links(out, dumps=str(dump)) == 0
    got = outputs(out)
    assert got["stats"].items_in == 6 and got["stats"].extra["blank_lines"] == 1
    rows = {row["id"]: row for row in got["ledger"]}
    assert rows["RS_bad.zst:2"]["reason"] == "malformed_json"
    assert rows["RS_bad.zst:3"]["reason"] == "invalid_utf8"
    assert rows["typed"]["reason"] == "bad_type" and rows["typed"]["detail"].startswith("RS_bad.zst:5: score")
    assert rows["RS_bad.zst:6"]["reason"] == "not_a_submission"
    assert [row["submission_ids"] for row in got["links"]] == [["ok1", "ok2"]]


def test_karma_rule_sum_and_webtext_preset(tmp_path):
    dump = write_dump(
        tmp_path / "RS.jsonl",
        [
            submission("a", "http://example.com/x", score=2, created_utc=1_500_000_000),
            submission("b", "http://example.com/x/", score=2, created_utc=1_500_000_100),
            submission("c", "http://example.com/new", score=50, created_utc=1_600_000_000),  # 2020
        ],
    )
    assert run_links(tmp_path / "per", dumps=str(dump)) == 0
    assert [r["url"] for r in outputs(tmp_path / "per")["links"]] == ["http://example.com/new"]
    assert run_links(tmp_path / "sum", "--karma-rule", "sum", dumps=str(dump)) == 0
    summed = outputs(tmp_path / "sum")["links"]
    assert [(r["url"], r["karma"]) for r in summed] == [
        ("http://example.com/new", 50),
        ("http://example.com/x", 4),
    ]
    assert run_links(tmp_path / "preset", "--preset", "webtext", "--karma-rule", "sum", dumps=str(dump)) == 0
    preset = outputs(tmp_path / "preset")
    assert [r["url"] for r in preset["links"]] == ["http://example.com/x"]
    assert preset["stats"].dropped == {"date_too_late": 1}
    assert preset["stats"].extra["config"]["before"] == 1514764800


def test_corrupt_dump_fails_with_one_line_and_publishes_nothing(tmp_path, capsys):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    real = (SAMPLE / "RS_v2_2005-07.shared.ndjson.zst").read_bytes()
    (dumps / "RS_good.zst").write_bytes(real)
    out = tmp_path / "out"
    assert run_links(out, dumps=f"{dumps}/*") == 0
    before = digests(out)
    (dumps / "RS_trunc.zst").write_bytes(real[: len(real) // 2])
    capsys.readouterr()
    assert run_links(out, dumps=f"{dumps}/*") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("webtext links: error: ") and "RS_trunc.zst" in err[-1] and "truncated" in err[-1]
    )
    assert "Traceback" not in "\n".join(err)
    assert digests(out) == before  # the earlier output is untouched, nothing partial was published


def test_a_directory_or_an_unreadable_dump_fails_with_one_line_naming_it(tmp_path, capsys, monkeypatch):
    from apache_beam.io.filesystems import FileSystems

    dumps = tmp_path / "dumps"
    locked = write_dump(dumps / "RS_locked.zst", [submission("a", "http://example.com/a")])
    out = tmp_path / "out"
    assert run_links(out, dumps=str(dumps)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"webtext links: error: {dumps}: cannot read the dump (Is a directory; name the dumps inside it, "
        f"e.g. '{dumps}/*')"
    )
    # Tests run as root, whom no file mode stops: the open itself is refused instead.
    beam_open = FileSystems.open

    def open_or_refuse(path: str, *args, **kwargs):
        if path == str(locked):
            raise PermissionError(13, "Permission denied", path)
        return beam_open(path, *args, **kwargs)

    monkeypatch.setattr(FileSystems, "open", staticmethod(open_or_refuse))
    assert run_links(out, dumps=str(locked)) == 2
    err += capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"webtext links: error: {locked}: cannot read the dump (Permission denied)"
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_posted_urls_never_keep_credentials(tmp_path):
    dump = write_dump(tmp_path / "RS.jsonl", [submission("a", "https://alice:s3cret@example.com/x/?q=1")])
    assert run_links(tmp_path / "out", dumps=str(dump)) == 0
    [row] = outputs(tmp_path / "out")["links"]
    assert row["url"] == "https://example.com/x?q=1" and row["posted_urls"] == ["https://example.com/x/?q=1"]


def test_no_matching_files_is_a_clear_error(tmp_path, capsys):
    assert run_links(tmp_path / "out", dumps=str(tmp_path / "nothing-*.zst")) == 2
    assert "no dump files match" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_stats_json_is_the_designed_shape(sample_run):
    raw = json.loads((committed(sample_run["out"], "links") / "stats.json").read_text())
    assert list(raw)[:4] == ["stage", "in", "out", "dropped"]
    assert raw["stage"] == "links" and raw["config"]["min_karma"] == 3


def test_beam_counters_are_named_stage_reason(tmp_path, sample_run):
    from corpus.link_rules import LinkConfig
    from pipelines.files import match_files
    from pipelines.links.stage import STAGE
    from pipelines.links.transform import LinksOptions

    result = STAGE.run(LinksOptions(match_files(f"{SAMPLE}/*"), LinkConfig()), str(tmp_path / "out"), [])
    counters, stats = result.counters, sample_run["stats"]
    assert {k: v for k, v in counters.items() if k.removeprefix("links:") in stats.dropped} == {
        f"links:{reason}": n for reason, n in stats.dropped.items()
    }
    assert counters["links:in"] == stats.items_in == result.items_in
    assert counters["links:out"] == stats.items_out == result.items_out
    assert counters["links:links"] == stats.extra["links"]


def test_empty_files_and_an_overlong_line(tmp_path):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "RS_empty.zst").write_bytes(b"")
    (dumps / "RS_empty.bz2").write_bytes(b"")
    big = submission("big", "http://example.com/big", selftext="y" * 3_000_000)
    write_dump(dumps / "RS_big.zst", [submission("ok", "http://example.com/ok"), big])
    out = tmp_path / "out"
    assert run_links(out, "--max-line-bytes", str(2**20), dumps=f"{dumps}/*") == 0
    got = outputs(out)
    assert got["stats"].items_in == 2 and got["stats"].dropped == {"line_too_long": 1}
    assert [(row["id"], row["reason"]) for row in got["ledger"]] == [("RS_big.zst:2", "line_too_long")]
    assert [row["url"] for row in got["links"]] == ["http://example.com/ok"]


def test_a_mistyped_flag_is_refused_not_passed_to_beam(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_links(tmp_path / "out", "--min-karm", "5")
    assert exit_.value.code == 2 and "unrecognized arguments: --min-karm" in capsys.readouterr().err
