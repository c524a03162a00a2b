"""`--config FILE.toml` for `webtext train` and `webtext finetune`: TOML sections mapped onto the fields of
TrainConfig (and the model's GPTConfig) or FinetuneConfig, and the effective config written back as TOML, so
that a run directory's `config.toml` is itself a valid `--config`.

A file is read into a flat {field: value} dict, every key and value checked (a bad one stops the command
with one line naming the file, section and key). The flags the user typed are laid over it, then the
dataclass is built. Plain Python, no torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from dataclasses import dataclass
from typing import Any

from corpus.errors import InputError
from training.config import PRESETS, VARIANTS, FinetuneConfig, GPTConfig, TrainConfig
from training.finetune_tasks import KINDS as FINETUNE_KINDS

CONFIG_FILE = "config.toml"  # the effective config, in a run's (or a fine-tuning's) output directory
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(GPTConfig))


@dataclass(frozen=True)
class Layout:
    """A config file's sections (each a tuple of field names), the fields' types and which integer fields
    must be >= 1 (those whose flags use positive_int) and the fields with a fixed set of values."""

    sections: dict[str, tuple[str, ...]]
    types: dict[str, Any]
    positive: frozenset[str]
    choices: dict[str, tuple[str, ...]]


# A key is a field name, spelt as in the dataclass (`--micro-batch` is `micro_batch`). [model] holds the
# preset and any GPTConfig field, applied on top of the preset.
TRAIN = Layout(
    sections={
        "run": ("data", "out", "device", "compile", "fsdp", "peak_flops"),
        "model": ("preset", *MODEL_FIELDS),
        "data": ("seq_len", "micro_batch", "global_batch_tokens", "num_workers", "shuffle_buffer",
                 "skip_corrupt"),
        "training": ("max_steps", "epochs", "seed"),
        "optimizer": ("lr", "min_lr_ratio", "warmup_steps", "weight_decay", "betas", "grad_clip"),
        "checkpoint": ("save_every", "keep", "resume"),
        "metrics": ("log_every", "eval_every", "eval_batches"),
    },
    types=typing.get_type_hints(TrainConfig) | typing.get_type_hints(GPTConfig),
    positive=frozenset({"seq_len", "micro_batch", "global_batch_tokens", "max_steps", "eval_every",
                        "eval_batches", "save_every", "keep", "log_every", "shuffle_buffer",
                        "vocab_size", "block_size", "n_layer", "n_head", "n_embd"}),
    choices={"preset": tuple(PRESETS), "variant": VARIANTS},
)  # fmt: skip
FINETUNE = Layout(
    sections={"finetune": tuple(f.name for f in dataclasses.fields(FinetuneConfig))},
    types=typing.get_type_hints(FinetuneConfig),
    positive=frozenset({"batch_size", "epochs", "max_steps", "max_len", "max_examples"}),
    choices={"task": FINETUNE_KINDS},
)


def read_config(path: str, layout: Layout) -> dict[str, Any]:
    """The flat {field: value} of the TOML file `path`: every section, key and value checked."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except OSError as e:
        raise InputError(f"{path}: unreadable config file ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML ({e})") from None
    sections = layout.sections
    values: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):  # a key before any [section] header
            home = [name for name, keys in sections.items() if section in keys]
            where = f"it belongs under [{home[0]}]" if home else f"sections: {', '.join(sections)}"
            raise InputError(f"{path}: {section}: a key outside any section; {where}")
        if section not in sections:
            raise InputError(f"{path}: unknown section [{section}]; known: {', '.join(sections)}")
        for key, value in table.items():
            where = f"{path}: [{section}] {key}"
            if key not in sections[section]:
                raise InputError(f"{where}: unknown key; [{section}] holds {', '.join(sections[section])}")
            values[key] = _checked(value, layout.types[key], where)
            if key in layout.positive and values[key] < 1:
                raise InputError(f"{where}: must be >= 1, got {value}")
            if key in layout.choices and value not in layout.choices[key]:
                raise InputError(f"{where}: {value!r} is not one of {', '.join(layout.choices[key])}")
    return values


def _checked(value: Any, hint: Any, where: str) -> Any:
    """`value` as the field's type (`int | None` as int: TOML has no null), or one line saying what is
    wrong."""
    options = [t for t in typing.get_args(hint) if t is not type(None)]
    if type(None) in typing.get_args(hint) and len(options) == 1:
        hint = options[0]
    number = _is_number(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and number and isinstance(value, int):
        return value
    if hint is float and number:
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if typing.get_origin(hint) is tuple:
        size = len(typing.get_args(hint))
        if isinstance(value, list) and len(value) == size and all(_is_number(v) for v in value):
            return tuple(float(v) for v in value)
        raise InputError(f"{where}: expected a list of {size} numbers, got {_toml_value(value)}")
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]
    raise InputError(f"{where}: expected {expected}, got {_toml_value(value)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def train_values(config: TrainConfig) -> dict[str, Any]:
    """The flat {field: value} of a TrainConfig: its fields, with the model overrides beside them."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "overrides"}
    return values | config.overrides


def train_config(values: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of flat values (a file's, with the flags laid over them); the model's fields become
    its overrides."""
    for name, flag in (("data", "--data RELEASE"), ("out", "--out DIR")):
        if values.get(name) is None:
            raise InputError(f"{flag} is required (a flag, or [run] {name} in the --config file)")
    overrides = {k: v for k, v in values.items() if k in MODEL_FIELDS}
    return TrainConfig(**{k: v for k, v in values.items() if k not in MODEL_FIELDS}, overrides=overrides)


def finetune_config(values: dict[str, Any]) -> FinetuneConfig:
    for name in ("checkpoint", "task", "dev", "out"):
        if not values.get(name):
            raise InputError(f"--{name} is required (a flag, or [finetune] {name} in the --config file)")
    return FinetuneConfig(**values)


def train_toml(config: TrainConfig) -> str:
    return to_toml(
        train_values(config), TRAIN, "webtext train: this run's effective config (a valid --config)"
    )


def finetune_toml(config: FinetuneConfig) -> str:
    values = dataclasses.asdict(config)
    return to_toml(values, FINETUNE, "webtext finetune: this run's effective config (a valid --config)")


def to_toml(values: dict[str, Any], layout: Layout, title: str) -> str:
    """A TOML file of flat `values`, section by section; None (the default) is left out."""
    lines = [f"# {title}"]
    for section, keys in layout.sections.items():
        present = [(key, values[key]) for key in keys if values.get(key) is not None]
        if present:
            lines += ["", f"[{section}]", *(f"{key} = {_toml_value(value)}" for key, value in present)]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)
