"""Extraction quality on the shared real pages (run by `make bench`); prints a table.

- scrapinghub article-extraction-benchmark (109 pages with a human-annotated article body): shingle
  precision/recall/F1 exactly as the benchmark's evaluate.py. The recorded trafilatura 2.0.0 output is
  scored with the same code as a check of the metric (the benchmark reports F1 0.957 for it).
- trafilatura's own evaluation pages (88 English pages, `with`/`without` snippets): share of pages passing
  both checks, share of `with` snippets found, share of `without` snippets leaked.

Data: $WEBTEXT_SHARED_DATA/html_extraction (default <repo>/../shared/data). WEBTEXT_EXTRACTION_SWEEP=1 also
scores every configuration recorded in tests/benchmarks/EXTRACTION.md (a few minutes).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trafilatura

from corpus.extract import EXTRACTOR, ExtractConfig, decode_html, extract_bytes
from corpus.extraction_eval import check_snippets, shingle_scores, snippet_scores

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "html_extraction"
AEB, EVAL_EN = DATA / "scrapinghub_aeb", DATA / "trafilatura_eval_en"

# An extractor: (page bytes, url or None) -> text or None.
Extractor = Callable[[bytes, "str | None"], "str | None"]


def trafilatura_extract(**options) -> Extractor:
    """trafilatura.extract() as the benchmark calls it (no url), on decode_html's text."""
    return lambda body, url: trafilatura.extract(decode_html(body, None), **options)


def pipeline(**fields) -> Extractor:
    """The extract stage's own code with ExtractConfig(**fields)."""
    config = ExtractConfig(**fields)
    return lambda body, url: extract_bytes(body, None, url, config).text


def precision_then_baseline(body: bytes, url: str | None) -> str | None:
    """favor_precision, and trafilatura's baseline() when that finds nothing."""
    html = decode_html(body, None)
    text = trafilatura.extract(html, url=url, include_comments=False, favor_precision=True)
    return text or trafilatura.baseline(html)[1] or None


def ratio_on_every_page(body: bytes, url: str | None) -> str | None:
    """favor_precision unless it keeps under half of favor_recall's text, comparing on every page."""
    html = decode_html(body, None)
    text = trafilatura.extract(html, url=url, include_comments=False, favor_precision=True) or ""
    recall = trafilatura.extract(html, url=url, include_comments=False, favor_recall=True) or ""
    return text if len(text) >= 0.5 * len(recall) else recall


def absolute_threshold(body: bytes, url: str | None) -> str | None:
    """favor_precision unless it keeps under 500 characters, then favor_recall (rejected: fits one page)."""
    html = decode_html(body, None)
    text = trafilatura.extract(html, url=url, include_comments=False, favor_precision=True) or ""
    return (
        text
        if len(text) >= 500
        else trafilatura.extract(html, url=url, include_comments=False, favor_recall=True)
    )


KEY_ROWS: list[tuple[str, Extractor]] = [
    ("trafilatura.extract defaults (comments on)", trafilatura_extract()),
    ("trafilatura.extract include_comments=False", trafilatura_extract(include_comments=False)),
    ("pipeline: precision only (recall_fallback=0)", pipeline(recall_fallback=0)),
    ("pipeline: ExtractConfig() defaults", pipeline()),
]

