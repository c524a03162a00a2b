"""Loader tokens/s per process (num_workers 0 and 2), with and without the per-shard sha256 check, beside a
bare tarfile + np.frombuffer loop (make bench).

The release: ~32M random GPT-2-vocabulary tokens (BENCH_LOADER_TOKENS) in 8 shards, documents of ~1000
tokens on average (log-normal, like web pages) with text of a realistic size beside them. The target is
>= 20M tokens/s per process; the figures are printed, only sanity is asserted.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

import training.release
from tests.training.release_fixture import write_synthetic_release
from training.config import LoaderConfig
from training.data import build_loader
from training.release import open_release

TARGET = 20e6
SEQ_LEN, MICRO_BATCH = 1024, 8


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    tokens = int(os.environ.get("BENCH_LOADER_TOKENS", 32_000_000))
    started = time.perf_counter()
    root = write_synthetic_release(tmp_path_factory.mktemp("bench-release"), tokens)
    print(f"\nwrote a {tokens / 1e6:.0f}M-token release in {time.perf_counter() - started:.1f} s")
    return root


def bare_loop(paths: list[Path]) -> int:
    """Tokens of every shard read with plain tarfile and np.frombuffer (no checks, no packing)."""
    tokens = 0
    for path in paths:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name.endswith(".tokens.npy"):
                    data = tar.extractfile(member).read()
                    header = 10 + int.from_bytes(data[8:10], "little")  # npy format 1.0
                    tokens += len(np.frombuffer(data, dtype="<u2", offset=header))
    return tokens


def read_unchecked(entry: dict) -> bytes:
    """training.release.read_shard_bytes without the size and sha256 checks: what the check costs."""
    with open(entry["url"], "rb") as f:
        return f.read()


def loader_rate(release, num_workers: int, steps: int) -> float:
    """Tokens/s of the loader over `steps` batches after the first one (workers started, first block read)."""
    loader = build_loader(
        release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, seed=0, num_workers=num_workers)
    )
    batches = iter(loader)
    next(batches)
    started = time.perf_counter()
    n = sum(1 for _ in islice(batches, steps - 1))
    assert n == steps - 1
    return n * MICRO_BATCH * (SEQ_LEN + 1) / (time.perf_counter() - started)


def test_loader_tokens_per_second_against_a_bare_tar_loop(release_dir, monkeypatch):
    release = open_release(str(release_dir))
    shards = release.shards("train")
    total = sum(e["tokens"] + e["docs"] for e in shards)
    docs = sum(e["docs"] for e in shards)
    started = time.perf_counter()
    bare_tokens = bare_loop([release_dir / e["path"] for e in shards])
    bare = bare_tokens / (time.perf_counter() - started)
    assert bare_tokens + docs == total
    print(f"\nbare tarfile+frombuffer loop: {bare / 1e6:6.1f}M tokens/s ({docs * bare / total:,.0f} docs/s)")
    steps = total // (MICRO_BATCH * (SEQ_LEN + 1))
    data = (release_dir / shards[0]["path"]).read_bytes()
    started = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    print(f"sha256 alone: {len(data) / (time.perf_counter() - started) / 1e6:.0f} MB/s")
    for num_workers in (0, 2):
        checked = unchecked = 0.0
        for _ in range(2):  # alternated, best of two: load from elsewhere on the machine hits both alike
            checked = max(checked, loader_rate(release, num_workers, steps))  # as it runs: sha256 checked
            with monkeypatch.context() as patch:  # forked DataLoader workers inherit the patch
                patch.setattr(training.release, "read_shard_bytes", read_unchecked)
                unchecked = max(unchecked, loader_rate(release, num_workers, steps))
        assert min(checked, unchecked) > 1e5
        met = "met" if checked >= TARGET else "NOT met"
        print(
            f"loader num_workers={num_workers}: {checked / 1e6:6.1f}M tokens/s per process with the sha256 "
            f"check, {unchecked / 1e6:6.1f}M without ({checked / unchecked:.2f}x); "
            f"{checked / bare:.2f}x bare, target {TARGET / 1e6:.0f}M {met}"
        )


def first_batch_seconds(loader) -> float:
    started = time.perf_counter()
    next(iter(loader))
    return time.perf_counter() - started


def test_resume_cost_mid_shard(release_dir):
    release = open_release(str(release_dir))
    loader = build_loader(release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, seed=0))
    steps = release.shards("train")[0]["tokens"] // (MICRO_BATCH * (SEQ_LEN + 1)) // 2
    for _ in islice(loader, steps):  # about half way through the first shard read
        pass
    state = loader.state_dict()
    resumed = build_loader(release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, seed=0))
    resumed.load_state_dict(state)
    fresh = first_batch_seconds(build_loader(release, LoaderConfig("train", SEQ_LEN, MICRO_BATCH, seed=0)))
    restored = first_batch_seconds(resumed)
    sample = state["dataset_state"]["sample"]
    print(
        f"\nfirst batch (the first shard read whole, its sha256 checked and parsed): fresh start "
        f"{fresh * 1e3:.0f} ms, resumed at sample {sample} of a shard {restored * 1e3:.0f} ms"
    )
    assert sample > 0
