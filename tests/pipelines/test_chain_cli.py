"""The chain as the README tells a user to run it, stage by stage: relative paths, another current directory,
one work directory for every stage or one directory per stage named after it. Each gives the documents that
`webtext build` gives."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.conftest import SAMPLE
from webtext.cli import main

WARC = SAMPLE.parent / "warc"
RELEASE_FLAGS = ["--val-fraction", "0.2", "--tokenizer", "train:2000"]


def release_documents(path: Path) -> dict[str, str]:
    """key -> text of every document in the release that `path` (a work or release directory) holds."""
    manifest_path = next(p for p in [path / "manifest.json", *path.rglob("manifest.json")] if p.is_file())
    manifest = json.loads(manifest_path.read_text())
    docs = {}
    for shards in manifest["splits"].values():
        for shard in shards:
            with tarfile.open(manifest_path.parent / shard["path"]) as tar:
                for member in tar.getmembers():
                    if member.name.endswith(".txt"):
                        key = member.name.rsplit(".", 1)[0]
                        docs[key] = io.TextIOWrapper(tar.extractfile(member), encoding="utf-8").read()
    return docs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The sample's dumps and WARC files copied beside the work directories, reached by relative paths."""
    root = tmp_path_factory.mktemp("chain")
    shutil.copytree(SAMPLE, root / "dumps")
    shutil.copytree(WARC, root / "warc")
    return root


@pytest.fixture(scope="module")
def built(inputs) -> dict[str, str]:
    out = inputs / "built"
    code = main(
        [
            "build", "--dumps", str(inputs / "dumps" / "*"),
            "--from-warc", str(inputs / "warc" / "*.warc.gz"),
            "--out", str(out), "--stage-flags", f"release={' '.join(RELEASE_FLAGS)}",
        ]
    )  # fmt: skip
    assert code == 0
    return release_documents(out)


def run_chain(monkeypatch, start: Path, dirs: dict[str, str]) -> None:
    """links .. release with relative paths; the WARC glob is relative to where fetch runs, and extract
    runs from another directory, so a stored relative path would break it."""
    monkeypatch.chdir(start)
    assert main(["links", "--dumps", "../dumps/*", "--out", dirs["links"]]) == 0
    fetch = ["fetch", "--links", dirs["links"], "--from-warc", "../warc/*.warc.gz", "--out", dirs["fetch"]]
    assert main(fetch) == 0
    monkeypatch.chdir(start.parent)
    here = start.name
    assert main(["extract", "--fetch", f"{here}/{dirs['fetch']}", "--out", f"{here}/{dirs['extract']}"]) == 0
    monkeypatch.chdir(start)
    assert main(["dedup", "--docs", dirs["extract"], "--out", dirs["dedup"]]) == 0
    assert main(["filter", "--docs", dirs["dedup"], "--out", dirs["filter"]]) == 0
    assert main(["release", "--docs", dirs["filter"], "--out", dirs["release"], *RELEASE_FLAGS]) == 0
    assert main(["verify", dirs["release"]]) == 0


def test_one_work_directory_with_relative_paths_gives_the_built_documents(inputs, built, monkeypatch):
    start = inputs / "one"
    start.mkdir()
    run_chain(monkeypatch, start, {stage: "work" for stage in STAGE_DIRS})
    assert release_documents(start / "work") == built


STAGE_DIRS = {s: s for s in ("links", "fetch", "extract", "dedup", "filter", "release")}


def test_a_directory_per_stage_named_after_it_gives_the_built_documents(inputs, built, monkeypatch):
    start = inputs / "per-stage"
    start.mkdir()
    run_chain(monkeypatch, start, STAGE_DIRS)
    assert release_documents(start / "release") == built
    # every command that reads a release takes the release's work directory as well
    assert main(["verify", str(start / "release")]) == 0
