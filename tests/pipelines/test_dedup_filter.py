"""`webtext dedup` and `webtext filter` on the DirectRunner: planted near-duplicates of real documents."""

import hashlib
import json
from pathlib import Path

import pytest

from corpus.docs import DOCS_SCHEMA, doc_id
from corpus.minhash import MinHashConfig, MinHasher
from corpus.near_duplicates import reference_clusters, reference_pairs
from pipelines.outputs import StageOutput, read_table, write_table
from tests.conftest import committed
from tests.fixtures.near_duplicates import load_gold, plant, shingle_sets, similar_pairs
from webtext.cli import main

MULTI = [
    "--direct_num_workers=2",
    "--direct_running_mode=multi_processing",
    "--default_sdk_harness_log_level=WARNING",
]


def doc(url: str, text: str, karma: int = 5, final_url: str | None = None) -> dict:
    return {
        "id": doc_id(url),
        "url": url,
        "final_url": final_url or url,
        "domain": url.split("/")[2],
        "text": text,
        "title": None,
        "author": None,
        "date": None,
        "sitename": None,
        "words": len(text.split()),
        "karma": karma,
        "submission_ids": ["s"],
        "subreddits": ["r"],
        "first_created_utc": 0,
        "fetched_at": None,
        "status": 200,
        "warc_file": None,
        "content_sha1": hashlib.sha1(text.encode()).hexdigest(),
        "extractor": "test",
    }


def write_docs(work: Path, rows: list[dict]) -> Path:
    """A work directory whose extract stage committed `rows` (published as the stage publishes)."""
    output = StageOutput(str(work), "extract")
    write_table(output.path("part-00000-of-00001.parquet"), rows, DOCS_SCHEMA)
    output.publish()
    return work


def digests(out: Path, *patterns: str) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for pattern in patterns
        for p in sorted(out.glob(pattern))
    }


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    sources = dict(list(load_gold().items())[:6])
    variants = plant(sources)
    texts = {**sources, **{v.id: v.text for v in variants}}
    rows = [doc(f"https://example.org/{name}", text, karma=len(name)) for name, text in sorted(texts.items())]
    rows.append(doc("https://example.org/copy-of-first", sources[next(iter(sources))], karma=1))  # exact
    work = write_docs(tmp_path_factory.mktemp("planted"), rows)
    one, two = work / "one", work / "two"
    for out, extra in ((one, []), (two, MULTI)):
        assert main(["dedup", "--docs", str(work), "--out", str(out), "--num-shards", "2", *extra]) == 0
    truth = similar_pairs(shingle_sets(texts, 5), 0.8)
    return {"rows": rows, "texts": texts, "truth": truth, "one": one, "two": two}


def test_same_kept_set_and_bytes_on_one_and_two_workers(planted):
    patterns = ("part-*.parquet", "clusters-*.parquet", "ledger/dedup-*.parquet")
    one, two = committed(planted["one"], "dedup"), committed(planted["two"], "dedup")
    assert digests(one, *patterns) == digests(two, *patterns) and len(digests(one, *patterns)) == 6


def test_partitions_and_rounds_change_no_byte(planted, tmp_path):
    """More partitions spread the keyed steps over workers and take several components rounds: the output is
    the same, byte for byte, as with one partition (one round)."""
    from pipelines.dedup.stage import STAGE as DEDUP
    from pipelines.dedup.transform import DedupOptions

    docs = str(committed(planted["one"].parent, "extract") / "part-*.parquet")
    DEDUP.run(DedupOptions(docs, MinHashConfig(), rounds=6, num_shards=2, partitions=5), str(tmp_path), [])
    patterns = ("part-*.parquet", "clusters-*.parquet", "ledger/dedup-*.parquet")
    one, many = committed(planted["one"], "dedup"), committed(tmp_path, "dedup")
    assert digests(one, *patterns) == digests(many, *patterns)
    stats = [json.loads((out / "stats.json").read_text()) for out in (one, many)]
    counts = [{key: value for key, value in s.items() if key != "config"} for s in stats]  # config: rounds
    assert counts[0] == counts[1]


