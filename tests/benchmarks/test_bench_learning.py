"""A GPT trained from scratch on real text for a fixed wall-clock budget on CPU, then evaluated (make bench).

Text ($WEBTEXT_SHARED_DATA, default <repo>/../shared/data; skipped when absent), about 0.97M GPT-2 tokens:
the 9,447 WebText test/valid documents (their first 63 tokens each) and the 10 full WebText train documents,
the WikiText-2 *valid* articles (detokenized; the test split is an evaluation) and the 109 human-written
article bodies of the extraction benchmark (html_extraction/scrapinghub_aeb). LAMBADA, WikiText-2 test and
PTB are never trained on; `webtext overlap` measures how many of their examples share an 8-gram with the
release anyway.

Steps, each timed: `webtext release` (GPT-2's vocabulary, a 5% val split by document), `webtext ngrams` and
`webtext overlap`; unigram and bigram baselines counted on the train split and scored on the val split; a
short warm-up run that measures the step time, from which the steps that fill the budget are computed (the
trainer has no time limit of its own); the val loss of the untrained model (the trainer's own evaluation,
step 0); the run itself, evaluated EVAL_POINTS times; `webtext eval` on the trained and on the untrained
model (LAMBADA, WikiText-2, PTB: the first BENCH_LEARNING_EVAL_EXAMPLES LAMBADA passages and the first
BENCH_LEARNING_EVAL_LINES lines of the WikiText-2 and PTB test files, detokenized).

Model: `mini` widened to 256 (4 layers, 4 heads, 256 wide, context 256, GPT-2's 50,257-token vocabulary:
3.2M parameters in the blocks, 16.1M with the embeddings), batch 8 x 256, AdamW at 1e-3.

Writes to BENCH_LEARNING_OUT (default <repo>/build/bench/learning): learning-curve.jsonl (one line per
evaluation: step, tokens, seconds, train loss, val loss), learning-curve.png, zero-shot.md (the `webtext
eval` tables), summary.json. docs/figures/learning-curve.{png,jsonl} are copies of a default-budget run.
Settings: BENCH_LEARNING_SECONDS (600: the training budget), BENCH_LEARNING_LR (1e-3),
BENCH_LEARNING_EVAL_EXAMPLES (500), BENCH_LEARNING_EVAL_LINES (500), BENCH_RESULTS (append every figure
as JSON lines). Asserted: the model learned (final val loss at least 2 nats below the untrained model's,
and below the unigram baseline).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.benchmarks import results
from tests.pipelines.test_dedup_filter import doc, write_docs
from training.detokenize import detokenize
from training.distributed import init_distributed
from training.metrics import read_metrics
from training.model import GPT
from training.release import open_release, read_shard_tokens
from training.trainer import Run, TrainConfig, train
from webtext.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
GPT2 = ROOT / "tests" / "fixtures" / "gpt2_bpe"
OUT = Path(os.environ.get("BENCH_LEARNING_OUT", ROOT / "build" / "bench" / "learning"))
BUDGET = float(os.environ.get("BENCH_LEARNING_SECONDS", "600"))
EVAL_EXAMPLES = int(os.environ.get("BENCH_LEARNING_EVAL_EXAMPLES", "500"))
EVAL_LINES = int(os.environ.get("BENCH_LEARNING_EVAL_LINES", "500"))

SHAPE = {"n_embd": 256, "block_size": 256}  # on top of the `mini` preset: 4 layers, 4 heads
MICRO, SEQ_LEN = 8, 256
LR = float(os.environ.get("BENCH_LEARNING_LR", "1e-3"))
EVAL_POINTS, EVAL_BATCHES = 10, 8  # 10 val losses over the run, each on the same 16k val tokens
WARMUP_STEPS = 6
VAL_FRACTION = 0.05
EVAL_SETS = {
    "lambada": SHARED / "lambada" / "lambada_test.jsonl",
    "wikitext2": SHARED / "wikitext2" / "wikitext-2_tokens.test.txt.gz",
    "ptb": SHARED / "ptb" / "ptb.test.txt",
}
ARTICLE = re.compile(r"^ = [^=].* = $", re.MULTILINE)  # a WikiText top-level heading: " = Title = "

pytestmark = pytest.mark.skipif(
    not (SHARED / "webtext_samples").is_dir(), reason=f"no shared data at {SHARED}"
)


def report(name: str, value: float | str) -> None:
    results.report("learning", name, value)


def training_documents() -> list[tuple[str, str]]:
    """(url, text) of every training document: real English text that no evaluation set holds."""
    docs = []
    for name in ("webtext.test.first63tok.jsonl", "webtext.valid.first63tok.jsonl"):
        lines = (SHARED / "webtext_samples" / name).read_text(encoding="utf-8").splitlines()
        docs += [
            (f"https://webtext.example/{name}/{i}", json.loads(line)["text"]) for i, line in enumerate(lines)
        ]
    for path in sorted((SHARED / "webtext_samples" / "webtext_train_10").glob("*.txt")):
        docs.append((f"https://webtext.example/train/{path.name}", path.read_text(encoding="utf-8")))
    valid = gzip.decompress((SHARED / "wikitext2" / "wikitext-2_tokens.valid.txt.gz").read_bytes()).decode()
    starts = [m.start() for m in ARTICLE.finditer(valid)] + [len(valid)]
    for i, (start, end) in enumerate(zip(starts, starts[1:], strict=False)):
        docs.append((f"https://wikitext.example/valid/{i}", detokenize(valid[start:end], "wikitext").strip()))
    gold = json.loads((SHARED / "html_extraction" / "scrapinghub_aeb" / "ground-truth.json").read_text())
    docs += [(f"https://aeb.example/{key}", page["articleBody"]) for key, page in sorted(gold.items())]
    return [(url, text) for url, text in docs if text.strip()]


def split_tokens(release_dir: Path, split: str) -> list[np.ndarray]:
    """Every document's token ids in `split`, each followed by <|endoftext|> as the loader packs them."""
    release = open_release(str(release_dir))
    eot = np.array([release.eot_id], dtype=np.int64)
    return [
        np.concatenate([tokens.astype(np.int64), eot])
        for entry in release.shards(split)
        for _, _, tokens in read_shard_tokens(entry, release.vocab_size)
    ]


