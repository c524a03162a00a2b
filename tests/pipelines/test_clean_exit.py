"""A finished stage exits 0, every time. `webtext links` once aborted after printing its summary (exit -6,
"terminate called without an active exception": a native thread pool torn down at interpreter exit); the
console script now ends Beam verbs without that teardown (webtext/cli.py, `run`). Fifty runs of a small
stage, two at a time, as separate processes through the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import submission, write_dump

RUNS = 50


def test_a_small_stage_exits_0_fifty_times(tmp_path):
    dump = write_dump(
        tmp_path / "RS_tiny.jsonl", [submission(f"t{i}", f"https://example.org/{i}") for i in range(20)]
    )
    webtext = shutil.which("webtext", path=os.path.dirname(sys.executable))
    assert webtext, "the console script is installed beside the interpreter (make setup)"

    def run(i: int) -> tuple[int, str]:
        done = subprocess.run(
            [webtext, "links", "--dumps", str(dump), "--out", str(tmp_path / f"w{i}")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        return done.returncode, done.stderr[-500:]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, range(RUNS)))
    failures = [(i, code, err) for i, (code, err) in enumerate(results) if code != 0]
    assert not failures, failures[:3]
    assert all((tmp_path / f"w{i}" / "links" / "committed.json").is_file() for i in range(RUNS))
