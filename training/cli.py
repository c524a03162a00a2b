"""`webtext train | export`: the training commands (registered by webtext/cli.py; no Beam here)."""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from corpus.command_line import EXIT_INTERRUPTED, interrupted, positive_int
from corpus.tokenizer import Tokenizer

if TYPE_CHECKING:
    from training.config import TrainConfig

log = logging.getLogger("webtext")


def add_train_parser(sub) -> None:
    from training.config import PRESETS, TrainConfig

    d = TrainConfig(data="", out="")
    # No flag has a default here: a flag the user did not type is absent, so it leaves the --config file's
    # value (or the dataclass default) alone. Precedence: defaults < preset < file < flags.
    p = sub.add_parser(
        "train",
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
        help="pretrain GPT on a release (one process, or under torchrun: DDP / FSDP)",
        description="Under torchrun: torchrun --nproc_per_node=N --no-python webtext train ...",
    )
    p.add_argument(
        "--config",
        metavar="TOML",
        help="a run config file ([run], [model], [data], ... sections; docs/training/run.example.toml); "
        "flags override it. A run directory's config.toml reruns that run",
    )
    p.add_argument("--data", metavar="RELEASE", help="release directory or fsspec URL (required)")
    p.add_argument("--out", metavar="DIR", help="run directory: checkpoints, metrics, loss.png (required)")
    p.add_argument("--preset", choices=sorted(PRESETS), help=f"model preset (default {d.preset})")
    p.add_argument("--n-layer", type=positive_int, help="override the preset: Transformer blocks")
    p.add_argument("--n-head", type=positive_int, help="override the preset: attention heads")
    p.add_argument("--n-embd", type=positive_int, help="override the preset: width (a multiple of --n-head)")
    p.add_argument(
        "--block-size", type=positive_int, help="override the preset: context (position embeddings)"
    )
    p.add_argument(
        "--vocab-size",
        type=positive_int,
        help="embedding rows (default: the release tokenizer's vocabulary; larger pads it, e.g. 50304)",
    )
    p.add_argument("--dropout", type=float, help="override the preset's dropout")
    p.add_argument("--seq-len", type=positive_int, help="tokens per sequence (default: the model's context)")
    p.add_argument(
        "--micro-batch", type=positive_int, help=f"sequences per rank per step (default {d.micro_batch})"
    )
    p.add_argument(
        "--global-batch-tokens",
        type=positive_int,
        help="tokens per optimizer step over all ranks; gradient accumulation makes up the difference",
    )
    p.add_argument(
        "--max-steps", type=positive_int, help="optimizer steps (default: --epochs of the train split)"
    )
    p.add_argument("--epochs", type=float, help=f"default {d.epochs}")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--min-lr-ratio", type=float, help=f"cosine floor, x peak (default {d.min_lr_ratio})")
    p.add_argument("--warmup-steps", type=int, help=f"default {d.warmup_steps}")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    p.add_argument("--grad-clip", type=float, help=f"0 disables (default {d.grad_clip})")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--eval-every", type=positive_int, help=f"default {d.eval_every}")
    p.add_argument("--eval-batches", type=positive_int, help=f"default {d.eval_batches}")
    p.add_argument("--save-every", type=positive_int, help=f"default {d.save_every}")
    p.add_argument("--keep", type=positive_int, help=f"complete checkpoints kept (default {d.keep})")
    p.add_argument("--log-every", type=positive_int, help=f"default {d.log_every}")
    p.add_argument(
        "--resume", action="store_true", help="continue from the newest complete checkpoint in --out"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--fsdp", action="store_true", help="FSDP2 (fully_shard) instead of DDP")
    p.add_argument("--device", help="auto (cuda when available; the default), cpu or cuda")
    p.add_argument("--num-workers", type=int, help=f"DataLoader worker processes (default {d.num_workers})")
    p.add_argument(
        "--shuffle-buffer",
        type=positive_int,
        help=f"documents per shuffle block (default {d.shuffle_buffer})",
    )
    p.add_argument(
        "--skip-corrupt", action="store_true", help="skip unreadable shards (logged) instead of failing"
    )
    p.add_argument("--peak-flops", type=float, help="device peak FLOP/s for MFU (GPUs we know are built in)")
    p.add_argument("--sample-tokens", type=int, default=48, help="tokens of the sample generated at the end")
    p.set_defaults(handler=run_train_command)


def train_config_of(args: argparse.Namespace) -> TrainConfig:
    """The run's config: the --config file's values (if any), with the flags the user typed laid over them."""
    from training.run_config import TRAIN, read_config, train_config

    fields = {name for section in TRAIN.sections.values() for name in section}
    flags = {k: v for k, v in vars(args).items() if k in fields}
    from_file = read_config(args.config, TRAIN) if "config" in args else {}
    return train_config(from_file | flags)


def run_train_command(args: argparse.Namespace, _extra: list[str]) -> int:
    from training.trainer import train

    # torchdata calls a torch API that torch deprecated; nothing for our users to act on.
    warnings.filterwarnings("ignore", message="'set_vital' is deprecated")
    config = train_config_of(args)
    rank0 = int(os.environ.get("RANK", "0")) == 0  # torchrun: rank 0 reports
    try:
        result = train(config)
    except KeyboardInterrupt:
        return interrupted("train", resume_hint(Path(config.out))) if rank0 else EXIT_INTERRUPTED
    if not rank0:
        return 0
    print(f"train: {result.steps} steps, {result.tokens:,} tokens, last train loss {result.last_loss:.4f}")
    if result.val_loss is not None:
        print(f"train: val loss {result.val_loss:.4f} (nats/token)")
    if args.sample_tokens > 0:
        print(f"train: sample: {sample_text(result.out, args.sample_tokens, config.seed)!r}")
    print(f"train: checkpoints in {result.out / 'checkpoints'}, loss curve {result.out / 'loss.png'}")
    return 0


def resume_hint(run_dir: Path) -> str:
    """What to do after an interrupted run: where `--resume` continues, if anywhere."""
    from training.checkpoint import latest_checkpoint

    found = latest_checkpoint(run_dir / "checkpoints")
    if found is None:
        return "no checkpoint was saved yet, so the same command starts over"
    return f"the same command with --resume continues from {found}"


def sample_text(run_dir: Path, tokens: int, seed: int) -> str:
    """A short sample from the run's newest checkpoint, starting from <|endoftext|> (top-k 40)."""
    import torch

    from training.checkpoint import load_model, load_tokenizer

    model, tokenizer = load_model(str(run_dir)), load_tokenizer(str(run_dir))
    start = torch.tensor([[tokenizer.eot_id]])
    generator = torch.Generator().manual_seed(seed)
    out = model.generate(start, tokens, temperature=1.0, top_k=40, generator=generator)
    return tokenizer.decode(out[0, 1:].tolist())


def add_export_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        allow_abbrev=False,
        help="checkpoint -> Hugging Face model + tokenizer (safetensors, config, tokenizer)",
    )
    p.add_argument(
        "--checkpoint", required=True, metavar="DIR", help="a checkpoint, or a run directory (newest)"
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(handler=run_export_command)


def run_export_command(args: argparse.Namespace, _extra: list[str]) -> int:
    from training.checkpoint import load_model, resolve_checkpoint
    from training.hf_format import MODEL_TYPES, export_hf

    checkpoint = resolve_checkpoint(args.checkpoint)
    model = load_model(str(checkpoint))
    tokenizer_json = checkpoint.parent.parent / "tokenizer.json"
    tokenizer = Tokenizer.load(str(tokenizer_json)) if tokenizer_json.is_file() else None
    if tokenizer is None:
        log.warning("export: no %s, so the export has no tokenizer files", tokenizer_json)
    export_hf(model, args.out, tokenizer=tokenizer)
    model_type = MODEL_TYPES[model.config.variant]
    print(f"export: {checkpoint} -> {args.out}: {model_type}, {model.params_label()}")
    return 0
