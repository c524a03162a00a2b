"""The configurations of a model, a training run, its data loader and a fine-tuning run, as dataclasses:
plain Python, no torch, so that `webtext train --help` and config files are handled without importing the
framework."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from corpus.errors import InputError

VARIANTS = ("gpt1", "gpt2")


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # context length: the number of learned position embeddings
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # embedding, attention and residual dropout
    bias: bool = True  # biases in Linear and LayerNorm layers, as in GPT-1/GPT-2
    variant: str = "gpt2"
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown GPT variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


PRESETS: dict[str, GPTConfig] = {
    # GPT-2 paper, table 2 (the paper's 117M/345M/762M/1542M count the parameters slightly differently).
    "gpt2-124m": GPTConfig(n_layer=12, n_head=12, n_embd=768),
    "gpt2-355m": GPTConfig(n_layer=24, n_head=16, n_embd=1024),
    "gpt2-774m": GPTConfig(n_layer=36, n_head=20, n_embd=1280),
    "gpt2-1558m": GPTConfig(n_layer=48, n_head=25, n_embd=1600),
    # GPT-1 paper, section 4.1: 12 layers, 768 wide, 12 heads, 512 tokens, 40,478 BPE tokens, dropout 0.1.
    "gpt1": GPTConfig(
        vocab_size=40478, block_size=512, n_layer=12, n_head=12, n_embd=768, dropout=0.1, variant="gpt1"
    ),
    # Small models for tests, demos and CPU runs.
    "tiny": GPTConfig(block_size=128, n_layer=2, n_head=2, n_embd=64),
    "mini": GPTConfig(block_size=256, n_layer=4, n_head=4, n_embd=128),
}


def preset(name: str, **overrides) -> GPTConfig:
    """A copy of the preset `name` with `overrides` applied (e.g. ``preset("tiny", vocab_size=8192)``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown GPTConfig field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(PRESETS[name], **overrides)


@dataclass
class TrainConfig:
    data: str
    out: str
    preset: str = "tiny"
    seq_len: int | None = None  # default: the preset's context
    micro_batch: int = 8  # sequences per rank per micro-step
    global_batch_tokens: int | None = None  # default: one micro-batch per rank (no accumulation)
    max_steps: int | None = None
    epochs: float = 1.0  # used when max_steps is not given
    lr: float = 6e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100  # capped to 10% of the run when not shorter than the run
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 1337
    eval_every: int = 200
    eval_batches: int = 20
    save_every: int = 200
    keep: int = 3
    log_every: int = 10
    resume: bool = False
    compile: bool = False
    fsdp: bool = False
    device: str = "auto"
    num_workers: int = 0
    shuffle_buffer: int = 1024
    skip_corrupt: bool = False
    peak_flops: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # GPTConfig fields over the preset, e.g. n_layer


# The GPTConfig fields a checkpoint's weights depend on: resuming with any of them changed is refused.
SHAPE_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias", "variant")


def model_config(config: TrainConfig, vocab_size: int) -> GPTConfig:
    """The model a run trains: its preset, with the release tokenizer's `vocab_size`, then its overrides.
    A larger vocab_size pads the embedding (e.g. 50304); a smaller one, or an impossible shape, is refused."""
    wanted = config.overrides.get("vocab_size", vocab_size)
    if wanted < vocab_size:
        raise InputError(
            f"model: vocab_size {wanted} is smaller than the release tokenizer's {vocab_size} tokens; "
            f"leave it out or give at least {vocab_size}"
        )
    try:
        return preset(config.preset, **({"vocab_size": vocab_size} | config.overrides))
    except (ValueError, TypeError) as e:
        raise InputError(f"model: {e}") from None


def shape_changes(saved: GPTConfig, config: GPTConfig) -> list[str]:
    """'field old -> new' for every SHAPE_FIELDS field in which `config` differs from `saved`."""
    changed = [name for name in SHAPE_FIELDS if getattr(saved, name) != getattr(config, name)]
    return [f"{name} {getattr(saved, name)} -> {getattr(config, name)}" for name in changed]


DEFAULT_SHUFFLE_BUFFER = 1000


@dataclass(frozen=True)
class LoaderConfig:
    """One rank's data loader (training/data.py build_loader; the release is its other argument)."""

    split: str
    seq_len: int  # tokens per sequence: batches are x, y of [micro_batch, seq_len]
    micro_batch: int  # sequences per batch
    rank: int = 0
    world_size: int = 1
    seed: int = 0  # shard order and shuffle blocks; the DataLoader's worker seeds
    num_workers: int = 0  # DataLoader worker processes per rank (0: read in the calling process)
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER  # documents per shuffle block; 1 turns shuffling off
    skip_corrupt: bool = False  # skip (and count) damaged shards instead of failing
    pin_memory: bool = False  # pinned batches (a no-op without a GPU)

    def __post_init__(self) -> None:
        if (
            min(self.seq_len, self.micro_batch, self.world_size, self.shuffle_buffer) < 1
            or self.num_workers < 0
            or not 0 <= self.rank < self.world_size
        ):
            raise InputError(
                f"loader: need seq_len, micro_batch, world_size, shuffle_buffer >= 1, num_workers >= 0 and "
                f"0 <= rank < world_size (got {self.seq_len}, {self.micro_batch}, {self.world_size}, "
                f"{self.shuffle_buffer}, {self.num_workers}, rank {self.rank})"
            )


@dataclass
class FinetuneConfig:
    """`webtext finetune` (training/finetune.py run_finetune_task): the model, the task's files and the
    hyperparameters, the GPT-1 paper's by default. The training loop (finetune) reads only the optimisation
    fields, so a config of hyperparameters alone serves it."""

    checkpoint: str = ""  # a checkpoint, a run directory or a Hugging Face directory
    task: str = ""  # the input transformation and file format (training/finetune_tasks.py KINDS)
    dev: str = ""  # labelled evaluation file
    out: str = ""  # writes OUT/results.json (and OUT/model.safetensors with save)
    train: str | None = None  # labelled training file; default: a hash split of the dev file
    tokenizer: str | None = None  # default: the one beside the checkpoint
    device: str = "auto"
    save: bool = False  # also write the fine-tuned weights
    lambda_lm: float = 0.5  # weight of the auxiliary language-modelling loss L1
    lr: float = 6.25e-5
    batch_size: int = 32  # examples per step (each is 1, 2 or k sequences)
    epochs: int = 3
    warmup_fraction: float = 0.002
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    max_steps: int | None = None  # default: epochs over the training examples
    seed: int = 0
    log_every: int = 10
    clf_dropout: float = 0.1  # dropout before the linear head
    dropout: float = 0.1  # the Transformer's residual/attention dropout
    max_len: int | None = None  # tokens per sequence; default (and at most): the model's context
    dev_train_fraction: float = 0.5  # without train: the share of dev rows used for training
    max_examples: int | None = None  # at most this many training and test examples (file order)


# The zero-shot task kinds `webtext eval --task NAME[:KIND]=PATH` accepts (training/eval_tasks.py).
CHOICE_KINDS = ("cbt-cn", "cbt-ne", "cloze")
PERPLEXITY_KINDS = ("wikitext2", "wikitext103", "ptb", "1bw", "enwik8", "text8", "text")
KINDS = ("lambada", *CHOICE_KINDS, *PERPLEXITY_KINDS)
