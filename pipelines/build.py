"""`webtext build`: links -> fetch -> extract -> dedup -> filter -> release -> ngrams, resumable.

The links step reads Reddit dumps (--dumps), frozen URL lists (--urls) or both, as `webtext links` does.
Each stage runs exactly as its own command would (same flags, same outputs under DIR). `DIR/build.json`
records every stage's command line, state (running / complete), seconds and counts. A rerun skips a stage
whose record says complete with the same command line and whose outputs are still there, and redoes a stage
that was running when the build stopped (it may or may not have committed) and every stage after it.
"""

from __future__ import annotations

import argparse
import shlex

from corpus.chain import CHAIN
from corpus.errors import InputError
from pipelines.chain import stages
from pipelines.stage import Stage

RECORD = "build.json"


def add_build_parser(sub) -> None:
    p = sub.add_parser(
        "build",
        allow_abbrev=False,
        help="links -> fetch -> extract -> dedup -> filter -> release -> ngrams, resumable (Beam)",
    )
    p.add_argument(
        "--dumps", action="append", default=[], metavar="GLOB", help="Pushshift or Arctic Shift dumps"
    )
    p.add_argument(
        "--urls",
        action="append",
        default=[],
        metavar="GLOB",
        help="frozen URL lists, as `webtext links --urls` reads them; alone or with --dumps",
    )
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
    """Run the stages in order, skipping complete ones (see the module docstring)."""
    record = {} if args.force else _read_record(args.out)
    redo_rest, skipped = False, set()
    for stage, argv in build_steps(args):
        stage_args = stage.parse(argv[1:])
        if not redo_rest and _is_complete(stage, stage_args, argv, record.get(stage.name)):
            print(f"build: {stage.name}: complete with the same flags, skipped\n")
            skipped.add(stage.name)
            continue
        if record.get(stage.name, {}).get("state") == "running":
            print(f"build: {stage.name}: the last build stopped inside this stage; running it again")
        redo_rest = True  # a rerun stage changes what every later stage reads
        record[stage.name] = {"argv": argv, "state": "running"}
        _write_record(args.out, record)
        result = stage.execute(stage_args, beam_args)
        record[stage.name] = {
            "argv": argv,
            "state": "complete",
            "seconds": round(result.seconds, 1),
            "in": result.items_in,
            "out": result.items_out,
        }
        _write_record(args.out, record)
        print()
    _record_in_manifest(args.out, record)
    print(summary(record, skipped))
    return 0


def stage_flags(values: list[str]) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for value in values:
        stage, sep, text = value.partition("=")
        if not sep or stage not in CHAIN:
            known = ", ".join(CHAIN)
            raise InputError(f'--stage-flags {value!r}: expected STAGE="FLAGS", STAGE one of {known}')
        flags.setdefault(stage, []).extend(shlex.split(text))
    return flags


def build_steps(args: argparse.Namespace) -> list[tuple[Stage, list[str]]]:
    """(stage, command line) of every stage, in order."""
    if not args.dumps and not args.urls:
        raise InputError("build needs --dumps GLOB or --urls GLOB (or both)")
    out, extra = args.out, stage_flags(args.stage_flags)
    links = ["links", *(x for d in args.dumps for x in ("--dumps", d))]
    links += [x for u in args.urls for x in ("--urls", u)]
    fetch = ["fetch", "--links", out, "--out", out]
    for pattern in args.from_warc or ():
        fetch += ["--from-warc", pattern]
    steps = {
        "links": [*links, "--out", out],
        "fetch": fetch,
        "extract": ["extract", "--fetch", out, "--out", out],
        "dedup": ["dedup", "--docs", out, "--out", out],
        "filter": ["filter", "--docs", out, "--out", out],
        "release": ["release", "--docs", out, "--out", out],
        "ngrams": ["ngrams", "--release", out],
    }
    return [(stage, steps[stage.name] + extra.get(stage.name, [])) for stage in stages()]


def _read_record(out: str) -> dict:
    from pipelines.files import exists, join, read_json

    path = join(out, RECORD)
    if not exists(path):
        return {}
    try:
        return read_json(path, "build record")
    except InputError as err:
        raise InputError(f"{err}; remove it to rebuild") from None


def _write_record(out: str, record: dict) -> None:
    """Through Beam's filesystems, so `--out gs://...` works, in one atomic write."""
    from pipelines.files import join, write_json

    write_json(join(out, RECORD), record)


def _is_complete(stage: Stage, args: argparse.Namespace, argv: list[str], done: dict | None) -> bool:
    """Complete with the same command line, and its output still committed."""
    if not done or done.get("state") != "complete" or done.get("argv") != argv:
        return False
    return stage.committed(args) is not None


def _record_in_manifest(out: str, record: dict) -> None:
    """The per-stage counts go into the release's manifest; the seconds stay in build.json, since a manifest
    that changed with the machine's speed could not be byte-identical between runs."""
    from pipelines.files import read_manifest, write_manifest
    from pipelines.outputs import stage_output

    release = stage_output(out, "release").path
    manifest = read_manifest(release).data
    manifest["build"] = {stage: {"in": record[stage]["in"], "out": record[stage]["out"]} for stage in CHAIN}
    write_manifest(release, manifest)


def summary(record: dict, skipped: set[str]) -> str:
    lines = ["build: stage        seconds          in         out"]
    for stage in CHAIN:
        entry = record[stage]
        seconds = "  skipped" if stage in skipped else f"{entry['seconds']:9.1f}"
        lines.append(f"build: {stage:<10} {seconds} {entry['in']:>11,} {entry['out']:>11,}")
    return "\n".join(lines)
