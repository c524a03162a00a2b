"""One resolver (corpus/workdir.py) finds a stage's committed output from what is on disk: a work directory,
a stage's folder or the output folder itself, whatever the folders are called; every command uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.errors import InputError
from corpus.workdir import Output, commit_bytes, find_output, missing_output
from pipelines.outputs import StageOutput, stage_output
from tests.conftest import committed, submission, write_dump
from tests.pipelines.test_fetch_archive import CC, FIXTURES
from tests.training.release_fixture import write_release
from training.release import open_release
from webtext.cli import main


def reader(files: dict[str, bytes]):
    return files.get


def stats(stage: str) -> bytes:
    return json.dumps({"stage": stage}).encode()


def test_a_work_directory_a_stage_folder_and_an_output_folder():
    files = {
        "w/extract/committed.json": commit_bytes("extract", "gen-3"),
        "w/extract/gen-3/stats.json": stats("extract"),
        "w/dedup/committed.json": commit_bytes("dedup", "gen-1"),
    }
    read = reader(files)
    assert find_output("w", ("extract",), read) == Output("extract", "w/extract/gen-3", "w")
    assert find_output("w/", ("dedup", "extract"), read) == Output("dedup", "w/dedup/gen-1", "w")  # in order
    assert find_output("w/extract", ("dedup", "extract"), read) == Output("extract", "w/extract/gen-3", "w")
    assert find_output("w/extract/gen-3", ("extract",), read) == Output("extract", "w/extract/gen-3", "w")
    assert find_output("w/extract/gen-3", ("dedup",), read) is None  # its stats.json names another stage
    assert find_output("w/extract", ("links",), read) is None
    assert find_output("elsewhere", ("extract",), read) is None


def test_the_folder_names_decide_nothing():
    """`webtext fetch --out fetch` then `webtext extract --fetch fetch`: a work directory called fetch."""
    read = reader({"fetch/fetch/committed.json": commit_bytes("fetch", "gen-1")})
    assert find_output("fetch", ("fetch",), read) == Output("fetch", "fetch/fetch/gen-1", "fetch")
    assert find_output("fetch/fetch", ("fetch",), read) == Output("fetch", "fetch/fetch/gen-1", "fetch")
    release = reader({"copy/manifest.json": b"{}"})  # a release copied anywhere
    assert find_output("copy", ("release",), release) == Output("release", "copy", ".")


def test_no_output_and_a_damaged_commit_file_are_one_line_naming_the_path():
    assert str(missing_output("w", ("filter", "dedup", "extract"))).startswith(
        "w: no committed filter or dedup or extract output"
    )
    with pytest.raises(InputError, match=r"^w/links/committed.json: unreadable commit file"):
        find_output("w", ("links",), reader({"w/links/committed.json": b"{"}))


def test_extract_reads_a_work_directory_named_like_a_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    urls = ["http://003338.cn/l41/481397.html", "http://01spb.ru/company/", "http://example.com/"]
    dump = write_dump(tmp_path / "RS.jsonl", [submission(f"s{i}", url) for i, url in enumerate(urls)])
    assert main(["links", "--dumps", str(dump), "--out", "fetch"]) == 0
    archives = [f"--from-warc={CC}", f"--from-warc={FIXTURES / 'warcio_example.warc.gz'}"]
    assert main(["fetch", "--links", "fetch/links", "--out", "fetch", *archives]) == 0
    assert main(["extract", "--fetch", "fetch", "--out", "docs"]) == 0
    first = json.loads((committed(Path("docs"), "extract") / "stats.json").read_text())
    assert first["in"] == 3 and first["out"] >= 1
    assert main(["extract", "--fetch", "fetch/fetch", "--out", "docs"]) == 0  # its stage folder: the same
    assert json.loads((committed(Path("docs"), "extract") / "stats.json").read_text()) == first
    assert committed(Path("docs"), "extract").name == "gen-2"


def test_the_trainer_and_verify_take_the_work_directory_or_the_release(tmp_path, capsys):
    work = tmp_path / "work"
    output = StageOutput(str(work), "release")
    write_release(Path(output.root))
    output.publish()
    for path in (work, work / "release", Path(output.root), f"file://{work}/"):
        release = open_release(str(path))
        assert release.root.endswith("release/gen-1") and release.shards("train")
        assert main(["verify", str(path).removeprefix("file://")]) == 0
    assert stage_output(str(work), "release").path == output.root
    with pytest.raises(InputError, match="nowhere: no committed release output"):
        open_release(str(tmp_path / "nowhere"))
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"webtext train: error: {tmp_path / 'nowhere'}: no committed")