def ngram_baselines(train_docs: list[np.ndarray], val_docs: list[np.ndarray], vocab: int) -> dict[str, float]:
    """Val cross-entropy (nats/token) of an add-one unigram and of a bigram interpolated with it, counted on
    the train split; the bigram's weight is the best of a grid on the val split itself (an optimistic
    baseline)."""
    train_ids = np.concatenate(train_docs)
    unigram = (np.bincount(train_ids, minlength=vocab) + 1.0) / (len(train_ids) + vocab)
    pairs = np.unique(train_ids[:-1] * vocab + train_ids[1:], return_counts=True)
    prev_counts = np.bincount(train_ids[:-1], minlength=vocab)
    val_prev = np.concatenate([d[:-1] for d in val_docs])
    val_next = np.concatenate([d[1:] for d in val_docs])
    where = np.searchsorted(pairs[0], val_prev * vocab + val_next)
    found = (where < len(pairs[0])) & (
        pairs[0][np.minimum(where, len(pairs[0]) - 1)] == val_prev * vocab + val_next
    )
    pair_count = np.where(found, pairs[1][np.minimum(where, len(pairs[0]) - 1)], 0)
    bigram = pair_count / np.maximum(prev_counts[val_prev], 1)
    val_all = np.concatenate(val_docs)
    best = min(
        -np.mean(np.log(weight * bigram + (1 - weight) * unigram[val_next]))
        for weight in np.linspace(0.1, 0.9, 9)
    )
    return {"unigram": float(-np.mean(np.log(unigram[val_all]))), "bigram": float(best)}


def run_config(release_dir: Path, out: Path, **fields) -> TrainConfig:
    shape = {"preset": "mini", "seq_len": SEQ_LEN, "micro_batch": MICRO, "overrides": SHAPE}
    defaults = {"lr": LR, "eval_batches": EVAL_BATCHES, "log_every": 1}
    return TrainConfig(data=str(release_dir), out=str(out), **shape, **(defaults | fields))


def learning_curve(metrics: Path, initial_val: float) -> list[dict]:
    """One row per evaluation: step, tokens, seconds since the first step (evaluations included, the final
    save not), the mean train loss of the steps since the previous evaluation, val loss."""
    records = read_metrics(metrics)
    val = {r["step"]: r["loss"] for r in records if r["kind"] == "val"}
    rows = [{"step": 0, "tokens": 0, "seconds": 0.0, "train_loss": None, "val_loss": initial_val}]
    seconds, previous_tokens, since = 0.0, 0, []
    for r in (r for r in records if r["kind"] == "train"):
        # log_every=1: one window per step, and its tokens over its rate are its seconds; an evaluation
        # falls in the window of the step after it.
        seconds += (r["tokens"] - previous_tokens) / r["tokens_per_s"]
        previous_tokens = r["tokens"]
        since.append(r["loss"])
        if r["step"] in val:
            at = {"step": r["step"], "tokens": r["tokens"], "seconds": round(seconds, 1)}
            rows.append(at | {"train_loss": statistics.fmean(since), "val_loss": val[r["step"]]})
            since = []
    return rows


