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


def run(edges, rounds=10, args=()):
    with beam.Pipeline(argv=list(args)) as p:
        labels = p | beam.Create(edges) | ConnectedComponents(rounds)
        assert_that(labels, equal_to(reference(edges)))


def test_a_chain_becomes_one_component():
    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(100)]  # A~B~C...: ends far apart
    run(chain + [("x", "y"), ("y", "z")], rounds=10)


def test_random_graph_on_two_workers():
    rng = random.Random(7)
    nodes = [f"d{i:04d}" for i in range(300)]
    edges = sorted({tuple(sorted(rng.sample(nodes, 2))) for _ in range(220)})
    run(edges, args=["--direct_num_workers=2", "--direct_running_mode=multi_threading"])


def test_too_few_rounds_fail_loudly():
    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(100)]
    with pytest.raises(NotConverged, match="did not converge in 1 rounds"), beam.Pipeline() as p:
        _ = p | beam.Create(chain) | ConnectedComponents(rounds=1)
