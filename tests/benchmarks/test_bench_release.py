"""Release stage tokens/s beside a bare `tokenizers` batch-encode loop on the same documents (make bench).

Documents: the real WebText test/valid texts of $WEBTEXT_SHARED_DATA/webtext_samples (first 63 tokens of each)
joined in groups of 8 to article length, repeated BENCH_RELEASE_REPEAT times (default 66: about 20M tokens,
the size the target is set at; 4 gives 1.2M), GPT-2's own vocabulary from tests/fixtures/gpt2_bpe.

Figures: wall time and CPU time (this process and its children, so the DirectRunner's worker processes count)
of the bare loop (best of two) and of the stage on each worker count of BENCH_RELEASE_WORKERS ("1,2"), plus
the stage's fixed cost (the same stage on 1/50 of the documents, 1 worker): what it spends whatever the size
(Beam's pipeline, the datasheet's plots). The bare loop is `encode_batch` in batches of 512, which, like the
stage on one worker, runs on every core. Target: the stage on 1 worker >= 0.7x the bare loop at 20M tokens
and above, and 2 workers faster than 1. Printed as `name: value` lines; BENCH_RESULTS, when set, gets them
as JSON lines. Only sanity is asserted.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest

from corpus.tokenizer import gpt2_tokenizer
from pipelines.release.stage import STAGE
from pipelines.release.transform import ReleaseOptions
from tests.benchmarks import results
from tests.conftest import committed
from tests.pipelines.test_dedup_filter import doc, write_docs

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
WEBTEXT = SHARED / "webtext_samples" / "webtext.test.first63tok.jsonl"
GPT2 = ROOT / "tests" / "fixtures" / "gpt2_bpe"
MULTI = ["--direct_running_mode=multi_processing", "--default_sdk_harness_log_level=WARNING"]

pytestmark = pytest.mark.skipif(not WEBTEXT.is_file(), reason=f"shared data not found: {WEBTEXT}")


def cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (the DirectRunner's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of fn()."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def report(name: str, value: float | str) -> None:
    results.report("release", name, value)


def test_release_tokens_per_second_against_bare_batch_encode(tmp_path):
    lines = [json.loads(line)["text"] for line in WEBTEXT.read_text(encoding="utf-8").splitlines()]
    repeat = int(os.environ.get("BENCH_RELEASE_REPEAT", "66"))
    workers = [int(w) for w in os.environ.get("BENCH_RELEASE_WORKERS", "1,2").split(",")]
    texts = ["\n\n".join(lines[i : i + 8]) for i in range(0, len(lines), 8)] * repeat
    tokenizer = gpt2_tokenizer(str(GPT2))

    def bare():
        for i in range(0, len(texts), 512):
            tokenizer.encode_batch(texts[i : i + 512])

    tokens = sum(
        len(ids) for i in range(0, len(texts), 512) for ids in tokenizer.encode_batch(texts[i : i + 512])
    )
    rows = [doc(f"https://example.org/{i}", text, karma=i % 9) for i, text in enumerate(texts)]
    work = write_docs(tmp_path / "work", rows)
    small = write_docs(tmp_path / "small", rows[: max(1, len(rows) // 50)])
    options = ReleaseOptions(
        str(committed(work, "extract") / "part-*.parquet"), tokenizer.to_json(), f"gpt2:{GPT2}"
    )
    fixed_options = ReleaseOptions(
        str(committed(small, "extract") / "part-*.parquet"), tokenizer.to_json(), f"gpt2:{GPT2}"
    )
    print(
        f"\nrelease stage, {len(texts)} documents, {tokens} tokens (GPT-2 vocabulary), {os.cpu_count()} "
        f"cores, load {os.getloadavg()[0]:.2f} at start"
    )
    bare_wall, bare_cpu = min(timed(bare) for _ in range(2))
    report("release bare encode_batch tokens/s", round(tokens / bare_wall))
    report("release bare encode_batch cpu s", round(bare_cpu, 1))
    fixed_wall, _ = timed(lambda: STAGE.run(fixed_options, str(tmp_path / "fixed"), []))
    report("release stage fixed cost s (1/50 of the documents, 1 worker)", round(fixed_wall, 1))
    rate = {}
    for n in workers:
        extra = [] if n == 1 else [f"--direct_num_workers={n}", *MULTI]
        wall, cpu = timed(lambda extra=extra, n=n: STAGE.run(options, str(tmp_path / f"w{n}"), extra))
        rate[n] = tokens / wall
        report(f"release stage {n} worker(s) tokens/s", round(rate[n]))
        report(f"release stage {n} worker(s) cpu s", round(cpu, 1))
        report(f"ratio release {n} worker(s) / bare", round(rate[n] / (tokens / bare_wall), 2))
    if 1 in rate and 2 in rate:
        report("release speed-up 2 workers / 1", round(rate[2] / rate[1], 2))
    if 1 in rate:
        met = "met" if rate[1] >= 0.7 * tokens / bare_wall else "NOT met"
        report(f"target release 1 worker >= 0.7x bare at {tokens / 1e6:.1f}M tokens", met)
    print(f"load {os.getloadavg()[0]:.2f} at end")
    assert all(r > 0 for r in rate.values())
