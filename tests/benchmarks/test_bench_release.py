"""Release stage tokens/s beside a bare `tokenizers` batch-encode loop on the same documents (make bench).

Documents: the real WebText test/valid texts of $WEBTEXT_SHARED_DATA/webtext_samples (first 63 tokens of each)
joined in groups of 8 to article length, GPT-2's own vocabulary from tests/fixtures/gpt2_bpe.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from corpus.tokenizer import gpt2_tokenizer
from pipelines.release.stage import STAGE
from pipelines.release.transform import ReleaseOptions
from tests.conftest import committed
from tests.pipelines.test_dedup_filter import doc, write_docs

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
WEBTEXT = SHARED / "webtext_samples" / "webtext.test.first63tok.jsonl"
GPT2 = ROOT / "tests" / "fixtures" / "gpt2_bpe"

pytestmark = pytest.mark.skipif(not WEBTEXT.is_file(), reason=f"shared data not found: {WEBTEXT}")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def test_release_tokens_per_second_against_bare_batch_encode(tmp_path):
    lines = [json.loads(line)["text"] for line in WEBTEXT.read_text(encoding="utf-8").splitlines()]
    repeat = int(os.environ.get("BENCH_RELEASE_REPEAT", "4"))
    texts = ["\n\n".join(lines[i : i + 8]) for i in range(0, len(lines), 8)] * repeat
    tokenizer = gpt2_tokenizer(str(GPT2))
    tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts))

    def bare():
        for i in range(0, len(texts), 512):
            tokenizer.encode_batch(texts[i : i + 512])

    rows = [doc(f"https://example.org/{i}", text, karma=i % 9) for i, text in enumerate(texts)]
    work = write_docs(tmp_path / "work", rows)
    docs = str(committed(work, "extract") / "part-*.parquet")
    options = ReleaseOptions(docs, tokenizer.to_json(), f"gpt2:{GPT2}")
    multi = [
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
        "--default_sdk_harness_log_level=WARNING",
    ]
    seconds = {
        "bare": min(timed(bare) for _ in range(2)),
        "one": timed(lambda: STAGE.run(options, str(tmp_path / "one"), [])),
        "two": timed(lambda: STAGE.run(options, str(tmp_path / "two"), multi)),
    }
    rate = {name: tokens / s for name, s in seconds.items()}
    print(
        f"\nrelease stage, {len(texts)} documents, {tokens} tokens (GPT-2 vocabulary), {os.cpu_count()} cores"
    )
    print(f"  bare tokenizers encode_batch loop   {rate['bare']:12,.0f} tokens/s")
    ratio = rate["one"] / rate["bare"]
    print(f"  release stage, 1 worker             {rate['one']:12,.0f} tokens/s   ratio {ratio:.2f}x")
    print(
        f"  release stage, 2 workers            {rate['two']:12,.0f} tokens/s   per worker "
        f"{rate['two'] / 2 / rate['bare']:.2f}x, speed-up {rate['two'] / rate['one']:.2f}x"
    )
    assert rate["one"] > 0
