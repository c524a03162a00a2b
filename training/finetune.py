"""GPT-1 supervised fine-tuning (Radford et al. 2018, sections 3.2 and 3.3).

The pretrained Transformer reads each candidate sequence of an example (see `training.finetune_tasks`); the
final hidden state h_l at the extract token `[e]` goes through classifier dropout and one new linear layer
W_y. For similarity the two orderings' states are added first; for multiple choice W_y gives one score per
answer and the softmax runs over the answers. The objective is

    L3(C) = L2(C) + lambda * L1(C)

with L2 the classification cross-entropy and L1 the language-modelling loss on the same sequences (mean over
their tokens), lambda = 0.5 by default; lambda = 0 switches the auxiliary objective off.

The three added tokens extend the token embedding wte by three rows (ids V, V + 1, V + 2), drawn from
N(0, 0.02). The output layer is tied to wte, so L1's logits cover the new ids too; they are not masked: the
delimiter and extract tokens are targets like any other, as in OpenAI's finetune-transformer-lm code.

Defaults are the paper's (section 4.1): learning rate 6.25e-5, batch 32 examples, 3 epochs, linear decay
with warmup over 0.2% of training, classifier dropout 0.1, the Transformer's own dropout 0.1. Adam's
betas (0.9, 0.999), weight decay 0.01 on matrices and gradient clipping at 1.0 follow that code.

run_finetune_task is `webtext finetune` end to end, from one FinetuneConfig: read and split the task's
examples, load the model and tokenizer, fine-tune, evaluate against the majority baseline, write the results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from corpus.errors import InputError
from corpus.tokenizer import Tokenizer
from training.checkpoint import load_model, load_tokenizer
from training.config import FinetuneConfig
from training.distributed import resolve_device
from training.finetune_tasks import (
    KINDS,
    Example,
    SpecialTokens,
    encode_examples,
    hash_split,
    label_ids,
    label_names,
    read_examples,
)
from training.model import GPT, GPTConfig
from training.optim import set_lr

log = logging.getLogger("webtext")
NUM_SPECIAL = 3  # start, delimiter, extract


class FinetuneGPT(nn.Module):
    """A pretrained GPT body with three added token embeddings and a linear head W_y on the extract state."""

    def __init__(self, gpt: GPT, kind: str, num_classes: int, clf_dropout: float = 0.1):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")
        self.gpt = gpt
        self.kind = kind
        self.num_classes = num_classes
        self.special = SpecialTokens.after_vocab(gpt.config.vocab_size - NUM_SPECIAL)
        self.clf_dropout = nn.Dropout(clf_dropout)
        self.clf_head = nn.Linear(gpt.config.n_embd, 1 if kind == "multiple-choice" else num_classes)
        nn.init.normal_(self.clf_head.weight, mean=0.0, std=0.02)
        nn.init.zeros_(self.clf_head.bias)

    @classmethod
    def from_pretrained(
        cls, pretrained: GPT, kind: str, num_classes: int, dropout: float = 0.1, clf_dropout: float = 0.1
    ) -> FinetuneGPT:
        """Copy `pretrained` into a GPT whose vocabulary has three more rows, N(0, 0.02) (call
        torch.manual_seed first for a deterministic draw); `dropout` replaces the Transformer's own."""
        config = dataclasses.replace(
            pretrained.config, vocab_size=pretrained.config.vocab_size + NUM_SPECIAL, dropout=dropout
        )
        state = pretrained.state_dict()
        old = state["transformer.wte.weight"]
        new_rows = torch.randn(NUM_SPECIAL, config.n_embd, dtype=old.dtype, device=old.device) * 0.02
        state["transformer.wte.weight"] = state["lm_head.weight"] = torch.cat([old, new_rows])
        gpt = GPT(config)
        gpt.load_state_dict(state)
        return cls(gpt, kind, num_classes, clf_dropout)

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """The final block's output h_L (after ln_f for GPT-2), (N, T, n_embd), for token ids (N, T)."""
        return self.gpt.hidden_states(idx)

    def forward(
        self, idx: torch.Tensor, extract: torch.Tensor, lm_targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class logits (B, num_classes), or answer logits (B, k) for multiple choice, for the candidate
        sequences `idx` (B, C, T) whose extract tokens sit at `extract` (B, C); with `lm_targets` (B, C, T)
        also L1, the mean next-token cross-entropy over the positions whose target is not -1."""
        B, C, T = idx.shape
        h = self.hidden_states(idx.view(B * C, T))
        h_extract = h[torch.arange(B * C, device=idx.device), extract.view(-1)].view(B, C, -1)
        if self.kind == "similarity":
            h_extract = h_extract.sum(dim=1, keepdim=True)  # both orderings, final states added
        scores = self.clf_head(self.clf_dropout(h_extract))  # (B, C', out)
        logits = scores.squeeze(-1) if self.kind == "multiple-choice" else scores[:, 0]
        lm_loss = None
        if lm_targets is not None:
            lm_logits = self.gpt.lm_head(h)
            lm_loss = F.cross_entropy(
                lm_logits.view(-1, lm_logits.size(-1)), lm_targets.reshape(-1), ignore_index=-1
            )
        return logits, lm_loss


@dataclass
class Batch:
    idx: torch.Tensor  # (B, C, T) token ids, right-padded with 0
    extract: torch.Tensor  # (B, C) position of each sequence's extract token (its last)
    lm_targets: torch.Tensor  # (B, C, T) the next token, -1 past a sequence's end and on padding
    labels: torch.Tensor  # (B,)


def collate(sequences: list[list[list[int]]], labels: list[int], device: torch.device | str = "cpu") -> Batch:
    """Pad every example's candidate sequences into one batch. Padding goes on the right: the model is
    causal, so it never changes the states at or before a sequence's extract token."""
    B, C = len(sequences), len(sequences[0])
    T = max(len(s) for candidates in sequences for s in candidates)
    idx = torch.zeros(B, C, T, dtype=torch.long)
    lm_targets = torch.full((B, C, T), -1, dtype=torch.long)
    extract = torch.zeros(B, C, dtype=torch.long)
    for b, candidates in enumerate(sequences):
        if len(candidates) != C:
            raise ValueError(f"example {b} has {len(candidates)} candidate sequences, the first has {C}")
        for c, tokens in enumerate(candidates):
            row = torch.tensor(tokens, dtype=torch.long)
            idx[b, c, : len(tokens)] = row
            lm_targets[b, c, : len(tokens) - 1] = row[1:]
            extract[b, c] = len(tokens) - 1
    return Batch(idx.to(device), extract.to(device), lm_targets.to(device), torch.tensor(labels).to(device))


def losses(model: FinetuneGPT, batch: Batch, lambda_lm: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(L3, L2, L1) for a batch; L1 is not computed (reported as nan) when lambda_lm is 0."""
    logits, lm_loss = model(batch.idx, batch.extract, batch.lm_targets if lambda_lm else None)
    clf_loss = F.cross_entropy(logits, batch.labels)
    if lm_loss is None:
        return clf_loss, clf_loss, math.nan
    return clf_loss + lambda_lm * lm_loss, clf_loss, lm_loss.item()


def lr_at(step: int, max_lr: float, warmup: int, total: int) -> float:
    """Linear warmup over `warmup` steps, then linear decay to 0 at `total` (step is 0-based)."""
    if step < warmup:
        return max_lr * (step + 1) / warmup
    return max_lr * max(0.0, (total - step) / max(1, total - warmup))


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def finetune(
    model: FinetuneGPT, sequences: list[list[list[int]]], labels: list[int], config: FinetuneConfig
) -> list[float]:
    """Fine-tune `model` (already on its device) on encoded examples; returns the L3 loss of every step.

    Each epoch visits the examples in a fresh order drawn from `config.seed`; the last batch of an epoch
    may be smaller. Deterministic for a given seed on CPU.
    """
    if not sequences:
        raise InputError("no training examples")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # dropout masks
    steps_per_epoch = math.ceil(len(sequences) / config.batch_size)
    total = config.max_steps or config.epochs * steps_per_epoch
    warmup = max(1, math.ceil(config.warmup_fraction * total))
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=1e-8)
    model.train()
    history: list[float] = []
    step = 0
    while step < total:
        order = torch.randperm(len(sequences), generator=generator).tolist()
        for start in range(0, len(order), config.batch_size):
            if step >= total:
                break
            chosen = order[start : start + config.batch_size]
            batch = collate([sequences[i] for i in chosen], [labels[i] for i in chosen], device)
            set_lr(optimizer, lr_at(step, config.lr, warmup, total))
            with _autocast(device):
                loss, clf_loss, lm_loss = losses(model, batch, config.lambda_lm)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            history.append(loss.item())
            if step % config.log_every == 0 or step == total:
                lm = "off" if config.lambda_lm == 0 else f"{lm_loss:.4f}"
                log.info("finetune: step %d/%d  L3 %.4f  L2 %.4f  L1 %s", step, total, loss.item(),
                         clf_loss.item(), lm)  # fmt: skip
    return history


@torch.no_grad()
def predict(model: FinetuneGPT, sequences: list[list[list[int]]], batch_size: int = 32) -> list[int]:
    """The predicted class (or answer index) of every example, in eval mode."""
    device = next(model.parameters()).device
    model.eval()
    predictions: list[int] = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        batch = collate(chunk, [0] * len(chunk), device)
        with _autocast(device):
            logits, _ = model(batch.idx, batch.extract)
        predictions.extend(logits.argmax(dim=-1).tolist())
    return predictions


def accuracy(predictions: list[int], labels: list[int]) -> float:
    if not labels:
        raise ValueError("accuracy of no examples")
    return sum(p == y for p, y in zip(predictions, labels, strict=True)) / len(labels)


def majority_baseline(train_labels: list[int], test_labels: list[int]) -> tuple[int, float]:
    """The most frequent training label (ties: the smaller one) and its accuracy on the test labels."""
    majority = max(sorted(set(train_labels)), key=train_labels.count)
    return majority, accuracy([majority] * len(test_labels), test_labels)


# --- `webtext finetune`: a task end to end ----------------------------------------------------------------

# The settings results.json reports under "hyperparameters" (lambda is reported beside them).
REPORTED = ("lr", "batch_size", "epochs", "max_steps", "warmup_fraction", "weight_decay", "grad_clip",
            "clf_dropout", "dropout", "max_examples", "seed")  # fmt: skip


@dataclass
class TaskData:
    """A task's labelled examples, split into train and test, with the label names and ids."""

    train: list[Example]
    test: list[Example]
    split: str  # how train and test were obtained, for the results
    labels: list[str]
    train_y: list[int]
    test_y: list[int]


def read_task(config: FinetuneConfig) -> TaskData:
    """The train and test examples `config` names: its train and dev files, or else a hash split of the dev
    file; at most `max_examples` of each."""
    dev = read_examples(config.dev, config.task)
    if config.train:
        train, test = read_examples(config.train, config.task), dev
        split = f"train file {config.train}, test file {config.dev}"
    else:
        train, test = hash_split(dev, config.dev_train_fraction)
        fraction = config.dev_train_fraction
        split = f"hash split of {config.dev}: SHA-256 of each row's text, train fraction {fraction}"
        if not train or not test:
            raise InputError(f"{config.dev}: the hash split left an empty train or test portion")
    if config.max_examples:
        train, test = train[: config.max_examples], test[: config.max_examples]
    labels = label_names(train + test, config.task)
    train_y = label_ids(train, labels, config.train or config.dev)
    return TaskData(train, test, split, labels, train_y, label_ids(test, labels, config.dev))


def encode_task(
    config: FinetuneConfig, data: TaskData, tokenizer: Tokenizer, pretrained: GPT
) -> tuple[int, list[list[list[int]]], list[list[list[int]]]]:
    """(max_len, encoded train examples, encoded test examples) for `pretrained` and its `tokenizer`."""
    vocab = pretrained.config.vocab_size
    if tokenizer.vocab_size > vocab:
        raise InputError(
            f"{config.checkpoint}: the model's vocabulary ({vocab}) is smaller than the tokenizer's "
            f"({tokenizer.vocab_size}); is it the right tokenizer?"
        )
    max_len = min(config.max_len or pretrained.config.block_size, pretrained.config.block_size)
    special = SpecialTokens.after_vocab(vocab)
    try:
        train_x = encode_examples(data.train, config.task, tokenizer, special, max_len)
        test_x = encode_examples(data.test, config.task, tokenizer, special, max_len)
    except ValueError as e:
        raise InputError(f"--max-len {max_len}: {e}") from None
    return max_len, train_x, test_x


def run_finetune_task(config: FinetuneConfig) -> dict:
    """Fine-tune `config.checkpoint` on the task and evaluate it on the test examples; returns the results,
    also written to OUT/results.json (and the weights to OUT/model.safetensors with `save`)."""
    data = read_task(config)
    tokenizer = load_tokenizer(config.checkpoint, config.tokenizer)
    pretrained = load_model(config.checkpoint)
    max_len, train_x, test_x = encode_task(config, data, tokenizer, pretrained)

    torch.manual_seed(config.seed)  # the new embedding rows and the head
    model = FinetuneGPT.from_pretrained(
        pretrained, config.task, len(data.labels), config.dropout, config.clf_dropout
    )
    device = resolve_device(config.device)
    model.to(device)
    log.info(
        "finetune: %s, %d train / %d test examples, lambda %g, on %s",
        config.task, len(data.train), len(data.test), config.lambda_lm, device,
    )  # fmt: skip
    history = finetune(model, train_x, data.train_y, config)
    test_accuracy = accuracy(predict(model, test_x, config.batch_size), data.test_y)
    majority, baseline = majority_baseline(data.train_y, data.test_y)

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "task": config.task,
        "checkpoint": config.checkpoint,
        "split": data.split,
        "train_examples": len(data.train),
        "test_examples": len(data.test),
        "labels": data.labels,
        "accuracy": test_accuracy,
        "majority_baseline": baseline,
        "majority_label": data.labels[majority],
        "lambda": config.lambda_lm,
        "steps": len(history),
        "final_loss": history[-1],
        "max_len": max_len,
        "hyperparameters": {name: getattr(config, name) for name in REPORTED},
    }
    if config.save:
        save_finetuned(model, str(out / "model.safetensors"), data.labels)
    tmp = out / f".results.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "results.json")
    return results


# --- saving the fine-tuned model --------------------------------------------------------------------------


def save_finetuned(model: FinetuneGPT, path: str, labels: list[str]) -> None:
    """Write the weights (safetensors; the tied output layer once) with the config in the metadata."""
    tensors = {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in model.state_dict().items()
        if k != "gpt.lm_head.weight"
    }
    metadata = {
        "gpt_config": json.dumps(dataclasses.asdict(model.gpt.config)),
        "kind": model.kind,
        "num_classes": str(model.num_classes),
        "clf_dropout": str(model.clf_dropout.p),
        "labels": json.dumps(labels),
    }
    save_file(tensors, path, metadata=metadata)


def load_finetuned(path: str) -> tuple[FinetuneGPT, list[str]]:
    """A fine-tuned model (eval mode) and its label names from a file `save_finetuned` wrote."""
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
        config = GPTConfig(**json.loads(metadata["gpt_config"]))
        kind, num_classes = metadata["kind"], int(metadata["num_classes"])
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: not a fine-tuned model (metadata: {e})") from None
    model = FinetuneGPT(GPT(config), kind, num_classes, float(metadata["clf_dropout"]))
    tensors["gpt.lm_head.weight"] = tensors["gpt.transformer.wte.weight"]
    model.load_state_dict(tensors)
    return model.eval(), json.loads(metadata["labels"])
