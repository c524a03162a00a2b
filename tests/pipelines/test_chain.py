"""The one stage list: every corpus stage is one `Stage` object in `pipelines/<name>/stage.py`, and the CLI,
`webtext build`, the release's manifest and its datasheet all follow `corpus.chain.CHAIN`. Every stage
returns a `StageResult` whose Beam counters say what its stats.json says."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from corpus.chain import CHAIN
from pipelines.build import build_steps
from pipelines.chain import stage, stages
from pipelines.stage import Stage, StageResult
from tests.conftest import SAMPLE
from webtext.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
WARC = SAMPLE.parent / "warc"


def test_each_stage_is_one_object_in_its_own_folder():
    import apache_beam as beam

    for name, obj in zip(CHAIN, stages(), strict=True):
        assert isinstance(obj, Stage) and obj.name == name
        assert Path(inspect.getfile(type(obj))) == ROOT / "pipelines" / name / "stage.py"
        assert all(read in CHAIN[: CHAIN.index(name)] for read in obj.reads)
        if name != "ngrams":  # two pipelines, CountNgrams then BuildFilter, run by its own `run`
            transform = getattr(importlib.import_module(f"pipelines.{name}.transform"), obj.transform_name)
            assert issubclass(transform, beam.PTransform) and transform.__name__ == name.capitalize()
    with pytest.raises(KeyError, match="the chain is links, fetch"):
        stage("docs")


def test_the_cli_and_build_follow_the_chain(tmp_path):
    verbs = list(build_parser()._subparsers._group_actions[0].choices)  # argparse keeps them in order
    assert verbs[: len(CHAIN)] == list(CHAIN)
    args = build_parser().parse_args(["build", "--dumps", "d", "--out", str(tmp_path)])
    assert [(obj.name, argv[0]) for obj, argv in build_steps(args)] == [(name, name) for name in CHAIN]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, StageResult]:
    """The sample through every stage, each run as `webtext build` runs it: parsed by its own parser."""
    out = str(tmp_path_factory.mktemp("chain") / "work")
    args = build_parser().parse_args(
        ["build", "--dumps", f"{SAMPLE}/*", "--from-warc", f"{WARC}/*.warc.gz", "--out", out,
         "--stage-flags", "release=--val-fraction 0.2 --tokenizer train:2000"]
    )  # fmt: skip
    return {obj.name: obj.execute(obj.parse(argv[1:]), []) for obj, argv in build_steps(args)}


def test_every_stage_counts_in_out_and_each_drop_reason(results):
    for name, result in results.items():
        assert result.stage == name
        assert result.counters[f"{name}:in"] == result.items_in
        assert result.counters[f"{name}:out"] == result.items_out
        for reason, n in result.dropped.items():
            assert result.counters[f"{name}:{reason}"] == n
        if name != "ngrams":  # documents in, distinct n-grams out
            assert result.items_in == result.items_out + sum(result.dropped.values())
    assert results["links"].dropped and results["fetch"].dropped and results["dedup"].dropped


def test_the_manifest_and_datasheet_list_the_stages_in_chain_order(results):
    release = Path(results["release"].output.path)
    manifest = json.loads((release / "manifest.json").read_text())
    assert set(manifest["stages"]) == set(CHAIN[: CHAIN.index("release")])
    datasheet = (release / "datasheet.md").read_text()
    positions = [datasheet.find(f"| {name} |") for name in CHAIN[: CHAIN.index("release")]]
    assert -1 not in positions and positions == sorted(positions)


def test_extract_writes_each_documents_language_and_signals(results):
    from corpus.docs import ANNOTATIONS, DOCS_SCHEMA
    from corpus.language import LanguageIdentifier
    from corpus.signals import signals
    from pipelines.outputs import read_table

    identifier = LanguageIdentifier()
    for name in ("extract", "dedup", "filter"):
        table = read_table(f"{results[name].output.path}/part-*.parquet")
        assert table.schema.names == DOCS_SCHEMA.names
        rows = table.to_pylist()
        assert rows and all(row[column] is not None for row in rows for column in ANNOTATIONS)
        if name == "extract":
            for row in rows:
                assert (row["language"], row["language_score"]) == identifier.identify(row["text"])
                assert {signal: row[signal] for signal in signals(row["text"])} == signals(row["text"])
            assert "en" in {row["language"] for row in rows}


def test_the_dedup_cluster_columns_reach_the_release(results):
    from corpus.shards import read_shard
    from pipelines.outputs import read_table

    def clusters(stage: str) -> dict:
        rows = read_table(f"{results[stage].output.path}/part-*.parquet").to_pylist()
        return {row["id"]: (row["dup_cluster_size"], row["dup_cluster_id"]) for row in rows}

    dedup, kept = clusters("dedup"), clusters("filter")
    assert set(clusters("extract").values()) == {(None, None)}
    assert all(size >= 1 and cluster <= doc for doc, (size, cluster) in dedup.items())
    assert max(size for size, _ in dedup.values()) > 1  # the sample has duplicates (dedup drops some)
    assert kept and all(dedup[doc] == cluster for doc, cluster in kept.items())
    release = Path(results["release"].output.path)
    samples = [s for shard in sorted(release.glob("*.tar")) for s in read_shard(str(shard))]
    assert {s.key: (s.meta["dup_cluster_size"], s.meta["dup_cluster_id"]) for s in samples} == kept
