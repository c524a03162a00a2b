"""Elastic resume (training/elastic.py): a run resized mid-epoch reads each document of the epoch once.

The proof is over document keys and token ranges: with WEBTEXT_TRACE_DOCUMENTS set, every loader records
which piece of which document each batch it hands over holds. In-process loaders check many resize patterns
quickly; real torchrun processes check the trainer going 2 -> 1 -> 2 ranks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from itertools import count, islice
from pathlib import Path

import pytest
import torch

from corpus.errors import InputError
from tests.training.release_fixture import write_release
from tests.training.traces import assert_read_once, documents, losses, read_trace
from training.checkpoint import load_checkpoint
from training.config import LoaderConfig
from training.data import RANGE_KEYS, TRACE_ENV, build_loader, reader_states
from training.elastic import deal_reader_states, load_run_state, run_reader_states
from training.release import open_release

ROOT = Path(__file__).resolve().parents[2]
SEQ_LEN, MICRO_BATCH, SHUFFLE = 16, 2, 3


def loaders_for(release, world_size: int, num_workers: int, saved: list[dict] | None) -> list:
    loaders = [
        build_loader(
            release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, rank, world_size, 0, num_workers, SHUFFLE)
        )
        for rank in range(world_size)
    ]
    if saved is not None:
        assert all(load_run_state(each, saved) for each in loaders)  # re-dealt, not loaded as saved
    return loaders


def positions(loaders) -> list[dict]:
    return [s for each in loaders for s in run_reader_states([each.state_dict()]) if s]


def test_the_trace_names_exactly_the_tokens_handed_over(tmp_path, monkeypatch):
    release_dir = write_release(tmp_path / "release")
    monkeypatch.setenv(TRACE_ENV, str(tmp_path / "trace"))
    loader = loaders_for(open_release(str(release_dir)), 2, 2, None)[1]
    batches = list(islice(loader, 30))
    docs = documents(release_dir)
    lines = [line.split("\t") for line in (tmp_path / "trace" / "train-1-of-2.tsv").read_text().splitlines()]
    for index, (x, y) in enumerate(batches):  # each line names its batch by its index
        got = torch.cat([x, y[:, -1:]], dim=1).flatten().tolist()
        assert [t for i, _, key, a, b in lines if int(i) == index for t in docs[key][int(a) : int(b)]] == got
    assert {int(i) for i, *_ in lines} == set(range(30))


DRIFT, LAST_BLOCK = "readers in different epochs", "in the last block of epoch 0"


@pytest.mark.parametrize(
    "shards,phases,epochs",
    [
        # (world size, num_workers, batches per rank or how far to go); the last phase runs to `epochs`
        ([9, 14, 11, 7], [(2, 0, 3), (1, 0, 4), (2, 0, 5), (3, 0, None)], 1),  # shard-level parts
        ([9, 14, 11, 7], [(1, 2, 3), (3, 0, 4), (1, 0, None)], 1),  # workers
        ([10, 7], [(3, 0, 3), (2, 0, 4), (5, 0, None)], 1),  # every-N-th-document parts
        ([9, 14, 11, 7], [(2, 0, DRIFT), (3, 0, 5), (1, 0, None)], 2),  # a reader had begun epoch 1
        ([9, 14, 11, 7], [(1, 0, LAST_BLOCK), (4, 0, None)], 2),  # new readers left with nothing
    ],
)
def test_resizes_read_every_document_of_the_epoch_once(tmp_path, monkeypatch, shards, phases, epochs):
    release_dir = write_release(tmp_path / "release", {"train": shards})
    release = open_release(str(release_dir))
    monkeypatch.setenv(TRACE_ENV, str(tmp_path / "trace"))
    saved = None
    for world_size, num_workers, until in phases:
        loaders = loaders_for(release, world_size, num_workers, saved)
        batches = [iter(each) for each in loaders]
        for done in count(1):
            for each in batches:
                next(each)
            at = positions(loaders)
            if (
                done == until
                or until == DRIFT and len({s["epoch"] for s in at}) > 1
                or until == LAST_BLOCK and at[0]["block"] == at[0]["end"] - 1
                or until is None and min(s["epoch"] for s in at) >= epochs
            ):  # fmt: skip
                break
        saved = [each.state_dict() for each in loaders]
    spans = read_trace(tmp_path / "trace")
    for epoch in range(epochs):
        assert_read_once(spans, release_dir, epoch)
    assert_read_once(spans, release_dir, epochs, complete=False)  # later epochs run normally


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("release"))


def test_after_an_elastic_resume_the_same_size_resumes_exactly(release_dir):
    release = open_release(str(release_dir))
    first = loaders_for(release, 2, 0, None)
    for each in first:
        list(islice(each, 3))
    resized = loaders_for(release, 3, 0, [each.state_dict() for each in first])
    running = [iter(each) for each in resized]
    for each in running:
        list(islice(each, 4))
    saved = [each.state_dict() for each in resized]
    assert any(s["pending"] for s in run_reader_states(saved))  # a reader holds more than one range
    for each, old in zip(loaders_for(release, 3, 0, None), running, strict=True):
        assert not load_run_state(each, saved)  # same readers: loaded as saved
        pairs = zip(islice(each, 20), islice(old, 20), strict=True)
        assert all(torch.equal(a[0], b[0]) for a, b in pairs)


def test_re_dealing_gives_every_new_reader_an_equal_share_of_blocks(release_dir):
    release = open_release(str(release_dir))
    one = build_loader(release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, shuffle_buffer=2))
    list(islice(one, 3))
    saved = run_reader_states([one.state_dict()])
    dataset = build_loader(
        release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, 0, 4, shuffle_buffer=2)
    ).dataset
    dealt = deal_reader_states(dataset, saved, 4)
    blocks = [sum(r[6] - r[5] for r in [[s[k] for k in RANGE_KEYS], *s["pending"]]) for s in dealt]
    assert max(blocks) - min(blocks) <= 1 and all(s["epoch"] == 0 for s in dealt)
    assert dealt == deal_reader_states(dataset, saved, 4)  # deterministic


def test_elastic_resume_refuses_skipped_shards_and_another_seed(tmp_path, release_dir):
    damaged = shutil.copytree(release_dir, tmp_path / "damaged")
    (damaged / "train-000001.tar").write_bytes(b"\0" * 1024)  # an empty tar: documents missing
    release = open_release(str(damaged))
    skipping = build_loader(
        release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, shuffle_buffer=1, skip_corrupt=True)
    )
    list(islice(skipping, 40))
    assert reader_states(skipping.state_dict())[0]["skipped_shards"] == 1
    two = build_loader(release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, 0, 2, shuffle_buffer=1))
    with pytest.raises(InputError, match="elastic resume needs intact shards"):
        load_run_state(two, [skipping.state_dict()])
    first = build_loader(release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, shuffle_buffer=1))
    list(islice(first, 1))
    other_seed = build_loader(
        release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, 0, 2, seed=1, shuffle_buffer=1)
    )
    with pytest.raises(InputError, match="needs the same seed and shuffle_buffer"):
        load_run_state(other_seed, [first.state_dict()])


# --- the trainer under torchrun ----------------------------------------------------------------------------

TRAIN = [
    "--preset", "tiny", "--seq-len", "32", "--micro-batch", "4", "--global-batch-tokens", "256",
    "--shuffle-buffer", "8", "--log-every", "1", "--eval-every", "100", "--eval-batches", "1",
    "--warmup-steps", "2", "--dropout", "0.1", "--sample-tokens", "0", "--save-every", "4", "--keep", "10",
    "--resume",
]  # fmt: skip


def train(release: Path, out: Path, ranks: int, steps: int, env: dict) -> str:
    """`webtext train` on `ranks` torchrun processes (plain python for one) up to step `steps`; its output."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    command = [*(launcher if ranks > 1 else [sys.executable]), "-m", "webtext.cli", "train"]
    args = ["--data", str(release), "--out", str(out), "--max-steps", str(steps), *TRAIN]
    done = subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{ranks} ranks -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_torchrun_2_1_2_ranks_read_every_document_of_the_epoch_once(release_dir, tmp_path):
    out, trace = tmp_path / "run", tmp_path / "trace"
    env = dict(os.environ, **{TRACE_ENV: str(trace)})
    train(release_dir, out, 2, 4, env)
    shutil.copytree(out, tmp_path / "again")
    shrunk = train(release_dir, out, 1, 8, env)
    grown = train(release_dir, out, 2, 18, env)
    # Repeating the elastic resume repeats it: the same batches, and RNGs seeded from (seed, step, rank).
    train(release_dir, tmp_path / "again", 1, 8, dict(os.environ))
    assert 0 < len(losses(tmp_path / "again")) == len(losses(out)) - 10
    assert all(losses(out)[step] == loss for step, loss in losses(tmp_path / "again").items())
    assert "elastic resume" in shrunk and "gradient accumulation 2" in shrunk
    assert "elastic resume" in grown and "gradient accumulation 1" in grown
    checkpoints = {step: load_checkpoint(out / "checkpoints" / f"step-{step:08d}") for step in (4, 8, 18)}
    assert [checkpoints[step]["world_size"] for step in (4, 8, 18)] == [2, 1, 2]
    assert checkpoints[18]["tokens"] == 18 * 256
    final = run_reader_states(checkpoints[18]["loaders"])
    assert len(final) == 2 and all(s["epoch"] >= 1 for s in final)  # every reader is past epoch 0
    assert {p.name for p in trace.glob("train-*")} == {
        "train-0-of-2.tsv",
        "train-1-of-2.tsv",
        "train-0-of-1.tsv",
    }
    spans = read_trace(trace)
    assert_read_once(spans, release_dir, epoch=0)
    assert_read_once(spans, release_dir, epoch=1, complete=False)
