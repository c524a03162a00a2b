"""TimedExtractor throughput beside a bare in-process loop on the same pages (run by `make bench`).

Pages: the 197 shared real pages ($WEBTEXT_SHARED_DATA/html_extraction, default <repo>/../shared/data) when
present, else the 10 fixture pages; repeated to BENCH_EXTRACT_PAGES documents (default: each page once, at
least 100). The bare loop runs exactly what the child runs (decode_html + the pipeline's trafilatura
options, `extract_bytes`) in this process; plain `trafilatura.extract` with comments off is printed for scale.
Each loop runs once to warm up (trafilatura and htmldate keep caches) and then twice; the faster run counts.

`test_metadata_cost` splits the per-page cost: parsing, trafilatura's extract_metadata (with and without
htmldate's extensive search), the four docs-table fields the pipeline computes (`metadata`), and the author
search both ways, in CPU ms per page (warm, best of BENCH_EXTRACT_REPEATS, default 3). BENCH_RESULTS: append
the figures as JSON.
"""

from __future__ import annotations

import gzip
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trafilatura

import corpus.extract as extract_module
from corpus.extract import EXTRACTOR, ExtractConfig, TimedExtractor, decode_html, extract_bytes
from corpus.fetch_index import INDEX_SCHEMA, index_row
from corpus.warc import WarcFileWriter
from pipelines.extract.stage import STAGE
from pipelines.extract.transform import ExtractOptions
from pipelines.outputs import write_table
from tests.benchmarks.results import record

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "html_extraction"
FIXTURES = ROOT / "tests" / "fixtures" / "html"


def load_pages() -> tuple[str, list[bytes]]:
    root = SHARED if SHARED.is_dir() else FIXTURES
    paths = sorted(root.glob("*/html/*.gz"))
    pages = [gzip.decompress(path.read_bytes()) for path in paths]
    count = int(os.environ.get("BENCH_EXTRACT_PAGES", max(len(pages), 100)))
    return str(root), [pages[i % len(pages)] for i in range(count)]


