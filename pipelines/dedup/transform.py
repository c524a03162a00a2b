"""The dedup stage's transform: docs -> `dedup/part-*.parquet` (the kept documents),
`dedup/clusters-*.parquet`, ledger.

    docs (Arrow tables) -> Sketches (corpus/minhash.py, numpy, 512 documents at a time): per document a
         key of its normalized words, LSH band hashes and its sorted distinct shingle hashes
      -> exact: GroupByKey by partition of the key -> groups of identical normalized texts, keep rule; each
         group's (size, smallest id) goes to its kept document's partition of the components' last round
      -> LSH: the survivors' band hashes, GroupByKey by partition of the hash -> buckets -> candidate pairs
      -> components of the candidate pairs (pipelines/dedup/components.py, Hash-to-Min): LSH-connected
         groups; the last round also joins each labelled document's payload (GroupByKey by partition of
         the id) and routes it, with its exact group's (size, smallest id), to its group
      -> GroupByKey by partition of the group: each group on one worker (corpus/near_duplicates.py
         resolve_candidates): candidates again, verified on EXACT Jaccard, components, keep rule; and the
         convergence check: every candidate pair must lie inside one group, else the run fails
      -> decisions, and the documents, GroupByKey by output shard -> kept documents (with their cluster's
         dup_cluster_size and dup_cluster_id) and clusters, sorted shards; removed ids -> ledger

Only documents with a candidate pair enter the components rounds and the groups; the others are kept as
they are. Every message between two steps travels in one list (or table) per (batch, partition), so Beam's
cost per element is paid per batch, not per document or band. `partitions` (from the input size, stage.py)
bounds what one worker holds in the keyed steps; with one partition the components take one round (a
local union-find), with more `rounds`. The output depends neither on it nor on the number of workers or
bundle order: every decision is made per exact group or per LSH-connected group, and every file is sorted.

Keep rule, for exact groups and near-duplicate clusters alike: the document with the highest karma, ties
broken by the smallest id. A kept document's cluster is its exact group, joined by the near-duplicate
clusters of the survivors to the other survivors' exact groups: its size counts them all, and its id is the
smallest id among them (corpus/near_duplicates.py cluster_identity).

A decision is (id, reason, kept id, size of the step's group or cluster, cluster): `cluster` is the kept
document's (dup_cluster_size, dup_cluster_id) on *_kept decisions, None on the others; a near_kept
decision's overrides the exact_kept one of the same document.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.docs import DOCS_SCHEMA
from corpus.minhash import MinHashConfig, MinHasher, band_hashes
from corpus.near_duplicates import bucket_pairs, cluster_identity, keep_order, resolve_candidates
from pipelines.accounting import WriteLedger, WriteStats
from pipelines.dedup.components import (
    EDGES,
    SETS,
    Batched,
    edge_sets,
    edges_by_source,
    labels_of,
    not_converged,
    unrolled,
)
from pipelines.outputs import StageOutput, shard_name, stable_shard, write_table

STAGE = "dedup"
EXACT = "exact_duplicate"
NEAR = "near_duplicate"
EXACT_KEPT = "exact_kept"  # the winner of an exact group (clusters table only)
NEAR_KEPT = "near_kept"  # the winner of a near-duplicate cluster (clusters table only)
KEPT = (EXACT_KEPT, NEAR_KEPT)
BAND = np.dtype("<u8")  # band hashes and shingle hashes travel as their little-endian bytes
SHINGLE = np.dtype("<u4")
PAYLOAD, DOCS, DECISIONS, COUNTS, CHECK = "payload", "docs", "decisions", "counts", "check"
EXACT_GROUPS = "exact_groups"  # (kept id, size, smallest id) of the exact groups of two or more
BATCH = 512  # documents per sketch: numpy passes amortized, temporaries small (~60 bytes per character)

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
    rounds: int = 10  # connected-components rounds when partitions > 1 (one partition needs one)
    num_shards: int = 1
    partitions: int = 1  # of the keyed steps: what one worker holds there is ~1/partitions of the input


def resolve_group(members: list[tuple[str, int]]):
    """(kept id, [(removed id, kept id)]) of a group of (id, karma) by the keep rule."""
    ordered = sorted(members, key=keep_order)
    kept = ordered[0][0]
    return kept, [(doc_id, kept) for doc_id, _ in ordered[1:]]


def _grouped(shards: dict[int, list]):
    return sorted(shards.items())


class Sketches(beam.DoFn):
    """Tables of docs, BATCH rows at a time -> exact-step entries (main), candidate payloads, the docs by
    output shard (as Arrow tables: no Python object per row, and a table pickles as its buffers), and
    counts; each as one list per partition (or shard) and batch."""

    def __init__(self, config: MinHashConfig, partitions: int, num_shards: int) -> None:
        self.config, self.partitions, self.num_shards = config, partitions, num_shards

    def setup(self) -> None:
        self.hasher = MinHasher(self.config)
        self.bands = self.config.bands()

    def process(self, table: pa.Table):
        for offset in range(0, table.num_rows, BATCH):
            yield from self._sketch(table.slice(offset, BATCH))
        # `take`s, never the table or its slices: the reader's tables can be slices of a larger one, and a
        # pickled slice carries its parent's whole buffers (7x the bytes on the benchmark's input).
        n = self.num_shards
        ids = table.column("id").to_pylist()
        shards = np.array([stable_shard(doc_id, n) for doc_id in ids], dtype=np.int64)
        for shard in np.unique(shards).tolist():
            rows = table.take(np.flatnonzero(shards == shard))
            yield beam.pvalue.TaggedOutput(DOCS, (shard, (DOCS, rows)))

    def _sketch(self, batch: pa.Table):
        p = self.partitions
        ids, karmas = batch.column("id").to_pylist(), batch.column("karma").to_pylist()
        sketch = self.hasher.sketch(batch.column("text").to_pylist())
        bands = band_hashes(sketch.signatures, *self.bands).astype(BAND)
        exact, payload = defaultdict(list), defaultdict(list)
        for doc_id, karma, key, band, shingles in zip(
            ids, karmas, sketch.keys, bands, sketch.shingles, strict=True
        ):
            band_bytes = band.tobytes()
            exact[int.from_bytes(key[:8], "big") % p].append((key, doc_id, karma, band_bytes))
            payload[stable_shard(doc_id, p)].append(
                (doc_id, karma, band_bytes, shingles.astype(SHINGLE).tobytes())
            )
        yield from _grouped(exact)
        for part, items in _grouped(payload):
            yield beam.pvalue.TaggedOutput(PAYLOAD, (part, (PAYLOAD, items)))
        yield beam.pvalue.TaggedOutput(COUNTS, Counter({"in": batch.num_rows}))


def _exact(element, partitions: int, num_shards: int):
    """One partition of (key, id, karma, bands) -> exact decisions by output shard (tagged), each group's
    (kept id, size, smallest id) by partition of the kept id (tagged) and the band entries of the
    survivors, one (partition, (ids, owner index per entry, hashes)) per LSH partition."""
    _, batches = element
    groups: dict[bytes, list] = defaultdict(list)
    for batch in batches:
        for key, doc_id, karma, band in batch:
            groups[key].append((doc_id, karma, band))
    decisions, sizes, ids, bands = defaultdict(list), defaultdict(list), [], []
    for members in groups.values():
        kept, removed = resolve_group([(doc_id, karma) for doc_id, karma, _ in members])
        size, smallest = len(members), min(doc_id for doc_id, _, _ in members)
        for doc_id, winner in removed:
            decisions[stable_shard(doc_id, num_shards)].append((doc_id, EXACT, winner, size, None))
        if removed:
            decisions[stable_shard(kept, num_shards)].append((kept, EXACT_KEPT, kept, size, (size, smallest)))
            sizes[stable_shard(kept, partitions)].append((kept, size, smallest))
        ids.append(kept)
        bands.append(next(band for doc_id, _, band in members if doc_id == kept))
    for shard, items in _grouped(decisions):
        yield beam.pvalue.TaggedOutput(DECISIONS, (shard, items))
    for part, items in _grouped(sizes):
        yield beam.pvalue.TaggedOutput(EXACT_GROUPS, (part, (EXACT_GROUPS, items)))
    if not ids:
        return
    matrix = np.frombuffer(b"".join(bands), dtype=BAND).reshape(len(ids), -1)
    owners = np.repeat(np.arange(len(ids), dtype=np.int64), matrix.shape[1])
    hashes = matrix.ravel().astype(np.uint64)
    parts = (hashes % np.uint64(partitions)).astype(np.int64)
    order = np.argsort(parts, kind="stable")
    bounds = np.searchsorted(parts[order], np.arange(partitions + 1))
    for part in range(partitions):
        chosen = order[bounds[part] : bounds[part + 1]]
        if len(chosen):
            local, index = np.unique(owners[chosen], return_inverse=True)
            yield part, ([ids[i] for i in local.tolist()], index.ravel(), hashes[chosen])


def _candidates(element):
    """One LSH partition's band entries -> its candidate pairs, as one sorted list."""
    _, entries = element
    ids, owners, hashes = [], [], []
    for entry_ids, entry_owners, entry_hashes in entries:
        owners.append(entry_owners + len(ids))
        ids += entry_ids
        hashes.append(entry_hashes)
    if ids and (pairs := bucket_pairs(ids, np.concatenate(owners), np.concatenate(hashes))):
        yield sorted(pairs)


