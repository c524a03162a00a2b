"""The pretraining loop: a release's shards -> GPT, with exact resume.

One optimizer step = `grad_accum` micro-batches per rank, so a step sees `global_batch_tokens` tokens in all.
A checkpoint holds everything the next step depends on (weights, AdamW moments, the step that fixes the
learning rate, every rank's data-loader state and RNG state), so a resumed run produces the same losses, bit
for bit on CPU in fp32, as one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from corpus.errors import InputError
from training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from training.config import GPTConfig, LoaderConfig, TrainConfig, model_config, shape_changes
from training.data import build_loader
from training.distributed import (
    Dist,
    all_mean,
    barrier,
    gather_objects,
    init_distributed,
    shutdown,
    wrap_model,
)
from training.elastic import load_run_state
from training.metrics import MetricsLog, device_peak_flops, plot_loss_curve
from training.model import GPT
from training.optim import build_optimizer, lr_at, set_lr
from training.release import Release, open_release, steps_per_epoch
from training.run_config import CONFIG_FILE, train_toml

log = logging.getLogger("webtext")
FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)


@dataclass
class TrainResult:
    steps: int
    tokens: int
    last_loss: float | None
    val_loss: float | None
    out: Path


class Run:
    """Everything a training run holds: model, optimizer, loader, and the derived batch arithmetic."""

    def __init__(self, config: TrainConfig, env: Dist) -> None:
        self.config, self.env = config, env
        self.release: Release = open_release(config.data)
        self.model_config: GPTConfig = model_config(config, self.release.vocab_size)
        # What the run trains, every model field spelt out: written to config.toml and into each checkpoint.
        self.effective = replace(config, overrides=asdict(self.model_config))
        self.seq_len = config.seq_len or self.model_config.block_size
        if self.seq_len > self.model_config.block_size:
            raise InputError(
                f"--seq-len {self.seq_len} exceeds the model's context {self.model_config.block_size}"
            )
        tokens_per_micro = config.micro_batch * self.seq_len * env.world_size
        wanted = config.global_batch_tokens or tokens_per_micro
        if wanted % tokens_per_micro:
            raise InputError(
                f"--global-batch-tokens {wanted} is not a multiple of micro-batch x seq-len x world size "
                f"= {tokens_per_micro}"
            )
        self.grad_accum = wanted // tokens_per_micro
        self.tokens_per_step = wanted
        per_epoch = steps_per_epoch(
            self.release, "train", self.seq_len, config.micro_batch, env.world_size, self.grad_accum
        )
        if per_epoch < 1:
            raise InputError(f"{config.data}: the train split holds less than one optimizer step of tokens")
        self.steps_per_epoch = per_epoch
        self.max_steps = config.max_steps or max(1, int(config.epochs * per_epoch))
        self.warmup_steps = config.warmup_steps
        if self.warmup_steps >= self.max_steps:  # the run would end still warming up, never decaying
            self.warmup_steps = max(1, self.max_steps // 10)
            if env.is_main:
                log.warning(
                    "--warmup-steps %d is not shorter than the run (%d steps): warming up for %d step(s) "
                    "(10%% of the run) instead",
                    config.warmup_steps,
                    self.max_steps,
                    self.warmup_steps,
                )

        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.gpt = GPT(self.model_config).to(env.device)
        torch.manual_seed(config.seed + env.rank)  # different dropout masks per rank
        self.model = wrap_model(self.gpt, env, config.fsdp)
        if config.compile:
            self.model = torch.compile(self.model)
        self.optimizer = build_optimizer(self.model, self.gpt, config.lr, config.weight_decay, config.betas)
        self.loader = self._loader("train", config.seed)
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if env.device.type == "cuda"
            else contextlib.nullcontext()
        )
        precision = "bf16" if env.device.type == "cuda" else "fp32"
        peak, self.peak_note = device_peak_flops(env.device, precision)
        self.peak_flops = config.peak_flops or peak
        self.flops_per_token = self.gpt.flops_per_token(self.seq_len)
        self.step = 0
        self.tokens = 0

    def _loader(self, split: str, seed: int):
        c = self.config
        config = LoaderConfig(
            split=split,
            seq_len=self.seq_len,
            micro_batch=c.micro_batch,
            rank=self.env.rank,
            world_size=self.env.world_size,
            seed=seed,
            num_workers=c.num_workers if split == "train" else 0,
            shuffle_buffer=c.shuffle_buffer if split == "train" else 1,
            skip_corrupt=c.skip_corrupt,
            pin_memory=self.env.device.type == "cuda",
        )
        return build_loader(self.release, config)

    # --- checkpoints -------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        """The checkpoint state, complete on rank 0 (other ranks contribute their loader and RNG state)."""
        model = get_model_state_dict(self.gpt, options=FULL_STATE)
        optimizer = get_optimizer_state_dict(self.gpt, self.optimizer, options=FULL_STATE)
        loaders = gather_objects(self.loader.state_dict(), self.env)
        rngs = gather_objects(rng_state(), self.env)
        if not self.env.is_main:
            return None
        return {
            "step": self.step,
            "tokens": self.tokens,
            "model": model,
            "optimizer": optimizer,
            "loaders": loaders,
            "rng": rngs,
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.effective),
            "world_size": self.env.world_size,
        }

    def save(self) -> None:
        state = self.state()
        if self.env.is_main:
            path = save_checkpoint(Path(self.config.out) / "checkpoints", self.step, state, self.config.keep)
            log.info("checkpoint %s", path)
        barrier(self.env)

    def restore(self, directory: Path) -> None:
        """Continue from a checkpoint: exactly with the same world size and num_workers, else elastically
        (training/elastic.py: the rest of the epoch re-dealt to the new readers, each document once)."""
        state = load_checkpoint(directory)
        if changed := shape_changes(GPTConfig(**state["model_config"]), self.model_config):
            raise InputError(
                f"{directory}: --resume refused: the model's shape changed ({', '.join(changed)}); resume "
                f"with the checkpoint's shape (--config {Path(self.config.out) / CONFIG_FILE}) or start a "
                "new run in another --out"
            )
        set_model_state_dict(self.gpt, state["model"], options=StateDictOptions(full_state_dict=True))
        set_optimizer_state_dict(
            self.gpt, self.optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True)
        )
        self.step, self.tokens = state["step"], state["tokens"]
        redealt = load_run_state(self.loader, state["loaders"])
        if state["world_size"] == self.env.world_size:
            set_rng_state(state["rng"][self.env.rank])
        else:  # new ranks: every generator seeded from (seed, step, rank), so a rerun repeats them
            rank_seed = int(
                np.random.SeedSequence([self.config.seed, self.step, self.env.rank]).generate_state(1)[0]
            )
            random.seed(rank_seed)
            np.random.seed(rank_seed)
            torch.manual_seed(rank_seed)  # CUDA generators too
        if redealt and self.env.is_main:
            kept = (
                "kept by --global-batch-tokens"
                if self.config.global_batch_tokens
                else "micro-batch x seq-len x ranks"
            )
            log.info(
                "elastic resume from %s: %d rank(s) -> %d; the rest of the epoch is re-dealt to the new data "
                "readers (each document still exactly once); global batch %d tokens (%s), gradient "
                "accumulation %d; not bitwise identical to an uninterrupted run",
                directory,
                state["world_size"],
                self.env.world_size,
                self.tokens_per_step,
                kept,
                self.grad_accum,
            )
        log.info("resumed from %s at step %d", directory, self.step)

    # --- steps ---------------------------------------------------------------------------------------------

    def train_step(self, batches) -> tuple[torch.Tensor, float]:
        """One optimizer step of `grad_accum` micro-batches -> (mean loss, seconds spent waiting for data)."""
        c, model = self.config, self.model
        total = torch.zeros((), device=self.env.device)
        waited = 0.0
        for micro in range(self.grad_accum):
            started = time.perf_counter()
            x, y = next(batches)
            waited += time.perf_counter() - started
            x, y = x.to(self.env.device, non_blocking=True), y.to(self.env.device, non_blocking=True)
            sync = micro == self.grad_accum - 1 or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if sync else model.no_sync(), self.autocast:
                _, loss = model(x, y)
            (loss / self.grad_accum).backward()
            total += loss.detach()
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip, foreach=True)
        max_lr = c.lr
        set_lr(
            self.optimizer,
            lr_at(self.step, max_lr, max_lr * c.min_lr_ratio, self.warmup_steps, self.max_steps),
        )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += self.tokens_per_step
        return total / self.grad_accum, waited

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean val loss over `eval_batches` batches per rank, from the start of the val split every time."""
        if not self.release.shards("val"):
            return None
        self.model.eval()
        loader = self._loader("val", seed=0)
        total = torch.zeros((), device=self.env.device)
        for _, (x, y) in zip(range(self.config.eval_batches), loader, strict=False):
            with self.autocast:
                _, loss = self.model(x.to(self.env.device), y.to(self.env.device))
            total += loss.float()
        self.model.train()
        return float(all_mean(total / self.config.eval_batches, self.env))


