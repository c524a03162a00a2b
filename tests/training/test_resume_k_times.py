"""Resume k times (issue 18): a run SIGKILLed three times between checkpoints, resumed each time with another
loader worker count (0 <-> 2) or, under torchrun with gloo, another world size (1 <-> 2, DDP and FSDP2), reads
every token of every complete epoch exactly once, as an uninterrupted run does; unchanged, its losses are
bitwise those of the uninterrupted run.

Each run segment traces the batches its loader hands over (WEBTEXT_TRACE_DOCUMENTS, its own directory); a
trace line carries the loader's batch index, so the batches a killed segment handed over after its last
checkpoint, which the next segment hands over again, are dropped: segment k resumed from step s_k and was
followed by a resume from step s_k+1, so it consumed its first (s_k+1 - s_k) x grad_accum batches per rank.
The kills are SIGKILLs of every process of the run (the torchrun launcher, its workers, which torchrun starts
in sessions of their own, and their DataLoader workers) at a seeded random step seen in metrics.jsonl.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

import numpy as np
import pytest

from tests.training.release_fixture import write_release
from tests.training.traces import (
    Span,
    assert_read_once,
    by_document,
    latest_step,
    losses,
    tokens_read,
    trace_spans,
)
from training.checkpoint import load_checkpoint
from training.data import TRACE_ENV
from training.elastic import run_reader_states

ROOT = Path(__file__).resolve().parents[2]
STEPS, SAVE_EVERY, GLOBAL_BATCH, MICRO_BATCH, SEQ_LEN = 28, 4, 256, 4, 32  # 12 steps per epoch
TRAIN = [
    "--preset", "tiny", "--seq-len", str(SEQ_LEN), "--micro-batch", str(MICRO_BATCH),
    "--global-batch-tokens", str(GLOBAL_BATCH), "--shuffle-buffer", "8", "--log-every", "1",
    "--eval-every", "1000", "--eval-batches", "1", "--warmup-steps", "2", "--dropout", "0.1",
    "--sample-tokens", "0", "--max-steps", str(STEPS), "--save-every", str(SAVE_EVERY), "--keep", "100",
]  # fmt: skip
TIMEOUT = 300  # seconds a segment may take: generous, the machine may be loaded


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def straight(release_dir, tmp_path_factory) -> Path:
    """An uninterrupted run: one process, 2 loader workers, traced in its `trace` directory."""
    out = tmp_path_factory.mktemp("straight")
    process = launch(release_dir, out, out / "trace", ranks=1, workers=2, torchrun=False)
    assert process.wait(timeout=TIMEOUT) == 0, (out / "log.txt").read_text()
    return out


def launch(release: Path, out: Path, trace: Path, ranks: int, workers: int, torchrun: bool, *extra: str):
    """`webtext train --resume` in a session of its own (torchrun with `ranks` processes, or plain python),
    traced into `trace`, its output appended to out/log.txt."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    command = [*(launcher if torchrun else [sys.executable]), "-m", "webtext.cli", "train"]
    args = ["--data", str(release), "--out", str(out), *TRAIN, "--num-workers", str(workers), "--resume"]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.txt", "a", encoding="utf-8") as log:
        return subprocess.Popen(
            [*command, *args, *extra],
            cwd=ROOT,
            env=dict(os.environ, **{TRACE_ENV: str(trace)}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (children, theirs, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def kill_everything(process: subprocess.Popen) -> None:
    """SIGKILL the run at once: stop every process of it first (so none reacts to another's death), then
    kill them all."""
    stopped: set[int] = set()
    os.killpg(process.pid, signal.SIGSTOP)
    while more := set(descendants(process.pid)) - stopped:  # a process may have started meanwhile
        for pid in more:
            with suppress(ProcessLookupError):  # gone meanwhile
                os.kill(pid, signal.SIGSTOP)
        stopped |= more
    for pid in [process.pid, *stopped]:
        with suppress(ProcessLookupError):  # gone meanwhile
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=60)
    deadline = time.monotonic() + 60  # none may touch the run directory once the next segment starts
    while (alive := [pid for pid in stopped if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive, f"processes {alive} outlived SIGKILL"


def _running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (dead, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run_until(process: subprocess.Popen, metrics: Path, offset: int, step: int) -> None:
    """Wait until the run logs step `step` or later in `metrics` (after byte `offset`: lines of earlier
    segments do not count), then kill it."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file():
            with open(metrics, "rb") as handle:
                handle.seek(offset)
                lines = handle.read().decode().split("\n")[:-1]
            if any(r["kind"] == "train" and r["step"] >= step for r in map(json.loads, lines)):
                break
        time.sleep(0.02)
    if process.poll() is not None:
        pytest.fail(f"the run ended before logging step {step}:\n{(metrics.parent / 'log.txt').read_text()}")
    kill_everything(process)


def run_killed(
    release: Path, out: Path, segments: list[tuple[int, int]], seed: int, torchrun: bool, *extra: str
) -> list[Span]:
    """Run to STEPS through `segments` (ranks, loader workers) in turn, SIGKILLing each but the last at a
    seeded random step between checkpoints; the document pieces the run consumed, kept as explained above."""
    rng = np.random.default_rng(seed)
    spans: list[Span] = []
    resumed = 0  # the step the current segment resumed from
    for k, (ranks, workers) in enumerate(segments):
        trace = out / f"trace-{k}"
        process = launch(release, out, trace, ranks, workers, torchrun, *extra)
        if k == len(segments) - 1:
            assert process.wait(timeout=TIMEOUT) == 0, (out / "log.txt").read_text()
            spans += trace_spans(trace)
            break
        metrics = out / "metrics.jsonl"
        offset = metrics.stat().st_size if metrics.is_file() else 0
        # Past the next checkpoint, not on one: each segment saves at least one checkpoint of its own.
        kill_at = resumed + SAVE_EVERY + int(rng.integers(1, SAVE_EVERY))
        run_until(process, metrics, offset, kill_at)
        at = latest_step(out)
        assert resumed < at < STEPS, f"segment {k} killed at step {kill_at}, latest checkpoint {at}"
        grad_accum = GLOBAL_BATCH // (MICRO_BATCH * SEQ_LEN * ranks)
        spans += trace_spans(trace, before=(at - resumed) * grad_accum)
        resumed = at
    return spans


def complete_epochs(run: Path) -> int:
    """How many epochs every reader of the run's final checkpoint has finished."""
    state = load_checkpoint(run / "checkpoints" / f"step-{STEPS:08d}")
    return min(s.get("epoch", 0) for s in run_reader_states(state["loaders"]))


def assert_same_tokens_once(release_dir: Path, straight: Path, killed: Path, spans: list[Span]) -> None:
    """Every complete epoch of the killed run consumed the tokens the straight run did, each exactly once;
    the epoch in progress holds no token twice."""
    reference = trace_spans(straight / "trace")
    epochs = min(complete_epochs(straight), complete_epochs(killed))
    assert epochs >= 1
    for epoch in range(epochs):
        assert_read_once(by_document(reference), release_dir, epoch)
        assert tokens_read(spans, epoch) == tokens_read(reference, epoch)
        assert max(tokens_read(spans, epoch).values()) == 1
    assert max(tokens_read(spans, epochs).values()) == 1


def test_three_kills_with_loader_workers_0_2_0_2_read_every_token_once(release_dir, straight, tmp_path):
    spans = run_killed(release_dir, tmp_path, [(1, 0), (1, 2), (1, 0), (1, 2)], 1, False)
    assert_same_tokens_once(release_dir, straight, tmp_path, spans)
    assert (tmp_path / "log.txt").read_text().count("elastic resume") == 3


def test_three_kills_unchanged_resume_bitwise_identical(release_dir, straight, tmp_path):
    spans = run_killed(release_dir, tmp_path, [(1, 2)] * 4, 2, False)
    assert losses(tmp_path) == losses(straight)
    assert Counter(spans) == Counter(trace_spans(straight / "trace"))
    assert "elastic resume" not in (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp2"])
def test_three_kills_under_torchrun_1_2_1_2_ranks_read_each_token_once(release_dir, straight, tmp_path, fsdp):
    extra = ("--fsdp",) if fsdp else ()
    spans = run_killed(release_dir, tmp_path, [(1, 0), (2, 0), (1, 0), (2, 0)], 3, True, *extra)
    assert_same_tokens_once(release_dir, straight, tmp_path, spans)
    log = (tmp_path / "log.txt").read_text()
    assert log.count("elastic resume") == 3