def _join_labels(element, partitions: int, merge: bool):
    """The last components round for one partition of ids: each node's group label, then (partition of the
    label, (tag, values)) for the group step: the payload of every labelled document (a document without a
    label has no candidate pair and needs no more work) with its exact group's (size, smallest id), and
    (label of a, b) for every candidate pair (a, b) with a here, which the group step checks (b must be in
    a's group)."""
    _, batches = element
    labels, others = labels_of(batches, merge)
    exact = {kept: (size, smallest) for kept, size, smallest in others[EXACT_GROUPS]}
    out: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for payload in others[PAYLOAD]:
        doc_id = payload[0]
        if (group := labels.get(doc_id)) is not None:
            part = exact.get(doc_id, (1, doc_id))
            out[stable_shard(group, partitions)][PAYLOAD].append((group, (*payload, part)))
    for a, b in others[EDGES]:
        group = labels.get(a, a)  # a node always has a label; if not, the check below fails
        out[stable_shard(group, partitions)][CHECK].append((group, b))
    for part, tagged in sorted(out.items()):
        for tag, values in sorted(tagged.items()):
            yield part, (tag, values)


def _near(element, threshold: float, num_shards: int, rounds: int):
    """One partition of LSH-connected groups -> near-duplicate decisions by output shard, and a Counter of
    verified pairs (tagged). Fails the run (NotConverged) if a candidate pair joins two groups."""
    _, batches = element
    groups: dict[str, list] = defaultdict(list)
    parts: dict[str, tuple[int, str]] = {}  # id -> its exact group's (size, smallest id)
    checks = []
    for tag, values in batches:
        if tag == CHECK:
            checks += values
            continue
        for group, (doc_id, karma, band, shingles, part) in values:
            parts[doc_id] = tuple(part)
            groups[group].append(
                (doc_id, karma, np.frombuffer(band, dtype=BAND), np.frombuffer(shingles, dtype=SHINGLE))
            )
    members = {group: {member[0] for member in docs} for group, docs in groups.items()}
    if violations := sum(1 for group, b in checks if b not in members.get(group, ())):
        raise not_converged(violations, rounds)
    decisions, verified = defaultdict(list), 0
    for group in sorted(groups):
        clusters, pairs = resolve_candidates(groups[group], threshold)
        verified += pairs
        for cluster in clusters:
            kept, size = cluster[0][0], len(cluster)
            identity = cluster_identity(parts[doc_id] for doc_id, _ in cluster)
            decisions[stable_shard(kept, num_shards)].append((kept, NEAR_KEPT, kept, size, identity))
            for doc_id, _ in cluster[1:]:
                decisions[stable_shard(doc_id, num_shards)].append((doc_id, NEAR, kept, size, None))
    yield from _grouped(decisions)
    if verified:
        yield beam.pvalue.TaggedOutput(COUNTS, Counter({"verified_pairs": verified}))


