"""`webtext ngrams`: a release's train split -> an n-gram Bloom filter added to the release (the pipelines:
transform.py).

Unlike the other stages it has no --out: it reads `--release DIR` and commits into that release folder, its
manifest.json gaining an `ngrams` entry, so `run`, `committed` and `out_dir` are its own.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corpus.command_line import positive_int
from corpus.workdir import Output
from pipelines.ngrams.overlap import byte_size, partitions, probability
from pipelines.stage import Stage, StageResult


@dataclass(frozen=True)
class NgramsResult(StageResult):
    """A StageResult with the filter's manifest entry (what the summary prints)."""

    entry: Mapping[str, Any] = field(default_factory=dict)


class NgramsStage(Stage):
    name = "ngrams"
    help = "a release's train split -> n-gram Bloom filter (Beam)"
    reads = ("release",)
    has_out = False  # adds the filter to the release it reads

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--release",
            required=True,
            metavar="DIR",
            help="a release directory, or a work directory with release/",
        )
        parser.add_argument("--n", type=positive_int, default=8, help="words per n-gram (GPT-2: 8)")
        parser.add_argument(
            "--fpr", type=probability, default=1e-8, help="false-positive bound (GPT-2: 1e-8)"
        )
        parser.add_argument(
            "--max-memory",
            type=byte_size,
            default=16 * 2**30,
            metavar="SIZE",
            help="the memory a worker may hold while building (default 16GiB): sets --partitions, and the "
            "stage refuses when even the most partitions exceed it",
        )
        parser.add_argument(
            "--partitions",
            type=partitions,
            default=None,
            metavar="P",
            help="build the filter in P partitions (a power of two up to 4096), one per worker; default: "
            "the fewest that fit --max-memory (1 for all but large releases)",
        )

    def options(self, args: argparse.Namespace):
        from pipelines.ngrams.transform import NgramsOptions

        return NgramsOptions(self.out_dir(args), args.n, args.fpr, args.max_memory, args.partitions)

    def out_dir(self, args: argparse.Namespace) -> str:
        """The committed release folder that `--release` names (one clear error when there is none)."""
        from pipelines.outputs import stage_output

        return stage_output(args.release, *self.reads).path

    def describe(self, options, out_dir: str) -> str:
        return f"ngrams: {options.n}-grams of the train split of {out_dir}"

    def run(self, options, out_dir: str, beam_args: list[str]) -> NgramsResult:
        """Count, plan, build and publish the filter of `options.release` (= out_dir) in two pipelines;
        the counters are the count's (the build hashes the same documents again)."""
        from pipelines.ngrams.transform import add_filter
        from pipelines.outputs import stage_output

        started = time.monotonic()
        added = add_filter(options, beam_args)
        output = stage_output(out_dir, *self.reads)
        return self._result(output, added.entry, added.counters, time.monotonic() - started)

    def committed(self, args: argparse.Namespace) -> NgramsResult | None:
        """The release's manifest entry of an `--n` filter whose file is there, or None."""
        from pipelines.files import exists, read_manifest
        from pipelines.outputs import find_stage_output

        output = find_stage_output(args.release, *self.reads)
        if output is None:
            return None
        manifest = read_manifest(output.path)
        typed = next((e for e in manifest.ngrams if e.n == args.n), None)
        if typed is None or not all(exists(output.join(f.path)) for f in typed.files()):
            return None
        if getattr(args, "partitions", None) not in (None, typed.partitions):
            return None  # asked for another number of partitions: build again
        return self._result(output, next(e for e in manifest.data["ngrams"] if e["n"] == args.n))

    def _result(
        self,
        output: Output,
        entry: Mapping[str, Any],
        counters: Mapping[str, int] | None = None,
        seconds: float = 0.0,
    ) -> NgramsResult:
        """Documents in, distinct n-grams out."""
        counted = dict(counters or {})
        return NgramsResult(
            self.name, output, entry["documents"], entry["items"], {}, counted, seconds, entry=dict(entry)
        )

    def summary(self, result: StageResult) -> str:
        entry = result.entry
        if entry.get("partitions", 1) > 1:
            first = entry["parts"][0]["path"]
            where = f"{entry['partitions']} partitions {result.output.join(first)} ..."
            hashes = f"{max(part['hashes'] for part in entry['parts'])} hashes"
        else:
            where, hashes = result.output.join(entry["path"]), f"{entry['hashes']} hashes"
        return (
            f"ngrams: {where}: {entry['items']} distinct {entry['n']}-grams "
            f"of {entry['documents']} documents, {entry['bits']} bits, {hashes}, "
            f"FPR bound {entry['fpr']:g} (recorded in manifest.json)"
        )


STAGE = NgramsStage()
