"""What every `webtext` command shares: argument types, the run-and-summarize tail, finding documents."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from corpus.errors import InputError, positive_int  # noqa: F401 - the stages import it from here
from corpus.workdir import Output

log = logging.getLogger("webtext")


def run_and_report(stage: str, run: Callable[[], object], summary: Callable[[str], str], out: str) -> int:
    """Run a stage, then print its summary and how long it took."""
    started = time.monotonic()
    run()
    print(summary(out))
    print(f"{stage}: done in {time.monotonic() - started:.1f} s")
    return 0


def docs_table(path: str, stages: tuple[str, ...]) -> tuple[Output, str, int]:
    """The documents a stage reads: the committed output of the first of `stages` that `path` holds, the glob
    of its part files and their row count; one clear error when there is none."""
    from pipelines.outputs import parquet_rows, stage_output

    docs = stage_output(path, *stages)
    pattern = docs.join("part-*.parquet")
    return docs, pattern, parquet_rows(pattern)