def _cluster_key(row: dict) -> str:
    return f"{row['id']}\t{row['reason']}\t{row['kept_id']}"


def _ledger_rows(batch):
    """(shard, decisions) -> (shard, [ledger row]) for the removed documents."""
    shard, decisions = batch
    rows = [(doc_id, STAGE, reason, kept) for doc_id, reason, kept, _, _ in decisions if reason not in KEPT]
    if rows:
        yield shard, rows


class WriteShards(beam.PTransform):
    """(shard, ("docs", rows)) and (shard, ("decisions", ...)) -> `part-*.parquet` (the documents no decision
    removes) and `clusters-*.parquet` (every decision), both sorted, one GroupByKey for both; outputs the
    Counter of documents written."""

    def __init__(self, output: StageOutput, num_shards: int) -> None:
        super().__init__()
        self.output, self.num_shards = output, num_shards

    def expand(self, pcolls):
        every_shard = pcolls[0].pipeline | "EveryShard" >> beam.Create(
            [(i, (DOCS, None)) for i in range(self.num_shards)]
        )
        return (
            (*pcolls, every_shard)
            | "Flatten" >> beam.Flatten()
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.Map(self._write)
        )

    def _write(self, element) -> Counter:
        shard, values = element
        tables, decisions = [], []
        for tag, items in values:
            if tag == DOCS:
                tables.append(items)
            else:
                decisions.extend(items)
        removed = {doc_id for doc_id, reason, _, _, _ in decisions if reason not in KEPT}
        clusters = {}  # kept id -> (dup_cluster_size, dup_cluster_id): a near_kept decision's wins
        for doc_id, reason, _, _, cluster in decisions:
            if reason == NEAR_KEPT or (reason == EXACT_KEPT and doc_id not in clusters):
                clusters[doc_id] = cluster
        kept = _kept_sorted(tables, removed, clusters)
        write_table(shard_name(self.output.path("part"), shard, self.num_shards), kept)
        clusters = sorted(
            (
                {"id": doc_id, "kept_id": kept_id, "reason": reason, "cluster_size": size}
                for doc_id, reason, kept_id, size, _ in decisions
            ),
            key=_cluster_key,
        )
        write_table(
            shard_name(self.output.path("clusters"), shard, self.num_shards), clusters, CLUSTERS_SCHEMA
        )
        return Counter({"out": kept.num_rows})


