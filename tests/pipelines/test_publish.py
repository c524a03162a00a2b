"""Publishing is atomic: a process killed at any rename or delete of a publish leaves either the old output
or the new one committed and whole (for a release, `webtext verify` passes), never a mix, and a rerun gives
the new output's bytes and removes every leftover.

The kill is real: the publish runs in a forked child that SIGKILLs itself just before its k-th rename or
delete (os.replace, os.rename, os.remove, os.unlink, os.rmdir, also inside shutil.rmtree), for every k.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

from pipelines.outputs import StageOutput
from tests.conftest import SAMPLE, committed
from tests.fixtures.near_duplicates import load_gold
from tests.pipelines.test_dedup_filter import doc, write_docs
from tests.pipelines.test_release import GPT2
from webtext.cli import main

REAL_PUBLISH = StageOutput.publish
STEPS = ("replace", "rename", "remove", "unlink", "rmdir")


def _publish_until(step: int, output: StageOutput, keep: tuple[str, ...], pipe) -> None:
    count = 0

    def counted(function):
        def step_then(*args, **kwargs):
            nonlocal count
            count += 1
            if count == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return function(*args, **kwargs)

        return step_then

    for name in STEPS:
        setattr(os, name, counted(getattr(os, name)))
    REAL_PUBLISH(output, keep)
    pipe.send(count)


def publish_killed_at(step: int, output: StageOutput, keep: tuple[str, ...]) -> int | None:
    """Publish in a forked child killed just before its `step`-th rename or delete: None when it was killed,
    else (it finished first) the number of renames and deletes it made."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_publish_until, args=(step, output, keep, send))
    child.start()
    child.join()
    if child.exitcode == -signal.SIGKILL:
        return None
    assert child.exitcode == 0
    return receive.recv()


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def unpublished_run(argv: list[str], monkeypatch) -> tuple[StageOutput, tuple[str, ...]]:
    """Run a command whose publish does nothing: the new generation written, the old one still committed."""
    runs = []
    with monkeypatch.context() as patch:
        patch.setattr(StageOutput, "publish", lambda output, keep=(): runs.append((output, keep)))
        assert main(argv) == 0
    return runs[0]


def check_every_kill(work: Path, stage: str, old: list[str], new: list[str], monkeypatch, rerun_at) -> int:
    """Commit `old`, write `new` unpublished, then for every k: restore that state, kill the publish at
    step k, check that the old or the new output is committed whole (and, when `rerun_at(k)`, that a rerun
    gives the new bytes and leaves nothing else). Returns the number of steps."""
    assert main(old) == 0
    before = digests(committed(work, stage))
    output, keep = unpublished_run(new, monkeypatch)
    after = digests(Path(output.root))
    assert before != after
    snapshot = work.parent / f"{work.name}-snapshot"
    shutil.copytree(work, snapshot)
    steps = publish_killed_at(0, output, keep)  # the whole publish, to count its steps
    assert steps and digests(committed(work, stage)) == after
    for step in range(1, steps + 1):
        shutil.rmtree(work)
        shutil.copytree(snapshot, work)
        assert publish_killed_at(step, output, keep) is None
        assert digests(committed(work, stage)) in (before, after), f"a mix after a kill at step {step}"
        if stage == "release":
            assert main(["verify", str(work)]) == 0, f"verify fails after a kill at step {step}"
        if rerun_at(step):
            assert main(new) == 0
            folder = Path(output.folder)
            assert digests(committed(work, stage)) == after
            assert sorted(p.name for p in folder.iterdir()) == ["committed.json", committed(work, stage).name]
    return steps


def test_a_killed_parquet_stage_publish_leaves_the_old_or_the_new_output(tmp_path, monkeypatch):
    work = tmp_path / "work"
    links = ["links", "--dumps", f"{SAMPLE}/*", "--out", str(work)]
    steps = check_every_kill(work, "links", links, [*links, "--min-karma", "5"], monkeypatch, lambda k: True)
    assert steps >= 4  # the commit and a delete for each of the old generation's 3 files, at least


def test_a_killed_release_publish_leaves_a_whole_release_that_verifies(tmp_path, monkeypatch, capsys):
    rows = [doc(f"https://example.org/{name}", text) for name, text in sorted(load_gold().items())[:4]]
    work = write_docs(tmp_path / "work", rows)
    release = ["release", "--docs", str(work), "--out", str(work), "--tokenizer", f"gpt2:{GPT2}"]
    old, new = [*release, "--shard-docs", "2"], [*release, "--shard-docs", "1"]
    # A rerun costs a release run: once from a kill before the commit, once from a kill right after it.
    steps = check_every_kill(work, "release", old, new, monkeypatch, lambda k: k in (1, 2))
    assert steps >= 10
    manifest = json.loads((committed(work, "release") / "manifest.json").read_text())
    assert sum(shard["docs"] for shards in manifest["splits"].values() for shard in shards) == 4


def test_a_failed_run_leaves_no_generation_behind(tmp_path):
    work = tmp_path / "work"
    assert main(["links", "--dumps", f"{SAMPLE}/*", "--out", str(work)]) == 0
    before = digests(work)
    output = StageOutput(str(work), "links")  # a run's generation, written in part, never committed
    Path(output.path("ledger")).mkdir(parents=True)
    Path(output.path("part-00000-of-00001.parquet")).write_bytes(b"partial")
    output.discard()
    assert digests(work) == before and sorted(p.name for p in (work / "links").iterdir()) == [
        "committed.json",
        "gen-1",
    ]
