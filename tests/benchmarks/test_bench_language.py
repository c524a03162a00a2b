"""The language label's accuracy and speed on real pages, beside extraction's time on the same pages.

Pages: the 247 HTML pages of $WEBTEXT_SHARED_DATA (default <repo>/../shared/data) under warc/ and
html_extraction/ whose language is known (tests/fixtures/language/pages.tsv: 187 English, 60 in eight other
languages; 217 different texts). Skipped when the shared data is absent.

Each page goes through `corpus.extract.extract_bytes` (the stage's extraction, default ExtractConfig), then
`corpus.language.LanguageIdentifier.identify` on its text. Accuracy is counted over the different texts (the
29 ClueWeb pages that extract to one text count once), and over the non-English ones. Times are the
process's CPU time (on a shared machine wall time measures the neighbours too), warm: one pass to warm up
(trafilatura and htmldate fill their caches), then the best of BENCH_LANGUAGE_REPEATS (default 2), for
both. Prints `name: value` lines; BENCH_RESULTS: append the figures as JSON.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from corpus.extract import ExtractConfig, extract_bytes
from corpus.language import LanguageIdentifier
from tests.benchmarks.results import record

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
LABELS = ROOT / "tests" / "fixtures" / "language" / "pages.tsv"
SCRAPINGHUB = "html_extraction/scrapinghub_aeb/"


def warc_pages(path: Path) -> dict[int, tuple[bytes, str | None]]:
    """{record index: (HTTP body, Content-Type)} of a WARC/ARC file's responses; a truncated file gives
    the records before the damage."""
    pages = {}
    with open(path, "rb") as handle:
        try:
            for index, record in enumerate(ArchiveIterator(handle, arc2warc=True)):
                if record.rec_type == "response" and record.http_headers is not None:
                    content_type = record.http_headers.get_header("Content-Type")
                    pages[index] = (record.content_stream().read(), content_type)
        except Exception:  # resiliparse_clipped.warc.gz is deliberately cut short
            pass
    return pages


def labelled_pages() -> list[tuple[str, str, bytes, str | None]]:
    """(page, true language, body, Content-Type) for every row of pages.tsv."""
    rows = list(csv.DictReader(LABELS.open(encoding="utf-8"), delimiter="\t"))
    warcs: dict[str, dict] = {}
    pages = []
    for row in rows:
        name, _, index = row["page"].partition("#")
        if index:
            if name not in warcs:
                warcs[name] = warc_pages(SHARED / name)
            body, content_type = warcs[name][int(index)]
        else:
            body = gzip.decompress((SHARED / name).read_bytes())
            # the scrapinghub benchmark saved its pages as UTF-8; trafilatura's eval pages carry their charset
            content_type = "text/html; charset=utf-8" if name.startswith(SCRAPINGHUB) else None
        pages.append((row["page"], row["language"], body, content_type))
    return pages


def best_of(repeats: int, loop) -> float:
    loop()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.process_time()
        loop()
        times.append(time.process_time() - started)
    return min(times)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not (SHARED / "html_extraction").is_dir(), reason=f"no shared data at {SHARED}")
def test_language_accuracy_and_speed_beside_extraction():
    logging.disable(logging.WARNING)  # trafilatura warns once per discarded page
    repeats = int(os.environ.get("BENCH_LANGUAGE_REPEATS", "2"))
    pages = labelled_pages()
    config = ExtractConfig()
    url = "https://example.org/article"

    texts: list[str] = []

    def extract_all():
        texts[:] = [
            extract_bytes(body, content_type, url, config).text or "" for _, _, body, content_type in pages
        ]

    extract_seconds = best_of(repeats, extract_all)

    before = rss_mib()
    started = time.perf_counter()
    identifier = LanguageIdentifier()
    identifier.model()
    load_seconds = time.perf_counter() - started
    model_mib = rss_mib() - before

    answers: list[tuple[str, float]] = []

    def identify_all():
        answers[:] = [identifier.identify(text) for text in texts]

    identify_seconds = best_of(repeats, identify_all)

    unique = {}  # text -> (true, predicted): a text that several pages share counts once
    for (_, truth, _, _), text, (predicted, _) in zip(pages, texts, answers, strict=True):
        unique.setdefault(text, (truth, predicted))
    right = sum(truth == predicted for truth, predicted in unique.values())
    foreign = [(truth, predicted) for truth, predicted in unique.values() if truth != "en"]
    foreign_right = sum(truth == predicted for truth, predicted in foreign)
    short = Counter(
        identifier.identify(text[:100])[0] == truth for text, (truth, _) in unique.items() if text.strip()
    )
    errors = sorted(
        f"{page} {truth}->{predicted}"
        for (page, truth, _, _), (predicted, _) in zip(pages, answers, strict=True)
        if truth != predicted
    )

    figures = {
        "pages": len(pages),
        "different texts": len(unique),
        "languages": dict(sorted(Counter(truth for truth, _ in unique.values()).items())),
        "accuracy": round(right / len(unique), 4),
        "accuracy, not English": round(foreign_right / len(foreign), 4),
        "accuracy, first 100 characters": round(short[True] / sum(short.values()), 4),
        "language docs/s": round(len(pages) / identify_seconds, 1),
        "language ms/doc": round(identify_seconds / len(pages) * 1000, 3),
        "extraction ms/doc": round(extract_seconds / len(pages) * 1000, 2),
        "language / extraction time": round(identify_seconds / extract_seconds, 4),
        "model load s": round(load_seconds, 2),
        "model RSS MiB": round(model_mib),
    }
    print(f"\nlanguage identification, {len(pages)} pages from {SHARED}, CPU time")
    for name, value in figures.items():
        print(f"  {name}: {value}")
    print(f"  errors: {len(errors)}")
    for error in errors:
        print(f"    {error}")
    for name, value in figures.items():
        record("language", name, value)
    assert right / len(unique) >= 0.97  # issue 17 measured 272 of 272 (these pages and 55 English texts)
