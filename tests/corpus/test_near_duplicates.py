"""Near-duplicate pieces: candidate pairs, verification, keep rule, clusters; planted near-duplicates."""

from __future__ import annotations

import random
from itertools import combinations

import numpy as np
import pytest
from datasketch import MinHashLSH

from corpus.minhash import (
    MinHashConfig,
    MinHasher,
    band_hashes,
    estimated_jaccard,
    exact_jaccard,
    shingle_set,
    sorted_jaccard,
)
from corpus.near_duplicates import (
    bucket_pairs,
    candidate_pairs,
    keep_order,
    reference_candidates,
    reference_clusters,
    reference_pairs,
    resolve_candidates,
    verified,
    verified_pairs,
)
from corpus.ngrams import words
from tests.fixtures.near_duplicates import (
    RECIPES,
    add_boilerplate,
    edit_words,
    load_gold,
    plant,
    shingle_sets,
    similar_pairs,
    truncate,
)

GOLD = load_gold()
LONG = {doc_id: text for doc_id, text in GOLD.items() if len(words(text)) >= 300}
SIG = np.zeros(4, dtype=np.uint32)


@pytest.fixture(scope="module")
def planted():
    """The fixture's real documents, each with its planted variants, and their exact-Jaccard pairs."""
    docs = dict(GOLD)
    docs.update((v.id, v.text) for v in plant(GOLD, RECIPES, seed=0))
    return docs, similar_pairs(shingle_sets(docs, 5), 0.0)


def test_candidate_pairs_are_sorted_distinct_and_ordered():
    bucket = [("c", SIG), ("a", SIG), ("b", SIG), ("a", SIG)]
    assert candidate_pairs(bucket) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert candidate_pairs([("a", SIG)]) == []


def test_a_huge_bucket_is_chained():
    bucket = [(f"d{i:02d}", SIG) for i in reversed(range(12))]
    pairs = candidate_pairs(bucket, max_bucket=10)
    assert pairs == [(f"d{i:02d}", f"d{i + 1:02d}") for i in range(11)]
    assert len(candidate_pairs(bucket, max_bucket=12)) == 66
    # The chain still makes one cluster.
    assert set(reference_clusters(dict.fromkeys([d for d, _ in bucket], 1), pairs).values()) == {"d00"}


def test_verified_is_estimated_jaccard_at_least_threshold():
    a = np.arange(10, dtype=np.uint32)
    b = a.copy()
    b[:2] = 99
    assert estimated_jaccard(a, b) == 0.8
    assert verified(a, b, 0.8)
    assert not verified(a, b, 0.81)
    assert verified_pairs([("y", b), ("x", a), ("z", b + 1)], 0.8) == [("x", "y")]


def test_keep_order_prefers_karma_then_smallest_id():
    docs = [("b", 5), ("c", 9), ("a", 9), ("d", 1)]
    assert sorted(docs, key=keep_order) == [("a", 9), ("c", 9), ("b", 5), ("d", 1)]


def test_reference_clusters_follow_chains_and_keep_rule():
    karma = {"a": 3, "b": 7, "c": 7, "d": 1, "e": 2, "f": 4}
    clusters = reference_clusters(karma, [("a", "b"), ("b", "c"), ("d", "e")])
    assert clusters == {"a": "b", "b": "b", "c": "b", "d": "e", "e": "e", "f": "f"}
    # Same answer in any edge order and direction.
    assert reference_clusters(karma, [("e", "d"), ("c", "b"), ("b", "a")]) == clusters


