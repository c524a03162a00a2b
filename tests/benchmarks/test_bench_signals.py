"""Cost of the quality signals beside extraction's, per document (run by `make bench`).

Pages: the 197 shared real pages ($WEBTEXT_SHARED_DATA/html_extraction, default <repo>/../shared/data) when
present, else the fixture pages. Extraction is what the extract stage runs per page in its worker
(`corpus.extract.extract_bytes`, default ExtractConfig, so pages under 100 words still get the recall pass);
the signals are `corpus.signals.signals` on each text it returns. Each loop runs once to warm up and then
BENCH_SIGNALS_REPEATS times (default 3); the fastest run counts. Target (issue 17): the signals add at most
25% to extraction's per-document time.
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from pathlib import Path

from corpus.extract import ExtractConfig, extract_bytes
from corpus.signals import signals

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "html_extraction"
FIXTURES = ROOT / "tests" / "fixtures" / "html"


def best_of(runs: int, loop) -> float:
    loop()  # warm-up: trafilatura and htmldate keep caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        loop()
        times.append(time.perf_counter() - started)
    return min(times)


def test_signals_cost_beside_extraction():
    logging.disable(logging.WARNING)
    root = SHARED if SHARED.is_dir() else FIXTURES
    pages = [gzip.decompress(path.read_bytes()) for path in sorted(root.glob("*/html/*.gz"))]
    repeats = int(os.environ.get("BENCH_SIGNALS_REPEATS", "3"))
    config = ExtractConfig()
    url = "https://example.org/article"
    texts = [extract_bytes(body, None, url, config).text or "" for body in pages]

    extract_s = best_of(repeats, lambda: [extract_bytes(body, None, url, config) for body in pages])
    signals_s = best_of(repeats, lambda: [signals(text) for text in texts])

    extract_ms = extract_s / len(pages) * 1000
    signals_ms = signals_s / len(pages) * 1000
    mean_words = sum(len(text.split()) for text in texts) / len(texts)
    print(f"\nsignals beside extraction: {len(pages)} pages from {root}, {os.cpu_count()} cores")
    print(f"signals_pages: {len(pages)}")
    print(f"signals_mean_words_per_text: {mean_words:.0f}")
    print(f"extract_ms_per_doc: {extract_ms:.2f}")
    print(f"signals_ms_per_doc: {signals_ms:.3f}")
    print(f"signals_over_extract_percent: {100 * signals_ms / extract_ms:.1f}")
    assert len(texts) == len(pages) and sum(map(len, texts)) > 0
