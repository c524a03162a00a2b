"""`webtext finetune`: GPT-1 supervised fine-tuning of a pretrained model on a labelled task.

Reads the model (a checkpoint, a run directory or a Hugging Face directory) and its tokenizer, the task's
train file (or, when there is none, a hash split of the dev file), fine-tunes with L3 = L2 + lambda * L1,
and writes OUT/results.json: test accuracy beside the majority-class baseline (and OUT/model.safetensors with
--save).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from corpus.command_line import interrupted, positive_int

if TYPE_CHECKING:
    from training.config import FinetuneConfig


def add_finetune_parser(sub) -> None:
    from training.config import FinetuneConfig
    from training.finetune_tasks import KINDS

    d = FinetuneConfig()
    p = sub.add_parser(
        "finetune",
        allow_abbrev=False,
        help="GPT-1 fine-tuning on a labelled task (classification, entailment, similarity, multiple-choice)",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="DIR",
        help="a checkpoint, a run directory (its newest checkpoint) or a Hugging Face directory",
    )
    p.add_argument("--task", required=True, choices=KINDS, help="the input transformation and file format")
    p.add_argument("--dev", required=True, metavar="PATH", help="labelled evaluation file")
    p.add_argument(
        "--train",
        metavar="PATH",
        help="labelled training file; without it the dev file is split by a hash of each row's text",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="writes DIR/results.json")
    p.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="tokenizer.json, or a directory with tokenizer.json or GPT-2's encoder.json + vocab.bpe "
        "(default: the one beside the checkpoint)",
    )
    p.add_argument(
        "--lambda", dest="lambda_lm", type=float, default=d.lambda_lm, help="weight of the auxiliary LM loss"
    )
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="examples per step")
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--max-steps", type=positive_int, help="stop after this many steps (default: the epochs)")
    p.add_argument("--warmup-fraction", type=float, default=d.warmup_fraction, help="of all steps")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help="0 disables")
    p.add_argument("--clf-dropout", type=float, default=d.clf_dropout, help="dropout before the linear head")
    p.add_argument(
        "--dropout", type=float, default=d.dropout, help="the Transformer's residual/attention dropout"
    )
    p.add_argument("--max-len", type=positive_int, help="tokens per sequence (default: the model's context)")
    p.add_argument(
        "--dev-train-fraction",
        type=float,
        default=d.dev_train_fraction,
        help=f"without --train: the share of dev rows used for training (default {d.dev_train_fraction})",
    )
    p.add_argument(
        "--max-examples", type=positive_int, help="use at most N training and N test examples (file order)"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto (cuda when available), cpu or cuda")
    p.add_argument("--save", action="store_true", help="also write the weights to DIR/model.safetensors")
    p.set_defaults(handler=run_finetune_command)


def finetune_config(args: argparse.Namespace) -> FinetuneConfig:
    """The FinetuneConfig the flags give: every flag whose name is one of its fields (the rest keep their
    defaults)."""
    from training.config import FinetuneConfig

    fields = set(FinetuneConfig.__dataclass_fields__)
    return FinetuneConfig(**{k: v for k, v in vars(args).items() if k in fields})


def run_finetune(args: argparse.Namespace) -> dict:
    """Fine-tune and evaluate as the flags say; returns the results (also written to OUT/results.json)."""
    from training.finetune import run_finetune_task

    return run_finetune_task(finetune_config(args))


def run_finetune_command(args: argparse.Namespace, _extra: list[str]) -> int:
    try:
        r = run_finetune(args)
    except KeyboardInterrupt:
        return interrupted("finetune", "no results were written; the same command starts over")
    print(
        f"finetune: {r['task']} accuracy {r['accuracy']:.4f} on {r['test_examples']} test examples "
        f"(majority baseline {r['majority_baseline']:.4f}, lambda {r['lambda']:g}, {r['steps']} steps)"
    )
    print(f"finetune: results in {Path(args.out) / 'results.json'}")
    return 0
