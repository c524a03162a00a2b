"""`webtext dedup` gives every kept document its cluster's size and id (dup_cluster_size, dup_cluster_id),
exact and near duplicates counted together, and `webtext filter` carries them through (DirectRunner)."""

from pathlib import Path

import pytest

from corpus.docs import doc_id
from corpus.minhash import MinHashConfig
from corpus.near_duplicates import cluster_identity
from pipelines.outputs import read_table
from tests.conftest import committed
from tests.pipelines.test_dedup_filter import digests, doc, write_docs
from webtext.cli import main


def words(prefix: str) -> str:
    return " ".join(f"{prefix}{i}" for i in range(400))


def edited(text: str) -> str:
    """Every 100th word changed: exact Jaccard ~0.90 over 5-word shingles, a near duplicate at 0.8."""
    return " ".join(f"edit{i}" if i % 100 == 0 else word for i, word in enumerate(text.split()))


# name -> (text, karma). Exact copies differ in case only: the same normalized words.
DOCS = {
    # a1 keeps a cluster of 4: its exact copy a2, its near duplicate a3 and a3's exact copy a4.
    "a1": (words("a"), 9),
    "a2": (words("a").upper(), 1),
    "a3": (edited(words("a")), 2),
    "a4": (edited(words("a")).upper(), 3),
    # d2 and d3 are exact copies (equal karma: the smaller id is kept), d1 a near duplicate of them.
    "d1": (edited(words("d")), 1),
    "d2": (words("d"), 5),
    "d3": (words("d").upper(), 5),
    "b1": (words("b"), 4),  # exact copies only
    "b2": (words("b").upper(), 4),
    "c1": (words("c"), 2),  # near duplicates only
    "c2": (edited(words("c")), 7),
    "u1": (words("u"), 1),  # unique
    "u2": (words("v"), 1),
}
ID = {name: doc_id(f"https://{name}.example/") for name in DOCS}
D_KEPT = min(ID["d2"], ID["d3"])


def smallest(*names: str) -> str:
    return min(ID[name] for name in names)


EXPECTED = {  # kept id -> (dup_cluster_size, dup_cluster_id)
    ID["a1"]: (4, smallest("a1", "a2", "a3", "a4")),
    D_KEPT: (3, smallest("d1", "d2", "d3")),
    min(ID["b1"], ID["b2"]): (2, smallest("b1", "b2")),
    ID["c2"]: (2, smallest("c1", "c2")),
    ID["u1"]: (1, ID["u1"]),
    ID["u2"]: (1, ID["u2"]),
}


def clusters_of(out: Path, stage: str) -> dict[str, tuple[int, str]]:
    rows = read_table(str(committed(out, stage) / "part-*.parquet")).to_pylist()
    return {row["id"]: (row["dup_cluster_size"], row["dup_cluster_id"]) for row in rows}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    rows = [doc(f"https://{name}.example/", text, karma) for name, (text, karma) in DOCS.items()]
    work = write_docs(tmp_path_factory.mktemp("clusters"), rows)
    for out in ("one", "two"):
        assert main(["dedup", "--docs", str(work), "--out", str(work / out), "--num-shards", "2"]) == 0
    return work


def test_each_kept_document_has_its_whole_clusters_size_and_smallest_id(work):
    assert clusters_of(work / "one", "dedup") == EXPECTED
    assert sum(size for size, _ in EXPECTED.values()) == len(DOCS)  # every document in one cluster


def test_the_clusters_table_keeps_each_steps_own_size(work):
    rows = read_table(str(committed(work / "one", "dedup") / "clusters-*.parquet")).to_pylist()
    a = {row["reason"]: row["cluster_size"] for row in rows if row["id"] == ID["a1"]}
    assert a == {"exact_kept": 2, "near_kept": 2}  # its exact pair, then the two surviving exact groups


def test_cluster_columns_are_deterministic_across_runs_and_partitions(work, tmp_path):
    from pipelines.dedup.stage import STAGE as DEDUP
    from pipelines.dedup.transform import DedupOptions

    patterns = ("part-*.parquet", "clusters-*.parquet")
    one, two = committed(work / "one", "dedup"), committed(work / "two", "dedup")
    assert digests(one, *patterns) == digests(two, *patterns)
    docs = str(committed(work, "extract") / "part-*.parquet")
    DEDUP.run(DedupOptions(docs, MinHashConfig(), rounds=6, num_shards=2, partitions=3), str(tmp_path), [])
    assert digests(committed(tmp_path, "dedup"), *patterns) == digests(one, *patterns)


def test_filter_carries_the_cluster_columns_and_extract_leaves_them_null(work):
    assert main(["filter", "--docs", str(work / "one"), "--out", str(work / "one"), "--rules", "none"]) == 0
    assert clusters_of(work / "one", "filter") == EXPECTED
    assert set(clusters_of(work, "extract").values()) == {(None, None)}


def test_cluster_identity_sums_sizes_and_takes_the_smallest_id():
    assert cluster_identity([(2, "b"), (1, "c"), (3, "a")]) == (6, "a")
    assert cluster_identity([(1, "x")]) == (1, "x")
