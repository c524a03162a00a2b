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
    # As for `train`: no flag has a default, so only the flags typed override the --config file.
    p = sub.add_parser(
        "finetune",
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
        help="GPT-1 fine-tuning on a labelled task (classification, entailment, similarity, multiple-choice)",
    )
    p.add_argument(
        "--config",
        metavar="TOML",
        help="a config file with a [finetune] section of these settings (field names, e.g. batch_size); "
        "flags override it. OUT/config.toml of a fine-tuning reruns it",
    )
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="a checkpoint, a run directory (its newest checkpoint) or a Hugging Face directory (required)",
    )
    p.add_argument("--task", choices=KINDS, help="the input transformation and file format (required)")
    p.add_argument("--dev", metavar="PATH", help="labelled evaluation file (required)")
    p.add_argument(
        "--train",
        metavar="PATH",
        help="labelled training file; without it the dev file is split by a hash of each row's text",
    )
    p.add_argument("--out", metavar="DIR", help="writes DIR/results.json and DIR/config.toml (required)")
    p.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="tokenizer.json, or a directory with tokenizer.json or GPT-2's encoder.json + vocab.bpe "
        "(default: the one beside the checkpoint)",
    )
    p.add_argument(
        "--lambda",
        dest="lambda_lm",
        type=float,
        help=f"weight of the auxiliary LM loss (default {d.lambda_lm})",
    )
    p.add_argument("--lr", type=float, help=f"default {d.lr}")
    p.add_argument("--batch-size", type=positive_int, help=f"examples per step (default {d.batch_size})")
    p.add_argument("--epochs", type=positive_int, help=f"default {d.epochs}")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many steps (default: the epochs)")
    p.add_argument("--warmup-fraction", type=float, help=f"of all steps (default {d.warmup_fraction})")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    p.add_argument("--grad-clip", type=float, help=f"0 disables (default {d.grad_clip})")
    p.add_argument(
        "--clf-dropout", type=float, help=f"dropout before the linear head (default {d.clf_dropout})"
    )
    p.add_argument(
        "--dropout", type=float, help=f"the Transformer's residual/attention dropout (default {d.dropout})"
    )
    p.add_argument("--max-len", type=positive_int, help="tokens per sequence (default: the model's context)")
    p.add_argument(
        "--dev-train-fraction",
        type=float,
        help=f"without --train: the share of dev rows used for training (default {d.dev_train_fraction})",
    )
    p.add_argument(
        "--max-examples", type=positive_int, help="use at most N training and N test examples (file order)"
    )
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--device", help="auto (cuda when available; the default), cpu or cuda")
    p.add_argument("--save", action="store_true", help="also write the weights to DIR/model.safetensors")
    p.set_defaults(handler=run_finetune_command)


def finetune_config_of(args: argparse.Namespace) -> FinetuneConfig:
    """The FinetuneConfig: the --config file's [finetune] values (if any), with the flags the user typed
    laid over them."""
    from training.run_config import FINETUNE, finetune_config, read_config

    fields = set(FINETUNE.sections["finetune"])
    flags = {k: v for k, v in vars(args).items() if k in fields}
    from_file = read_config(args.config, FINETUNE) if "config" in args else {}
    return finetune_config(from_file | flags)


def run_finetune(config: FinetuneConfig) -> dict:
    """Fine-tune and evaluate as `config` says; returns the results (also written to OUT/results.json)."""
    from training.finetune import run_finetune_task

    return run_finetune_task(config)


def run_finetune_command(args: argparse.Namespace, _extra: list[str]) -> int:
    from training.run_config import CONFIG_FILE, finetune_toml

    config = finetune_config_of(args)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(finetune_toml(config))
    try:
        r = run_finetune(config)
    except KeyboardInterrupt:
        return interrupted("finetune", "no results were written; the same command starts over")
    print(
        f"finetune: {r['task']} accuracy {r['accuracy']:.4f} on {r['test_examples']} test examples "
        f"(majority baseline {r['majority_baseline']:.4f}, lambda {r['lambda']:g}, {r['steps']} steps)"
    )
    print(f"finetune: results in {out / 'results.json'}")
    return 0