def _kept_sorted(tables: list[pa.Table], removed: set[str], clusters: dict[str, tuple[int, str]]) -> pa.Table:
    """The rows of `tables` whose id is not in `removed`, sorted by id, as one DOCS_SCHEMA table of one
    chunk per column (the same Parquet bytes as writing the rows as dicts), with corpus.docs.DEDUP_COLUMNS
    from `clusters` (id -> (size, cluster id); a document in none is alone: (1, its id))."""
    tables = [table for table in tables if table is not None and table.num_rows]
    if not tables:
        return DOCS_SCHEMA.empty_table()
    table = pa.concat_tables(tables)
    if removed:
        table = table.filter(pc.invert(pc.is_in(table.column("id"), value_set=pa.array(sorted(removed)))))
    table = table.take(pc.sort_indices(table, [("id", "ascending")]))
    identities = [clusters.get(doc_id, (1, doc_id)) for doc_id in table.column("id").to_pylist()]
    sizes, cluster_ids = zip(*identities, strict=True) if identities else ((), ())
    dedup = {"dup_cluster_size": sizes, "dup_cluster_id": cluster_ids}
    # A docs table from before the annotations (corpus.docs.ANNOTATIONS) lacks their columns: nulls.
    columns = [
        pa.array(dedup[field.name], field.type)
        if field.name in dedup
        else table.column(field.name).cast(field.type).combine_chunks()
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in DOCS_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=DOCS_SCHEMA)


