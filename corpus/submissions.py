"""Pushshift submission records: parse one dump line into a typed `Submission`, or say why not.

The dumps drift over the years (GPT-2's links span 2005-2017, Pushshift/Arctic-Shift re-crawls go on to
today): `created_utc` is an int, a decimal string (2014-01..2015-11) or a float (Arctic Shift, 2023+);
`is_self`/`over_18` may be absent or null (taken as false); Arctic Shift's `_meta` and the 2019+ removal
fields are ignored (a removed post's *text* is gone, its link is not). Those variants are accepted;
anything else is a `Rejection` with a reason the ledger keeps, never an exception. Ads (`promoted: true`,
2008-09 on; in 2014-2017 without a subreddit) are rejected as `promoted`: an ad is not a Reddit user's
submission of a link. tests/corpus/test_arctic_shift.py checks every month's field types 2005-06..2018-12.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Rejection reasons for lines that are not usable submissions.
INVALID_UTF8 = "invalid_utf8"
MALFORMED_JSON = "malformed_json"
NOT_A_SUBMISSION = "not_a_submission"
MISSING_FIELD = "missing_field"
BAD_TYPE = "bad_type"
LINE_TOO_LONG = "line_too_long"
PROMOTED = "promoted"


@dataclass(frozen=True, slots=True)
class Submission:
    id: str
    url: str
    score: int
    created_utc: int
    subreddit: str
    is_self: bool
    over_18: bool
    crosspost_parent: str | None = None  # "t3_<id>" for a crosspost (2017-08 on)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    id: str | None = None  # the submission id when the record got far enough to have one


def int_field(record: dict, name: str) -> int | str:
    """A 64-bit int (what the Parquet columns hold) from an int, an integral float or a decimal string; else
    a description of the bad value."""
    value = record[name]
    if isinstance(value, bool):
        return f"{name}: expected a number, got bool"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
        return f"{name}: {str(value)[:40]}... is out of the 64-bit range"
    return f"{name}: expected a number, got {type(value).__name__} {str(value)[:40]!r}"


def lone_surrogates(raw_id: str | None, fields: dict[str, str]) -> Rejection | None:
    """The Rejection of a record whose text `fields` (name -> value) hold a lone surrogate (a JSON escape such
    as \\ud800 decodes to one, and no UTF-8 output can hold it), naming the first such field; else None."""
    for name, text in fields.items():
        if text.isascii():
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            detail = f"{name}: a lone surrogate \\u{ord(text[err.start]):04x}"
            return Rejection(INVALID_UTF8, detail, None if name == "id" else raw_id)
    return None


_INTEGER = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only: str.isdigit() also takes "²" and other scripts
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def bool_field(record: dict, name: str) -> bool | str:
    value = record.get(name, False)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    return f"{name}: expected a bool, got {type(value).__name__} {str(value)[:40]!r}"


def decode_record(line: bytes) -> dict | Rejection:
    """A line's JSON object, or why it is none."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(INVALID_UTF8, f"byte {err.start}: {err.reason}")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return Rejection(MALFORMED_JSON, f"column {err.colno}: {err.msg}")
    except RecursionError:
        return Rejection(MALFORMED_JSON, "nesting too deep")
    except ValueError as err:  # an integer literal of more than 4,300 digits
        return Rejection(MALFORMED_JSON, str(err)[:80])
    if not isinstance(record, dict):
        return Rejection(MALFORMED_JSON, f"expected an object, got {type(record).__name__}")
    return record


def parse_submission(line: bytes) -> Submission | Rejection:
    """One dump line (bytes, no newline) to a Submission or a Rejection."""
    record = decode_record(line)
    if isinstance(record, Rejection):
        return record
    raw_id = record.get("id")
    if not isinstance(raw_id, str) or not raw_id:
        if "body" in record and "link_id" in record:
            return Rejection(NOT_A_SUBMISSION, "a comment (RC dump?), not a submission")
        if raw_id is None:
            return Rejection(MISSING_FIELD, "id")
        return Rejection(BAD_TYPE, f"id: expected a non-empty string, got {type(raw_id).__name__}")

    if record.get("promoted") is True:
        return Rejection(PROMOTED, "an ad (promoted: true), not a user's submission", raw_id)
    for name in ("url", "score", "created_utc"):
        if record.get(name) is None:
            return Rejection(MISSING_FIELD, f"{name} is null" if name in record else name, raw_id)
    url = record["url"]
    subreddit = record.get("subreddit") or ""
    if not isinstance(url, str):
        return Rejection(BAD_TYPE, f"url: expected a string, got {type(url).__name__}", raw_id)
    if not isinstance(subreddit, str):
        return Rejection(BAD_TYPE, f"subreddit: expected a string, got {type(subreddit).__name__}", raw_id)
    values = (
        int_field(record, "score"),
        int_field(record, "created_utc"),
        bool_field(record, "is_self"),
        bool_field(record, "over_18"),
    )
    for value in values:
        if isinstance(value, str):
            return Rejection(BAD_TYPE, value, raw_id)
    if (bad := lone_surrogates(raw_id, {"id": raw_id, "url": url, "subreddit": subreddit})) is not None:
        return bad
    score, created_utc, is_self, over_18 = values
    parent = record.get("crosspost_parent")
    parent = parent if isinstance(parent, str) and parent else None
    return Submission(raw_id, url, score, created_utc, subreddit, is_self, over_18, parent)  # type: ignore[arg-type]
