"""The fetch index: one row per link, saying what fetching it gave and where the response lies in a WARC.

Rows carry the link's lineage (karma, submission ids, subreddits, ...) so that later stages need no join
with the links table. `warc_file` is relative to the work directory for archives the fetch stage wrote
(`fetch/<run>-NNNNN.warc.gz`), and an absolute path (or a URI such as gs://...) for `--from-warc` archives:
never relative to the directory a command was started from.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

LINEAGE = ("domain", "karma", "submission_ids", "subreddits", "first_created_utc")

INDEX_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("final_url", pa.string(), nullable=False),
        pa.field("status", pa.int32()),
        pa.field("content_type", pa.string()),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("fetched_at", pa.string()),
        pa.field("warc_file", pa.string()),
        pa.field("offset", pa.int64()),
        pa.field("length", pa.int64()),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("karma", pa.int64(), nullable=False),
        pa.field("submission_ids", pa.list_(pa.string()), nullable=False),
        pa.field("subreddits", pa.list_(pa.string()), nullable=False),
        pa.field("first_created_utc", pa.int64(), nullable=False),
    ]
)

# Outcome of a link that an archive read with --from-warc does not hold.
NOT_IN_ARCHIVE = "not_in_archive"
# Outcome of a link whose per-URL code path raised: a bug, recorded with the exception, retried by a rerun.
INTERNAL_ERROR = "internal_error"


def lineage_of(link: dict[str, Any]) -> dict[str, Any]:
    return {name: link[name] for name in LINEAGE}


def index_row(
    link: dict[str, Any],
    outcome: str,
    detail: str = "",
    *,
    final_url: str | None = None,
    status: int | None = None,
    content_type: str | None = None,
    size: int = 0,
    fetched_at: str | None = None,
    warc_file: str | None = None,
    offset: int | None = None,
    length: int | None = None,
    attempts: int = 0,
) -> dict[str, Any]:
    """An index row for `link` (a links-table row); every column of INDEX_SCHEMA is set."""
    return {
        "url": link["url"],
        "final_url": _text(final_url or link["url"]),
        "status": status,
        "content_type": _text(content_type) if content_type is not None else None,
        "bytes": size,
        "fetched_at": fetched_at,
        "warc_file": warc_file,
        "offset": offset,
        "length": length,
        "outcome": outcome,
        "detail": _text(" ".join(detail.split())[:500]),
        "attempts": attempts,
        **lineage_of(link),
    }


def _text(value: str) -> str:
    """value as Parquet can store it: a lone surrogate (surrogateescape-decoded bytes) becomes '?'."""
    return value.encode("utf-8", "replace").decode("utf-8")