SWEEP_ROWS: list[tuple[str, Extractor]] = [
    (
        "extract comments off + favor_precision",
        trafilatura_extract(include_comments=False, favor_precision=True),
    ),
    ("extract comments off + favor_recall", trafilatura_extract(include_comments=False, favor_recall=True)),
    (
        "extract comments off + include_tables=False",
        trafilatura_extract(include_comments=False, include_tables=False),
    ),
    ("extract comments off + fast", trafilatura_extract(include_comments=False, fast=True)),
    (
        "extract comments off + fast + favor_recall",
        trafilatura_extract(include_comments=False, fast=True, favor_recall=True),
    ),
    (
        "extract comments off + fast + favor_precision",
        trafilatura_extract(include_comments=False, fast=True, favor_precision=True),
    ),
    ("extract comments off + deduplicate", trafilatura_extract(include_comments=False, deduplicate=True)),
    (
        "extract comments off + include_formatting",
        trafilatura_extract(include_comments=False, include_formatting=True),
    ),
    (
        "extract comments off + precision + no tables",
        trafilatura_extract(include_comments=False, favor_precision=True, include_tables=False),
    ),
    (
        "extract comments off + recall + no tables",
        trafilatura_extract(include_comments=False, favor_recall=True, include_tables=False),
    ),
    ("trafilatura.baseline() alone", lambda body, url: trafilatura.baseline(decode_html(body, None))[1]),
    ("trafilatura.html2txt() alone", lambda body, url: trafilatura.html2txt(decode_html(body, None))),
    ("precision, baseline() when empty", precision_then_baseline),
    ("precision, recall when precision < 500 chars", absolute_threshold),
    ("precision, recall if < 0.5 of it, on every page", ratio_on_every_page),
    ("pipeline: balanced + recall_fallback=0.5", pipeline(favor_precision=False)),
    ("pipeline: balanced, no fallback", pipeline(favor_precision=False, recall_fallback=0)),
    *((f"pipeline: precision + recall_fallback={r}", pipeline(recall_fallback=r)) for r in (0.3, 0.7, 0.9)),
    ("pipeline: defaults + include_tables=False", pipeline(include_tables=False)),
    ("pipeline: defaults + fast", pipeline(fast=True)),
    ("pipeline: defaults + extensive_date_search=False", pipeline(extensive_date_search=False)),
]


def load_aeb() -> tuple[dict, dict, dict]:
    gold = json.loads((AEB / "ground-truth.json").read_text(encoding="utf-8"))
    recorded = json.loads((AEB / "reference-output-trafilatura.json").read_text(encoding="utf-8"))
    pages = {key: gzip.decompress((AEB / "html" / f"{key}.html.gz").read_bytes()) for key in gold}
    return gold, recorded, pages


def load_eval_en() -> tuple[dict, dict]:
    gold = json.loads((EVAL_EN / "evaldata.json").read_text(encoding="utf-8"))
    pages = {
        url: gzip.decompress((EVAL_EN / "html" / f"{e['file']}.gz").read_bytes()) for url, e in gold.items()
    }
    return gold, pages


@pytest.mark.skipif(
    not AEB.is_dir() or not EVAL_EN.is_dir(), reason=f"shared extraction data not found at {DATA}"
)
def test_extraction_quality():
    logging.disable(logging.WARNING)  # trafilatura warns once per discarded page
    aeb_gold, recorded, aeb_pages = load_aeb()
    en_gold, en_pages = load_eval_en()
    rows = KEY_ROWS + (SWEEP_ROWS if os.environ.get("WEBTEXT_EXTRACTION_SWEEP") else [])

    print(
        f"\nextraction quality, {EXTRACTOR}: {len(aeb_gold)} scrapinghub pages (shingle metric), "
        f"{len(en_gold)} trafilatura eval pages (snippets)"
    )
    print(f"  {'configuration':<50} {'P':>6} {'R':>6} {'F1':>6}   {'pass':>5} {'with':>5} {'leak':>5}")
    reference = shingle_scores(
        (aeb_gold[k]["articleBody"], recorded["output"][k]["articleBody"]) for k in aeb_gold
    )
    label = f"recorded trafilatura {recorded['version']} output"
    print(f"  {label:<50} {reference.precision:6.4f} {reference.recall:6.4f} {reference.f1:6.4f}")
    scores = {}
    for name, extractor in rows:
        aeb = shingle_scores(
            (aeb_gold[k]["articleBody"], extractor(aeb_pages[k], aeb_gold[k]["url"])) for k in aeb_gold
        )
        snippets = snippet_scores(
            [
                check_snippets(
                    extractor(body, url if url.startswith("http") else None), e["with"], e["without"]
                )
                for (url, e), body in zip(en_gold.items(), en_pages.values(), strict=True)
            ]
        )
        scores[name] = aeb
        print(
            f"  {name:<50} {aeb.precision:6.4f} {aeb.recall:6.4f} {aeb.f1:6.4f}   "
            f"{snippets.passed:5.3f} {snippets.with_found:5.3f} {snippets.without_leaked:5.3f}"
        )
    assert reference.f1 == pytest.approx(0.9572, abs=5e-4), "the metric no longer reproduces the benchmark"
    assert scores["pipeline: ExtractConfig() defaults"].f1 >= 0.96