def train(config: TrainConfig) -> TrainResult:
    env = init_distributed(config.device)
    try:
        return _train(config, env)
    finally:
        shutdown()


def _train(config: TrainConfig, env: Dist) -> TrainResult:
    out = Path(config.out)
    run = Run(config, env)
    _start(run, out)
    metrics = MetricsLog(out, enabled=env.is_main)
    batches = iter(run.loader)
    last_loss, val_loss = None, None
    window = Window()
    while run.step < run.max_steps:
        loss, waited = run.train_step(batches)
        window.tokens += run.tokens_per_step
        window.wait += waited
        last = run.step == run.max_steps
        if run.step % config.log_every == 0 or last:
            last_loss = _log_train(run, metrics, loss, window)
            window = Window()
        if run.step % config.eval_every == 0 or last:
            val_loss = _evaluate(run, metrics)
        if run.step % config.save_every == 0 or last:
            run.save()
            window.started = time.perf_counter()  # a save is not training throughput
    metrics.close()
    if env.is_main and metrics.path.is_file():
        plot_loss_curve(metrics.path, out / "loss.png")
    return TrainResult(run.step, run.tokens, last_loss, val_loss, out)


@dataclass
class Window:
    """The steps since the last train log line: when they began, their tokens, the seconds spent waiting for
    data."""

    started: float = field(default_factory=time.perf_counter)
    tokens: int = 0
    wait: float = 0.0


