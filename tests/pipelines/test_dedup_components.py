"""Connected components on the DirectRunner against a union-find reference."""

import random

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from corpus.near_duplicates import reference_clusters
from pipelines.dedup.components import ConnectedComponents, NotConverged


def reference(edges):
    """(node, smallest id of its component) from the in-memory union-find (equal karma: smallest id wins)."""
    nodes = {n for edge in edges for n in edge}
    return sorted(reference_clusters({n: 0 for n in nodes}, edges).items())


def run(edges, rounds=10, args=(), **options):
    with beam.Pipeline(argv=list(args)) as p:
        labels = p | beam.Create(edges) | ConnectedComponents(rounds, **options)
        assert_that(labels, equal_to(reference(edges)))


def shuffled_chain(length: int, seed: int) -> list[tuple[str, str]]:
    """A chain whose ids are in random order along it (the hard case for min-label propagation)."""
    ids = random.Random(seed).sample([f"n{i:04d}" for i in range(length + 1)], length + 1)
    return [(ids[i], ids[i + 1]) for i in range(length)]


def test_a_chain_becomes_one_component():
    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(100)]  # A~B~C...: ends far apart
    run(chain + [("x", "y"), ("y", "z")], rounds=10)


def test_a_chain_in_random_id_order_converges_in_logarithmic_rounds():
    # Min-label propagation with pointer jumping needed more than 60 rounds for this; Hash-to-Min ~10.
    run(shuffled_chain(100, seed=1), rounds=11)


def test_random_graph_on_two_workers():
    rng = random.Random(7)
    nodes = [f"d{i:04d}" for i in range(300)]
    edges = sorted({tuple(sorted(rng.sample(nodes, 2))) for _ in range(220)})
    run(edges, args=["--direct_num_workers=2", "--direct_running_mode=multi_threading"])


def test_partitions_with_local_merging_converge_sooner():
    run(shuffled_chain(100, seed=2), rounds=6, partitions=4, merge=True)
    rng = random.Random(8)
    nodes = [f"d{i:04d}" for i in range(300)]
    edges = sorted({tuple(sorted(rng.sample(nodes, 2))) for _ in range(250)})
    run(edges, rounds=6, partitions=3, merge=True)


def test_one_partition_with_local_merging_is_exact_in_one_round():
    run(shuffled_chain(300, seed=3) + [("x", "y")], rounds=1, partitions=1, merge=True)


def test_too_few_rounds_fail_loudly():
    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(100)]
    with pytest.raises(NotConverged, match="did not converge in 1 rounds"), beam.Pipeline() as p:
        _ = p | beam.Create(chain) | ConnectedComponents(rounds=1)


def test_too_few_rounds_fail_loudly_across_partitions():
    with pytest.raises(NotConverged, match="did not converge in 2 rounds"), beam.Pipeline() as p:
        _ = p | beam.Create(shuffled_chain(200, seed=4)) | ConnectedComponents(2, partitions=5, merge=True)
