"""Links stage throughput beside a bare single-process loop on the same input (run by `make bench`).

The input is the embedded real 2005 dumps repeated to BENCH_SUBMISSIONS lines (ids and URLs made
unique so aggregation sees realistic cardinality), zstd-compressed. The bare loop is what a script
would do: zstd stream + json.loads (inside parse_submission) + the same rules and canonical URLs + karma per
URL in a dict + one Parquet file of the links, sorted (it keeps no ledger).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from corpus.dumps import ZSTD_MAX_WINDOW
from corpus.link_rules import LINKS_SCHEMA, Dropped, LinkConfig, LinkRules, accumulate, decide_link
from corpus.submissions import Rejection, parse_submission
from pipelines.links.stage import STAGE as LINKS
from pipelines.links.transform import LinksOptions
from tests.conftest import SAMPLE

SUBMISSIONS = int(os.environ.get("BENCH_SUBMISSIONS", "300000"))


def make_input(path: Path, count: int) -> Path:
    lines = []
    for name in ("RS_v2_2005-06.shared.ndjson.zst", "RS_v2_2005-07.shared.ndjson.zst"):
        raw = zstandard.ZstdDecompressor().decompressobj().decompress((SAMPLE / name).read_bytes())
        lines += [json.loads(line) for line in raw.splitlines()]
    with open(path, "wb") as handle, zstandard.ZstdCompressor(level=3).stream_writer(handle) as out:
        for i in range(count):
            record = dict(lines[i % len(lines)])
            record["id"] = f"{record['id']}_{i}"
            record["url"] += ("&" if "?" in record["url"] else "?") + f"bench={i}"
            out.write(json.dumps(record).encode() + b"\n")
    return path


def bare_loop(path: Path, config: LinkConfig, out: Path | None = None) -> int:
    rules, per_url = LinkRules(config), {}
    with open(path, "rb") as raw:
        decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        stream = io.BufferedReader(decompressor.stream_reader(raw))
        for line in stream:
            parsed = parse_submission(line.rstrip(b"\n"))
            if isinstance(parsed, Rejection):
                continue
            decided = rules.apply(parsed)
            if isinstance(decided, Dropped):
                continue
            url, contribution = decided
            accumulate(per_url.setdefault(url, {}), contribution)
    rows = [row for url in sorted(per_url) if (row := decide_link(url, per_url[url], config).row) is not None]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=LINKS_SCHEMA),
        str(out or path.with_suffix(".parquet")),
        compression="zstd",
    )
    return len(rows)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def test_links_throughput_against_bare_loop(tmp_path):
    dump = make_input(tmp_path / "RS_bench.zst", SUBMISSIONS)
    config = LinkConfig()
    bare = timed(lambda: bare_loop(dump, config))
    one = timed(lambda: LINKS.run(LinksOptions([str(dump)], config), str(tmp_path / "one"), []))
    multi = [
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
        "--default_sdk_harness_log_level=WARNING",
    ]
    split = LinksOptions([str(dump)], config, num_shards=2, splits_per_file=2)
    two = timed(lambda: LINKS.run(split, str(tmp_path / "two"), multi))
    rate = {name: SUBMISSIONS / seconds for name, seconds in (("bare", bare), ("one", one), ("two", two))}
    size = dump.stat().st_size / 2**20
    print(f"\nlinks stage, {SUBMISSIONS} submissions ({size:.1f} MiB zstd), {os.cpu_count()} cores")
    print(f"  bare loop, 1 process           {rate['bare']:10.0f} submissions/s")
    print(
        f"  links stage, 1 worker          {rate['one']:10.0f} submissions/s   "
        f"ratio {rate['one'] / rate['bare']:.2f}x"
    )
    print(
        f"  links stage, 2 workers         {rate['two']:10.0f} submissions/s   "
        f"per worker {rate['two'] / 2 / rate['bare']:.2f}x, speed-up {rate['two'] / rate['one']:.2f}x"
    )
    assert rate["one"] > 0
