"""Frozen URL lists (OpenWebText's per-month files, OpenWebText2's lists, your own): one line to the
`Submission`s the link rules consume, or a `Rejection` saying why not.

Formats, chosen by the file name once its compression suffix is off (`list_format`):
- lines (`.txt`, anything else): one URL per line, as OpenWebText's `RS_2011-01.bz2.deduped.txt`;
- tsv / csv: a header line naming the columns, then one submission per line;
- jsonl (`.jsonl`, `.ndjson`, `.json`): one object per line with the same keys, lsb/webtext's short keys
  `u/r/k/t`, or OpenWebText2's `{"text": url, "meta": {"id": [...], "score": [...], ...}}` (one line, one
  URL, k submissions).
Columns: `url` (required), `score` or `karma`, `subreddit`, `created_utc` (epoch seconds in any of the
dumps' forms, or an ISO datetime, read as UTC), `id` (base36; `t3_` dropped; OpenWebText2's decimal ids
re-encoded). A `#` line and a blank line are not entries.

What a list does not say is filled in, and flagged so the stage can count it:
- no score: the line is taken as already selected (`scored=False`); the stage gives it `min_karma`;
- no date: the month of the file name (`RS_2011-01...`, `RS_v2_2005-06...`), else unknown (`dated=False`,
  created_utc 0), and the stage lets it through any date window, as already selected;
- no id: the line's own `FILE:LINE` stands in for it, so two lines never merge into one submission;
- no subreddit: "" (not written into a link's `subreddits`).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from corpus.dumps import compression_of
from corpus.submissions import (
    BAD_TYPE,
    INVALID_UTF8,
    MISSING_FIELD,
    Rejection,
    Submission,
    bool_field,
    decode_record,
    int_field,
    lone_surrogates,
)

FORMATS = ("lines", "tsv", "csv", "jsonl")
HEADER_FORMATS = ("tsv", "csv")
COLUMNS = ("url", "score", "subreddit", "created_utc", "id")
ALIASES = {"karma": "score", "u": "url", "r": "subreddit", "k": "score", "t": "created_utc", "text": "url"}
BAD_COLUMNS = "bad_columns"  # a tsv/csv line whose cells do not match the header
_MONTH = re.compile(r"RS_(?:v2_)?(\d{4})-(\d{2})")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class ListedURL:
    submission: Submission
    scored: bool  # the score came from the list
    dated: bool  # created_utc came from the list or the file name's month


def is_comment(line: bytes) -> bool:
    return line.lstrip().startswith(b"#")


def list_format(path: str) -> str:
    """lines, tsv, csv or jsonl, from the name with its compression suffix removed."""
    name = path.lower()
    if compression_of(name) != "none":
        name = name.rsplit(".", 1)[0]
    for suffix, fmt in ((".tsv", "tsv"), (".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        if name.endswith(suffix):
            return fmt
    return "jsonl" if name.endswith(".json") else "lines"


def month_of(name: str) -> int | None:
    """Epoch seconds of the first day of the month a Pushshift-style file name names, if it names one."""
    if (match := _MONTH.search(name)) is None or not 1 <= int(match[2]) <= 12:
        return None
    return int(datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC).timestamp())


def parse_header(line: bytes, fmt: str) -> tuple[str, ...] | str:
    """The column names of a tsv/csv header (lower-cased, aliases resolved); else what is wrong with it."""
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return f"header: byte {err.start} is not UTF-8"
    cells = text.split("\t") if fmt == "tsv" else next(csv.reader([text]), [])
    names = tuple(ALIASES.get(c.strip().lower(), c.strip().lower()) for c in cells)
    if "url" not in names:
        return f"the header has no url column (got {', '.join(names)[:200]!r})"
    return names


def base36(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _DIGITS[rest] + digits
        if not number:
            return digits


def parse_url_line(
    line: bytes, fmt: str, where: str, columns: tuple[str, ...] = (), month_utc: int | None = None
) -> list[ListedURL] | Rejection:
    """One list line (no newline; not blank, not a comment, not the header) to its submissions.

    `where` (FILE:LINE) stands in for a missing id; `columns` are a tsv/csv file's header names.
    """
    if fmt == "jsonl":
        record = decode_record(line)
        if isinstance(record, Rejection):
            return record
        records = _expand_jsonl(record)
        if isinstance(records, Rejection):
            return records
    else:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            return Rejection(INVALID_UTF8, f"byte {err.start}: {err.reason}")
        if fmt == "lines":
            records = [{"url": text.strip()}]
        else:
            cells = text.split("\t") if fmt == "tsv" else next(csv.reader([text]), [])
            if len(cells) != len(columns):
                return Rejection(BAD_COLUMNS, f"{len(cells)} cells, header has {len(columns)}")
            records = [{k: v for k, v in zip(columns, cells, strict=True) if v.strip()}]
    listed = []
    for k, record in enumerate(records):
        entry = _entry(record, where if len(records) == 1 else f"{where}#{k + 1}", month_utc)
        if isinstance(entry, Rejection):
            return entry
        listed.append(entry)
    return listed


def _expand_jsonl(record: dict) -> list[dict] | Rejection:
    """A JSONL object as one record per submission, its keys resolved to COLUMNS."""
    meta = record.get("meta")
    if "text" in record and isinstance(meta, dict):  # OpenWebText2: parallel lists, one entry per submission
        lists = {ALIASES.get(k, k): v for k, v in meta.items() if ALIASES.get(k, k) in COLUMNS}
        if not all(isinstance(v, list) for v in lists.values()):
            return Rejection(BAD_TYPE, "meta: expected lists (OpenWebText2)")
        count = max((len(v) for v in lists.values()), default=0)
        if any(len(v) != count for v in lists.values()):
            return Rejection(BAD_TYPE, "meta: lists of different lengths")
        return [{"url": record["text"], **{k: v[i] for k, v in lists.items()}} for i in range(max(count, 1))]
    return [{ALIASES.get(k, k): v for k, v in record.items()}]


def _entry(record: dict, where: str, month_utc: int | None) -> ListedURL | Rejection:
    url = record.get("url")
    if url is None or url == "":
        return Rejection(MISSING_FIELD, "url")
    if not isinstance(url, str):
        return Rejection(BAD_TYPE, f"url: expected a string, got {type(url).__name__}")
    raw_id = record.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool) and raw_id >= 0:
        raw_id = base36(raw_id)  # OpenWebText2 stores the base36 id decoded
    elif isinstance(raw_id, str) and raw_id.strip():
        raw_id = raw_id.strip().removeprefix("t3_")
    elif raw_id is not None:
        return Rejection(BAD_TYPE, f"id: expected a base36 string, got {str(raw_id)[:40]!r}")
    sub_id = raw_id or where
    subreddit = record.get("subreddit") or ""
    if not isinstance(subreddit, str):
        return Rejection(BAD_TYPE, f"subreddit: expected a string, got {type(subreddit).__name__}", raw_id)
    scored = record.get("score") is not None
    score = int_field(record, "score") if scored else 0
    created = _created_utc(record) if record.get("created_utc") is not None else month_utc
    flags = (bool_field(record, "is_self"), bool_field(record, "over_18"))
    for value in (score, created, *flags):
        if isinstance(value, str):
            return Rejection(BAD_TYPE, value, raw_id)
    if (bad := lone_surrogates(raw_id, {"id": sub_id, "url": url, "subreddit": subreddit})) is not None:
        return bad
    sub = Submission(sub_id, url.strip(), score, created or 0, subreddit, *flags)  # type: ignore[arg-type]
    return ListedURL(sub, scored, created is not None)


def _created_utc(record: dict) -> int | str:
    """Epoch seconds as the dumps write them, or an ISO datetime (OpenWebText2's, naive: read as UTC)."""
    value = record["created_utc"]
    if isinstance(value, str) and ("-" in value[1:] or "T" in value):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return f"created_utc: not epoch seconds or an ISO datetime: {value[:40]!r}"
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
    return int_field(record, "created_utc")
