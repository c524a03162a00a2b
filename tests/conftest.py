"""Shared fixtures: the embedded sample (real Pushshift submissions) and small dump builders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

# The fake Reddit server's fixtures (server, env_credentials, isolated_praw) for every test module.
pytest_plugins = ["tests.fake_reddit"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "corpus" / "sample" / "reddit"


def submission(id: str, url: str, score: int = 5, created_utc: int = 1_500_000_000, **fields) -> dict:
    """A Pushshift-shaped link submission (fields as in the real dumps)."""
    return {
        "id": id,
        "url": url,
        "score": score,
        "created_utc": created_utc,
        "subreddit": "test",
        "is_self": False,
        "over_18": False,
        **fields,
    }


def write_dump(path: Path, lines: list[bytes | dict]) -> Path:
    """Write lines (dicts become JSON) as a dump, zstd-compressed when the name ends in .zst."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join((json.dumps(x).encode() if isinstance(x, dict) else x) + b"\n" for x in lines)
    if path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE


def committed(work: Path, stage: str) -> Path:
    """The folder of a stage's committed output in a work directory, found as every reader finds it."""
    from pipelines.outputs import stage_output

    return Path(stage_output(str(work), stage).path)