def test_too_few_components_rounds_fail_loudly(tmp_path):
    """A chain of near duplicates spread over partitions needs several rounds; one is not enough, and the
    run fails instead of writing a wrong clustering."""
    from pipelines.dedup.components import NotConverged
    from pipelines.dedup.stage import STAGE as DEDUP
    from pipelines.dedup.transform import DedupOptions

    text = " ".join(f"w{i}" for i in range(2000))
    tokens = text.split()
    rows = [doc(f"https://chain.example/{n}", " ".join(tokens[30 * n : 30 * n + 400])) for n in range(30)]
    work = write_docs(tmp_path, rows)
    docs = str(committed(work, "extract") / "part-*.parquet")
    with pytest.raises(NotConverged, match="did not converge in 1 rounds"):
        DEDUP.run(DedupOptions(docs, MinHashConfig(), rounds=1, partitions=7), str(tmp_path / "few"), [])
    DEDUP.run(DedupOptions(docs, MinHashConfig(), rounds=10, partitions=7), str(tmp_path / "enough"), [])
    kept = read_table(str(committed(tmp_path / "enough", "dedup") / "part-*.parquet"))
    assert kept.num_rows == 1  # the whole chain is one cluster


def test_counts_reconcile_and_the_exact_copy_is_named(planted):
    out = committed(planted["one"], "dedup")
    stats = json.loads((out / "stats.json").read_text())
    kept = read_table(str(out / "part-*.parquet")).to_pylist()
    ledger = read_table(str(out / "ledger" / "dedup-*.parquet")).to_pylist()
    assert stats["in"] == len(planted["rows"]) == stats["out"] + sum(stats["dropped"].values())
    assert len(kept) == stats["out"] and len(ledger) == sum(stats["dropped"].values())
    copy = doc_id("https://example.org/copy-of-first")
    assert [r["reason"] for r in ledger if r["id"] == copy] == ["exact_duplicate"]


def test_clusters_equal_the_in_memory_reference(planted):
    """The Beam stage (LSH buckets as GroupByKey, components inside Beam) removes exactly what the in-memory
    reference (same signatures and bands, exact verification, union-find) removes from the exact-duplicate
    survivors."""
    config = MinHashConfig()
    bands, rows = config.bands()
    ledger = read_table(str(committed(planted["one"], "dedup") / "ledger" / "dedup-*.parquet")).to_pylist()
    exact = {r["id"] for r in ledger if r["reason"] == "exact_duplicate"}  # e.g. an edit that changed nothing
    survivors = {row["id"]: row for row in planted["rows"] if row["id"] not in exact}
    ids = sorted(survivors)
    sketch = MinHasher(config).sketch([survivors[i]["text"] for i in ids])
    shingles = dict(zip(ids, sketch.shingles, strict=True))  # candidates are verified on exact Jaccard
    edges = reference_pairs(ids, sketch.signatures, bands, rows, config.threshold, shingles)
    clusters = reference_clusters({i: survivors[i]["karma"] for i in ids}, edges)
    expected = {i: kept for i, kept in clusters.items() if kept != i}
    assert {r["id"]: r["detail"] for r in ledger if r["reason"] == "near_duplicate"} == expected
    assert len(expected) > 20


def test_a_chain_of_similar_documents_is_one_cluster(tmp_path):
    base = " ".join(f"word{i}" for i in range(400))
    a = base
    b = " ".join(f"word{i}" if i % 20 else f"edit{i}" for i in range(400))  # ~0.75.. similar to a
    c = " ".join(f"word{i}" if i % 20 else f"edit{i}" if i % 40 else f"more{i}" for i in range(400))
    rows = [
        doc("https://a.example/1", a, karma=1),
        doc("https://b.example/2", b, karma=9),
        doc("https://c.example/3", c, karma=2),
    ]
    work = write_docs(tmp_path, rows)
    assert main(["dedup", "--docs", str(work), "--out", str(work), "--threshold", "0.5"]) == 0
    clusters = read_table(str(committed(work, "dedup") / "clusters-*.parquet")).to_pylist()
    kept_ids = {row["kept_id"] for row in clusters}
    assert kept_ids == {doc_id("https://b.example/2")}  # highest karma keeps the cluster
    assert len(read_table(str(committed(work, "dedup") / "part-*.parquet"))) == 1


