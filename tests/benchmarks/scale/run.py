"""`make scale`: every stage of the chain and the training loader at growing input sizes, measured.

    python -m tests.benchmarks.scale.run [--factors 1 4 16] [--quick] [--seed 0] [--out build/scale]

Environment (the Makefile passes them through): SCALE_FACTORS ("1 4 16"), SCALE_QUICK (1: factors "0.02
0.08" unless SCALE_FACTORS is set), SCALE_SEED, SCALE_EXTRA (a folder of richer real data, e.g.
../shared/data), SCALE_BEAM_ARGS (Beam options for every stage, e.g. "--direct_num_workers=2
--direct_running_mode=multi_processing"; default: the DirectRunner, one worker, in-process), SCALE_KEEP (1:
keep each factor's inputs and work directories), SCALE_NGRAMS_MEMORY (ngrams --max-memory, default
64MiB), SCALE_FIXED_SHARDS (1: shards of one size at every factor, see `steps`), SCALE_STEP_TIMEOUT
(seconds per step, default 3600), BENCH_RESULTS (append every figure there as JSON lines).

At each factor S: generate the inputs (generate.py), then run, each in a fresh process (child.py): links on
the dumps, fetch --from-warc on the WARC pages, extract; the extracted documents and the generated documents
table are committed together (merge, not a stage), then dedup (followed by dedup_quality, not a stage: how
it treated the planted near-duplicate pairs), filter (with decontamination against the bundled LAMBADA
sample), release (GPT-2's vocabulary), ngrams and one pass of the training loader.

Per step it records the wall time of the process (interpreter and Beam start-up included: what a user waits
for), the stage's own time, throughput, bytes written (growth of the work directory) and the peak RSS of the
largest process, from `os.wait4`'s rusage of that one child: the kernel's high-water mark of the child and of
every descendant it waited for, the largest single process, not a sum. Two things keep that figure honest:
every step is a process of its own (a process's ru_maxrss never goes down), and this runner stays small and
starts no heavy import, because a child's ru_maxrss starts at its parent's RSS when it forks (the runner's own
high-water mark is recorded as `runner_maxrss_mib`: the floor under every figure).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tests.benchmarks.scale.report import print_report, ratios, write_plot

ROOT = Path(__file__).resolve().parents[3]
GPT2 = ROOT / "tests" / "fixtures" / "gpt2_bpe"
LAMBADA = ROOT / "corpus" / "sample" / "eval" / "lambada_test.first200.jsonl"
DEFAULT_FACTORS, QUICK_FACTORS = "1 4 16", "0.02 0.08"
# Each ngrams worker's filter partition is capped at this, so the partitions grow with the corpus (P = 1 at
# 1x) and the per-worker figure stays flat: the stage's memory at WebText size, scaled down.
NGRAMS_MEMORY = os.environ.get("SCALE_NGRAMS_MEMORY", "64MiB")
FIXED_SHARDS = os.environ.get("SCALE_FIXED_SHARDS", "") not in ("", "0")
STEP_TIMEOUT_S = float(os.environ.get("SCALE_STEP_TIMEOUT", "3600"))  # a step past it is killed and recorded


@dataclass
class Step:
    name: str
    kind: str  # child.py kind: stage, loader, merge
    spec: dict
    unit: str  # what throughput counts
    writes: Path | None  # the work directory whose growth is the bytes written
    measured: bool = True  # merge and dedup_quality are harness steps: recorded, never in the ratios


def steps(inputs: Path, web: Path, docs: Path, factor: float = 1.0) -> list[Step]:
    """The measured chain at one factor. With SCALE_FIXED_SHARDS, dedup and filter write 2 shards per unit of
    factor and release shards of 16 MB, so a shard (what one worker holds to sort and write) is the same size
    at every factor; by default each stage sizes its shards itself (one per 100,000 documents, 256 MB)."""
    docs_shards, release_shards = [], []
    if FIXED_SHARDS:
        docs_shards = ["--num-shards", max(1, math.ceil(2 * factor))]
        release_shards = ["--shard-bytes", 16_000_000]

    def stage(name: str, argv: list, unit: str, writes: Path, **spec) -> Step:
        return Step(name, "stage", {"name": name, "argv": [str(a) for a in argv], **spec}, unit, writes)

    return [
        stage("links", ["--dumps", f"{inputs}/dumps/*.zst", "--out", web], "submissions", web),
        stage(
            "fetch", ["--links", web, "--from-warc", f"{inputs}/warc/*.warc.gz", "--out", web], "links", web
        ),
        stage("extract", ["--fetch", web, "--out", web], "pages", web),
        Step(
            "merge",
            "merge",
            {"web": str(web), "generated": str(inputs / "docs"), "out": str(docs)},
            "docs",
            docs,
            False,
        ),
        stage("dedup", ["--docs", docs, "--out", docs, *docs_shards], "docs", docs),
        Step(
            "dedup_quality",
            "dedup_quality",
            {"docs": str(docs), "planted": str(inputs / "docs" / "planted.jsonl")},
            "pairs",
            None,
            False,
        ),
        stage(
            "filter",
            ["--docs", docs, "--out", docs, "--decontaminate", f"lambada={LAMBADA}", *docs_shards],
            "docs",
            docs,
        ),
        stage(
            "release",
            ["--docs", docs, "--out", docs, "--tokenizer", f"gpt2:{GPT2}", *release_shards],
            "tokens",
            docs,
            release=str(docs),
        ),
        stage(
            "ngrams",
            ["--release", docs, "--max-memory", NGRAMS_MEMORY],
            "tokens",
            docs,
            release=str(docs),
        ),
        Step("loader", "loader", {"release": str(docs)}, "tokens", None),
    ]


def measure(argv: list[str], log: Path) -> dict:
    """Run argv to its end; wall seconds, exit status and the peak RSS (MiB) of its largest process.

    The child leads a process group of its own, so a step past STEP_TIMEOUT_S or an interrupted run ends the
    step with every worker it started (and nothing else)."""
    started = time.perf_counter()
    with open(log, "wb") as out:
        child = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        timer = threading.Timer(STEP_TIMEOUT_S, _kill_group, (child.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            _kill_group(child.pid)
            raise
        finally:
            timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "rc": child.returncode,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def tree_bytes(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_step(step: Step, workdir: Path, beam_args: list[str]) -> dict:
    result_file = workdir / f"{step.name}.result.json"
    spec = {"kind": step.kind, "result": str(result_file), **step.spec}
    if step.kind == "stage":
        spec["beam_args"] = beam_args
    before = tree_bytes(step.writes)
    load = os.getloadavg()[0]
    record = measure(
        [sys.executable, "-m", "tests.benchmarks.scale.child", json.dumps(spec)], workdir / f"{step.name}.log"
    )
    record.update(step=step.name, unit=step.unit, measured=step.measured, load_1min_before=round(load, 2))
    if record["rc"] != 0 or not result_file.is_file():
        tail = (workdir / f"{step.name}.log").read_text("utf-8", "replace")[-3000:]
        record["error"] = tail
        return record
    report = json.loads(result_file.read_text("utf-8"))
    record["bytes_written"] = tree_bytes(step.writes) - before
    keys = (
        "items_in",
        "items_out",
        "tokens",
        "docs",
        "train_tokens",
        "val_tokens",
        "steps",
        "parts",
        "partitions",
        "largest_partition_bytes",
        "filter_bytes",
    )
    for key in (*keys, "pairs", "same_cluster"):
        if key in report:
            record[key] = report[key]
    record["stage_s"] = round(report.get("stage_seconds", 0.0), 3)
    # The step's own process (with Beam's in-process runner: runner and worker in one) and the largest of
    # the processes it started (multi_processing: Beam's worker processes; the extractor's child).
    record["self_peak_rss_mib"] = round(report.get("self_maxrss_kib", 0) / 1024, 1)
    record["children_peak_rss_mib"] = round(report.get("children_maxrss_kib", 0) / 1024, 1)
    record["dropped"] = report.get("dropped", {})
    work = record.get("tokens") if step.unit == "tokens" else record.get("items_in")
    record["work"] = work
    record["throughput"] = round(work / record["wall_s"], 1) if work and record["wall_s"] else None
    return record


def generate_inputs(out: Path, factor: float, seed: int, extra: str | None, workdir: Path) -> dict:
    argv = [
        sys.executable,
        "-m",
        "tests.benchmarks.scale.generate",
        "--factor",
        str(factor),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    if extra:
        argv += ["--extra", extra]
    record = measure(argv, workdir / "generate.log")
    if record["rc"] != 0:
        log = (workdir / "generate.log").read_text("utf-8", "replace")[-3000:]
        raise SystemExit(f"scale: generating factor {factor} failed (exit status {record['rc']}):\n{log}")
    meta = json.loads((out / "meta.json").read_text("utf-8"))
    meta.pop("files", None)
    return {"generate": record, "inputs": meta, "input_bytes": tree_bytes(out)}


def run_factor(factor: float, args: argparse.Namespace, results: dict) -> bool:
    label = f"{factor:g}"
    inputs, work = args.out / "inputs" / label, args.out / "work" / label
    for path in (inputs, work):
        shutil.rmtree(path, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"\nscale: factor {label}: generating inputs", flush=True)
    run = generate_inputs(inputs, factor, args.seed, args.extra, work)
    run["steps"] = {}
    results["runs"][label] = run
    chain = steps(inputs, work / "web", work / "docs", factor)
    results["stages"] = [step.name for step in chain if step.measured]
    results["steps"] = [step.name for step in chain]
    print(
        f"scale: factor {label}: {json.dumps(run['inputs']['sizes'])} in {run['generate']['wall_s']:.1f} s",
        flush=True,
    )
    ok = True
    for step in chain:
        record = run_step(step, work, args.beam_args)
        run["steps"][step.name] = record
        write_results(results, args.out)
        if "error" in record:
            log = work / f"{step.name}.log"
            print(f"scale: factor {label}: {step.name} FAILED (rc {record['rc']}); log {log}")
            print(record["error"][-1500:])
            ok = False
            break
        rate = f"{record['throughput']:,.0f} {step.unit}/s" if record["throughput"] else ""
        print(
            f"scale: factor {label}: {step.name:8s} {record['wall_s']:8.1f} s  {rate:>24s}  peak RSS "
            f"{record['peak_rss_mib']:7.0f} MiB  wrote {record.get('bytes_written', 0) / 2**20:8.1f} MiB",
            flush=True,
        )
    if ok and not args.keep:
        shutil.rmtree(inputs, ignore_errors=True)
        shutil.rmtree(work / "web", ignore_errors=True)
        shutil.rmtree(work / "docs", ignore_errors=True)
    return ok


def machine() -> dict:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    info = {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("apache-beam", "torch", "pyarrow", "tokenizers", "trafilatura")},
        "load_1_5_15_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    for path, key, field_name in (
        ("/proc/cpuinfo", "model name", "cpu_model"),
        ("/proc/meminfo", "MemTotal", "memory_kib"),
    ):
        try:
            line = next(line for line in Path(path).read_text().splitlines() if line.startswith(key))
            info[field_name] = line.split(":", 1)[1].strip()
        except (OSError, StopIteration):
            pass
    if "memory_kib" in info:
        info["memory_gib"] = round(int(info.pop("memory_kib").split()[0]) / 2**20, 1)
    return info


def write_results(results: dict, out: Path) -> Path:
    results["runner_maxrss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def parse(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.scale.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--factors", type=float, nargs="+", help=f"size factors (default {DEFAULT_FACTORS})")
    parser.add_argument(
        "--quick",
        action="store_true",
        default=env.get("SCALE_QUICK", "") not in ("", "0"),
        help=f"smoke run: factors {QUICK_FACTORS}",
    )
    parser.add_argument("--seed", type=int, default=int(env.get("SCALE_SEED", "0")))
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "scale")
    parser.add_argument(
        "--extra", default=env.get("SCALE_EXTRA") or None, help="a folder of richer real data"
    )
    parser.add_argument("--keep", action="store_true", default=env.get("SCALE_KEEP", "") not in ("", "0"))
    args = parser.parse_args(argv)
    if args.factors is None:
        args.factors = [
            float(x)
            for x in env.get("SCALE_FACTORS", QUICK_FACTORS if args.quick else DEFAULT_FACTORS).split()
        ]
    args.factors = sorted(set(args.factors))
    if not args.factors or min(args.factors) <= 0:
        parser.error("factors must be positive")
    args.beam_args = shlex.split(env.get("SCALE_BEAM_ARGS", ""))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        "harness": "tests/benchmarks/scale (make scale)",
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "seed": args.seed,
        "factors": args.factors,
        "beam_args": args.beam_args,
        "extra": args.extra,
        "runs": {},
    }
    started = time.perf_counter()
    ok = all([run_factor(factor, args, results) for factor in args.factors])
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["ratios"] = ratios(results)
    path = write_results(results, args.out)
    plot = write_plot(results, args.out / "scale.png")
    print_report(results, os.environ.get("BENCH_RESULTS"))
    print(f"\nscale: wrote {path} and {plot} in {results['total_s']:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
