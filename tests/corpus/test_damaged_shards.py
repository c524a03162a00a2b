"""`webtext verify` on damaged releases: every kind of damage is reported in lines naming the shard (and the
member, for a member that must not be read), never a traceback, and nothing is read beyond the member caps."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

import corpus.shards
from corpus.shards import read_shard
from tests.damaged_release import AT_REST, DAMAGED, HOSTILE, MEMBER, OVERSIZED, PROBLEM, damage
from tests.training.release_fixture import write_release
from webtext.cli import main

AT_REST_PROBLEM = {
    "flipped": "sha256 ",
    "truncated": "size ",
    "deleted": "missing",
}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = write_release(tmp_path_factory.mktemp("clean"))
    # Intact, it verifies; and the command's lazy imports (Beam) happen here, not under slow tracemalloc.
    assert main(["verify", str(root)]) == 0
    return root


def verify(release: Path, capsys) -> tuple[int, list[str], int]:
    """(exit status, stderr lines, peak bytes Python allocated) of `webtext verify release`."""
    tracemalloc.start()
    try:
        status = main(["verify", str(release)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return status, capsys.readouterr().err.splitlines(), peak


@pytest.mark.parametrize("kind", AT_REST + HOSTILE)
def test_verify_reports_damage_naming_the_shard_and_member(release, tmp_path, kind, capsys, monkeypatch):
    if kind == "oversized":
        monkeypatch.setattr(corpus.shards, "MAX_MEMBER_BYTES", OVERSIZED)
    status, lines, peak = verify(damage(release, kind, tmp_path / "release"), capsys)
    assert status == 1 and lines
    assert all(line.startswith(f"verify: {DAMAGED}: ") for line in lines), lines
    assert not any("Traceback" in line for line in lines)
    if kind in HOSTILE:
        assert f"{DAMAGED}: member {MEMBER[kind]!r}: {PROBLEM[kind]}" in lines[0]
    else:
        assert AT_REST_PROBLEM[kind] in lines[0]
    assert peak < 8 * 2**20  # a 1 GiB sparse or declared member is refused from its header, never read


@pytest.mark.parametrize("kind", HOSTILE)
def test_read_shard_refuses_the_member_before_reading_it(release, tmp_path, kind, monkeypatch):
    if kind == "oversized":
        monkeypatch.setattr(corpus.shards, "MAX_MEMBER_BYTES", OVERSIZED)
    shard = damage(release, kind, tmp_path / "release") / DAMAGED
    with pytest.raises(ValueError) as failure:
        list(read_shard(str(shard)))
    message = str(failure.value)
    assert message.startswith(f"{shard}: member {MEMBER[kind]!r}: {PROBLEM[kind]}") and "\n" not in message
