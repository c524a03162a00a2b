"""The datasheet's summary of the released documents' annotations: small, mergeable, deterministic.

A summary is plain dicts and lists (JSON-able), the same size for a batch of 10 documents as for the whole
release, and summaries add up: ``merge([summarize(a), summarize(b)]) == summarize(a + b)`` (tested). It
holds

- ``documents``: the documents seen; ``unannotated``: those without signals (a docs table from before
  issue 17, which the release reads as it is), left out of everything below but ``languages``;
- ``languages``: ``{language: documents}`` (``UNKNOWN`` for a document without one);
- ``histograms``: ``{signal: counts}`` over the fixed bins of ``BINS``, for the signals of ``SHOWN``;
- ``would_drop``: ``{preset: {"dropped": n, "by_rule": {rule: n}}}``, what each preset of ``PRESETS`` would
  drop, a document counted under the first of its rules that holds (corpus.rules.would_drop).

Bins are fixed per signal, not fitted to the data, so that batches can be added: fractions and ratios in
steps of 0.01 (fractions up to 1, ratios up to 2), mean word length in steps of 0.1 up to 20, counts exactly
up to 10 and then in steps of about 12% (20 per decade) up to 10^7. Count ``i`` holds the values
``edges[i] <= v < edges[i + 1]``, and one more count (the last) those from the top edge up.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping

import pyarrow as pa

from corpus.rules import PRESETS as RULE_PRESETS
from corpus.rules import RuleSet, would_drop
from corpus.signals import SIGNAL_TYPES, SIGNALS

FRACTION = tuple(i / 100 for i in range(102))  # the last bin, [1, 1.01), holds exactly 1
RATIO = tuple(i / 100 for i in range(201))
WORD_LENGTH = tuple(i / 10 for i in range(201))
COUNT = tuple(sorted({0} | {round(10 ** (k / 20)) for k in range(141)}))  # 0, 1, ..., 10, 11, 13, ..., 1e7
# The signals the datasheet shows, in its order: each rule preset's main signals.
SHOWN: tuple[str, ...] = (
    "word_count",
    "line_count",
    "gopher_mean_word_length",
    "gopher_stop_word_count",
    "gopher_alpha_word_frac",
    "unique_word_frac",
    "gopher_hash_word_ratio",
    "gopher_ellipsis_word_ratio",
    "gopher_ellipsis_line_frac",
    "gopher_bullet_line_frac",
    "gopher_dup_line_frac",
    "gopher_dup_line_char_frac",
    "gopher_top_2gram_char_frac",
    "gopher_top_4gram_char_frac",
    "gopher_dup_5gram_char_frac",
    "gopher_dup_10gram_char_frac",
    "c4_terminal_punct_line_frac",
    "c4_sentence_count",
    "fineweb_short_line_frac",
    "fineweb_newline_word_ratio",
)
BINS: dict[str, tuple[float, ...]] = {
    name: FRACTION if name.endswith("_frac") else RATIO if name.endswith("_ratio") else COUNT
    for name in SHOWN
} | {"gopher_mean_word_length": WORD_LENGTH}
UNKNOWN = "unknown"  # the language of a document without one
PRESETS: dict[str, RuleSet] = {name: RULE_PRESETS[name] for name in ("webtext", "gopher", "c4", "fineweb")}


def is_count(signal: str) -> bool:
    return pa.types.is_integer(SIGNAL_TYPES[signal])


def bin_index(edges: tuple[float, ...], value: float) -> int:
    """The bin of `value`: ``i`` where ``edges[i] <= value < edges[i + 1]``; from the top edge up,
    ``len(edges) - 1`` (the overflow count)."""
    return max(0, bisect.bisect_right(edges, value) - 1)


def empty() -> dict:
    return {
        "documents": 0,
        "unannotated": 0,
        "languages": {},
        "histograms": {name: [0] * len(BINS[name]) for name in SHOWN},
        "would_drop": {name: {"dropped": 0, "by_rule": {}} for name in PRESETS},
    }


def summarize(rows: Iterable[Mapping]) -> dict:
    """The summary of some docs rows (module docstring)."""
    summary = empty()
    languages: Counter = Counter()
    annotated = []
    for row in rows:
        summary["documents"] += 1
        languages[row.get("language") or UNKNOWN] += 1
        if any(row.get(name) is None for name in SIGNALS):
            summary["unannotated"] += 1
            continue
        annotated.append(row)
        for name in SHOWN:
            summary["histograms"][name][bin_index(BINS[name], row[name])] += 1
    summary["languages"] = dict(languages)
    for name, tally in would_drop(annotated, list(PRESETS.values())).items():
        summary["would_drop"][name] = {
            "dropped": tally.dropped,
            "by_rule": {rule: n for rule, n in tally.by_rule.items() if n},
        }
    return summary


def merge(summaries: Iterable[dict]) -> dict:
    """The sum of summaries (the summary of all their documents); `empty()` for none."""
    total = empty()
    for summary in summaries:
        total["documents"] += summary["documents"]
        total["unannotated"] += summary["unannotated"]
        _add(total["languages"], summary["languages"])
        for name, counts in summary["histograms"].items():
            into = total["histograms"][name]
            total["histograms"][name] = [a + b for a, b in zip(into, counts, strict=True)]
        for name, drops in summary["would_drop"].items():
            total["would_drop"][name]["dropped"] += drops["dropped"]
            _add(total["would_drop"][name]["by_rule"], drops["by_rule"])
    return total


def _add(into: dict, counts: Mapping) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def quantile(counts: list[int], edges: tuple[float, ...], q: float) -> float | None:
    """The lower edge of the bin that holds the q-quantile (nearest rank) of the histogram: at most a bin's
    width below the exact one. None when it is at or above the top edge, or the histogram is empty."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, -(-q * total // 1))  # the ceil(q * total)-th value, counting from 1
    seen = 0
    for index, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return edges[index] if index < len(edges) - 1 else None
    return None
