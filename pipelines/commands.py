"""What every `webtext` command shares: argument types, the run-and-summarize tail, finding documents."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from corpus.errors import InputError, positive_int  # noqa: F401 - the stages import it from here

log = logging.getLogger("webtext")


def run_and_report(stage: str, run: Callable[[], object], summary: Callable[[str], str], out: str) -> int:
    """Run a stage, then print its summary and how long it took."""
    started = time.monotonic()
    run()
    print(summary(out))
    print(f"{stage}: done in {time.monotonic() - started:.1f} s")
    return 0


def docs_table(path: str, stage: str, folders: tuple[str, ...]) -> tuple[str, int]:
    """(glob, row count) of the documents a stage reads; one clear error when there are none."""
    from pipelines.filter import resolve_docs
    from pipelines.outputs import match_files, parquet_rows

    pattern = resolve_docs(path, folders)
    if not match_files(pattern):
        raise InputError(
            f"{path}: no documents ({'/ or '.join(folders)}/part-*.parquet); run the earlier stages first"
        )
    return pattern, parquet_rows(pattern)
