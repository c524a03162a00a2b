"""Quality metrics for main-text extraction, as pure functions.

Two gold formats are scored:

- **Shingle F1** (scrapinghub/article-extraction-benchmark, `evaluate.py`): the gold article body and the
  extracted text become token 4-gram shingles counted with multiplicity; per page TP is the size of the
  multiset intersection, FP = predicted - TP, FN = gold - TP, and the three are normalized to sum to 1 so
  that long pages do not weigh more. Precision is the mean of TP/(TP+FP) over pages with TP+FP > 0 (pages
  where nothing was extracted are left out of precision and count as recall 0), recall the mean of
  TP/(TP+FN) over pages with TP+FN > 0, and F1 = 2PR/(P+R) of those two means.
- **Snippets** (trafilatura's `tests/evaldata.json`): a page passes when every `with` string is a
  substring of the extracted text and no `without` string is.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The benchmark's tokenizer: runs of word characters (IGNORECASE etc. in the original change nothing).
_TOKEN_RE = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str | None) -> list[str]:
    return _TOKEN_RE.findall(text or "")


def shingles(text: str | None, n: int = 4) -> Counter[tuple[str, ...]]:
    """Token n-grams with multiplicity. As in the benchmark, a text of 1..n-1 tokens is one shingle of all
    its tokens (so a short page can still match), and an empty text has none."""
    tokens = tokenize(text)
    if len(tokens) < n:
        return Counter([tuple(tokens)] if tokens else [])
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def match_counts(gold: str | None, predicted: str | None, n: int = 4) -> tuple[float, float, float]:
    """(TP, FP, FN) of one page's shingles, normalized to sum to 1 (all zero when both are empty)."""
    gold_shingles, predicted_shingles = shingles(gold, n), shingles(predicted, n)
    tp = sum((gold_shingles & predicted_shingles).values())
    fp = sum(predicted_shingles.values()) - tp
    fn = sum(gold_shingles.values()) - tp
    total = tp + fp + fn
    if total == 0:
        return 0.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


@dataclass(frozen=True)
class ShingleScores:
    precision: float
    recall: float
    f1: float
    pages: int


def scores_from_counts(counts: Sequence[tuple[float, float, float]]) -> ShingleScores:
    """Benchmark precision/recall/F1 from per-page normalized (TP, FP, FN)."""
    precisions = [tp / (tp + fp) for tp, fp, _ in counts if tp + fp > 0]
    recalls = [tp / (tp + fn) for tp, _, fn in counts if tp + fn > 0]
    precision = sum(precisions) / len(precisions) if precisions else 0.0
    recall = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return ShingleScores(precision, recall, f1, len(counts))


def shingle_scores(pairs: Iterable[tuple[str | None, str | None]], n: int = 4) -> ShingleScores:
    """Score (gold, predicted) text pairs, one per page; None means empty."""
    return scores_from_counts([match_counts(gold, predicted, n) for gold, predicted in pairs])


@dataclass(frozen=True)
class SnippetResult:
    with_found: int
    with_total: int
    without_leaked: int
    without_total: int

    @property
    def passed(self) -> bool:
        return self.with_found == self.with_total and self.without_leaked == 0


def check_snippets(text: str | None, with_: Sequence[str], without: Sequence[str]) -> SnippetResult:
    """Which gold snippets one page's extracted text contains (plain substring test, as trafilatura's)."""
    text = text or ""
    return SnippetResult(
        with_found=sum(snippet in text for snippet in with_),
        with_total=len(with_),
        without_leaked=sum(snippet in text for snippet in without),
        without_total=len(without),
    )


@dataclass(frozen=True)
class SnippetScores:
    passed: float  # share of pages with every `with` found and no `without` leaked
    with_found: float  # share of all `with` snippets found (over all pages)
    without_leaked: float  # share of all `without` snippets leaked
    pages: int


def snippet_scores(results: Sequence[SnippetResult]) -> SnippetScores:
    with_total = sum(r.with_total for r in results)
    without_total = sum(r.without_total for r in results)
    return SnippetScores(
        passed=sum(r.passed for r in results) / len(results) if results else 0.0,
        with_found=sum(r.with_found for r in results) / with_total if with_total else 0.0,
        without_leaked=sum(r.without_leaked for r in results) / without_total if without_total else 0.0,
        pages=len(results),
    )
