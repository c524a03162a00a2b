"""`webtext build`: links -> fetch -> extract -> dedup -> filter -> release -> ngrams, resumable.

Each stage runs exactly as its own command would (same flags, same outputs under DIR). `DIR/build.json`
records every stage's command line, state (running / complete), seconds and counts. A rerun skips a stage
whose record says complete with the same command line and whose outputs are still there, and redoes a stage
that was running when the build stopped (it may or may not have committed) and every stage after it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from collections.abc import Callable

from corpus.accounting import CHAIN
from corpus.errors import InputError

STAGES = CHAIN  # the one ordered stage list (corpus/accounting.py)
RECORD = "build.json"
UNCOMPRESSED = "uncompressed"  # Beam's CompressionTypes.UNCOMPRESSED


def add_build_parser(sub) -> None:
    p = sub.add_parser(
        "build",
        allow_abbrev=False,
        help="links -> fetch -> extract -> dedup -> filter -> release -> ngrams, resumable (Beam)",
    )
    p.add_argument("--dumps", action="append", required=True, metavar="GLOB", help="Pushshift dumps")
    p.add_argument("--out", required=True, metavar="DIR", help="work directory: one subdirectory per stage")
    p.add_argument(
        "--from-warc", action="append", metavar="GLOB", help="fetch from existing WARC files, not the network"
    )
    p.add_argument(
        "--stage-flags",
        action="append",
        default=[],
        metavar='STAGE="FLAGS"',
        help='extra flags for one stage, e.g. release="--tokenizer train:32000"; repeatable',
    )
    p.add_argument("--force", action="store_true", help="rerun every stage, even complete ones")
    p.set_defaults(handler=run_build_command)


def run_build_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines.cli import run_step  # the CLI owns every stage's parser

    return run_build(args, beam_args, run_step)


def stage_flags(values: list[str]) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for value in values:
        stage, sep, text = value.partition("=")
        if not sep or stage not in STAGES:
            known = ", ".join(STAGES)
            raise InputError(f'--stage-flags {value!r}: expected STAGE="FLAGS", STAGE one of {known}')
        flags.setdefault(stage, []).extend(shlex.split(text))
    return flags


def build_steps(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(stage, command line) of every stage, in order."""
    out, extra = args.out, stage_flags(args.stage_flags)
    fetch = ["fetch", "--links", out, "--out", out]
    for pattern in args.from_warc or ():
        fetch += ["--from-warc", pattern]
    steps = {
        "links": ["links", *(x for d in args.dumps for x in ("--dumps", d)), "--out", out],
        "fetch": fetch,
        "extract": ["extract", "--fetch", out, "--out", out],
        "dedup": ["dedup", "--docs", out, "--out", out],
        "filter": ["filter", "--docs", out, "--out", out],
        "release": ["release", "--docs", out, "--out", out],
        "ngrams": ["ngrams", "--release", out],
    }
    return [(stage, steps[stage] + extra.get(stage, [])) for stage in STAGES]


def _filesystems():
    """Beam's FileSystems, imported when first used: importing it logs through the root logger (its cloud
    probes), which would set up logging before the CLI does."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _join(*parts: str) -> str:
    return _filesystems().join(*parts)


def _read_json(path: str) -> dict:
    with _filesystems().open(path, compression_type=UNCOMPRESSED) as handle:
        return json.loads(handle.read().decode("utf-8"))


def _read_record(out: str) -> dict:
    path = _join(out, RECORD)
    if not _filesystems().exists(path):
        return {}
    try:
        return _read_json(path)
    except ValueError as exc:
        raise InputError(f"{path}: unreadable build record ({exc}); remove it to rebuild") from None


def _write_record(out: str, record: dict) -> None:
    """Through Beam's filesystems, so `--out gs://...` works, in one atomic write."""
    from pipelines.outputs import write_atomic

    write_atomic(_join(out, RECORD), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _published(out: str, stage: str, argv: list[str]) -> dict | None:
    """What a stage committed: its stats.json (ngrams: its filter's manifest entry), or None."""
    from pipelines.outputs import find_stage_output, read_bytes

    output = find_stage_output(out, "release" if stage == "ngrams" else stage)
    if output is None:
        return None
    if stage != "ngrams":
        data = read_bytes(output.join("stats.json"))
        return None if data is None else json.loads(data)
    filters = _read_json(output.join("manifest.json")).get("ngrams", [])
    entry = next((e for e in filters if str(e["n"]) == _ngram_n(argv)), None)
    return entry if entry and _filesystems().exists(output.join(entry["path"])) else None


def _counts(out: str, stage: str, argv: list[str]) -> dict:
    """in/out of a finished stage, from what it published (ngrams: documents in, distinct n-grams out)."""
    published = _published(out, stage, argv)
    assert published is not None, f"{stage} succeeded but published nothing"
    if stage == "ngrams":
        return {"in": published["documents"], "out": published["items"]}
    return {"in": published["in"], "out": published["out"]}


def _is_complete(out: str, stage: str, argv: list[str], done: dict | None) -> bool:
    if not done or done.get("state") != "complete" or done.get("argv") != argv:
        return False
    return _published(out, stage, argv) is not None


def _ngram_n(argv: list[str]) -> str:
    return argv[argv.index("--n") + 1] if "--n" in argv else "8"


def run_build(
    args: argparse.Namespace, beam_args: list[str], run_step: Callable[[list[str], list[str]], int]
) -> int:
    """Run the stages in order through `run_step(argv, beam_args)`, skipping complete ones."""
    record = {} if args.force else _read_record(args.out)
    redo_rest, skipped = False, set()
    for stage, argv in build_steps(args):
        if not redo_rest and _is_complete(args.out, stage, argv, record.get(stage)):
            print(f"build: {stage}: complete with the same flags, skipped\n")
            skipped.add(stage)
            continue
        if record.get(stage, {}).get("state") == "running":
            print(f"build: {stage}: the last build stopped inside this stage; running it again")
        redo_rest = True  # a rerun stage changes what every later stage reads
        record[stage] = {"argv": argv, "state": "running"}
        _write_record(args.out, record)
        started = time.monotonic()
        code = run_step(argv, beam_args)
        if code:
            return code
        record[stage] = {
            "argv": argv,
            "state": "complete",
            "seconds": round(time.monotonic() - started, 1),
            **_counts(args.out, stage, argv),
        }
        _write_record(args.out, record)
        print()
    _record_in_manifest(args.out, record)
    print(summary(record, skipped))
    return 0


def _record_in_manifest(out: str, record: dict) -> None:
    """The per-stage counts go into the release's manifest; the seconds stay in build.json, since a manifest
    that changed with the machine's speed could not be byte-identical between runs."""
    from pipelines.ngrams import read_manifest, write_manifest
    from pipelines.outputs import stage_output

    release = stage_output(out, "release").path
    manifest = read_manifest(release)
    manifest["build"] = {stage: {"in": record[stage]["in"], "out": record[stage]["out"]} for stage in STAGES}
    write_manifest(release, manifest)


def summary(record: dict, skipped: set[str]) -> str:
    lines = ["build: stage        seconds          in         out"]
    for stage in STAGES:
        entry = record[stage]
        seconds = "  skipped" if stage in skipped else f"{entry['seconds']:9.1f}"
        lines.append(f"build: {stage:<10} {seconds} {entry['in']:>11,} {entry['out']:>11,}")
    return "\n".join(lines)