def timed_call(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def best_of(runs: int, loop) -> float:
    loop()  # warm-up
    return min(timed_call(loop) for _ in range(runs))


def test_timed_extractor_throughput_against_bare_loop():
    logging.disable(logging.WARNING)  # trafilatura warns once per discarded page
    source, pages = load_pages()
    config = ExtractConfig()
    url = "https://example.org/article"
    bare_results: list = []
    timed_results: list = []

    def plain():
        for body in pages:
            trafilatura.extract(decode_html(body, None), url=url, include_comments=False)

    def bare():
        bare_results[:] = [extract_bytes(body, None, url, config) for body in pages]

    with TimedExtractor(config) as extractor:
        started = time.perf_counter()
        extractor.extract(b"", None, url)
        startup = time.perf_counter() - started

        def timed():
            timed_results[:] = [extractor.extract(body, None, url) for body in pages]

        seconds = {"plain": best_of(2, plain), "bare": best_of(2, bare), "timed": best_of(2, timed)}
        # IPC round trip: an empty body (refused at once), alternately through the child and in this process.
        child, here = [], []
        for _ in range(200):
            child.append(timed_call(lambda: extractor.extract(b"", None, url)))
            here.append(timed_call(lambda: extract_bytes(b"", None, url, config)))
        ipc = statistics.median(child) - statistics.median(here)
        restarts = extractor.restarts

    assert timed_results == bare_results and restarts == 0
    rate = {name: len(pages) / s for name, s in seconds.items()}
    mean_kib = sum(map(len, pages)) / len(pages) / 1024
    print(f"\nextract, {EXTRACTOR}: {len(pages)} pages (mean {mean_kib:.0f} KiB), {os.cpu_count()} cores")
    print(f"  pages from {source}")
    print(f"  trafilatura.extract, comments off, 1 pass {rate['plain']:7.1f} pages/s")
    print(f"  bare loop, extract_bytes in this process  {rate['bare']:7.1f} pages/s")
    print(f"  TimedExtractor, child process             {rate['timed']:7.1f} pages/s")
    print(f"  ratio TimedExtractor / bare loop          {rate['timed'] / rate['bare']:7.2f}x")
    per_page = seconds["bare"] / len(pages)
    print(f"  child start-up {startup * 1000:.0f} ms; bare loop {per_page * 1000:.1f} ms/page")
    print(f"  IPC round trip {ipc * 1e6:.0f} us/page (median, empty body); bodies travel in the ratio above")
    assert rate["timed"] > 0


def test_metadata_cost():
    from trafilatura.metadata import extract_author
    from trafilatura.settings import set_date_params
    from trafilatura.utils import load_html

    logging.disable(logging.WARNING)
    source, pages = load_pages()
    repeats = int(os.environ.get("BENCH_EXTRACT_REPEATS", "3"))
    url = "https://example.org/article"
    trees = [load_html(decode_html(body, None)) for body in pages]
    steps = {
        "decode_html + load_html": lambda: [load_html(decode_html(body, None)) for body in pages],
        "extract_metadata, extensive dates": lambda: [
            trafilatura.extract_metadata(tree, url, set_date_params(True)) for tree in trees
        ],
        "extract_metadata, no extensive dates": lambda: [
            trafilatura.extract_metadata(tree, url, set_date_params(False)) for tree in trees
        ],
        "metadata(): the docs table's four fields": lambda: [
            extract_module.metadata(tree, url, False) for tree in trees
        ],
        "trafilatura extract_author, every page": lambda: [extract_author(tree) for tree in trees],
        "_author without the page copy, every page": lambda: [extract_module._author(tree) for tree in trees],
        "extract_bytes, ExtractConfig()": lambda: [
            extract_bytes(body, None, url, ExtractConfig()) for body in pages
        ],
    }
    figures = {}
    for name, step in steps.items():
        step()  # warm-up: htmldate, dateparser and trafilatura fill their caches
        best = min(_cpu_seconds(step) for _ in range(repeats))
        figures[name] = best / len(pages) * 1000
    print(f"\nextract, CPU ms per page (warm, best of {repeats}), {len(pages)} pages from {source}")
    for name, ms in figures.items():
        print(f"  {name}: {ms:.2f}")
        record("extract", f"metadata cost ms per page, {name}", ms)
    assert figures["metadata(): the docs table's four fields"] > 0


def _cpu_seconds(step) -> float:
    started = time.process_time()
    step()
    return time.process_time() - started


def write_indexed_pages(work: Path, pages: list[bytes]) -> str:
    """The pages as response records of one WARC, and an index of ok rows pointing at them."""
    (work / "fetch").mkdir(parents=True)
    rows = []
    with open(work / "fetch" / "bench.warc.gz", "wb") as handle:
        writer = WarcFileWriter(handle)
        for i, body in enumerate(pages):
            url = f"https://example.org/article/{i}"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
            offset, length = writer.write_exchange(
                url, "192.0.2.1", "2026-11-22T00:00:00Z", b"GET / HTTP/1.1\r\n\r\n", head + body
            )
            link = {
                "url": url,
                "domain": "example.org",
                "karma": 3,
                "submission_ids": [str(i)],
                "subreddits": ["bench"],
                "first_created_utc": 0,
            }
            rows.append(
                index_row(
                    link,
                    "ok",
                    status=200,
                    content_type="text/html",
                    size=len(body),
                    warc_file="fetch/bench.warc.gz",
                    offset=offset,
                    length=length,
                )
            )
    write_table(str(work / "fetch" / "index-00000-of-00001.parquet"), rows, INDEX_SCHEMA)
    return str(work / "fetch" / "index-*.parquet")


BARE_LOOP = """
import logging, os, sys, time
logging.disable(logging.WARNING)
sys.path.insert(0, {root!r})
from corpus.extract import ExtractConfig, extract_bytes
from tests.benchmarks.test_bench_extract import load_pages
pages = load_pages()[1] * {repeat}
config = ExtractConfig()
started = time.perf_counter()
for body in pages:
    extract_bytes(body, "text/html", "https://example.org/article", config)
print(time.perf_counter() - started)
"""


def bare_loop_seconds(repeat: int) -> float:
    """The bare loop in a fresh interpreter: cold caches, like the stage's extraction process."""
    code = BARE_LOOP.format(root=str(ROOT), repeat=repeat)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def test_extract_stage_throughput_against_bare_loop(tmp_path):
    logging.disable(logging.WARNING)
    source, pages = load_pages()
    repeat = int(os.environ.get("BENCH_EXTRACT_STAGE_REPEAT", "5"))
    pages = pages * repeat
    config = ExtractConfig()
    index = write_indexed_pages(tmp_path / "work", pages)
    bare = bare_loop_seconds(repeat)
    one = timed_call(
        lambda: STAGE.run(ExtractOptions(index, str(tmp_path / "work"), config), str(tmp_path / "one"), [])
    )
    multi = [
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
        "--default_sdk_harness_log_level=WARNING",
    ]
    two = timed_call(
        lambda: STAGE.run(
            ExtractOptions(index, str(tmp_path / "work"), config, num_shards=2), str(tmp_path / "two"), multi
        )
    )
    rate = {name: len(pages) / s for name, s in (("bare", bare), ("one", one), ("two", two))}
    print(f"\nextract stage, {len(pages)} pages from {source} (each page {repeat}x), {os.cpu_count()} cores")
    print(f"  bare loop, extract_bytes, fresh process   {rate['bare']:7.1f} pages/s")
    print(
        f"  extract stage, 1 worker (in-process)     {rate['one']:7.1f} pages/s   "
        f"ratio {rate['one'] / rate['bare']:.2f}x"
    )
    print(
        f"  extract stage, 2 workers                 {rate['two']:7.1f} pages/s   "
        f"per worker {rate['two'] / 2 / rate['bare']:.2f}x, speed-up {rate['two'] / rate['one']:.2f}x"
    )
    assert rate["one"] > 0
