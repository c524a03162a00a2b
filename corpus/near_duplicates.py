"""The pure pieces of near-duplicate detection that the dedup stage composes.

Documents whose MinHash signatures agree on a whole LSH band meet in that band's bucket (`band_keys`);
`candidate_pairs` turns a bucket into the pairs worth checking, `verified` keeps a pair when its estimated
Jaccard reaches the threshold, and the connected components of the verified pairs are the clusters. Each
cluster keeps one document, chosen by `keep_order`: the highest karma, ties broken by the smallest id.

`reference_pairs` and `reference_clusters` do the same in memory (a dict of buckets and a union-find) for
tests and the quality benchmark; the stage computes components inside Beam instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

from corpus.minhash import band_keys, estimated_jaccard

MAX_BUCKET = 1000  # documents in one bucket beyond which pairs are chained instead of all enumerated


def candidate_pairs(
    bucket: list[tuple[str, np.ndarray]], max_bucket: int = MAX_BUCKET
) -> list[tuple[str, str]]:
    """The pairs of distinct documents that share a band key: (smaller id, larger id), sorted, distinct.

    A bucket larger than `max_bucket` (a template page copied thousands of times) gives only the chain of
    adjacent ids in sorted order, so O(n) pairs instead of n^2/2: the chain still connects the whole bucket
    when its members are near-duplicates of each other, which is what such buckets hold; a chained pair
    that fails verification can leave the bucket in more than one cluster.
    """
    ids = sorted({doc_id for doc_id, _ in bucket})
    if len(ids) > max_bucket:
        return list(zip(ids, ids[1:], strict=False))
    return [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]


def verified(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """Whether two signatures estimate a Jaccard similarity of at least `threshold`."""
    return estimated_jaccard(a, b) >= threshold


def verified_pairs(bucket: list[tuple[str, np.ndarray]], threshold: float) -> list[tuple[str, str]]:
    """`candidate_pairs` of a bucket that pass `verified`, using the signatures the bucket carries."""
    signatures = dict(bucket)
    return [(a, b) for a, b in candidate_pairs(bucket) if verified(signatures[a], signatures[b], threshold)]


def keep_order(doc: tuple[str, int]) -> tuple:
    """Sort key of the keep rule for (id, karma): the first document in this order is the one kept."""
    doc_id, karma = doc
    return (-karma, doc_id)


def reference_pairs(
    ids: list[str], signatures: np.ndarray, bands: int, rows: int, threshold: float
) -> set[tuple[str, str]]:
    """All verified LSH pairs of a collection, in memory: bucket by band key, then verify each candidate."""
    buckets: dict[bytes, list[tuple[str, np.ndarray]]] = defaultdict(list)
    for doc_id, signature in zip(ids, signatures, strict=True):
        for key in band_keys(signature, bands, rows):
            buckets[key].append((doc_id, signature))
    pairs = set()
    for bucket in buckets.values():
        if len(bucket) > 1:
            pairs.update(verified_pairs(bucket, threshold))
    return pairs


def reference_clusters(karma: Mapping[str, int], edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Connected components by union-find: every id of `karma` -> the id its cluster keeps (`keep_order`).

    A document in no edge is its own cluster. For tests and benchmarks only (holds everything in memory)."""
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
