"""Text for the scale inputs: new documents made of real sentences, a documents table with planted
near-duplicate clusters of known Jaccard, and a token stream.

A generated document is real sentences of the pool, drawn without repetition inside the document and grouped
into paragraphs, with 3% of its words replaced by words drawn from the pool's own word frequencies. Two
documents then share a sentence now and then (Jaccard of their 5-shingles ~0.02 for 1,700-word documents and a
pool of ~2,700 sentences), like pages of one site, and never look like near-duplicates; the substitutions make
every document's n-grams its own, so the Bloom filter and the tokenizer see a growing set of new n-grams as
the corpus grows, as they would on the web.

Planted variants are made by the recipes real near-duplicates come from (`tests/fixtures/near_duplicates.py`:
word edits, boilerplate, reordering, truncation); their Jaccard to the source is measured exactly on the
dedup stage's own 5-shingles (`corpus.minhash.shingle_set`), so the clusters' similarities are known.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpus.docs import DOCS_SCHEMA, doc_id
from corpus.minhash import exact_jaccard, shingle_set
from corpus.urls import InvalidURL, canonicalize_url, domain_of
from tests.benchmarks.scale.sources import ROOT, Samples
from tests.fixtures.near_duplicates import RECIPES

SUBSTITUTION_RATE = 0.03
VARIANT_SHARE = 0.15  # of the documents table's rows, planted variants of an earlier row
SOURCE_WINDOW = 2_000  # variants copy one of the last SOURCE_WINDOW base documents (bounded memory)
PART_ROWS = 5_000  # rows per Parquet part of the documents table
SHINGLE = 5  # the dedup stage's default --shingle
DOC_WORDS = 1_700  # mean words of a generated document: 50k documents at 16x carry ~100M GPT-2 tokens
GPT2 = ROOT / "tests" / "fixtures" / "gpt2_bpe"


def lognormal_words(rng: np.random.Generator, mean: float, sigma: float, low: int, high: int) -> int:
    """A document length in words: log-normal with the given mean (many short pages, a few long ones)."""
    value = rng.lognormal(np.log(mean) - sigma**2 / 2, sigma)
    return int(min(max(value, low), high))


def compose(samples: Samples, rng: np.random.Generator, words: int) -> list[str]:
    """Paragraphs of 2-7 distinct pool sentences, about `words` words in all, 3% of the words substituted."""
    sentences = samples.sentences
    average = len(samples.words) / len(sentences)
    count = min(len(sentences), max(1, int(words / average) + 1))
    chosen = rng.choice(len(sentences), size=count, replace=False)
    paragraphs, start = [], 0
    while start < count:
        size = int(rng.integers(2, 8))
        paragraphs.append(
            substitute(" ".join(sentences[i] for i in chosen[start : start + size]), samples, rng)
        )
        start += size
    return paragraphs


def substitute(text: str, samples: Samples, rng: np.random.Generator, rate: float = SUBSTITUTION_RATE) -> str:
    tokens = text.split(" ")
    hits = np.flatnonzero(rng.random(len(tokens)) < rate)
    for position, pick in zip(hits, rng.integers(len(samples.words), size=len(hits)), strict=True):
        tokens[position] = samples.words[pick]
    return " ".join(tokens)


def fresh_url(url: str, token: str) -> str:
    """A new URL on the same site: the last path segment gets `-token` before its extension, or becomes
    `token`; query and fragment are kept (so canonicalization still has tracking parameters to remove)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return f"https://example.com/{token}"
    authority, slash, tail = rest.partition("/")
    path, query_mark, query = tail.partition("?")
    path, hash_mark, fragment = path.partition("#") if not query_mark else (path, "", "")
    head, _, last = path.rpartition("/")
    stem, dot, ext = last.rpartition(".")
    if dot and stem and 0 < len(ext) <= 5 and ext.isalnum():
        last = f"{stem}-{token}.{ext}"
    else:
        last = f"{last}-{token}" if last else token
    path = f"{head}/{last}" if head else last
    return f"{scheme}://{authority}/{path}{query_mark}{query}{hash_mark}{fragment}"


@dataclass(frozen=True)
class DocsSummary:
    rows: int
    base: int
    variants: int
    words: int
    planted_above_threshold: int  # planted pairs with exact Jaccard >= 0.8
    parts: int


