"""Packing documents into batches, and grouping batches for the trip from a DataLoader worker.

Packer: each document's tokens, followed by its EOT, cut into rows of micro_batch x (seq_len + 1) tokens; what
does not fill a batch waits for the next documents (training/data.py explains the loader around it).

BatchGroup: a DataLoader worker sends its batches GROUP_BATCHES at a time, each with the reader state after
it. One item through torch's worker queues costs the training process about 0.2 ms (pickling, the index
queue, StatefulDataLoader's snapshot), as much as packing the batch itself, so one item per batch capped a
2-worker loader far below a 0-worker one. The training process takes the batches out of the groups one worker
at a time in turn, as the one-batch-per-item loader did, so the batch order is unchanged, and
ReleaseLoader.state_dict gives each worker's state after the last batch actually handed over (not after the
group it came in): resume stays exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

Span = tuple[int, str, int, int]  # (epoch, document key, start, end): a piece of a document in a batch
GROUP_BATCHES = 8  # about how many batches a worker sends at once: the per-item cost is spread over them


class BatchGroup(NamedTuple):
    """Consecutive batches of one DataLoader worker, with the reader's state (saved form) before the first
    and after each one."""

    worker: int
    start: dict[str, Any]
    batches: list[Any]
    states: list[dict[str, Any]]


class Packer:
    """Documents, each followed by its EOT, cut into rows of micro_batch x (seq_len + 1) tokens; what does
    not fill a batch waits for the next documents."""

    def __init__(self, micro_batch: int, seq_len: int, eot: np.ndarray, trace: bool = False) -> None:
        self.shape, self.need, self.eot = (micro_batch, seq_len + 1), micro_batch * (seq_len + 1), eot
        self.trace = trace
        self.pieces: list[np.ndarray] = []
        self.have = 0  # tokens in pieces
        self.spans: list[Span] = []  # their document pieces (only when tracing)

    def add(self, epoch: int, key: str, tokens: np.ndarray, skip: int) -> None:
        """Document `key` of `epoch` (and its EOT) from token `skip` on."""
        length = len(tokens) + 1
        if skip < length:
            self.pieces += [tokens[skip:], self.eot]
            self.have += length - skip
            if self.trace:
                self.spans.append((epoch, key, skip, length))

    def batches(self) -> Iterator[tuple[np.ndarray | tuple[np.ndarray, list[Span]], int]]:
        """Every full batch there is now (with its spans when tracing), each with the number of tokens left
        after it: always a tail of the document added last."""
        if self.have < self.need:
            return
        need, flat = self.need, np.concatenate(self.pieces)
        full = self.have // need
        for k in range(full):
            rows = flat[k * need : (k + 1) * need].reshape(self.shape)
            yield ((rows, _take_spans(self.spans, need)) if self.trace else rows), self.have - (k + 1) * need
        self.pieces = [flat[full * need :]]
        self.have = len(self.pieces[0])


def _take_spans(spans: list[Span], tokens: int) -> list[Span]:
    """Take the first `tokens` tokens' (epoch, key, start, end) document pieces off `spans`."""
    taken = []
    while tokens:
        epoch, key, start, end = spans[0]
        n = min(tokens, end - start)
        taken.append((epoch, key, start, start + n))
        if start + n == end:
            spans.pop(0)
        else:
            spans[0] = (epoch, key, start + n, end)
        tokens -= n
    return taken