def plot_curve(rows: list[dict], baselines: dict[str, float], title: str, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    ax.plot([r["tokens"] / 1e3 for r in rows], [r["val_loss"] for r in rows], marker="o", label="val loss")
    trained = [r for r in rows if r["train_loss"] is not None]
    ax.plot(
        [r["tokens"] / 1e3 for r in trained], [r["train_loss"] for r in trained], ls="--", label="train loss"
    )
    for (name, value), style in zip(baselines.items(), (":", "-."), strict=False):
        ax.axhline(value, color="grey", ls=style, lw=1, label=f"{name} baseline {value:.2f}")
    ax.set_xlabel("training tokens (thousands)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, metadata={"Software": None})
    plt.close(fig)


def zero_shot(checkpoint: Path, tokenizer: Path, tasks: dict[str, Path], out: Path) -> dict:
    """`webtext eval` of a run directory's newest checkpoint: its results.json."""
    argv = ["eval", "--checkpoint", str(checkpoint), "--tokenizer", str(tokenizer), "--detokenize"]
    argv += ["--max-examples", str(EVAL_EXAMPLES)]
    for name, path in tasks.items():
        argv += ["--task", f"{name}={path}"]
    assert main([*argv, "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def first_lines(source: Path, target: Path, lines: int) -> Path:
    data = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
    target.write_text("".join(data.decode("utf-8").splitlines(keepends=True)[:lines]), encoding="utf-8")
    return target


def test_learning_run_on_real_text(tmp_path):
    OUT.mkdir(parents=True, exist_ok=True)
    phases: dict[str, float] = {}
    torch.set_num_threads(os.cpu_count() or 1)

    started = time.perf_counter()
    docs = training_documents()
    work = write_docs(tmp_path / "work", [doc(url, text) for url, text in docs])
    flags = ["--tokenizer", f"gpt2:{GPT2}", "--val-fraction", str(VAL_FRACTION), "--shard-docs", "2000"]
    assert main(["release", "--docs", str(work), *flags, "--out", str(work)]) == 0
    phases["release"] = time.perf_counter() - started

    started = time.perf_counter()
    assert main(["ngrams", "--release", str(work)]) == 0
    overlap_args = [f"--eval={name}={path}" for name, path in EVAL_SETS.items()]
    assert main(["overlap", "--release", str(work), *overlap_args, "--out", str(OUT / "overlap")]) == 0
    overlap = json.loads((OUT / "overlap" / "overlap.json").read_text(encoding="utf-8"))
    phases["ngrams + overlap"] = time.perf_counter() - started

    started = time.perf_counter()
    release_dir = work / "release"
    release = open_release(str(work))
    train_docs, val_docs = split_tokens(work, "train"), split_tokens(work, "val")
    baselines = ngram_baselines(train_docs, val_docs, release.vocab_size)
    phases["baselines"] = time.perf_counter() - started
    train_tokens, val_tokens = sum(map(len, train_docs)), sum(map(len, val_docs))

    started = time.perf_counter()
    warmup = run_config(release_dir, tmp_path / "warmup", max_steps=WARMUP_STEPS, eval_batches=1)
    train(warmup)
    rates = [
        r["tokens_per_s"] for r in read_metrics(tmp_path / "warmup" / "metrics.jsonl") if r["kind"] == "train"
    ]
    step_seconds = MICRO * SEQ_LEN / statistics.median(rates[WARMUP_STEPS // 2 :])
    # An evaluation batch is a forward pass, about a third of a training step.
    max_steps = max(1, int(BUDGET / step_seconds - EVAL_POINTS * EVAL_BATCHES / 3))
    eval_every = max(1, max_steps // EVAL_POINTS)
    phases["warm-up"] = time.perf_counter() - started

    started = time.perf_counter()
    run_dir = tmp_path / "run"
    config = run_config(
        release_dir, run_dir, max_steps=max_steps, eval_every=eval_every, save_every=10 * max_steps
    )
    config.warmup_steps = max(1, max_steps // 10)
    # The run's initial weights (same seed and shape), evaluated by the trainer's own code and kept as the
    # zero-shot baseline.
    untrained = Run(dataclasses.replace(config, out=str(tmp_path / "untrained")), init_distributed("cpu"))
    initial_val = untrained.evaluate()
    model: GPT = untrained.gpt
    untrained.save()
    del untrained
    train(config)
    phases["training"] = time.perf_counter() - started

    rows = learning_curve(run_dir / "metrics.jsonl", initial_val)
    with open(OUT / "learning-curve.jsonl", "w", encoding="utf-8") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)
    embedding = model.num_params(non_embedding=False) - model.num_params()
    title = (
        f"4x256 GPT ({model.num_params() / 1e6:.1f}M + {embedding / 1e6:.1f}M "
        f"embedding params), {rows[-1]['tokens'] / 1e3:.0f}k tokens in {rows[-1]['seconds']:.0f} s, "
        f"{torch.get_num_threads()} CPU threads"
    )
    plot_curve(
        rows,
        {"unigram": baselines["unigram"], "bigram": baselines["bigram"]},
        title,
        OUT / "learning-curve.png",
    )

    started = time.perf_counter()
    tasks = {
        "lambada": EVAL_SETS["lambada"],
        "wikitext2": first_lines(EVAL_SETS["wikitext2"], tmp_path / "wikitext2.test.txt", EVAL_LINES),
        "ptb": first_lines(EVAL_SETS["ptb"], tmp_path / "ptb.test.txt", EVAL_LINES),
    }
    tokenizer = run_dir / "tokenizer.json"  # the release's, copied by the trainer
    trained = zero_shot(run_dir, tokenizer, tasks, OUT / "zero-shot")
    baseline = zero_shot(tmp_path / "untrained", tokenizer, tasks, OUT / "zero-shot-untrained")
    phases["zero-shot eval"] = time.perf_counter() - started
    table = (OUT / "zero-shot" / "table3.md").read_text(encoding="utf-8")
    (OUT / "zero-shot.md").write_text(
        table
        + "\n## The same model untrained (step 0)\n\n"
        + (OUT / "zero-shot-untrained" / "table3.md").read_text(),
        encoding="utf-8",
    )

    final_val, sets = rows[-1]["val_loss"], overlap["evals"]
    summary = {
        "documents": len(docs),
        "train_tokens": train_tokens,
        "val_tokens": val_tokens,
        "params_non_embedding": model.num_params(),
        "params_total": model.num_params(non_embedding=False),
        "budget_s": BUDGET,
        "steps": max_steps,
        "tokens_trained": rows[-1]["tokens"],
        "epochs": rows[-1]["tokens"] / train_tokens,
        "tokens_per_s": rows[-1]["tokens"] / rows[-1]["seconds"],
        "initial_val_loss": initial_val,
        "final_val_loss": final_val,
        "unigram_val_loss": baselines["unigram"],
        "bigram_val_loss": baselines["bigram"],
        "overlap_8gram_percent": {n: next(iter(s["overlap"].values()))["percent"] for n, s in sets.items()},
        "overlap_dirty_examples": {n: f"{s['dirty_examples']} of {s['examples']}" for n, s in sets.items()},
        "zero_shot": {name: metrics_of(m) for name, m in trained["tasks"].items()},
        "zero_shot_untrained": {name: metrics_of(m) for name, m in baseline["tasks"].items()},
        "phases_s": {name: round(s, 1) for name, s in phases.items()},
        "threads": torch.get_num_threads(),
        "load_at_end": os.getloadavg()[0],
    }
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"\nlearning run: {len(docs):,} documents, {train_tokens:,} train / {val_tokens:,} val tokens")
    for name, value in summary.items():
        if not isinstance(value, dict):
            report(f"learning {name}", round(value, 4) if isinstance(value, float) else value)
    for group in (
        "overlap_8gram_percent",
        "overlap_dirty_examples",
        "zero_shot",
        "zero_shot_untrained",
        "phases_s",
    ):
        for name, value in summary[group].items():
            report(f"learning {group} {name}", value)
    print(table)
    print(f"curve, figure and tables in {OUT}")

    assert final_val < initial_val - 2, (
        f"val loss {initial_val:.2f} -> {final_val:.2f}: the model did not learn"
    )
    assert final_val < baselines["unigram"], f"val loss {final_val:.2f} is not below the unigram's"
    assert math.isfinite(final_val)


def metrics_of(task: dict) -> dict:
    """The figures of one `webtext eval` task that the README table shows."""
    if task["kind"] == "lambada":
        return {"acc": task["openai"]["acc"], "ppl": task["openai"]["ppl"]}
    return {"ppl_word": task["ppl_word"], "ppl_token": task["ppl_token"], "tokens": task["tokens"]}
