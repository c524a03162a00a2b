"""What both of the ngrams stage's pipelines share: the train shards' texts, streamed, hashed into n-gram
batches (HashShards), split by the hashes' top bits, and the run of one pipeline (transform.py counts and
builds one filter, partitions.py builds P partitions)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from corpus.ngrams import NgramHasher
from pipelines.files import open_read, write_bytes

STAGE = "ngrams"
DOCS_PER_BATCH = 1000


def shard_texts(path: str) -> Iterator[str]:
    """The texts of a shard, in order, streamed: only its `.txt` members are decoded (the tokens and
    metadata are not needed, and loading them would double the time a shard takes)."""
    with open_read(path) as handle, tarfile.open(fileobj=handle, mode="r|") as tar:
        for member in tar:
            if member.isreg() and member.name.endswith(".txt"):
                yield tar.extractfile(member).read().decode("utf-8")


class HashShards(beam.DoFn):
    """A shard path -> (documents, uint64 n-gram hashes) per batch of its documents."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.documents = Metrics.counter(STAGE, "in")
        self.ngrams = Metrics.counter(STAGE, "ngrams")
        self.short = Metrics.counter(STAGE, "short_documents")

    def setup(self) -> None:
        self.hasher = NgramHasher(self.n)

    def process(self, path: str) -> Iterator[tuple[int, np.ndarray]]:
        texts = []
        for text in shard_texts(path):
            texts.append(text)
            if len(texts) == DOCS_PER_BATCH:
                yield self._hash(texts)
                texts = []
        if texts:
            yield self._hash(texts)

    def _hash(self, texts: list[str]) -> tuple[int, np.ndarray]:
        hashes, counts = self.hasher.hashes(texts)
        self.documents.inc(len(texts))
        self.ngrams.inc(len(hashes))
        self.short.inc(int(np.count_nonzero(counts == 0)))
        return len(texts), hashes


def by_bucket(batch: tuple[int, np.ndarray], bits: int) -> Iterator[tuple[int, np.ndarray]]:
    """A batch's distinct hashes split by their top `bits` bits: (bucket, sorted hashes) per bucket."""
    distinct = np.unique(batch[1])
    if not len(distinct):
        return
    buckets = (distinct >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(distinct), int)
    present, starts = np.unique(buckets, return_index=True)
    yield from zip(present.tolist(), np.split(distinct, starts[1:]), strict=True)


def shard_paths(root: beam.pvalue.PBegin, shards: list[str]) -> beam.PCollection:
    return root | "Shards" >> beam.Create(shards) | "Spread" >> beam.Reshuffle()


def write_json_value(value, path: str) -> None:
    write_bytes(path, json.dumps(value if isinstance(value, dict) else list(value)).encode("utf-8"))


def run_transform(label: str, transform: beam.PTransform, beam_args: list[str]) -> dict[str, int]:
    """Run one pipeline to the end on the runner the Beam options name; its `ngrams:*` counters."""
    from pipelines.runner import new_pipeline
    from pipelines.stage import counters

    pipeline = new_pipeline(beam_args)
    _ = pipeline | label >> transform
    result = pipeline.run()
    result.wait_until_finish()
    return counters(result, STAGE)
