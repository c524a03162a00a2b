"""`webtext finetune`: GPT-1 supervised fine-tuning of a pretrained model on a labelled task.

Reads the model (a checkpoint, a run directory or a Hugging Face directory) and its tokenizer, the task's
train file (or, when there is none, a hash split of the dev file), fine-tunes with L3 = L2 + lambda * L1,
and writes OUT/results.json: test accuracy beside the majority-class baseline (and OUT/model.safetensors with
--save).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from corpus.errors import InputError, interrupted, positive_int

log = logging.getLogger("webtext")


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
    p.add_argument("--clf-dropout", type=float, default=0.1, help="dropout before the linear head")
    p.add_argument("--dropout", type=float, default=0.1, help="the Transformer's residual/attention dropout")
    p.add_argument("--max-len", type=positive_int, help="tokens per sequence (default: the model's context)")
    p.add_argument(
        "--dev-train-fraction",
        type=float,
        default=0.5,
        help="without --train: the share of dev rows used for training (default 0.5)",
    )
    p.add_argument(
        "--max-examples", type=positive_int, help="use at most N training and N test examples (file order)"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--save", action="store_true", help="also write the weights to DIR/model.safetensors")
    p.set_defaults(handler=run_finetune_command)


def run_finetune(args: argparse.Namespace) -> dict:
    """Fine-tune and evaluate as the flags say; returns the results (also written to OUT/results.json)."""
    import torch

    from training.checkpoint import load_model, load_tokenizer
    from training.config import FinetuneConfig
    from training.distributed import resolve_device
    from training.finetune import (
        FinetuneGPT,
        accuracy,
        finetune,
        majority_baseline,
        predict,
        save_finetuned,
    )
    from training.finetune_tasks import (
        SpecialTokens,
        encode_examples,
        hash_split,
        label_ids,
        label_names,
        read_examples,
    )

    dev = read_examples(args.dev, args.task)
    if args.train:
        train, test = read_examples(args.train, args.task), dev
        split = f"train file {args.train}, test file {args.dev}"
    else:
        train, test = hash_split(dev, args.dev_train_fraction)
        split = (
            f"hash split of {args.dev}: SHA-256 of each row's text, train fraction {args.dev_train_fraction}"
        )
        if not train or not test:
            raise InputError(f"{args.dev}: the hash split left an empty train or test portion")
    if args.max_examples:
        train, test = train[: args.max_examples], test[: args.max_examples]
    labels = label_names(train + test, args.task)
    train_y = label_ids(train, labels, args.train or args.dev)
    test_y = label_ids(test, labels, args.dev)

    tokenizer = load_tokenizer(args.checkpoint, args.tokenizer)
    pretrained = load_model(args.checkpoint)
    vocab = pretrained.config.vocab_size
    if tokenizer.vocab_size > vocab:
        raise InputError(
            f"{args.checkpoint}: the model's vocabulary ({vocab}) is smaller than the tokenizer's "
            f"({tokenizer.vocab_size}); is it the right tokenizer?"
        )
    max_len = min(args.max_len or pretrained.config.block_size, pretrained.config.block_size)
    special = SpecialTokens.after_vocab(vocab)
    try:
        train_x = encode_examples(train, args.task, tokenizer, special, max_len)
        test_x = encode_examples(test, args.task, tokenizer, special, max_len)
    except ValueError as e:
        raise InputError(f"--max-len {max_len}: {e}") from None

    torch.manual_seed(args.seed)  # the new embedding rows and the head
    num_classes = len(labels)
    model = FinetuneGPT.from_pretrained(pretrained, args.task, num_classes, args.dropout, args.clf_dropout)
    device = resolve_device(args.device)
    model.to(device)
    config = FinetuneConfig(
        lambda_lm=args.lambda_lm,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        warmup_fraction=args.warmup_fraction,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        max_steps=args.max_steps,
        seed=args.seed,
    )
    log.info(
        "finetune: %s, %d train / %d test examples, lambda %g, on %s",
        args.task, len(train), len(test), args.lambda_lm, device,
    )  # fmt: skip
    history = finetune(model, train_x, train_y, config)
    test_accuracy = accuracy(predict(model, test_x, args.batch_size), test_y)
    majority, baseline = majority_baseline(train_y, test_y)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "task": args.task,
        "checkpoint": args.checkpoint,
        "split": split,
        "train_examples": len(train),
        "test_examples": len(test),
        "labels": labels,
        "accuracy": test_accuracy,
        "majority_baseline": baseline,
        "majority_label": labels[majority],
        "lambda": args.lambda_lm,
        "steps": len(history),
        "final_loss": history[-1],
        "max_len": max_len,
        "hyperparameters": {
            "lr": args.lr,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "max_steps": args.max_steps,
            "warmup_fraction": args.warmup_fraction,
            "weight_decay": args.weight_decay,
            "grad_clip": args.grad_clip,
            "clf_dropout": args.clf_dropout,
            "dropout": args.dropout,
            "max_examples": args.max_examples,
            "seed": args.seed,
        },
    }
    if args.save:
        save_finetuned(model, str(out / "model.safetensors"), labels)
    tmp = out / f".results.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "results.json")
    return results


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
