"""`webtext overlap`: the n-gram overlap of evaluation sets with a release's filter (`webtext ngrams`), a
filter file or filters built from text files (GPT-2 section 4, Table 6); and the argument types of the
ngrams stage's flags.

Imports nothing heavy at module level: the CLI builds this parser for `webtext --help`.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

from corpus.command_line import named, positive_int
from corpus.errors import InputError
from pipelines.stage import log

if TYPE_CHECKING:
    from corpus.overlap import EvalSet, ExactNgrams, NgramIndex


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return value


def partitions(text: str) -> int:
    """--partitions: a power of two from 1 to 4096."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or value > 4096 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two from 1 to 4096, got {text!r}")
    return value


def byte_size(text: str) -> int:
    """A size such as 16GiB, 500MB or 2000000000, in bytes."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    units |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    upper = text.strip().upper()
    number = upper.rstrip("KMGTIB ")
    try:
        return int(float(number) * units[upper[len(number) :].strip()])
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16GiB, 500MB)") from None


def add_overlap_parser(sub) -> None:
    p = sub.add_parser(
        "overlap",
        allow_abbrev=False,
        help="n-gram overlap of evaluation sets with training text (GPT-2 Table 6)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--release", metavar="DIR", help="use the release's filter (webtext ngrams)")
    source.add_argument("--bloom", metavar="PATH", help="use a filter file (ngrams-N.bloom)")
    p.add_argument(
        "--build-from",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also build a filter from a text or jsonl file (e.g. an eval set's own train split); repeatable",
    )
    p.add_argument(
        "--eval", action="append", default=[], metavar="NAME=PATH", help="evaluation file (text or jsonl)"
    )
    p.add_argument(
        "--samples",
        action="append",
        default=[],
        metavar="[NAME=]FILE",
        help="a model's generated samples (text or jsonl): how much of them the corpus holds",
    )
    p.add_argument("--n", type=positive_int, default=8, help="words per n-gram (GPT-2: 8)")
    p.add_argument(
        "--fpr", type=probability, default=1e-8, help="false-positive bound of --build-from filters"
    )
    p.add_argument(
        "--dirty-threshold",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="an example is dirty when more than this fraction of its n-grams is found (default: any)",
    )
    p.add_argument(
        "--exact", action="store_true", help="exact sets of n-gram strings instead of filters (small corpora)"
    )
    p.add_argument(
        "--fpr-check",
        type=int,
        default=1_000_000,
        metavar="N",
        help="random strings queried against each filter to check its false-positive rate (0: skip)",
    )
    p.add_argument("--out", metavar="DIR", help="write overlap.json, overlap.md and per-set example lists")
    p.set_defaults(handler=run_overlap_command)


def run_overlap_command(args: argparse.Namespace, _beam_args: list[str]) -> int:
    from corpus.overlap import EvalSet, read_examples

    if not (args.release or args.bloom or args.build_from):
        raise InputError("nothing to compare with: give --release, --bloom or --build-from")
    if not 0 <= args.dirty_threshold < 1:
        raise InputError(f"--dirty-threshold must be in [0, 1), got {args.dirty_threshold}")
    if args.exact and args.bloom:
        raise InputError("--exact needs the text (--release or --build-from), not a filter file")
    sets = [named(text, "--eval") + ("eval",) for text in args.eval]
    sets += [named(text, "--samples", default_name=True) + ("samples",) for text in args.samples]
    if not sets:
        raise InputError("nothing to measure: give --eval NAME=PATH or --samples FILE")
    names = [name for name, _, _ in sets]
    if len(set(names)) != len(names):
        raise InputError(f"evaluation set names must be distinct: {' '.join(names)}")
    indexes = build_indexes(args)
    evals = [EvalSet(name, path, read_examples(path), kind) for name, path, kind in sets]
    write_report(args, indexes, evals)
    return 0


def build_indexes(args: argparse.Namespace) -> dict[str, tuple[NgramIndex, dict]]:
    """label -> (index, what it is) for the release, the filter file and every --build-from."""
    from corpus.overlap import BloomIndex, ExactNgrams, bloom_from_texts, read_examples
    from pipelines.ngrams.transform import filter_paths, train_texts
    from pipelines.outputs import stage_output

    indexes: dict[str, tuple[NgramIndex, dict]] = {}
    if args.release:
        release = stage_output(args.release, "release").path
        if args.exact:
            exact = ExactNgrams.from_texts(train_texts(release), args.n)
            indexes["release"] = (exact, _exact_info("release train split", release, exact))
        else:
            indexes["release"] = _load_bloom(filter_paths(release, args.n), args.n, "release train split")
    if args.bloom:
        indexes["bloom"] = _load_bloom([args.bloom], args.n, os.path.basename(args.bloom))
    for text in args.build_from:
        name, path = named(text, "--build-from")
        if name in indexes:
            raise InputError(f"--build-from {text}: the name {name!r} is taken")
        texts = [example.text for example in read_examples(path)]
        description = f"{name} ({os.path.basename(path)})"
        if args.exact:
            exact = ExactNgrams.from_texts(texts, args.n)
            indexes[name] = (exact, _exact_info(description, path, exact))
        else:
            log.info("overlap: building a %d-gram filter of %s", args.n, path)
            bloom = bloom_from_texts(texts, args.n, args.fpr)
            info = {"description": description, "source": path, "method": "bloom"}
            indexes[name] = (BloomIndex(bloom), info | {"params": bloom.describe()})
    return indexes


def _load_bloom(paths: list[str], n: int, description: str) -> tuple[NgramIndex, dict]:
    """A filter file, or the P partition files of one (in order), as an index and what it is."""
    from corpus.bloom import BloomFormatError
    from corpus.overlap import BloomIndex
    from pipelines.ngrams.transform import read_filters

    try:
        bloom = read_filters(paths)
    except BloomFormatError as err:
        raise InputError(str(err)) from None
    if bloom.params.n != n:
        raise InputError(f"{paths[0]}: the filter holds {bloom.params.n}-grams; pass --n {bloom.params.n}")
    source = paths[0] if len(paths) == 1 else os.path.dirname(paths[0]) or "."
    info = {"description": description, "source": source, "method": "bloom", "params": bloom.describe()}
    return BloomIndex(bloom), info


def _exact_info(description: str, source: str, exact: ExactNgrams) -> dict:
    return {"description": f"{description}, exact", "source": source, "method": "exact", "items": len(exact)}


def write_report(
    args: argparse.Namespace, indexes: dict[str, tuple[NgramIndex, dict]], evals: list[EvalSet]
) -> None:
    """Measure every set against every index, print the Markdown table, and with --out write the JSON report
    and the table (write_examples: per set its examples)."""
    from corpus.overlap import fpr_check, measure, report_json, report_markdown

    results = {
        label: {ev.name: measure([e.text for e in ev.examples], index) for ev in evals}
        for label, (index, _) in indexes.items()
    }
    infos = {}
    for label, (index, info) in indexes.items():
        if info["method"] == "bloom" and args.fpr_check > 0:
            info = {**info, "fpr_check": fpr_check(index.bloom, args.fpr_check).to_dict()}
        infos[label] = info
    report = report_json(args.n, infos, evals, results, args.dirty_threshold)
    own = {ev.name: ev.name for ev in evals if ev.name in indexes and ev.kind == "eval"}
    markdown = report_markdown(report, own)
    print(markdown, end="")
    if not args.out:
        return
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "overlap.json"), "w", encoding="utf-8") as handle:
        handle.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "overlap.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown)
    for ev in evals:
        found = {label: results[label][ev.name] for label in indexes}
        write_examples(args.out, ev, found, args.dirty_threshold)
    print(f"overlap: wrote {args.out}/overlap.json, overlap.md and per-set examples, clean and dirty lists")


def write_examples(out: str, ev: EvalSet, results: dict, dirty_threshold: float) -> None:
    """A set's examples' counts (NAME.examples.jsonl) and its clean and dirty examples, as in its file."""
    from corpus.overlap import example_rows, is_jsonl

    rows = list(example_rows(ev, results, dirty_threshold))
    with open(os.path.join(out, f"{ev.name}.examples.jsonl"), "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    suffix = "jsonl" if is_jsonl(ev.path) else "txt"
    for kind, dirty in (("clean", False), ("dirty", True)):
        with open(os.path.join(out, f"{ev.name}.{kind}.{suffix}"), "w", encoding="utf-8") as handle:
            handle.writelines(
                e.raw + "\n" for e, row in zip(ev.examples, rows, strict=True) if row["dirty"] == dirty
            )
