"""Connected components of a graph inside Beam, with no step that gathers all edges or nodes on one worker.

Every node starts labelled with its own id. A round is two joins:
  1. propagation: a node takes the smallest label among itself and its neighbours;
  2. pointer jumping: a node takes the label of its label when smaller (so a chain of length L converges in
     about log2(L) rounds instead of L).
Labels only ever take values of existing labels, so at convergence every component carries its smallest
node id. Beam graphs cannot loop, so `rounds` rounds are unrolled; a final check fails the run when an edge
still joins two labels (never a silently wrong clustering): raise `rounds` then.
"""

from __future__ import annotations

import apache_beam as beam


class NotConverged(RuntimeError):
    pass


def _propagate(element):
    node, groups = element
    labels, neighbours = list(groups["label"]), list(groups["edge"])
    label = min(labels) if labels else node
    yield node, label
    for neighbour in neighbours:
        yield neighbour, label


def _jump(element):
    label, groups = element
    label_of_label = min(groups["label"], default=label)
    for node in groups["member"]:
        yield node, min(label, label_of_label)


def _check(violations: int, rounds: int) -> None:
    if violations:
        raise NotConverged(
            f"connected components did not converge in {rounds} rounds ({violations} edges still join two "
            f"labels): rerun with more rounds"
        )


class ConnectedComponents(beam.PTransform):
    """Edges (a, b) -> (node, component label) for every node on an edge; label = smallest id in the
    component."""

    def __init__(self, rounds: int = 10) -> None:
        super().__init__()
        self.rounds = rounds

    def expand(self, edges):
        both = edges | "BothWays" >> beam.FlatMap(lambda e: [(e[0], e[1]), (e[1], e[0])])
        labels = (
            both
            | "Nodes" >> beam.Keys()
            | "Distinct" >> beam.Distinct()
            | "Own" >> beam.Map(lambda node: (node, node))
        )
        for r in range(self.rounds):
            labels = (
                {"label": labels, "edge": both}
                | f"Join{r}" >> beam.CoGroupByKey()
                | f"Propagate{r}" >> beam.FlatMap(_propagate)
                | f"Min{r}" >> beam.CombinePerKey(min)
            )
            members = labels | f"ByLabel{r}" >> beam.Map(lambda kv: (kv[1], kv[0]))
            labels = (
                {"label": labels, "member": members}
                | f"JoinLabels{r}" >> beam.CoGroupByKey()
                | f"Jump{r}" >> beam.FlatMap(_jump)
            )
        violations = (
            {"label": labels, "edge": edges}
            | "JoinCheck" >> beam.CoGroupByKey()
            | "SourceLabels" >> beam.FlatMap(lambda kv: [(b, min(kv[1]["label"])) for b in kv[1]["edge"]])
        )
        bad = (
            {"source": violations, "label": labels}
            | "JoinTargets" >> beam.CoGroupByKey()
            | "Mismatches"
            >> beam.FlatMap(lambda kv: [1 for s in kv[1]["source"] if s != min(kv[1]["label"])])
            | "Count" >> beam.combiners.Count.Globally()
        )
        rounds = self.rounds
        _ = bad | "Converged" >> beam.Map(_check, rounds)
        return labels
