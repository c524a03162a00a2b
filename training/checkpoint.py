"""Atomic training checkpoints: a directory per step, written under a temporary name, fsynced, then renamed.

    OUT/checkpoints/step-00001200/
        state.pt     model, optimizer, schedule, data-loader and RNG state (torch.save of plain containers)
        COMPLETE     the completion marker, written last: a directory without it is never loaded

`torch.load(..., weights_only=True)` reads them back, so the state holds only tensors and plain Python values
(numpy RNG state is stored as a list). A crash during a save leaves a `.tmp-*` directory or, at worst, a
directory without its marker; both are ignored and cleaned up by the next save.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from corpus.errors import InputError
from corpus.tokenizer import FILENAME as TOKENIZER_FILE
from corpus.tokenizer import Tokenizer, load_model_tokenizer

STATE_FILE = "state.pt"
MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{8})$")
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, write) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def save_checkpoint(root: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write the checkpoint of `step` atomically, then keep only the newest `keep` complete ones."""
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(root, step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _write_file(tmp / STATE_FILE, lambda handle: torch.save(state, handle))
    _crash_point("after-state", step)
    _write_file(tmp / MARKER, lambda handle: handle.write(b"ok\n"))
    _fsync_dir(tmp)
    if final.exists():  # an incomplete leftover of a crashed save of the same step
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    _prune(root, keep)
    return final


def _crash_point(where: str, step: int) -> None:
    """Fault injection for the preemption tests: WEBTEXT_CRASH_IN_SAVE=STEP kills the process mid-save."""
    wanted = os.environ.get("WEBTEXT_CRASH_IN_SAVE")
    if wanted and int(wanted) == step and where == "after-state":
        os._exit(137)


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint directories, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def _prune(root: Path, keep: int) -> None:
    for stale in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(stale)
    for partial in root.iterdir():
        incomplete = _STEP_DIR.match(partial.name) and not (partial / MARKER).is_file()
        if partial.name.startswith(".tmp-") or incomplete:
            shutil.rmtree(partial, ignore_errors=True)


def load_checkpoint(directory: Path) -> dict[str, Any]:
    """A checkpoint's state; refuses one without its completion marker."""
    if not (directory / MARKER).is_file():
        raise InputError(f"{directory}: incomplete checkpoint (no {MARKER} marker)")
    path = directory / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False, which would run whatever the file holds: never say so.
        found = _UNSAFE_GLOBAL.search(str(exc))
        what = f"a Python object ({found.group(1)})" if found else "Python objects"
        raise InputError(
            f"{path}: refused: it holds {what} that loading could run, not only tensors and plain values; "
            "webtext train never writes that, so this file is not one of its checkpoints or was altered"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: unreadable checkpoint ({' '.join(str(exc).split())})") from None


def resolve_checkpoint(path: str) -> Path:
    """A checkpoint directory, or the newest complete one under a run or checkpoints directory."""
    candidate = Path(path)
    if (candidate / MARKER).is_file():
        return candidate
    for root in (candidate / "checkpoints", candidate):
        found = latest_checkpoint(root)
        if found:
            return found
    raise InputError(f"{path}: no complete checkpoint found")


def rng_state() -> dict[str, Any]:
    """Every random generator the run uses, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def is_hf_directory(path: str) -> bool:
    """A Hugging Face model directory (config.json), not one of our run directories."""
    return (Path(path) / "config.json").is_file() and not (Path(path) / "checkpoints").is_dir()


def load_model(path: str):
    """A GPT in eval mode from a checkpoint (or run directory: its newest one) or a Hugging Face directory."""
    from training.hf_format import import_hf
    from training.model import GPT, GPTConfig

    if is_hf_directory(path):
        model = import_hf(path)
    else:
        state = load_checkpoint(resolve_checkpoint(path))
        model = GPT(GPTConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
    return model.eval()


def load_tokenizer(model_path: str, override: str | None = None) -> Tokenizer:
    """The tokenizer of a model: `override` (a tokenizer.json, or a directory of tokenizer files) when
    given, else the Hugging Face directory's files, else the run's tokenizer.json (RUN/checkpoints/step-N)."""
    if override:
        path = override
    elif is_hf_directory(model_path):
        path = model_path
    else:
        path = str(resolve_checkpoint(model_path).parent.parent / TOKENIZER_FILE)
    try:
        return load_model_tokenizer(path) if os.path.isdir(path) else Tokenizer.load(path)
    except FileNotFoundError as e:
        message = str(e) if os.path.isdir(path) else f"{path}: not found (pass --tokenizer)"
        raise InputError(message) from None
    except Exception as e:  # tokenizers raises plain Exceptions for malformed files
        raise InputError(f"{path}: not a usable tokenizer ({e})") from None
