"""Reading the loaders' document traces (WEBTEXT_TRACE_DOCUMENTS, training/data.py) in tests, and the small
run-directory look-ups the resume tests share."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from corpus.shards import read_shard
from training.checkpoint import complete_checkpoints
from training.metrics import read_metrics

Span = tuple[int, str, int, int]  # (epoch, document key, start, end), as training/packing.py


def documents(release_dir: Path) -> dict[str, np.ndarray]:
    """Every train document's tokens followed by its EOT (399 in the fixture), by key."""
    return {
        s.key: np.append(s.tokens, 399)
        for shard in sorted(release_dir.glob("train-*.tar"))
        for s in read_shard(str(shard))
    }


def trace_spans(directory: Path, before: int | None = None) -> list[Span]:
    """The document pieces of the batches the train loaders traced in `directory` handed over, of each
    loader's batches numbered below `before` (all of them without it). A line a kill cut short is left out."""
    spans = []
    for path in sorted(directory.glob("train-*.tsv")):
        for line in path.read_text().split("\n")[:-1]:  # complete lines only
            batch, epoch, key, start, end = line.split("\t")
            if before is None or int(batch) < before:
                spans.append((int(epoch), key, int(start), int(end)))
    return spans


def by_document(spans: list[Span]) -> dict[tuple[int, str], list[tuple[int, int]]]:
    """(epoch, document key) -> the sorted (start, end) token ranges of `spans`."""
    found: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for epoch, key, start, end in spans:
        found.setdefault((epoch, key), []).append((start, end))
    return {k: sorted(v) for k, v in found.items()}


def read_trace(directory: Path) -> dict[tuple[int, str], list[tuple[int, int]]]:
    """(epoch, document key) -> the sorted (start, end) token ranges the train loaders handed over."""
    return by_document(trace_spans(directory))


def tokens_read(spans: list[Span], epoch: int) -> Counter:
    """The multiset of (document key, token offset) that `spans` hold of `epoch`."""
    return Counter((key, t) for e, key, start, end in spans if e == epoch for t in range(start, end))


def assert_read_once(spans: dict, release_dir: Path, epoch: int, complete: bool = True) -> None:
    """Every piece of a document of `epoch` was handed over once: no overlap; with `complete`, no gap and
    every document of the split (`spans` as read_trace gives them)."""
    docs = documents(release_dir)
    seen = {key: ranges for (e, key), ranges in spans.items() if e == epoch}
    for key, ranges in seen.items():
        bounds = [b for pair in ranges for b in pair]
        assert all(a <= b for a, b in zip(bounds[1:-1:2], bounds[2::2], strict=True)), (
            f"{key}: twice {ranges}"
        )
        if complete:
            assert bounds[1:-1:2] == bounds[2::2], f"{key}: gap in {ranges}"
            assert bounds[0] == 0 and bounds[-1] == len(docs[key]), f"{key}: not read whole {ranges}"
    if complete:
        assert sorted(seen) == sorted(docs)


def losses(run: Path) -> dict[int, float]:
    """Step -> train loss in a run directory's metrics.jsonl (the last of a step logged twice)."""
    return {r["step"]: r["loss"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"}


def latest_step(run: Path) -> int:
    """The step of a run directory's newest complete checkpoint (0 without one)."""
    found = complete_checkpoints(run / "checkpoints")
    return int(found[-1].name.split("-")[1]) if found else 0
