"""What a stage of the chain is: one `Stage` object in `pipelines/<stage>/stage.py`, found by name
(`pipelines/chain.py`).

A stage owns its name (its command, its folder, its ledger's `stage` column and its Beam counters'
namespace), the stages it reads, its flags, the options its transform runs with, its `PTransform` (in
`pipelines/<stage>/transform.py`, imported when the stage runs: importing Beam takes seconds, and
`webtext STAGE --help` should not), and its summary. Every run returns a `StageResult`.

Counters are uniform: `<stage>:in`, `<stage>:out` and each extra figure of the stage's stats as they flow
(`WriteStats`), `<stage>:<reason>` for every dropped item (`WriteLedger`), so a runner's monitoring page
shows the same numbers stats.json will.

This module imports no Beam: the CLI builds every stage's parser from it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from corpus.errors import InputError
from corpus.workdir import Output

if TYPE_CHECKING:
    from corpus.accounting import StageStats

log = logging.getLogger("webtext")

__all__ = ["Stage", "StageResult", "by_count", "column_counts", "docs_table", "log", "read_stats"]


@dataclass(frozen=True)
class StageResult:
    """What one run of a stage committed, and its counts."""

    stage: str
    output: Output  # where it committed
    items_in: int
    items_out: int
    dropped: Mapping[str, int] = field(default_factory=dict)
    counters: Mapping[str, int] = field(default_factory=dict)  # Beam counters, as {"<stage>:<name>": n}
    seconds: float = 0.0


class Stage:
    """One stage of the chain; `pipelines/<stage>/stage.py` defines a subclass and its one instance, STAGE."""

    name: str  # the command, the folder under the work directory, the ledger's and counters' stage
    help: str  # one line for `webtext --help`
    reads: tuple[str, ...] = ()  # the stages whose committed output it reads, the first one found wins
    has_out = True  # takes --out DIR and publishes DIR/<name>/
    transform_name = ""  # its PTransform's class in pipelines/<name>/transform.py, named after the stage

    # --- the command line -------------------------------------------------------------------------
    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """The stage's own flags (--out is added for every stage that has one)."""

    def options(self, args: argparse.Namespace) -> Any:
        """The transform's options from the parsed flags; bad values raise InputError (one line)."""
        raise NotImplementedError

    def describe(self, options: Any, out_dir: str) -> str:  # noqa: ARG002 - most stages name their input
        """The line logged when the stage starts."""
        return f"{self.name}: -> {out_dir}"

    # --- the run ------------------------------------------------------------------------------------
    def transform(self, options: Any, output: Any) -> Any:
        """The stage's `PTransform`, writing into `output` (a pipelines.outputs.StageOutput): the class
        `transform_name` of `pipelines/<name>/transform.py`, imported now (importing Beam takes seconds)."""
        module = importlib.import_module(f"pipelines.{self.name}.transform")
        return getattr(module, self.transform_name)(options, output)

    def keep(self, options: Any) -> tuple[str, ...]:  # noqa: ARG002 - fetch keeps its WARC files
        """Patterns of files of the previous generation that publishing keeps."""
        return ()

    def prepare(self, options: Any, output: Any) -> None:
        """Anything written into the new generation before the pipeline runs."""

    def run(self, options: Any, out_dir: str, beam_args: list[str]) -> StageResult:
        """Run the transform on the runner the Beam options name and publish DIR/<name>/; on failure the
        previous output stays committed."""
        from pipelines.outputs import StageOutput, run_pipeline

        started = time.monotonic()
        output = StageOutput(out_dir, self.name)
        self.prepare(options, output)
        result = run_pipeline(output, self.transform(options, output), beam_args, self.keep(options))
        return self.result(out_dir, counters(result, self.name), time.monotonic() - started)

    def result(
        self, out_dir: str, counters: Mapping[str, int] | None = None, seconds: float = 0.0
    ) -> StageResult:
        """The committed output's counts (from its stats.json)."""
        from pipelines.outputs import stage_output

        output = stage_output(out_dir, self.name)
        stats = read_stats(output)
        dropped, counted = dict(stats.dropped), dict(counters or {})
        return StageResult(self.name, output, stats.items_in, stats.items_out, dropped, counted, seconds)

    def committed(self, args: argparse.Namespace) -> StageResult | None:
        """What an earlier run with these flags committed (None when nothing): `build` skips a complete
        stage."""
        from pipelines.files import exists
        from pipelines.outputs import find_stage_output

        out_dir = self.out_dir(args)
        output = find_stage_output(out_dir, self.name)
        if output is None or not exists(output.join("stats.json")):  # a committed output, but damaged
            return None
        return self.result(out_dir)

    def summary(self, result: StageResult) -> str:
        """What the command prints when the stage is done."""
        return f"{self.name}: {result.items_in} in, {result.items_out} out"

    def out_dir(self, args: argparse.Namespace) -> str:
        return args.out

    # --- wiring -------------------------------------------------------------------------------------
    def add_parser(self, sub: Any) -> argparse.ArgumentParser:
        parser = sub.add_parser(self.name, allow_abbrev=False, help=self.help)
        self.add_flags(parser)
        if self.has_out:
            parser.add_argument(
                "--out", required=True, metavar="DIR", help=f"work directory; writes DIR/{self.name}"
            )
        parser.set_defaults(handler=self.command)
        return parser

    def parse(self, argv: list[str]) -> argparse.Namespace:
        """The stage's flags parsed as `webtext <name> ARGV` parses them (errors exit with its usage)."""
        root = argparse.ArgumentParser(prog="webtext", allow_abbrev=False)
        return self.add_parser(root.add_subparsers()).parse_args(argv)

    def execute(self, args: argparse.Namespace, beam_args: list[str]) -> StageResult:
        """Run with parsed flags, then print the summary and how long it took."""
        options = self.options(args)
        out_dir = self.out_dir(args)
        log.info(self.describe(options, out_dir))
        result = self.run(options, out_dir, beam_args)
        print(self.summary(result))
        print(f"{self.name}: done in {result.seconds:.1f} s")
        return result

    def command(self, args: argparse.Namespace, beam_args: list[str]) -> int:
        """`webtext <name>`."""
        self.execute(args, beam_args)
        return 0