def _start(run: Run, out: Path) -> None:
    """Resume when asked; on rank 0 write the run's tokenizer and config and log what the run will do."""
    config, env = run.config, run.env
    if config.resume:
        if found := latest_checkpoint(out / "checkpoints"):
            run.restore(found)
        elif env.is_main:
            log.warning("--resume: no complete checkpoint in %s; starting from scratch", out / "checkpoints")
    if not env.is_main:
        return
    out.mkdir(parents=True, exist_ok=True)
    with fsspec.open(run.release.tokenizer_path(), "rb") as source:
        (out / "tokenizer.json").write_bytes(source.read())
    (out / CONFIG_FILE).write_text(train_toml(run.effective))
    log.info(
        "training %s, %s, on %s: %d steps of %d tokens (%d per epoch), %d rank(s), "
        "grad accumulation %d; MFU against %s",
        config.preset,
        run.gpt.params_label(),
        env.device,
        run.max_steps,
        run.tokens_per_step,
        run.steps_per_epoch,
        env.world_size,
        run.grad_accum,
        run.peak_note if config.peak_flops is None else f"--peak-flops {config.peak_flops:.3g}",
    )


def _log_train(run: Run, metrics: MetricsLog, loss: torch.Tensor, window: Window) -> float:
    """Record (and on rank 0 log) the step's loss, averaged over ranks, and the window's throughput."""
    last_loss = float(all_mean(loss, run.env))
    elapsed = time.perf_counter() - window.started
    per_second = window.tokens / elapsed
    mfu = per_second * run.flops_per_token / run.peak_flops if run.peak_flops else None
    metrics.write(
        {
            "kind": "train",
            "step": run.step,
            "loss": last_loss,
            "lr": run.optimizer.param_groups[0]["lr"],
            "tokens": run.tokens,
            "tokens_per_s": per_second,
            "mfu": mfu,
            "data_wait": window.wait / elapsed,
        }
    )
    if run.env.is_main:
        log.info(
            "step %d/%d loss %.4f lr %.2e %.0f tok/s%s data wait %.1f%%",
            run.step,
            run.max_steps,
            last_loss,
            run.optimizer.param_groups[0]["lr"],
            per_second,
            f" MFU {100 * mfu:.1f}%" if mfu is not None else "",
            100 * window.wait / elapsed,
        )
    return last_loss


def _evaluate(run: Run, metrics: MetricsLog) -> float | None:
    """The val loss (None without a val split), recorded and logged."""
    val_loss = run.evaluate()
    if val_loss is not None:
        metrics.write({"kind": "val", "step": run.step, "loss": val_loss})
        if run.env.is_main:
            log.info("step %d val loss %.4f", run.step, val_loss)
    return val_loss