class Dedup(beam.PTransform):
    """The docs table -> kept documents, clusters, ledger and stats.json in `output`'s generation."""

    def __init__(self, options: DedupOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts = self.options
        p, n = opts.partitions, opts.num_shards
        sketches = (
            pbegin
            # Arrow tables, not rows: the docs travel to the writer as tables (read_parquet gives dicts).
            | "ReadDocs" >> beam.io.ReadFromParquetBatched(opts.docs)
            | "Sketches"
            >> beam.ParDo(Sketches(opts.minhash, p, n)).with_outputs(PAYLOAD, DOCS, COUNTS, main="exact")
        )
        exact = (
            sketches.exact
            | "SameText" >> beam.GroupByKey()
            | "Exact" >> beam.FlatMap(_exact, p, n).with_outputs(DECISIONS, EXACT_GROUPS, main="bands")
        )
        near = self._near(exact.bands, sketches[PAYLOAD], exact[EXACT_GROUPS])
        decisions = (exact[DECISIONS], near.decisions) | "Decisions" >> beam.Flatten()
        tagged = decisions | "TagDecisions" >> beam.MapTuple(lambda shard, items: (shard, (DECISIONS, items)))
        written = (sketches[DOCS], tagged) | "WriteShards" >> WriteShards(self.output, n)
        dropped = (
            decisions
            | "LedgerRows" >> beam.FlatMap(_ledger_rows)
            | "WriteLedger" >> WriteLedger(self.output, n)
        )
        counts = (sketches[COUNTS], written, near[COUNTS]) | "AllCounts" >> beam.Flatten()
        return (counts, dropped) | "Stats" >> WriteStats(self.output, self._config())

    def _near(self, bands, payloads, exact_groups):
        """Survivors' band entries, every document's payload and the exact groups' sizes -> near-duplicate
        decisions (main) and the Counter of verified pairs."""
        opts = self.options
        p = opts.partitions
        candidates = bands | "Buckets" >> beam.GroupByKey() | "Candidates" >> beam.FlatMap(_candidates)
        initial = candidates | "EdgeSets" >> beam.ParDo(Batched(p, SETS, edge_sets))
        by_source = candidates | "EdgesBySource" >> beam.ParDo(Batched(p, EDGES, edges_by_source))
        # One partition holds the whole candidate graph, whose local union-find is exact: one round.
        rounds = 1 if p == 1 else opts.rounds
        messages = unrolled(initial, rounds, p, merge=True, prefix="Components")
        return (
            (messages, payloads, exact_groups, by_source)
            | "FlattenLast" >> beam.Flatten()
            | "JoinLabels" >> beam.GroupByKey()
            | "ByGroup" >> beam.FlatMap(_join_labels, p, True)
            | "Groups" >> beam.GroupByKey()
            | "Near"
            >> beam.FlatMap(_near, opts.minhash.threshold, opts.num_shards, rounds).with_outputs(
                COUNTS, main="decisions"
            )
        )

    def _config(self) -> dict:
        minhash = self.options.minhash
        bands, rows = minhash.bands()
        fields = {k: getattr(minhash, k) for k in minhash.__dataclass_fields__}
        return {"dedup": {**fields, "bands": bands, "rows": rows, "rounds": self.options.rounds}}
