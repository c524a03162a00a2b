"""The one way a benchmark records a figure: printed as `name: value`, and appended to $BENCH_RESULTS (when
set) as a JSON line {"bench", "name", "value", ...}, so one `make bench` run leaves one file of figures."""

from __future__ import annotations

import json
import os


def record(bench: str, name: str, value: object, **extra: object) -> None:
    """Append one figure to $BENCH_RESULTS as a JSON line, when it is set."""
    if path := os.environ.get("BENCH_RESULTS"):
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"bench": bench, "name": name, "value": value, **extra}) + "\n")


def report(bench: str, name: str, value: object) -> None:
    """Print `name: value` and record it."""
    print(f"{name}: {value}")
    record(bench, name, value)
