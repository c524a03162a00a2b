"""The training loader on damaged releases: every kind of damage fails with one line naming the shard (and the
member, for a member that must not be read) before any document of the shard is used, or, with skip_corrupt,
the whole shard is skipped; `webtext train` refuses a shard whose sha256 differs from the manifest."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from itertools import islice
from pathlib import Path

import pytest

import corpus.shards
from corpus.errors import InputError
from tests.damaged_release import AT_REST, DAMAGED, HOSTILE, MEMBER, OVERSIZED, PROBLEM, damage
from tests.training.release_fixture import write_release
from training.config import LoaderConfig
from training.data import build_loader, reader_documents, reader_states
from training.release import open_release

ROOT = Path(__file__).resolve().parents[2]
SEQ_LEN, MICRO_BATCH = 16, 2
AT_REST_PROBLEM = {
    "flipped": "corrupt shard (sha256 differs from the manifest)",
    "truncated": "corrupt shard (25600 bytes, the manifest says 51200)",
    "deleted": "shard missing",
}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("clean"))


def damaged(release: Path, kind: str, tmp_path: Path, monkeypatch) -> Path:
    if kind == "oversized":
        monkeypatch.setattr(corpus.shards, "MAX_MEMBER_BYTES", OVERSIZED)
    return damage(release, kind, tmp_path / "release")


def keys(root: Path, skip_corrupt: bool = False) -> list[str]:
    """The document keys the loader's only reader packs in epoch 0, in order (no shuffling)."""
    release = open_release(str(root))
    return [k for k, _ in reader_documents(release, "train", 0, 0, 0, 1, 1, skip_corrupt=skip_corrupt)]


@pytest.mark.parametrize("kind", AT_REST + HOSTILE)
def test_the_loader_fails_with_one_line_naming_the_shard_and_member(release, tmp_path, kind, monkeypatch):
    root = damaged(release, kind, tmp_path, monkeypatch)
    loader = build_loader(
        open_release(str(root)), LoaderConfig("train", SEQ_LEN, MICRO_BATCH, shuffle_buffer=1)
    )
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as failure:
            list(islice(loader, 10_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(failure.value)
    assert "\n" not in message and message.startswith(f"{root}/{DAMAGED}: "), message
    if kind in HOSTILE:
        assert f"corrupt shard (ValueError: member {MEMBER[kind]!r}: {PROBLEM[kind]}" in message
    else:
        assert AT_REST_PROBLEM[kind] in message
    assert peak < 8 * 2**20  # a 1 GiB sparse or declared member is refused from its header, never read


@pytest.mark.parametrize("kind", AT_REST + HOSTILE)
def test_skip_corrupt_skips_the_whole_shard(release, tmp_path, kind, monkeypatch):
    clean = keys(release)
    root = damaged(release, kind, tmp_path, monkeypatch)
    assert keys(root, skip_corrupt=True) == [k for k in clean if not k.startswith("train001x")]


def test_a_flipped_byte_is_caught_in_workers_and_skipped_with_a_count(release, tmp_path, monkeypatch):
    root = damaged(release, "flipped", tmp_path, monkeypatch)
    loader = build_loader(open_release(str(root)), LoaderConfig("train", SEQ_LEN, MICRO_BATCH, num_workers=2))
    with pytest.raises(InputError, match=rf"^{root}/{DAMAGED}: corrupt shard \(sha256 differs"):
        list(islice(loader, 10_000))
    skipping = build_loader(
        open_release(str(root)),
        LoaderConfig("train", SEQ_LEN, MICRO_BATCH, shuffle_buffer=1, skip_corrupt=True),
    )
    list(islice(skipping, 60))  # more than one epoch
    assert reader_states(skipping.state_dict())[0]["skipped_shards"] >= 1


def test_webtext_train_refuses_a_flipped_token_byte(release, tmp_path, monkeypatch):
    root = damaged(release, "flipped", tmp_path, monkeypatch)
    args = [
        "train", "--data", str(root), "--out", str(tmp_path / "run"), "--preset", "tiny", "--seq-len", "32",
        "--micro-batch", "4", "--max-steps", "3", "--warmup-steps", "1", "--sample-tokens", "0",
    ]  # fmt: skip
    command = [sys.executable, "-m", "webtext.cli", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    error = f"webtext train: error: {root}/{DAMAGED}: corrupt shard (sha256 differs from the manifest)"
    assert done.stderr.strip().splitlines()[-1] == error
