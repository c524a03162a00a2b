"""The article-extraction-benchmark shingle metric and the trafilatura snippet check."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from corpus.extract import ExtractConfig, extract_bytes
from corpus.extraction_eval import (
    ShingleScores,
    SnippetResult,
    check_snippets,
    match_counts,
    scores_from_counts,
    shingle_scores,
    shingles,
    snippet_scores,
    tokenize,
)

EVAL_EN = Path(__file__).resolve().parent.parent / "fixtures" / "html" / "trafilatura_eval_en"


def test_tokens_are_unicode_word_runs():
    assert tokenize("Don't stop—Weizsäcker, 2019!") == ["Don", "t", "stop", "Weizsäcker", "2019"]
    assert tokenize("商標法違反に！？ iPhone") == ["商標法違反に", "iPhone"]
    assert tokenize(None) == tokenize("") == []


def test_shingles_count_repeats():
    assert shingles("a b c d a b c d") == Counter(
        {("a", "b", "c", "d"): 2, ("b", "c", "d", "a"): 1, ("c", "d", "a", "b"): 1, ("d", "a", "b", "c"): 1}
    )


def test_a_text_shorter_than_a_shingle_is_one_shingle_and_empty_is_none():
    # As the benchmark's _ngrams: range(max(1, len - n + 1)) yields one slice of all the tokens.
    assert shingles("just three words") == Counter({("just", "three", "words"): 1})
    assert shingles(" ... ") == Counter()


def test_match_counts_are_normalized_per_page():
    assert match_counts("a b c d e", "a b c d e") == (1.0, 0.0, 0.0)
    assert match_counts("a b c d e", "a b c d x") == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert match_counts("a b c d a b c d", "a b c d") == pytest.approx((1 / 5, 0, 4 / 5))
    assert match_counts("a b c d", "") == (0.0, 0.0, 1.0)
    assert match_counts("", None) == (0.0, 0.0, 0.0)


def test_empty_predictions_count_against_recall_only():
    counts = [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]  # a perfect page and a page with nothing extracted
    assert scores_from_counts(counts) == ShingleScores(precision=1.0, recall=0.5, f1=2 / 3, pages=2)


def test_f1_is_taken_from_the_mean_precision_and_recall():
    scores = shingle_scores([("a b c d e f g", "a b c d e f g x y z"), ("a b c d e f g h", "a b c d")])
    precision = (4 / 7 + 1) / 2  # page 1: 4 of 7 predicted shingles right; page 2: 1 of 1
    recall = (1 + 1 / 5) / 2  # page 1: all 4 gold shingles; page 2: 1 of 5
    assert scores.precision == pytest.approx(precision) and scores.recall == pytest.approx(recall)
    assert scores.f1 == pytest.approx(2 * precision * recall / (precision + recall))


def test_snippets():
    result = check_snippets("The main text. Share this!", ["main text", "missing"], ["Share this", "Cookies"])
    assert result == SnippetResult(with_found=1, with_total=2, without_leaked=1, without_total=2)
    assert not result.passed
    assert check_snippets("The main text.", ["main text"], ["Share this"]).passed
    assert check_snippets(None, ["x"], ["y"]) == SnippetResult(0, 1, 0, 1)


def test_snippet_scores_pool_snippets_and_count_pages():
    results = [SnippetResult(3, 3, 0, 3), SnippetResult(2, 3, 0, 3), SnippetResult(3, 3, 1, 2)]
    scores = snippet_scores(results)
    assert scores.passed == pytest.approx(1 / 3) and scores.pages == 3
    assert scores.with_found == pytest.approx(8 / 9) and scores.without_leaked == pytest.approx(1 / 8)


def test_snippet_check_on_real_pages():
    gold = json.loads((EVAL_EN / "evaldata.json").read_text(encoding="utf-8"))
    results = {}
    for url, entry in gold.items():
        body = gzip.decompress((EVAL_EN / "html" / f"{entry['file']}.gz").read_bytes())
        text = extract_bytes(body, None, url if url.startswith("http") else None, ExtractConfig()).text
        results[entry["file"]] = check_snippets(text, entry["with"], entry["without"])
    assert results["pythonspeed.com.docker.html"].passed
    assert results["bahamaslocal.com-atlantis.html"].with_found == 3
    assert not results["bahamaslocal.com-atlantis.html"].passed
