"""One measured step of the scale harness, in a process of its own (run.py starts one per stage).

    python -m tests.benchmarks.scale.child SPEC_JSON

SPEC_JSON is {"kind": ..., "result": PATH, ...}; what the step did is written to PATH as JSON.

- `stage`: one stage of the chain exactly as `webtext STAGE` runs it, through the stage object:
  `s = stage(name); s.execute(s.parse(argv), beam_args)`. Adds the release's token count for release and
  ngrams (from its manifest.json).
- `loader`: the training loader (`build_loader` + `LoaderConfig`) over the release's train split, one pass.
- `dedup_quality`: not measured: how the dedup stage treated the planted pairs, per band of exact Jaccard.
- `merge`: not measured as a stage: the documents of the web chain's extract output and the generated
  documents table committed together as the extract output of the documents work directory.

A fresh process per step means each step's peak RSS is its own: run.py reads it from `os.wait4`, the
kernel's maximum resident set of this process and of every process it waited for (Beam's worker processes,
the extractor's child), the largest single one, not their sum.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from pathlib import Path


def run_stage(spec: dict) -> dict:
    from pipelines.chain import stage
    from webtext.cli import configure_logging

    configure_logging(False)
    chosen = stage(spec["name"])
    result = chosen.execute(chosen.parse(spec["argv"]), spec.get("beam_args", []))
    report = {
        "items_in": result.items_in,
        "items_out": result.items_out,
        "stage_seconds": result.seconds,
        "dropped": dict(result.dropped),
        "output": result.output.path,
    }
    if spec["name"] in ("release", "ngrams"):
        report.update(release_counts(spec["release"]))
    entry = getattr(result, "entry", None)
    if entry:  # ngrams: the filter's layout, and the largest piece one worker fills
        parts = entry.get("parts") or [entry]
        report |= {
            "filter_bytes": entry["bytes"],
            "partitions": entry.get("partitions", 1),
            "largest_partition_bytes": max(part["bytes"] for part in parts),
        }
    return report


def release_counts(work_dir: str) -> dict:
    """Documents and tokens per split of the release committed in `work_dir` (from its manifest.json)."""
    from pipelines.outputs import stage_output

    manifest = json.loads(Path(stage_output(work_dir, "release").path, "manifest.json").read_text("utf-8"))
    counts = {"tokens": 0, "docs": 0}
    for split, entries in manifest["splits"].items():
        tokens = sum(e["tokens"] for e in entries)
        counts[f"{split}_tokens"] = tokens
        counts["tokens"] += tokens
        counts["docs"] += sum(e["docs"] for e in entries)
    return counts


def run_loader(spec: dict) -> dict:
    """One pass over the train split: as many (micro_batch, seq_len) batches as its tokens fill."""
    from training.config import LoaderConfig
    from training.data import build_loader
    from training.release import open_release

    release = open_release(spec["release"])
    seq_len, micro_batch = spec.get("seq_len", 1024), spec.get("micro_batch", 8)
    tokens = sum(e["tokens"] + e["docs"] for e in release.shards("train"))
    steps = tokens // (micro_batch * (seq_len + 1))
    config = LoaderConfig("train", seq_len, micro_batch, seed=0, num_workers=spec.get("num_workers", 0))
    started = time.perf_counter()
    batches, seen = iter(build_loader(release, config)), 0
    for _ in range(steps):
        x, _y = next(batches)
        seen += x.numel()
    seconds = time.perf_counter() - started
    return {"items_in": seen, "items_out": seen, "tokens": seen, "steps": steps, "stage_seconds": seconds}


def run_merge(spec: dict) -> dict:
    """Commit the extract output of spec["web"] and the generated parts of spec["generated"] as the extract
    output of spec["out"], renumbered part-NNNNN-of-NNNNN.parquet."""
    import shutil

    from pipelines.outputs import StageOutput, stage_output

    parts = []
    if spec.get("web"):
        parts += sorted(Path(stage_output(spec["web"], "extract").path).glob("part-*.parquet"))
    parts += sorted(Path(spec["generated"]).glob("part-*.parquet"))
    output = StageOutput(spec["out"], "extract")
    Path(output.root).mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(parts):
        shutil.copyfile(path, output.path(f"part-{index:05d}-of-{len(parts):05d}.parquet"))
    output.publish()
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    return {"items_in": rows, "items_out": rows, "parts": len(parts), "stage_seconds": 0.0}


BANDS = ((0.0, 0.7), (0.7, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 1.0001))


def run_dedup_quality(spec: dict) -> dict:
    """Per band of exact Jaccard, the share of planted (variant, source) pairs that dedup put in one cluster:
    recall above the 0.8 threshold, false merges below it. A cluster is a connected component, so two
    variants of one source can join pairs below the threshold through a third document; the share under 0.7
    counts those too."""
    import pyarrow.parquet as pq

    from pipelines.outputs import stage_output

    kept: dict[str, str] = {}
    for path in sorted(Path(stage_output(spec["docs"], "dedup").path).glob("clusters-*.parquet")):
        table = pq.read_table(path, columns=["id", "kept_id"])
        kept.update(zip(table.column("id").to_pylist(), table.column("kept_id").to_pylist(), strict=True))

    def root(doc: str) -> str:
        while kept.get(doc, doc) != doc:  # an exact duplicate's kept copy can itself be a near duplicate
            doc = kept[doc]
        return doc

    counts = {f"{lo:.2f}-{min(hi, 1.0):.2f}": [0, 0] for lo, hi in BANDS}
    with open(spec["planted"], encoding="utf-8") as lines:
        for line in lines:
            pair = json.loads(line)
            band = next(f"{lo:.2f}-{min(hi, 1.0):.2f}" for lo, hi in BANDS if lo <= pair["jaccard"] < hi)
            counts[band][0] += 1
            counts[band][1] += root(pair["id"]) == root(pair["source"])
    shares = {band: round(same / n, 4) for band, (n, same) in counts.items() if n}
    return {
        "pairs": {band: n for band, (n, _) in counts.items()},
        "same_cluster": shares,
        "stage_seconds": 0.0,
    }


KINDS = {"stage": run_stage, "loader": run_loader, "merge": run_merge, "dedup_quality": run_dedup_quality}


def main() -> None:
    spec = json.loads(sys.argv[1])
    started = time.perf_counter()
    report = KINDS[spec["kind"]](spec)
    report["child_seconds"] = time.perf_counter() - started
    report["self_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report["children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    Path(spec["result"]).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    # As the console script ends (webtext/cli.py `run`): Arrow's and gRPC's native threads must not outlive
    # the interpreter's teardown.
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