def test_filter_drops_wikipedia_and_low_quality_with_reasons(tmp_path):
    article = next(iter(load_gold().values()))
    rows = [
        doc("https://news.example/real", article),
        doc("https://en.wikipedia.org/wiki/Reddit", article),
        doc("https://short.example/link", article, final_url="https://de.m.wikipedia.org/wiki/Reddit"),
        doc("https://tiny.example/x", "too short to be a document"),
        doc("https://spam.example/x", "\n".join(["buy now buy now cheap pills"] * 60)),
    ]
    work = write_docs(tmp_path, rows)
    assert main(["filter", "--docs", str(work), "--out", str(work)]) == 0
    out = committed(work, "filter")
    kept = read_table(str(out / "part-*.parquet")).to_pylist()
    assert [row["url"] for row in kept] == ["https://news.example/real"]
    reasons = {
        row["detail"].split(": ")[0]: row["reason"]
        for row in read_table(str(out / "ledger" / "filter-*.parquet")).to_pylist()
    }
    assert reasons["https://en.wikipedia.org/wiki/Reddit"] == "wikipedia"
    assert reasons["https://short.example/link"] == "wikipedia"
    assert reasons["https://tiny.example/x"] == "too_few_words"
    assert reasons["https://spam.example/x"] == "repeated_lines"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"] == 5 == stats["out"] + sum(stats["dropped"].values())


def excerpts() -> list[dict]:
    path = Path(__file__).parents[1] / "fixtures" / "language" / "excerpts.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def filtered(work: Path, *flags: str) -> tuple[list[dict], dict[str, tuple[str, str]], dict]:
    """Run filter on `work`; (kept rows, {url: (reason, detail)} of the ledger, stats.json)."""
    out = work / "-".join(flag.strip("-").replace("/", "_") for flag in flags or ("default",))
    assert main(["filter", "--docs", str(work), "--out", str(out), *flags]) == 0
    out = committed(out, "filter")
    kept = read_table(str(out / "part-*.parquet")).to_pylist()
    ledger = {
        row["detail"].split(": ")[0]: (row["reason"], row["detail"].split(": ", 1)[1])
        for row in read_table(str(out / "ledger" / "filter-*.parquet")).to_pylist()
    }
    stats = json.loads((out / "stats.json").read_text())
    assert stats["in"] == len(kept) + len(ledger) == stats["out"] + sum(stats["dropped"].values())
    return kept, ledger, stats


def test_filter_languages_keeps_the_named_ones_and_annotates_old_rows(tmp_path):
    # Hand-made rows without annotations (as an extract output from before them): filter computes them.
    pages = excerpts()
    work = write_docs(
        tmp_path, [doc(f"https://{i}.example/{p['language']}", p["text"]) for i, p in enumerate(pages)]
    )
    kept, ledger, stats = filtered(work, "--languages", "en,de", "--rules", "none")
    assert sorted(row["language"] for row in kept) == ["de", "en"]
    assert all(row["language_score"] > 0.5 and row["word_count"] == len(row["text"].split()) for row in kept)
    truth = {f"https://{i}.example/{p['language']}": p["language"] for i, p in enumerate(pages)}
    assert len(ledger) == len(pages) - 2
    for url, (reason, detail) in ledger.items():
        assert reason == "language" and detail.split()[0] == truth[url], (url, detail)
    assert stats["dropped"] == {"language": len(pages) - 2}
    assert stats["config"]["filter"]["languages"] == ["de", "en"]
    assert stats["config"]["filter"]["rules"] == [{"name": "none", "rules": []}]


