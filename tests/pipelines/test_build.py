"""`webtext build` on the embedded sample: the whole chain, resumable, and the same bytes on every runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.chain import CHAIN as STAGES
from tests.conftest import SAMPLE, committed, submission, write_dump
from webtext.cli import main

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]
MULTI = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def build(out: Path, *extra: str) -> int:
    return main(
        [
            "build",
            "--dumps", f"{SAMPLE}/*",
            "--from-warc", f"{SAMPLE.parent}/warc/*.warc.gz",
            "--out", str(out),
            "--stage-flags", "release=--val-fraction 0.2 --tokenizer train:2000",
            *extra,
        ]
    )  # fmt: skip


def release_bytes(out: Path) -> dict[str, bytes]:
    release = committed(out, "release")
    kept = (".json", ".tar", ".bloom")
    return {p.name: p.read_bytes() for p in sorted(release.iterdir()) if p.suffix in kept}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    assert build(out) == 0
    return out


def test_build_runs_every_stage_and_records_counts(built):
    record = json.loads((built / "build.json").read_text())
    assert [s for s in STAGES if record[s]["state"] == "complete"] == list(STAGES)
    manifest = json.loads((committed(built, "release") / "manifest.json").read_text())
    assert list(manifest["build"]) == sorted(STAGES)
    assert manifest["build"]["release"] == {"in": record["release"]["in"], "out": record["release"]["out"]}
    assert all("seconds" not in entry for entry in manifest["build"].values())  # timings stay in build.json
    assert (committed(built, "release") / manifest["ngrams"][0]["path"]).is_file()
    assert main(["verify", str(built)]) == 0


def test_a_rerun_skips_complete_stages_and_redoes_a_partial_one(built, capsys):
    before = release_bytes(built)
    capsys.readouterr()
    assert build(built) == 0
    printed = capsys.readouterr().out
    assert all(f"build: {stage}: complete with the same flags, skipped" in printed for stage in STAGES)
    assert release_bytes(built) == before

    # A build that stopped inside dedup: dedup and everything after it run again, earlier stages do not.
    record = json.loads((built / "build.json").read_text())
    record["dedup"]["state"] = "running"
    (built / "build.json").write_text(json.dumps(record))
    assert build(built) == 0
    printed = capsys.readouterr().out
    assert "build: dedup: the last build stopped inside this stage" in printed
    skipped = [s for s in STAGES if f"build: {s}: complete with the same flags, skipped" in printed]
    assert skipped == ["links", "fetch", "extract"]
    assert release_bytes(built) == before

    # A stage whose output went missing is redone too.
    (committed(built, "filter") / "stats.json").unlink()
    assert build(built) == 0
    assert "build: filter: complete" not in capsys.readouterr().out
    assert release_bytes(built) == before


def test_bad_stage_flags_are_one_line(tmp_path, capsys):
    assert build(tmp_path, "--stage-flags", "nothing=--x") == 2
    assert "--stage-flags 'nothing=--x'" in capsys.readouterr().err


@pytest.mark.parametrize("runner", [PORTABLE, MULTI], ids=["portable-loopback", "direct-2-processes"])
def test_the_whole_build_gives_the_same_release_bytes_on_other_runners(built, tmp_path, runner):
    assert build(tmp_path / "other", *runner) == 0
    assert release_bytes(tmp_path / "other") == release_bytes(built)


def test_a_build_of_no_documents_stops_at_the_release_unless_it_is_allowed(tmp_path, capsys):
    dump = write_dump(tmp_path / "RS.jsonl", [submission("a", "https://www.reddit.com/r/x/", is_self=True)])
    warc = f"{SAMPLE.parent}/warc/*.warc.gz"
    argv = ["build", "--dumps", str(dump), "--from-warc", warc, "--out", str(tmp_path / "out")]
    tokenizer = f"--tokenizer gpt2:{Path(__file__).parents[1] / 'fixtures' / 'gpt2_bpe'}"
    assert main([*argv, "--stage-flags", f"release={tokenizer}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no documents to release; an empty release needs --allow-empty" in err[0]
    assert main([*argv, "--stage-flags", f"release={tokenizer} --allow-empty"]) == 0
    assert main(["verify", str(tmp_path / "out")]) == 0
    assert "verify: ok: 0 shards, 0 documents" in capsys.readouterr().out


def test_a_build_from_a_url_list_extracts_the_same_documents(built, tmp_path):
    """The links that the dumps gave, frozen as an OpenWebText-style list (one URL per line, no scores):
    `build --urls` alone hands it to links, and the chain extracts the same documents and releases them."""
    from pipelines.outputs import read_table

    def column(out: Path, stage: str, name: str) -> list:
        return read_table(str(committed(out, stage) / "part-*.parquet"), [name]).column(name).to_pylist()

    urls = tmp_path / "RS_2017-01.deduped.txt"
    urls.write_text("\n".join(column(built, "links", "url")) + "\n")
    out = tmp_path / "from-list"
    warc, flags = f"{SAMPLE.parent}/warc/*.warc.gz", "release=--val-fraction 0.2 --tokenizer train:2000"
    argv = ["build", "--urls", str(urls), "--from-warc", warc, "--out", str(out), "--stage-flags", flags]
    assert main(argv) == 0
    record = json.loads((out / "build.json").read_text())
    assert record["links"]["argv"] == ["links", "--urls", str(urls), "--out", str(out)]
    assert column(out, "links", "url") == column(built, "links", "url")
    assert column(out, "extract", "id") == column(built, "extract", "id") != []
    assert main(["verify", str(out)]) == 0


def test_a_build_needs_dumps_or_url_lists(tmp_path, capsys):
    assert main(["build", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "build needs --dumps GLOB or --urls GLOB (or both)" in err[0]