def counters(result: Any, stage: str) -> dict[str, int]:
    """A PipelineResult's counters in `stage`'s namespace, as {"<stage>:<name>": committed value}."""
    from apache_beam.metrics.metric import MetricsFilter

    found = result.metrics().query(MetricsFilter().with_namespace(stage))["counters"]
    return {f"{stage}:{c.key.metric.name}": c.committed for c in found}


def read_stats(output: Output) -> StageStats:
    from corpus.accounting import load_stats
    from pipelines.files import read_bytes

    path = output.join("stats.json")
    data = read_bytes(path)
    if data is None:
        raise InputError(f"{path}: missing (the stage's stats)")
    return load_stats(data.decode("utf-8"))


def by_count(counts: Mapping[str, int], top: int | None = None) -> list[str]:
    """Indented `count  name` lines, largest first."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [f"    {n:6d}  {name}" for name, n in ranked] or ["    (none)"]


def column_counts(table: Any, name: str) -> Counter:
    return Counter(table.column(name).to_pylist()) if table.num_rows else Counter()


def docs_table(path: str, stages: tuple[str, ...]) -> tuple[Output, str, int]:
    """The documents a stage reads: the committed output of the first of `stages` that `path` holds, the glob
    of its part files and their row count; one clear error when there is none."""
    from pipelines.outputs import parquet_rows, stage_output

    docs = stage_output(path, *stages)
    pattern = docs.join("part-*.parquet")
    return docs, pattern, parquet_rows(pattern)
