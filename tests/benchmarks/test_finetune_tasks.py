"""GPT-1 fine-tuning on the four real task files, lambda 0 and 0.5, beside the majority baseline (make bench).

The pretrained model is a small one made here: a byte-level BPE (4,096 tokens) and a GPT (preset
BENCH_PRETRAIN_PRESET, default `mini`) pretrained by the real trainer for BENCH_PRETRAIN_STEPS steps (default
300, 16 x 128 tokens each) on the WebText samples in shared/data/webtext_samples (about 9,400 real WebText
documents, their first 63 GPT-2 tokens each). BENCH_FINETUNE_CHECKPOINT names a model of your own instead (a
run directory, checkpoint or Hugging Face directory with its tokenizer.json).

Tasks and splits (shared/data/finetune, read from $WEBTEXT_SHARED_DATA, default ../shared/data):
- SST-2 (classification), MRPC (similarity), RTE (entailment): only the GLUE dev sets exist here, so each is
  hash-split 50/50 into train and test portions (not the paper's protocol, which trains on the train sets);
- Story Cloze (multiple-choice): fine-tuned on the spring 2016 validation set, tested on its test set, as
  GPT-1 did.
Each portion is capped at BENCH_FINETUNE_MAX_EXAMPLES examples (default 400); the paper's hyperparameters
otherwise (BENCH_FINETUNE_LR overrides the learning rate).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from corpus.shards import Sample, shard_name, write_shard
from corpus.tokenizer import train_tokenizer
from tests.training.release_fixture import write_manifest
from training.trainer import TrainConfig, train
from webtext.cli import main as webtext_main

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
TASKS = {  # name: (kind, train file or None for a hash split of dev, dev file)
    "SST-2": ("classification", None, "sst2_dev.tsv"),
    "MRPC": ("similarity", None, "mrpc_dev.tsv"),
    "RTE": ("entailment", None, "rte_val_superglue.jsonl"),
    "StoryCloze": ("multiple-choice", "storycloze_spring2016_val.csv", "storycloze_spring2016_test.csv"),
}
SEQ_LEN = 128


def pretrain(out: Path, preset: str, steps: int) -> Path:
    """A release of the WebText samples (90% train), then `steps` of a `preset` GPT on it; the run dir."""
    files = sorted((SHARED / "webtext_samples").glob("*.jsonl"))
    texts = [json.loads(line)["text"] for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    tokenizer = train_tokenizer(texts, vocab_size=4096)
    release = out / "release"
    release.mkdir(parents=True)
    split_at = len(texts) * 9 // 10
    entries = {}
    for split, docs in (("train", texts[:split_at]), ("val", texts[split_at:])):
        ids = tokenizer.encode_batch(docs)
        samples = [
            Sample(f"{split}{i:06d}", text, {}, np.asarray(tokens, dtype=tokenizer.token_dtype()))
            for i, (text, tokens) in enumerate(zip(docs, ids, strict=True))
        ]
        entries[split] = [write_shard(str(release / shard_name(split, 0)), samples)]
    write_manifest(release, entries, tokenizer.to_json(), tokenizer.vocab_size)
    run = out / "pretrain"
    config = TrainConfig(
        data=str(release),
        out=str(run),
        preset=preset,
        seq_len=SEQ_LEN,
        micro_batch=16,
        max_steps=steps,
        warmup_steps=max(1, steps // 10),
        lr=1e-3,
        eval_every=steps,
        eval_batches=10,
        save_every=steps,
        log_every=max(1, steps // 5),
        seed=0,
        overrides={"block_size": SEQ_LEN},
    )
    result = train(config)
    print(f"\npretrain: {result.steps} steps, {result.tokens:,} tokens, val loss {result.val_loss:.3f}")
    return run


def test_finetune_tasks_accuracy_against_the_majority_baseline(tmp_path):
    if not (SHARED / "finetune").is_dir():
        pytest.skip(f"{SHARED / 'finetune'} not found (set WEBTEXT_SHARED_DATA)")
    started = time.perf_counter()
    checkpoint = os.environ.get("BENCH_FINETUNE_CHECKPOINT") or str(
        pretrain(
            tmp_path,
            os.environ.get("BENCH_PRETRAIN_PRESET", "mini"),
            int(os.environ.get("BENCH_PRETRAIN_STEPS", "300")),
        )
    )
    pretrain_s = time.perf_counter() - started
    max_examples = os.environ.get("BENCH_FINETUNE_MAX_EXAMPLES", "400")
    extra = ["--lr", os.environ["BENCH_FINETUNE_LR"]] if "BENCH_FINETUNE_LR" in os.environ else []
    rows = []
    for name, (kind, train_file, dev_file) in TASKS.items():
        for lambda_lm in ("0", "0.5"):
            out = tmp_path / f"{name}-{lambda_lm}"
            args = ["finetune", "--checkpoint", checkpoint, "--task", kind,
                    "--dev", str(SHARED / "finetune" / dev_file), "--out", str(out), "--lambda", lambda_lm,
                    "--max-examples", max_examples, "--seed", "0", *extra]  # fmt: skip
            if train_file:
                args += ["--train", str(SHARED / "finetune" / train_file)]
            began = time.perf_counter()
            assert webtext_main(args) == 0
            results = json.loads((out / "results.json").read_text())
            rows.append((name, results, time.perf_counter() - began))
            assert 0.0 <= results["accuracy"] <= 1.0 and results["steps"] > 0

    print(f"\nfinetune: model {checkpoint} (pretraining {pretrain_s:.0f} s)")
    header = ("task", "train", "test", "lambda", "accuracy", "majority", "steps", "s")
    print("{:<11} {:>5} {:>5} {:>6} {:>8} {:>8} {:>5} {:>5}".format(*header))
    for name, r, seconds in rows:
        print(
            f"{name:<11} {r['train_examples']:>5} {r['test_examples']:>5} {r['lambda']:>6g} "
            f"{r['accuracy']:>8.4f} {r['majority_baseline']:>8.4f} {r['steps']:>5} {seconds:>5.1f}"
        )