def test_filter_rules_gopher_drops_with_gopher_reasons(tmp_path):
    articles = list(load_gold().values())[:4]
    rows = [doc(f"https://news.example/{i}", text) for i, text in enumerate(articles)]
    rows += [
        doc("https://tiny.example/x", "too short to be a document"),
        doc("https://spam.example/x", "\n".join(["buy now buy now cheap pills"] * 60)),
    ]
    work = write_docs(tmp_path, rows)
    _, ledger, stats = filtered(work, "--rules", "gopher")
    assert ledger["https://tiny.example/x"][0] == "gopher:word_count"
    assert ledger["https://spam.example/x"][0].startswith("gopher:")
    assert all(reason.startswith("gopher:") for reason, _ in ledger.values())
    assert [rule_set["name"] for rule_set in stats["config"]["filter"]["rules"]] == ["gopher"]


def test_default_rules_are_todays_quality_rules(tmp_path):
    from corpus.quality import QualityConfig, quality_drop

    texts = [*list(load_gold().values())[:6], *(page["text"] for page in excerpts())]
    texts += ["too short", "\n".join(["buy now buy now cheap pills"] * 60), "a line...\n" * 120]
    rows = [doc(f"https://site.example/{i}", text) for i, text in enumerate(texts)]
    work = write_docs(tmp_path, rows)
    for flags, config in (
        ((), QualityConfig()),
        (("--rules", "webtext", "--min-words", "50"), QualityConfig(50)),
    ):
        kept, ledger, _ = filtered(work, *flags)
        expected = {row["url"]: quality_drop(row["text"], config) for row in rows}
        assert {row["url"] for row in kept} == {url for url, drop in expected.items() if drop is None}
        assert ledger == {url: drop for url, drop in expected.items() if drop is not None}
    assert {reason for reason, _ in ledger.values()} >= {"too_few_words", "repeated_lines"}


def test_scrub_pii_replaces_the_kept_documents_addresses_and_counts_them(tmp_path, capsys):
    from corpus.pii import EMAIL_PLACEHOLDER, IPV4_PLACEHOLDER, scrub_pii
    from pipelines.filter.stage import STAGE as FILTER

    article = next(iter(load_gold().values()))
    assert scrub_pii(article).text == article  # the only addresses are the ones added here
    contact = f"{article}\nWrite to jane.doe@gmail.com or ops@news.example.org; server 93.184.216.34."
    rows = [
        doc("https://news.example/a", contact),
        doc("https://news.example/b", article),
        doc("https://tiny.example/x", "too short, mail me@x.com at 8.8.8.8"),  # dropped: not counted
    ]
    work = write_docs(tmp_path, rows)
    result = FILTER.execute(FILTER.parse(["--docs", str(work), "--out", str(work), "--scrub-pii"]), [])
    assert "pii scrubbed: 2 e-mail addresses, 1 IP addresses" in capsys.readouterr().out
    assert (result.counters["filter:pii_email"], result.counters["filter:pii_ip"]) == (2, 1)
    out = committed(work, "filter")
    kept = {row["url"]: row for row in read_table(str(out / "part-*.parquet")).to_pylist()}
    scrubbed = f"{article}\nWrite to {EMAIL_PLACEHOLDER} or {EMAIL_PLACEHOLDER}; server {IPV4_PLACEHOLDER}."
    assert kept["https://news.example/a"]["text"] == scrubbed
    assert kept["https://news.example/a"]["words"] == len(scrubbed.split())
    assert kept["https://news.example/b"]["text"] == article
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["in"], stats["out"], stats["pii_email"], stats["pii_ip"]) == (3, 2, 2, 1)
    assert stats["config"]["filter"]["scrub_pii"] is True

    plain, _, off = filtered(work)  # off by default: the text as extracted, no figures
    assert {row["url"]: row["text"] for row in plain}["https://news.example/a"] == contact
    assert "pii_email" not in off and off["config"]["filter"]["scrub_pii"] is False
