"""Trainer throughput beside a minimal reference loop of the same model, batch and data (make bench).

The reference loop is nanoGPT's train.py loop (learning rate set, forward, backward, clipping, AdamW step)
and nothing else, over batches already in memory. The trainer runs its whole machinery (streaming loader,
schedule, clipping, loss reduction, logging) with evaluation and checkpoints pushed past the measured
window. Both are timed over the same steps after a warm-up, in one process: the reference loop, the
trainer, the reference loop again (the median over both reference runs' windows, so that a machine whose
speed drifts favours neither). Two shapes (SHAPES): the `mini` preset at context 128 (target
>= 0.95x) and the same 4 layers 256 wide at context 256 (target >= 1.0x). BENCH_RESULTS: append the figures
as JSON lines.

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

from tests.benchmarks.results import record
from tests.training.release_fixture import write_synthetic_release
from training.config import LoaderConfig
from training.data import build_loader
from training.metrics import read_metrics
from training.model import GPT, preset
from training.release import open_release
from training.trainer import TrainConfig, train

WINDOW = 10


def reference_loop(config, batches: list, lr: float, steps: int) -> list[float]:
    """Seconds per window of WINDOW steps of nanoGPT's train.py loop: the learning rate set, forward,
    backward, gradient clipping at 1.0, AdamW step."""
    torch.manual_seed(0)
    model = GPT(config)
    # nanoGPT's configure_optimizers: the fused kernel only on CUDA.
    optimizer = torch.optim.AdamW(model.optimizer_groups(0.1), lr=lr, betas=(0.9, 0.95))
    windows, started = [], time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 10)
        x, y = batches[step % len(batches)]
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % WINDOW == 0:
            windows.append(time.perf_counter() - started)
            started = time.perf_counter()
    return windows


def report(name: str, value: float | str) -> None:
    record("trainer", name, value)  # printing is the caller's


# (label, preset, model overrides, seq_len, target ratio): the preset's own shape at context 128, and a
# model four times wider in its blocks (4 layers, 256 wide, 4 heads) at context 256, where the larger
# matrix products leave the trainer's per-step work a smaller share.
SHAPES = [
    ("base", os.environ.get("BENCH_TRAIN_PRESET", "mini"), {}, 128, 0.95),
    ("4x256", "mini", {"n_embd": 256}, 256, 1.0),
]


@pytest.mark.parametrize(
    ("label", "name", "overrides", "seq_len", "target"), SHAPES, ids=[s[0] for s in SHAPES]
)
def test_trainer_tokens_per_second_against_a_reference_loop(
    tmp_path, label, name, overrides, seq_len, target
):
    steps = int(os.environ.get("BENCH_TRAIN_STEPS", "60"))
    micro = 8
    release_dir = tmp_path / "release"
    write_synthetic_release(release_dir, tokens=2_000_000)
    release = open_release(str(release_dir))
    overrides = {**overrides, "block_size": seq_len}
    config = preset(name, vocab_size=release.vocab_size, **overrides)
    loader = build_loader(release, LoaderConfig("train", seq_len, micro, rank=0, world_size=1, seed=0))
    batches = [b for _, b in zip(range(steps), loader, strict=False)]
    tokens_per_step = micro * seq_len

    before = reference_loop(config, batches, 6e-4, steps)
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
        overrides=overrides,
    )
    train(run)
    after = reference_loop(config, batches, 6e-4, steps)  # before and after: a drifting machine evens out
    reference = before[1:-1] + after[1:-1]
    records = [r for r in read_metrics(Path(run.out) / "metrics.jsonl") if r["kind"] == "train"]
    # Skip the first window (start-up) and the last (the final eval and save close it).
    trainer_rate = statistics.median(r["tokens_per_s"] for r in records[1:-1])
    reference_rate = statistics.median(WINDOW * tokens_per_step / s for s in reference)
    wait = statistics.median(r["data_wait"] for r in records[1:-1])
    ratio = trainer_rate / reference_rate
    shape = f"{config.n_layer} layers x {config.n_embd} wide, {config.n_head} heads"
    print(
        f"\ntrainer on CPU, preset {name} ({shape}; {GPT(config).num_params() / 1e6:.2f}M non-embedding "
        f"parameters), batch {micro}x{seq_len}, {torch.get_num_threads()} threads, median of "
        f"{len(records) - 2} windows of {WINDOW} steps"
    )
    print(f"  {'nanoGPT-style loop (fwd, bwd, clip, AdamW)':44}{reference_rate:10,.0f} tokens/s")
    print(
        f"  {'webtext trainer':44}{trainer_rate:10,.0f} tokens/s   ratio "
        f"{ratio:.3f}x (target >= {target}x), data wait {100 * wait:.2f}%"
    )
    report(f"trainer {label} reference tokens/s", round(reference_rate))
    report(f"trainer {label} tokens/s", round(trainer_rate))
    report(f"ratio trainer {label} / reference", round(ratio, 3))
    report(f"target trainer {label} >= {target}x reference", "met" if ratio >= target else "NOT met")
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
