"""Connected components on the DirectRunner against a union-find reference."""

import random

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines.components import ConnectedComponents, NotConverged


def reference(edges):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    nodes = {n for e in edges for n in e}
    members = {}
    for n in nodes:
        members.setdefault(find(n), []).append(n)
    return sorted((n, min(group)) for group in members.values() for n in group)


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
