"""The pure pieces of near-duplicate detection that the dedup stage composes.

Documents whose MinHash signatures agree on a whole LSH band meet in that band's bucket; `candidate_pairs`
turns a bucket into the pairs worth checking (`bucket_pairs` does it for many buckets at once, from band
hashes). A candidate pair is a near duplicate when the exact Jaccard similarity of the two documents' shingle
sets reaches the threshold (`sorted_jaccard` on their sorted shingle hashes), and the connected components of
those pairs are the clusters. Each cluster keeps one document, chosen by `keep_order`: the highest karma, ties
broken by the smallest id. `cluster_identity` gives a kept document's (size, id) of its whole cluster, exact
duplicates included (the docs columns `dup_cluster_size`, `dup_cluster_id`).

The dedup stage gathers the documents of each LSH-connected group (documents joined by candidate pairs) on
one worker and resolves it with `resolve_candidates`: candidates, exact verification, components, keep rule.
`reference_pairs` and `reference_clusters` do the same for a whole collection in memory, for tests and the
quality benchmark. `verified` and `verified_pairs` are the former rule, which accepted a pair on the
*estimated* Jaccard of the signatures (kept for the benchmark's comparison).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from corpus.minhash import band_keys, estimated_jaccard, sorted_jaccard

MAX_BUCKET = 1000  # documents in one bucket beyond which pairs are chained instead of all enumerated


def candidate_pairs(bucket: Sequence[tuple], max_bucket: int = MAX_BUCKET) -> list[tuple[str, str]]:
    """The pairs of distinct documents of a bucket of (id, ...): (smaller id, larger id), sorted, distinct.

    A bucket larger than `max_bucket` (a template page copied thousands of times) gives only the chain of
    adjacent ids in sorted order, so O(n) pairs instead of n^2/2: the chain still connects the whole bucket
    when its members are near-duplicates of each other, which is what such buckets hold; a chained pair
    that fails verification can leave the bucket in more than one cluster.
    """
    ids = sorted({member[0] for member in bucket})
    if len(ids) > max_bucket:
        return list(zip(ids, ids[1:], strict=False))
    return [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]


def bucket_pairs(
    ids: Sequence[str], owners: np.ndarray, hashes: np.ndarray, max_bucket: int = MAX_BUCKET
) -> set[tuple[str, str]]:
    """The candidate pairs of many band entries at once: entry i is document `ids[owners[i]]` with band hash
    `hashes[i]`; a bucket is the entries of one hash (`candidate_pairs` of each)."""
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    if len(ordered) < 2:
        return set()
    new = np.empty(len(ordered), dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(ordered)))
    pairs: set[tuple[str, str]] = set()
    for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
        members = [(ids[i],) for i in owners[order[start : start + size]].tolist()]
        pairs.update(candidate_pairs(members, max_bucket))
    return pairs


def verified(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """The former rule: whether two signatures *estimate* a Jaccard similarity of at least `threshold`."""
    return estimated_jaccard(a, b) >= threshold


def verified_pairs(bucket: list[tuple[str, np.ndarray]], threshold: float) -> list[tuple[str, str]]:
    """`candidate_pairs` of a bucket that pass `verified` (the former rule), using its signatures."""
    signatures = dict(bucket)
    return [(a, b) for a, b in candidate_pairs(bucket) if verified(signatures[a], signatures[b], threshold)]


def keep_order(doc: tuple[str, int]) -> tuple:
    """Sort key of the keep rule for (id, karma): the first document in this order is the one kept."""
    doc_id, karma = doc
    return (-karma, doc_id)


def cluster_identity(parts: Iterable[tuple[int, str]]) -> tuple[int, str]:
    """(size, id) of a cluster from its parts, each (size, smallest member id): the exact groups (a document
    alone is the part (1, its id)) that near-duplicate pairs join. The id is the smallest member id, so it
    does not depend on which document the keep rule keeps."""
    sizes, ids = zip(*parts, strict=True)
    return sum(sizes), min(ids)


def resolve_candidates(
    members: Iterable[tuple[str, int, np.ndarray, np.ndarray]], threshold: float, max_bucket: int = MAX_BUCKET
) -> tuple[list[list[tuple[str, int]]], int]:
    """One LSH-connected group of (id, karma, band hashes, sorted shingle hashes) -> (its near-duplicate
    clusters, each a list of (id, karma) with the kept document first; the number of verified pairs).

    The candidates are recomputed from the band hashes the members carry: the same pairs the LSH step
    found, because a bucket never spans two groups. A candidate is verified on the exact Jaccard of the two
    shingle sets; the clusters are the connected components of the verified pairs, of two or more."""
    members = sorted(members, key=lambda member: member[0])
    ids = [member[0] for member in members]
    bands = np.stack([member[2] for member in members])
    owners = np.repeat(np.arange(len(members)), bands.shape[1])
    index = {doc_id: i for i, doc_id in enumerate(ids)}
    edges = [
        (a, b)
        for a, b in sorted(bucket_pairs(ids, owners, bands.ravel(), max_bucket))
        if sorted_jaccard(members[index[a]][3], members[index[b]][3]) >= threshold
    ]
    karma = {doc_id: member[1] for doc_id, member in zip(ids, members, strict=True)}
    kept = reference_clusters(karma, edges)
    clusters: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for doc_id in ids:
        clusters[kept[doc_id]].append((doc_id, karma[doc_id]))
    return [sorted(c, key=keep_order) for _, c in sorted(clusters.items()) if len(c) > 1], len(edges)


def reference_candidates(
    ids: list[str], signatures: np.ndarray, bands: int, rows: int
) -> set[tuple[str, str]]:
    """All LSH candidate pairs of a collection, in memory, bucketed by exact band keys (as datasketch's
    MinHashLSH buckets them)."""
    buckets: dict[bytes, list[tuple[str]]] = defaultdict(list)
    for doc_id, signature in zip(ids, signatures, strict=True):
        for key in band_keys(signature, bands, rows):
            buckets[key].append((doc_id,))
    pairs: set[tuple[str, str]] = set()
    for bucket in buckets.values():
        if len(bucket) > 1:
            pairs.update(candidate_pairs(bucket))
    return pairs


def reference_pairs(
    ids: list[str],
    signatures: np.ndarray,
    bands: int,
    rows: int,
    threshold: float,
    shingles: Mapping[str, np.ndarray] | None = None,
) -> set[tuple[str, str]]:
    """All near-duplicate pairs of a collection, in memory: `reference_candidates` verified on the exact
    Jaccard of `shingles` (id -> sorted shingle hashes: the stage's rule), or, without them, on the
    Jaccard the signatures estimate (the former rule)."""
    candidates = reference_candidates(ids, signatures, bands, rows)
    if shingles is not None:
        return {(a, b) for a, b in candidates if sorted_jaccard(shingles[a], shingles[b]) >= threshold}
    signature = dict(zip(ids, signatures, strict=True))
    return {(a, b) for a, b in candidates if verified(signature[a], signature[b], threshold)}


def reference_clusters(karma: Mapping[str, int], edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Connected components by union-find: every id of `karma` -> the id its cluster keeps (`keep_order`).

    A document in no edge is its own cluster. Holds everything in memory: for one LSH-connected group in the
    stage, for a whole collection in tests and benchmarks."""
    parent = {doc_id: doc_id for doc_id in karma}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = defaultdict(list)
    for doc_id in karma:
        members[root(doc_id)].append(doc_id)
    kept = {}
    for group in members.values():
        winner = min(group, key=lambda doc_id: keep_order((doc_id, karma[doc_id])))
        kept.update(dict.fromkeys(group, winner))
    return kept
