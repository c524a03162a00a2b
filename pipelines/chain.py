"""The chain: its stages in pipeline order, the one list that the CLI, `webtext build`, the release's manifest
and its datasheet read.

The order of names is `corpus.chain.CHAIN` (plain Python: the datasheet and the trainer read it too); the
stage called NAME is the object `STAGE` in `pipelines/NAME/stage.py`, so the folders are the chain.
"""

from __future__ import annotations

import importlib

from corpus.chain import CHAIN
from pipelines.stage import Stage


def stage(name: str) -> Stage:
    """The stage called `name` (one of CHAIN)."""
    if name not in CHAIN:
        raise KeyError(f"no stage {name!r}; the chain is {', '.join(CHAIN)}")
    return importlib.import_module(f"pipelines.{name}.stage").STAGE


def stages() -> tuple[Stage, ...]:
    """Every stage, in pipeline order."""
    return tuple(stage(name) for name in CHAIN)
