"""The dedup stage's transform: docs -> `dedup/part-*.parquet` (the kept documents),
`dedup/clusters-*.parquet`, ledger.

    docs -> key by SHA-1 of the normalized text -> GroupByKey -> exact duplicates (keep rule per group)
      -> survivors -> BatchElements -> MinHash signatures (vectorized, corpus/minhash.py)
      -> one (band key, doc) per LSH band -> GroupByKey -> candidate pairs -> verified (estimated Jaccard
         >= threshold) -> distinct edges -> ConnectedComponents (inside Beam) -> keep rule per component
      -> removed ids joined back to the survivors -> kept documents, sorted shards

Keep rule, for exact groups and near-duplicate components alike: the document with the highest karma,
ties broken by the smallest id. Every step is keyed and sorted, so the kept set does not depend on the
number of workers or on bundle order.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa

from corpus.docs import DOCS_SCHEMA
from corpus.minhash import MinHashConfig, MinHasher, band_keys
from corpus.near_duplicates import keep_order, verified_pairs
from corpus.ngrams import normalize
from pipelines.accounting import WriteLedger, WriteStats
from pipelines.dedup.components import ConnectedComponents
from pipelines.outputs import StageOutput, WriteSortedShards, read_parquet, stable_shard

STAGE = "dedup"
EXACT = "exact_duplicate"
NEAR = "near_duplicate"
EXACT_KEPT = "exact_kept"  # the winner of an exact group (clusters table only)
NEAR_KEPT = "near_kept"  # the winner of a near-duplicate cluster (clusters table only)
KEPT = (EXACT_KEPT, NEAR_KEPT)
SIGNATURE = np.uint32  # MinHash values travel as their raw bytes

CLUSTERS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("kept_id", pa.string(), nullable=False),
        pa.field(
            "reason", pa.string(), nullable=False
        ),  # exact_kept, exact_duplicate, near_kept, near_duplicate
        pa.field("cluster_size", pa.int64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class DedupOptions:
    docs: str  # glob of the docs table
    minhash: MinHashConfig
    rounds: int = 10  # connected-components rounds (each halves chain lengths)
    num_shards: int = 1


def text_key(row: dict) -> str:
    return hashlib.sha1(normalize(row["text"]).encode("utf-8")).hexdigest()


def resolve_group(members: list[tuple[str, int]]):
    """(kept id, [(removed id, kept id)]) of a group of (id, karma) by the keep rule."""
    ordered = sorted(members, key=keep_order)
    kept = ordered[0][0]
    return kept, [(doc_id, kept) for doc_id, _ in ordered[1:]]


def _exact(element):
    """One group of identical normalized texts -> the survivor row; the others to `removed`."""
    _, rows = element
    rows = list(rows)
    kept, removed = resolve_group([(r["id"], r["karma"]) for r in rows])
    for doc_id, winner in removed:
        yield beam.pvalue.TaggedOutput("removed", (doc_id, (EXACT, winner, len(rows))))
    if len(rows) > 1:
        yield beam.pvalue.TaggedOutput("removed", (kept, (EXACT_KEPT, kept, len(rows))))
    yield next(r for r in rows if r["id"] == kept)


class Signatures(beam.DoFn):
    """Batches of docs -> (id, karma, signature bytes)."""

    def __init__(self, config: MinHashConfig) -> None:
        self.config = config

    def setup(self) -> None:
        self.hasher = MinHasher(self.config)

    def process(self, batch: list[dict]):
        signatures = self.hasher.signatures([row["text"] for row in batch])
        for row, signature in zip(batch, signatures, strict=True):
            yield row["id"], row["karma"], signature.astype(SIGNATURE).tobytes()


def _bands(doc, bands: int, rows: int):
    doc_id, karma, signature = doc
    for key in band_keys(np.frombuffer(signature, dtype=SIGNATURE), bands, rows):
        yield key, (doc_id, signature)


def _edges(element, threshold: float):
    """One LSH bucket -> its candidate pairs whose signatures estimate Jaccard >= threshold."""
    _, members = element
    bucket = sorted({doc_id: np.frombuffer(sig, dtype=SIGNATURE) for doc_id, sig in members}.items())
    if len(bucket) > 1:
        yield from verified_pairs(bucket, threshold)


def _near(element):
    """One component (label, [(id, karma)]) -> removed ids with their kept id, and the kept one."""
    _, members = element
    members = sorted(members)
    kept, removed = resolve_group(members)
    yield kept, (NEAR_KEPT, kept, len(members))
    for doc_id, winner in removed:
        yield doc_id, (NEAR, winner, len(members))


def _kept_docs(element):
    doc_id, groups = element
    decisions = [d for d in groups["decision"] if d[0] not in KEPT]
    for row in groups["doc"]:
        if not decisions:
            yield row


class Dedup(beam.PTransform):
    """The docs table -> kept documents, clusters, ledger and stats.json in `output`'s generation."""

    def __init__(self, options: DedupOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts = self.options
        docs = pbegin | "ReadDocs" >> read_parquet(opts.docs)
        exact = (
            docs
            | "ByText" >> beam.Map(lambda row: (text_key(row), row))
            | "SameText" >> beam.GroupByKey()
            | "Exact" >> beam.FlatMap(_exact).with_outputs("removed", main="survivors")
        )
        survivors = exact.survivors
        edges = self._near_edges(survivors)
        near = self._near_decisions(survivors, edges)
        decisions = (exact.removed, near) | "Decisions" >> beam.Flatten()
        kept = (
            {"doc": survivors | "KeyDocs" >> beam.Map(lambda r: (r["id"], r)), "decision": decisions}
            | "JoinDecisions" >> beam.CoGroupByKey()
            | "Kept" >> beam.FlatMap(_kept_docs)
        )
        dropped = self._write(kept, decisions)
        counts = (
            docs | "In" >> beam.Map(lambda _: Counter({"in": 1})),
            kept | "Out" >> beam.Map(lambda _: Counter({"out": 1})),
            edges | "EdgeCount" >> beam.Map(lambda _: Counter({"verified_pairs": 1})),
        ) | "AllCounts" >> beam.Flatten()
        return (counts, dropped) | "Stats" >> WriteStats(self.output, self._config())

    def _near_edges(self, survivors):
        """Survivors -> distinct (id, id) pairs whose MinHash signatures share an LSH band and estimate
        Jaccard >= threshold."""
        minhash = self.options.minhash
        bands, rows = minhash.bands()
        return (
            survivors
            | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=1024)
            | "Signatures" >> beam.ParDo(Signatures(minhash))
            | "Bands" >> beam.FlatMap(_bands, bands, rows)
            | "Buckets" >> beam.GroupByKey()
            | "Verify" >> beam.FlatMap(_edges, minhash.threshold)
            | "DistinctEdges" >> beam.Distinct()
        )

    def _near_decisions(self, survivors, edges):
        """Edges -> connected components -> (id, decision) by the keep rule of each component."""
        karma = survivors | "Karma" >> beam.Map(lambda row: (row["id"], row["karma"]))
        components = edges | "Components" >> ConnectedComponents(self.options.rounds)
        return (
            {"label": components, "karma": karma}
            | "JoinKarma" >> beam.CoGroupByKey()
            | "Members"
            >> beam.FlatMap(
                lambda kv: [(label, (kv[0], karma)) for label in kv[1]["label"] for karma in kv[1]["karma"]]
            )
            | "ByComponent" >> beam.GroupByKey()
            | "Near" >> beam.FlatMap(_near)
        )

    def _write(self, kept, decisions):
        """The kept documents, the clusters table and the ledger; returns the per-reason drop counts."""
        n = self.options.num_shards
        kept | "WriteDocs" >> WriteSortedShards(
            self.output.path("part"), n, DOCS_SCHEMA, lambda row: row["id"]
        )
        clusters = decisions | "ClusterRows" >> beam.MapTuple(
            lambda doc_id, d: {"id": doc_id, "kept_id": d[1], "reason": d[0], "cluster_size": d[2]}
        )
        # A document can win its exact group and then be removed as a near duplicate: two rows.
        clusters | "WriteClusters" >> WriteSortedShards(
            self.output.path("clusters"),
            n,
            CLUSTERS_SCHEMA,
            lambda row: f"{row['id']}\t{row['reason']}\t{row['kept_id']}",
        )
        return (
            decisions
            | "Removed" >> beam.Filter(lambda kv: kv[1][0] not in KEPT)
            | "LedgerRows"
            >> beam.MapTuple(lambda doc_id, d: (stable_shard(doc_id, n), [(doc_id, STAGE, d[0], d[1])]))
            | "WriteLedger" >> WriteLedger(self.output, n)
        )

    def _config(self) -> dict:
        minhash = self.options.minhash
        bands, rows = minhash.bands()
        fields = {k: getattr(minhash, k) for k in minhash.__dataclass_fields__}
        return {"dedup": {**fields, "bands": bands, "rows": rows, "rounds": self.options.rounds}}
