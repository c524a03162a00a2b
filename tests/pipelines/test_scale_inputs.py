"""The scale harness's input generator (tests/benchmarks/scale/generate.py) at a tiny size factor: the same
seed gives the same bytes, and the inputs fit together as the chain needs them (the WARC pages answer
submitted URLs, the documents table has the extract stage's schema, planted Jaccards are the exact ones)."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import zstandard

from corpus.docs import DOCS_SCHEMA
from corpus.minhash import exact_jaccard, shingle_set
from corpus.submissions import Rejection, parse_submission
from corpus.warc import iter_responses
from tests.benchmarks.scale.documents import fresh_url
from tests.benchmarks.scale.generate import BASE, generate, render
from tests.benchmarks.scale.sources import load_samples

FACTOR = 0.004  # 250 submissions, 2 pages, 12 documents, 25,000 tokens


@pytest.fixture(scope="module")
def samples():
    return load_samples()


@pytest.fixture(scope="module")
def made(tmp_path_factory, samples):
    root = tmp_path_factory.mktemp("scale")
    seeds = {"a": 0, "b": 0, "other": 1}
    metas = {name: generate(root / name, FACTOR, seed, samples, tokens=True) for name, seed in seeds.items()}
    return root, metas


def test_the_same_seed_gives_the_same_bytes(made):
    root, metas = made
    assert metas["a"]["files"] == metas["b"]["files"]  # sha256 of every file
    assert (root / "a" / "meta.json").read_bytes() == (root / "b" / "meta.json").read_bytes()
    for name in metas["a"]["files"]:
        assert (root / "a" / name).read_bytes() == (root / "b" / name).read_bytes(), name
    differing = [n for n in metas["a"]["files"] if metas["a"]["files"][n] != metas["other"]["files"].get(n)]
    assert len(differing) == len(metas["a"]["files"])  # another seed changes every file


def test_sizes_follow_the_factor(made):
    _, metas = made
    sizes = BASE.times(FACTOR)
    assert metas["a"]["sizes"] == {"submissions": 250, "pages": 2, "docs": 12, "tokens": 25_000}
    assert metas["a"]["dumps"]["submissions"] == sizes.submissions
    assert metas["a"]["docs"]["rows"] == sizes.docs
    assert metas["a"]["tokens"]["tokens"] == sizes.tokens


def dump_lines(root) -> list[bytes]:
    lines = []
    for path in sorted((root / "dumps").glob("*.zst")):
        lines += (
            zstandard.ZstdDecompressor().decompress(path.read_bytes(), max_output_size=1 << 30).splitlines()
        )
    return lines


def test_submissions_are_pushshift_records_with_fresh_ids_and_warc_pages_answer_them(made):
    root = made[0] / "a"
    lines = dump_lines(root)
    records = [json.loads(line) for line in lines]
    assert len({r["id"] for r in records}) == len(records) == 250
    parsed = [parse_submission(line) for line in lines]
    assert not [p for p in parsed if isinstance(p, Rejection)]  # the reader takes every line
    urls = {r["url"] for r in records}
    served = []
    for path in sorted((root / "warc").glob("*.warc.gz")):
        with open(path, "rb") as stream:
            served += [(r.url, r.status, r.body) for r in iter_responses(stream, str(path))]
    assert len(served) == 2
    for url, status, body in served:
        assert url in urls and status == 200 and b"<p" in body


def test_documents_table_has_the_extract_schema_and_exact_planted_jaccards(made, samples):
    root, _ = made
    big = generate(root / "docs-only", 0.02, 0, samples)  # 62 rows: enough for planted variants
    assert big["docs"]["variants"] > 0
    table = pq.read_table(sorted((root / "docs-only" / "docs").glob("part-*.parquet")))
    assert table.schema.remove_metadata() == DOCS_SCHEMA.remove_metadata()
    texts = dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))
    assert len(texts) == table.num_rows == 62
    planted = [json.loads(line) for line in (root / "docs-only" / "docs" / "planted.jsonl").open()]
    assert len(planted) == big["docs"]["variants"]
    for pair in planted:
        exact = exact_jaccard(shingle_set(texts[pair["source"]], 5), shingle_set(texts[pair["id"]], 5))
        assert pair["jaccard"] == pytest.approx(exact, abs=1e-6)


def test_token_stream_is_gpt2_ids_with_document_ends(made):
    tokens = np.load(io.BytesIO((made[0] / "a" / "tokens" / "tokens.npy").read_bytes()))
    assert tokens.dtype == np.uint16 and len(tokens) == 25_000
    assert (tokens == 50256).sum() >= 5  # <|endoftext|> between documents of ~1,000 tokens


def test_fresh_url_keeps_the_site_and_its_query():
    assert (
        fresh_url("http://www.cnn.com/2005/x.html?tw=wn", "s1f") == "http://www.cnn.com/2005/x-s1f.html?tw=wn"
    )
    assert fresh_url("https://a.org/", "s2") == "https://a.org/s2"
    assert fresh_url("https://a.org", "s3") == "https://a.org/s3"
    assert fresh_url("https://a.org/p/q#frag", "s4") == "https://a.org/p/q-s4#frag"


def test_render_fills_every_slot_and_escapes_text(samples):
    from tests.benchmarks.scale.generate import Page

    template = samples.templates[0]
    paragraphs = [f"paragraph {i} <b>&" for i in range(len(template.slots) + 3)]
    page = render(template, Page(0, "A title", paragraphs)).decode("utf-8")
    for i in range(len(paragraphs)):
        assert f"paragraph {i} &lt;b&gt;&amp;" in page
    assert "<title>A title</title>" in page or "A title" in page
