"""Trainer throughput beside a minimal reference loop of the same model, batch and data (make bench).

The reference loop is forward, backward, AdamW step and nothing else, over batches already in memory. The
trainer runs its whole machinery (streaming loader, schedule, clipping, loss reduction, logging) with
evaluation and checkpoints pushed past the measured window. Both are timed over the same steps after a
warm-up, in one process, one after the other.

On a GPU (whenever one is present) it also measures `gpt2-124m` with bf16 autocast and torch.compile:
tokens/s, MFU against the device's stated peak and the data-wait share. Settings: BENCH_TRAIN_PRESET,
BENCH_TRAIN_STEPS, BENCH_GPU_STEPS, BENCH_GPU_MICRO_BATCH.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest
import torch

from tests.training.release_fixture import write_synthetic_release
from training.config import LoaderConfig
from training.data import build_loader
from training.metrics import read_metrics
from training.model import GPT, preset
from training.optim import build_optimizer
from training.release import open_release
from training.trainer import TrainConfig, train

WINDOW = 10


def reference_loop(config, batches: list, lr: float, steps: int) -> list[float]:
    """Seconds per window of WINDOW steps: forward, backward, AdamW step."""
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = build_optimizer(model, model, lr, 0.1, (0.9, 0.95))
    windows, started = [], time.perf_counter()
    for step in range(steps):
        x, y = batches[step % len(batches)]
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % WINDOW == 0:
            windows.append(time.perf_counter() - started)
            started = time.perf_counter()
    return windows


def test_trainer_tokens_per_second_against_a_reference_loop(tmp_path):
    name = os.environ.get("BENCH_TRAIN_PRESET", "mini")
    steps = int(os.environ.get("BENCH_TRAIN_STEPS", "60"))
    micro, seq_len = 8, 128
    release_dir = tmp_path / "release"
    write_synthetic_release(release_dir, tokens=2_000_000)
    release = open_release(str(release_dir))
    config = preset(name, vocab_size=release.vocab_size, block_size=seq_len)
    loader = build_loader(release, LoaderConfig("train", seq_len, micro, rank=0, world_size=1, seed=0))
    batches = [b for _, b in zip(range(steps), loader, strict=False)]
    tokens_per_step = micro * seq_len

    reference = reference_loop(config, batches, 6e-4, steps)
    run = TrainConfig(
        data=str(release_dir),
        out=str(tmp_path / "run"),
        preset=name,
        seq_len=seq_len,
        micro_batch=micro,
        max_steps=steps,
        log_every=WINDOW,
        eval_every=10 * steps,
        save_every=10 * steps,
        overrides={"block_size": seq_len},
    )
    train(run)
    records = [r for r in read_metrics(Path(run.out) / "metrics.jsonl") if r["kind"] == "train"]
    # Skip the first window (start-up) and the last (the final eval and save close it).
    trainer_rate = statistics.median(r["tokens_per_s"] for r in records[1:-1])
    reference_rate = statistics.median(WINDOW * tokens_per_step / s for s in reference[1:-1])
    wait = statistics.median(r["data_wait"] for r in records[1:-1])
    print(
        f"\ntrainer on CPU, preset {name} ({GPT(config).num_params() / 1e6:.2f}M non-embedding parameters), "
        f"batch {micro}x{seq_len}, {torch.get_num_threads()} threads, median of {len(records) - 2} windows "
        f"of {WINDOW} steps"
    )
    print(f"  reference loop (fwd, bwd, AdamW)   {reference_rate:10,.0f} tokens/s")
    print(
        f"  webtext trainer                     {trainer_rate:10,.0f} tokens/s   ratio "
        f"{trainer_rate / reference_rate:.3f}x (target >= 0.95x), data wait {100 * wait:.2f}%"
    )
    assert trainer_rate > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU: the gpt2-124m benchmark needs CUDA")
def test_gpt2_124m_on_gpu(tmp_path):
    steps = int(os.environ.get("BENCH_GPU_STEPS", "60"))
    micro = int(os.environ.get("BENCH_GPU_MICRO_BATCH", "16"))
    release_dir = tmp_path / "release"
    write_synthetic_release(release_dir, tokens=steps * micro * 1025 + 10_000_000)
    run = TrainConfig(
        data=str(release_dir),
        out=str(tmp_path / "run"),
        preset="gpt2-124m",
        micro_batch=micro,
        max_steps=steps,
        log_every=WINDOW,
        eval_every=10 * steps,
        save_every=10 * steps,
        compile=True,
        num_workers=2,
    )
    train(run)
    records = [r for r in read_metrics(Path(run.out) / "metrics.jsonl") if r["kind"] == "train"]
    steady = records[2:-1]  # compile warm-up in the first windows; the last holds the final save
    rate = statistics.median(r["tokens_per_s"] for r in steady)
    mfu = statistics.median(r["mfu"] for r in steady)
    wait = statistics.median(r["data_wait"] for r in steady)
    print(
        f"\ngpt2-124m on {torch.cuda.get_device_name()}: batch {micro}x1024, bf16 autocast, torch.compile: "
        f"{rate:,.0f} tokens/s, MFU {100 * mfu:.1f}% (target >= 45%), data wait {100 * wait:.2f}% "
        f"(target <= 1%)"
    )
    assert rate > 0