def test_chained_near_duplicates_become_one_cluster():
    # Three overlapping windows of one real article: A~B and B~C are near-duplicates, A and C are not.
    text_words = words(LONG["359fee228518d55b921194561e9ca88e428df81940246f8fac7a75398377daea"])
    a, b, c = (" ".join(text_words[s : s + 430]) for s in (0, 30, 60))
    sets = [shingle_set(t, 5) for t in (a, b, c)]
    assert exact_jaccard(sets[0], sets[1]) > 0.85 and exact_jaccard(sets[1], sets[2]) > 0.85
    assert exact_jaccard(sets[0], sets[2]) < 0.8
    # Verified as the stage verifies, on the exact Jaccard of the shingle hashes. (The estimate from the
    # signatures is ~0.035 off at 128 permutations: it can accept A~C, whose exact Jaccard is ~0.75.)
    sa, sb, sc = MinHasher(MinHashConfig()).sketch([a, b, c]).shingles
    edges = [
        (x, y)
        for (x, sx), (y, sy) in combinations([("A", sa), ("B", sb), ("C", sc)], 2)
        if sorted_jaccard(sx, sy) >= 0.8
    ]
    assert edges == [("A", "B"), ("B", "C")]
    assert reference_clusters({"A": 5, "B": 1, "C": 5}, edges) == {"A": "A", "B": "A", "C": "A"}


def test_planting_controls_the_jaccard():
    rng = random.Random(0)
    for text in LONG.values():
        source = shingle_set(text, 5)

        def jaccard(variant: str, source: list[str] = source) -> float:
            return exact_jaccard(source, shingle_set(variant, 5))

        assert jaccard(edit_words(text, 0.002, rng)) > 0.9
        assert jaccard(edit_words(text, 0.08, rng)) < 0.7
        assert jaccard(add_boilerplate(text, 2, rng)) > 0.9
        for keep in (0.95, 0.8, 0.6):
            assert jaccard(truncate(text, keep)) == pytest.approx(keep, abs=0.05)


def test_planted_variants_spread_around_the_threshold(planted):
    docs, pairs = planted
    to_source = [pairs.get((v.source, v.id), 0.0) for v in plant(GOLD, RECIPES, seed=0)]
    assert sum(j >= 0.8 for j in to_source) >= 30
    assert sum(j < 0.8 for j in to_source) >= 30
    assert plant(GOLD, RECIPES, seed=0) == plant(GOLD, RECIPES, seed=0)


def test_similar_pairs_is_exact_all_pairs_jaccard(planted):
    docs, _ = planted
    ids = sorted(docs)[:40]
    sets = shingle_sets({i: docs[i] for i in ids}, 5)
    brute = {(a, b): exact_jaccard(sets[a], sets[b]) for a, b in combinations(ids, 2)}
    assert similar_pairs(sets, 0.5) == {p: j for p, j in brute.items() if j >= 0.5}


def test_planted_near_duplicates_are_found(planted):
    docs, pairs = planted
    ids = sorted(docs)
    signatures = MinHasher(MinHashConfig()).signatures([docs[i] for i in ids])
    found = reference_pairs(ids, signatures, *MinHashConfig().bands(), 0.8)
    clear = {p for p, j in pairs.items() if j >= 0.9}
    assert len(clear) >= 40
    assert len(found & clear) / len(clear) >= 0.95
    assert all(pairs.get(p, 0.0) >= 0.7 for p in found)  # nothing clearly dissimilar
    truth = {p for p, j in pairs.items() if j >= 0.8}
    assert len(found & truth) / len(found) >= 0.8
    # The default bands (weighted towards false negatives) find more true pairs than equal weights.
    equal = reference_pairs(ids, signatures, *MinHashConfig(weights=(0.5, 0.5)).bands(), 0.8)
    assert len(found & truth) > len(equal & truth)


def test_reference_pairs_match_datasketch_lsh(planted):
    docs, _ = planted
    config = MinHashConfig()
    hasher = MinHasher(config)
    ids = sorted(docs)
    signatures = hasher.signatures([docs[i] for i in ids])
    lsh = MinHashLSH(num_perm=config.num_perm, params=config.bands())
    for doc_id, signature in zip(ids, signatures, strict=True):
        lsh.insert(doc_id, hasher.lean(signature))
    by_id = dict(zip(ids, signatures, strict=True))
    theirs = {
        (min(a, b), max(a, b))
        for a in ids
        for b in lsh.query(hasher.lean(by_id[a]))
        if a != b and verified(by_id[a], by_id[b], config.threshold)
    }
    assert reference_pairs(ids, signatures, *config.bands(), config.threshold) == theirs
    # The candidates themselves are datasketch's: every pair its LSH returns, and no other.
    candidates = {(min(a, b), max(a, b)) for a in ids for b in lsh.query(hasher.lean(by_id[a])) if a != b}
    assert reference_candidates(ids, signatures, *config.bands()) == candidates


