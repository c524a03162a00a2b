"""`webtext eval`: GPT-2's zero-shot suite on one of our checkpoints or any Hugging Face GPT-2 directory.

Writes the metrics as JSON and a Markdown table laid out like the GPT-2 paper's Table 3, with the paper's
numbers for the model size nearest ours beside them (registered by webtext/cli.py; no Beam here).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from corpus.command_line import interrupted, positive_int
from corpus.errors import InputError
from corpus.tokenizer import Tokenizer
from training.config import KINDS

if TYPE_CHECKING:
    from training.eval_tasks import Task
    from training.model import GPT

log = logging.getLogger("webtext")

PAPER = "GPT-2 paper, Table 3"
# (column, task kind, metric key path, scale to the paper's unit), in the paper's column order.
COLUMNS = (
    ("LAMBADA (PPL)", "lambada", ("openai", "ppl"), 1),
    ("LAMBADA (ACC)", "lambada", ("openai", "acc"), 100),
    ("CBT-CN (ACC)", "cbt-cn", ("acc",), 100),
    ("CBT-NE (ACC)", "cbt-ne", ("acc",), 100),
    ("WikiText2 (PPL)", "wikitext2", ("ppl_word",), 1),
    ("PTB (PPL)", "ptb", ("ppl_word",), 1),
    ("enwik8 (BPB)", "enwik8", ("bpb",), 1),
    ("text8 (BPC)", "text8", ("bpb",), 1),
    ("WikiText103 (PPL)", "wikitext103", ("ppl_word",), 1),
    ("1BW (PPL)", "1bw", ("ppl_word",), 1),
)
# Radford et al. 2019, "Language Models are Unsupervised Multitask Learners", Table 3 (zero-shot), by model.
PAPER_TABLE3 = {  # as printed
    "117M": ("35.13", "45.99", "87.65", "83.4", "29.41", "65.85", "1.16", "1.17", "37.50", "75.20"),
    "345M": ("15.60", "55.48", "92.35", "87.1", "22.76", "47.33", "1.01", "1.06", "26.37", "55.72"),
    "762M": ("10.87", "60.12", "93.45", "88.0", "19.93", "40.31", "0.97", "1.02", "22.05", "44.575"),
    "1542M": ("8.63", "63.24", "93.30", "89.05", "18.34", "35.76", "0.93", "0.98", "17.48", "42.16"),
}
PAPER_PARAMS = {"117M": 117e6, "345M": 345e6, "762M": 762e6, "1542M": 1542e6}


def add_eval_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        allow_abbrev=False,
        help="GPT-2 zero-shot evaluation (LAMBADA, CBT/cloze, perplexity) -> JSON + a Table 3 in Markdown",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="a checkpoint, or a run directory (its newest)")
    source.add_argument(
        "--hf", metavar="DIR", help="a Hugging Face GPT-2 directory (config.json + model.safetensors)"
    )
    p.add_argument(
        "--task",
        action="append",
        required=True,
        metavar="NAME[:KIND]=PATH",
        help=f"repeatable; KIND is one of {', '.join(KINDS)} (default: NAME when it is a kind, else text)",
    )
    p.add_argument("--out", metavar="DIR", help="write DIR/results.json and DIR/table3.md")
    p.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="tokenizer.json, or a directory holding one (default: the run's, or the --hf directory's)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=positive_int, default=8, help="sequences per forward pass")
    p.add_argument("--max-examples", type=positive_int, help="first N passages/questions/.jsonl documents")
    p.add_argument("--context", type=positive_int, help="perplexity window in tokens (default: block_size)")
    p.add_argument(
        "--stride", type=positive_int, help="perplexity window step in tokens (default: context/2)"
    )
    p.add_argument(
        "--detokenize", action="store_true", help="GPT-2-style detokenizers for WikiText, PTB, 1BW and CBT"
    )
    p.add_argument(
        "--paper-size", choices=list(PAPER_TABLE3), help="paper row to compare with (default: nearest size)"
    )
    p.set_defaults(handler=run_eval_command)


def run_eval_command(args: argparse.Namespace, _extra: list[str]) -> int:
    try:
        return run_eval(args)
    except KeyboardInterrupt:
        return interrupted("eval", "no results were written; the same command starts over")


def run_eval(args: argparse.Namespace) -> int:
    from training.distributed import resolve_device
    from training.eval_tasks import parse_task

    tasks = [parse_task(spec) for spec in args.task]
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise InputError(f"--task names must be unique, got {', '.join(names)}")
    for task in tasks:  # before a long run, not after it
        if not Path(task.path).is_file():
            raise InputError(f"{task.path}: not found")
    model, tokenizer, source = load_for_eval(args.checkpoint, args.hf, args.tokenizer)
    context = args.context or model.config.block_size
    stride = args.stride or max(1, context // 2)
    if context > model.config.block_size:
        raise InputError(
            f"--context {context} is longer than the model's block_size {model.config.block_size}"
        )
    if stride > context:
        raise InputError(f"--stride {stride} is longer than the context ({context})")
    device = resolve_device(args.device)
    model.to(device)
    results = {
        "model": {"source": source, **describe(model)},
        "settings": {
            "device": str(device),
            "batch_size": args.batch_size,
            "max_examples": args.max_examples,
            "context": context,
            "stride": stride,
            "detokenize": args.detokenize,
        },
        "tasks": {},
    }
    for task in tasks:
        log.info("eval: %s (%s) on %s", task.name, task.kind, task.path)
        results["tasks"][task.name] = evaluate(task, model, tokenizer, args, context, stride)
    size = args.paper_size or nearest_paper_size(results["model"]["params"])
    results["paper"] = {
        "source": PAPER,
        "size": size,
        "chosen_by": "--paper-size" if args.paper_size else "the size nearest this model's parameter count",
        **{h: float(v) for h, v in zip(_headers(), PAPER_TABLE3[size], strict=True)},
    }
    table = table3_markdown(results)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "results.json", json.dumps(results, indent=2) + "\n")
        _write(out / "table3.md", table)
    print(table, end="")
    if args.out:
        print(f"\neval: wrote {Path(args.out) / 'results.json'} and {Path(args.out) / 'table3.md'}")
    return 0


def evaluate(
    task: Task, model: GPT, tokenizer: Tokenizer, args: argparse.Namespace, context: int, stride: int
) -> dict:
    from training.eval_tasks import run_task

    try:
        return run_task(
            task,
            model,
            tokenizer,
            batch_size=args.batch_size,
            max_examples=args.max_examples,
            context=context,
            stride=stride,
            detokenize=args.detokenize,
        )
    except ValueError as e:  # a task the model cannot score (a candidate longer than its context, ...)
        raise InputError(f"{task.path}: {e}") from None


def load_for_eval(checkpoint: str | None, hf: str | None, tokenizer_path: str | None):
    """(model in eval mode, tokenizer, source path) from a checkpoint/run directory or a Hugging Face one."""
    from training.checkpoint import is_hf_directory, load_model, load_tokenizer, resolve_checkpoint
    from training.hf_format import CONFIG_FILE

    if checkpoint is not None:
        source = str(resolve_checkpoint(checkpoint))
    elif is_hf_directory(hf):
        source = hf
    else:
        raise InputError(f"{hf}: not a Hugging Face model directory (no {CONFIG_FILE})")
    model = load_model(source)
    tokenizer = load_tokenizer(source, tokenizer_path)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise InputError(
            f"{tokenizer_path or source}: tokenizer has {tokenizer.vocab_size} tokens, "
            f"more than the model's vocab_size {model.config.vocab_size}"
        )
    return model, tokenizer, source


def describe(model: GPT) -> dict:
    cfg = model.config
    return {
        "variant": cfg.variant,
        "params": model.num_params(non_embedding=False),
        "non_embedding_params": model.num_params(),
        "params_label": model.params_label(),
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_embd": cfg.n_embd,
        "block_size": cfg.block_size,
        "vocab_size": cfg.vocab_size,
    }


def nearest_paper_size(params: int) -> str:
    """The GPT-2 size (117M, 345M, 762M, 1542M) nearest `params` on a log scale."""
    return min(PAPER_PARAMS, key=lambda size: abs(math.log(params / PAPER_PARAMS[size])))


def _headers() -> list[str]:
    return [column[0] for column in COLUMNS]


def _value(metrics: dict, path: tuple[str, ...]) -> float | None:
    for key in path:
        metrics = metrics.get(key) if isinstance(metrics, dict) else None
    return metrics


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if abs(value) < 1e6 else f"{value:.3g}"


def table3_markdown(results: dict) -> str:
    """Our row beside the paper's row in Table 3's columns (a kind's first task fills its column), then
    every task's metrics."""
    model, paper, tasks = results["model"], results["paper"], results["tasks"]
    ours = []
    for _, kind, path, scale in COLUMNS:
        first = next((metrics for metrics in tasks.values() if metrics["kind"] == kind), None)
        value = _value(first, path) if first else None
        ours.append(_number(value * scale if value is not None else None))
    source = Path(model["source"])
    in_run = source.parent.name == "checkpoints"  # RUN/checkpoints/step-N: name it RUN/step-N
    label = f"{source.parent.parent.name}/{source.name}" if in_run else source.name
    name = f"ours: {label}, {model['params_label']}"
    lines = [
        "## Zero-shot results, laid out like the GPT-2 paper's Table 3",
        "",
        "| model | " + " | ".join(_headers()) + " |",
        "|---|" + "---:|" * len(COLUMNS),
        f"| {name} | " + " | ".join(ours) + " |",
        f"| {PAPER}: {paper['size']} | " + " | ".join(PAPER_TABLE3[paper["size"]]) + " |",
        "",
        f"The paper's row is its {paper['size']} model ({paper['chosen_by']}); its numbers are on the full "
        "test sets, ours on the files below. LAMBADA columns use the paper's convention (last BPE token); "
        "accuracies are in percent, perplexities per word of the original text, enwik8/text8 in bits per "
        "byte.",
        "",
        "| task | kind | data | metrics |",
        "|---|---|---|---|",
    ]
    for name, metrics in tasks.items():
        lines.append(f"| {name} | {metrics['kind']} | {_data(metrics)} | {_metrics(metrics)} |")
    return "\n".join(lines) + "\n"


def _data(metrics: dict) -> str:
    where = f"`{metrics['path']}`"
    if metrics["kind"] == "lambada":
        return f"{metrics['examples']:,} passages of {where}"
    if "acc" in metrics:
        return f"{metrics['examples']:,} questions of {where}"
    detokenized = ", detokenized" if metrics["detokenized"] else ""
    return (
        f"{where}: {metrics['tokens']:,} tokens, {metrics['words']:,} words, {metrics['bytes']:,} bytes; "
        f"context {metrics['context']}, stride {metrics['stride']}{detokenized}"
    )


def _metrics(metrics: dict) -> str:
    if metrics["kind"] == "lambada":
        openai, harness = metrics["openai"], metrics["harness"]
        return (
            f"GPT-2 paper (last BPE token): acc {openai['acc']:.2%}, ppl {_number(openai['ppl'])}; "
            f"harness lambada_openai (whole word): acc {harness['acc']:.2%}, ppl {_number(harness['ppl'])}"
        )
    if "acc" in metrics:
        return f"acc {metrics['acc']:.2%} (chance {metrics['chance']:.2%})"
    return (
        f"ppl/word {_number(metrics['ppl_word'])}, ppl/token {_number(metrics['ppl_token'])}, "
        f"{_number(metrics['bpb'])} bits/byte"
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
