"""Documents: the extract stage's rows, keyed by a stable hash of the canonical URL (docs/design.md)."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from corpus.fetch_index import LINEAGE
from corpus.language import LanguageIdentifier
from corpus.signals import SIGNAL_TYPES, signals

# The annotations every document gets in the extract stage (issue 17): its language and its quality signals,
# after the columns above, in SIGNALS order. Nullable, so that docs tables written before them (and rows
# made by hand) still load: `annotate` fills a row's missing ones, and the filter stage calls it on every
# row it reads, so its output always has them.
ANNOTATIONS: dict[str, pa.DataType] = {
    "language": pa.string(),
    "language_score": pa.float64(),
    **SIGNAL_TYPES,
}

# What the dedup stage adds to every document it keeps (issue 17), as FineWeb-2 does, so that users can
# re-weight by cluster: `dup_cluster_size`, how many documents (exact and near duplicates, itself included)
# were in its cluster, 1 for a unique one; `dup_cluster_id`, the smallest id among them (its own id when
# unique). Null before dedup (extract writes them empty) and in docs tables from before them.
DEDUP_COLUMNS: dict[str, pa.DataType] = {
    "dup_cluster_size": pa.int64(),
    "dup_cluster_id": pa.string(),
}

DOCS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("final_url", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("author", pa.string()),
        pa.field("date", pa.string()),
        pa.field("sitename", pa.string()),
        pa.field("words", pa.int64(), nullable=False),
        pa.field("karma", pa.int64(), nullable=False),
        pa.field("submission_ids", pa.list_(pa.string()), nullable=False),
        pa.field("subreddits", pa.list_(pa.string()), nullable=False),
        pa.field("first_created_utc", pa.int64(), nullable=False),
        pa.field("fetched_at", pa.string()),
        pa.field("status", pa.int32()),
        pa.field("warc_file", pa.string()),
        pa.field("content_sha1", pa.string(), nullable=False),
        pa.field("extractor", pa.string(), nullable=False),
        *(pa.field(name, kind) for name, kind in ANNOTATIONS.items()),
        *(pa.field(name, kind) for name, kind in DEDUP_COLUMNS.items()),
    ]
)


def doc_id(url: str) -> str:
    """Stable id of a document: SHA-1 (hex) of its canonical URL."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()


def annotations(text: str, identifier: LanguageIdentifier) -> dict[str, Any]:
    """A document's ANNOTATIONS: `language`, `language_score` and every signal of corpus/signals.py."""
    language, score = identifier.identify(text)
    return {"language": language, "language_score": score, **signals(text)}


def annotate(row: dict[str, Any], identifier: LanguageIdentifier) -> dict[str, Any]:
    """`row` with its missing (absent or null) ANNOTATIONS computed from its text; the row itself when it
    has them all (a docs table of an extract stage from before issue 17 has none)."""
    if all(row.get(name) is not None for name in ANNOTATIONS):
        return row
    return {**row, **annotations(row["text"], identifier)}


def doc_row(index: dict[str, Any], extracted, payload: bytes, extractor: str) -> dict[str, Any]:
    """A docs row from the fetch index row, the extraction and the decoded HTTP payload.

    `content_sha1` is the SHA-1 of that payload (as WARC-Payload-Digest, but hex), so a document can be
    traced back to the exact bytes it was extracted from.
    """
    return {
        "id": doc_id(index["url"]),
        "url": index["url"],
        "final_url": index["final_url"],
        "text": extracted.text,
        "title": extracted.title,
        "author": extracted.author,
        "date": extracted.date,
        "sitename": extracted.sitename,
        "words": extracted.words,
        "fetched_at": index["fetched_at"],
        "status": index["status"],
        "warc_file": index["warc_file"],
        "content_sha1": hashlib.sha1(payload).hexdigest(),
        "extractor": extractor,
        **{name: index[name] for name in LINEAGE},
    }