def write_documents(out: Path, samples: Samples, count: int, seed: int) -> DocsSummary:
    """`count` rows of the documents table (the extract stage's schema) as part-*.parquet under `out`, and
    planted.jsonl: one line per planted variant with its source's id, the recipe and the exact Jaccard."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 3])
    edits = random.Random(seed)  # the recipes take a random.Random
    linkable = [
        r for r in samples.submissions if not r.get("is_self") and str(r.get("url", "")).startswith("http")
    ]
    sources: deque[tuple[str, str]] = deque(maxlen=SOURCE_WINDOW)
    parts = max(1, -(-count // PART_ROWS))
    rows: list[dict] = []
    base = words = above = 0
    with open(out / "planted.jsonl", "w", encoding="utf-8") as planted:
        for i in range(count):
            record = linkable[int(rng.integers(len(linkable)))]
            url = _canonical(fresh_url(record["url"], f"d{i:x}"), i)
            if sources and rng.random() < VARIANT_SHARE:
                source_id, source_text = sources[int(rng.integers(len(sources)))]
                name, make = RECIPES[int(rng.integers(len(RECIPES)))]
                text = make(source_text, edits)
                jaccard = exact_jaccard(shingle_set(source_text, SHINGLE), shingle_set(text, SHINGLE))
                above += jaccard >= 0.8
                line = {"id": doc_id(url), "source": source_id, "recipe": name, "jaccard": round(jaccard, 6)}
                planted.write(json.dumps(line, sort_keys=True) + "\n")
            else:
                text = "\n".join(compose(samples, rng, lognormal_words(rng, DOC_WORDS, 0.7, 120, 20_000)))
                sources.append((doc_id(url), text))
                base += 1
            rows.append(_row(url, text, record, rng))
            words += rows[-1]["words"]
            if len(rows) == PART_ROWS or i == count - 1:
                index = i // PART_ROWS
                table = pa.Table.from_pylist(rows, schema=DOCS_SCHEMA)
                pq.write_table(table, out / f"part-{index:05d}-of-{parts:05d}.parquet")
                rows = []
    return DocsSummary(count, base, count - base, words, above, parts)


def _canonical(url: str, i: int) -> str:
    try:
        return canonicalize_url(url)
    except InvalidURL:
        return canonicalize_url(f"https://example.com/d{i:x}")


def _row(url: str, text: str, record: dict, rng: np.random.Generator) -> dict:
    created = int(float(record.get("created_utc") or 0))
    score = record.get("score")
    karma = score if isinstance(score, int) and score >= 3 else int(rng.integers(3, 50))
    return {
        "id": doc_id(url),
        "url": url,
        "final_url": url,
        "domain": domain_of(url),
        "text": text,
        "title": text.split(".", 1)[0][:120],
        "author": None,
        "date": None,
        "sitename": None,
        "words": len(text.split()),
        "karma": karma,
        "submission_ids": [f"d{doc_id(url)[:8]}"],
        "subreddits": [str(record.get("subreddit") or "reddit.com")],
        "first_created_utc": created,
        "fetched_at": None,
        "status": 200,
        "warc_file": None,
        "content_sha1": hashlib.sha1(text.encode("utf-8")).hexdigest(),
        "extractor": "scale-generator",
    }


def token_stream(samples: Samples, tokens: int, seed: int, mean_doc_tokens: int = 1_000) -> np.ndarray:
    """About `tokens` GPT-2 token ids (uint16): documents of pool sentences (each sentence encoded once with
    GPT-2's vocabulary from tests/fixtures), 3% of the ids substituted by ids drawn from the stream itself,
    documents of log-normal length separated by <|endoftext|>."""
    from corpus.tokenizer import gpt2_tokenizer

    tokenizer = gpt2_tokenizer(str(GPT2))
    encoded = [
        np.asarray(ids, dtype=np.uint16)
        for ids in tokenizer.encode_batch([" " + s for s in samples.sentences])
    ]
    eot = np.array([tokenizer.eot_id], dtype=np.uint16)
    rng = np.random.default_rng([seed, 4])
    pieces = []
    for chunk in _documents(rng, encoded, tokens, mean_doc_tokens):
        pieces += [*chunk, eot]
    stream = np.concatenate(pieces)[:tokens] if pieces else np.zeros(0, dtype=np.uint16)
    hits = np.flatnonzero(rng.random(len(stream)) < SUBSTITUTION_RATE)
    stream[hits] = stream[rng.integers(len(stream), size=len(hits))]
    return stream


def _documents(
    rng: np.random.Generator, encoded: list[np.ndarray], tokens: int, mean: int
) -> Iterator[list[np.ndarray]]:
    made = 0
    while made < tokens:
        target = lognormal_words(rng, mean, 0.8, 16, 50_000)
        chunk, size = [], 0
        while size < target:
            piece = encoded[int(rng.integers(len(encoded)))]
            chunk.append(piece)
            size += len(piece)
        made += size + 1
        yield chunk