@pytest.fixture(scope="module")
def sketched(planted):
    """The planted collection's ids, sketches and exact-Jaccard pairs."""
    docs, pairs = planted
    ids = sorted(docs)
    return ids, MinHasher(MinHashConfig()).sketch([docs[i] for i in ids]), pairs


def test_exact_verification_finds_the_pairs_above_the_threshold_and_nothing_below(sketched):
    ids, sketch, pairs = sketched
    config = MinHashConfig()
    shingles = dict(zip(ids, sketch.shingles, strict=True))
    found = reference_pairs(ids, sketch.signatures, *config.bands(), config.threshold, shingles)
    truth = {p for p, j in pairs.items() if j >= config.threshold}
    assert found <= truth  # never a pair below the threshold (the hashes of the shingles do not collide)
    just_above = {p for p, j in pairs.items() if 0.81 <= j < 0.85}
    assert len(just_above) >= 10
    assert len(found & just_above) / len(just_above) >= 0.95
    assert len(found) / len(truth) >= 0.97


def test_bucket_pairs_from_band_hashes_are_the_lsh_candidates(sketched):
    ids, sketch, _ = sketched
    bands, rows = MinHashConfig().bands()
    hashes = band_hashes(sketch.signatures, bands, rows)
    owners = np.repeat(np.arange(len(ids)), bands)
    expected = reference_candidates(ids, sketch.signatures, bands, rows)
    assert len(expected) > 100
    assert bucket_pairs(ids, owners, hashes.ravel()) == expected
    # Entries in any order, split over calls by hash (the stage's partitions), give the same pairs.
    order = np.random.default_rng(0).permutation(len(owners))
    flat, flat_owners = hashes.ravel()[order], owners[order]
    parts = [flat % np.uint64(3) == np.uint64(k) for k in range(3)]
    assert set().union(*(bucket_pairs(ids, flat_owners[m], flat[m]) for m in parts)) == expected


def test_bucket_pairs_chain_a_huge_bucket():
    ids = [f"d{i:02d}" for i in range(12)]
    hashes = np.array([7] * 12 + [9, 9], dtype=np.uint64)
    owners = np.array([*reversed(range(12)), 0, 5])
    assert bucket_pairs(ids, owners, hashes, max_bucket=10) == {
        *((f"d{i:02d}", f"d{i + 1:02d}") for i in range(11)),
        ("d00", "d05"),
    }


def test_resolve_candidates_equals_the_reference_on_a_group(sketched):
    ids, sketch, _ = sketched
    config = MinHashConfig()
    bands = band_hashes(sketch.signatures, *config.bands())
    karma = {doc_id: len(doc_id) % 5 for doc_id in ids}
    shingles = dict(zip(ids, sketch.shingles, strict=True))
    members = [(i, karma[i], b, s) for i, b, s in zip(ids, bands, sketch.shingles, strict=True)]
    clusters, verified_count = resolve_candidates(members[::-1], config.threshold)  # any member order
    edges = reference_pairs(ids, sketch.signatures, *config.bands(), config.threshold, shingles)
    assert verified_count == len(edges)
    kept = reference_clusters(karma, edges)
    expected = sorted(
        sorted(((i, karma[i]) for i in ids if kept[i] == winner), key=keep_order)
        for winner in set(kept.values())
        if sum(1 for i in ids if kept[i] == winner) > 1
    )
    assert sorted(clusters) == expected
    assert len(clusters) >= 5
    assert all(cluster[0][0] == kept[cluster[0][0]] for cluster in clusters)  # the kept one comes first
