"""The streaming loader on real tar shards: packing, disjoint readers, shuffles, exact resume, damage."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from corpus.errors import InputError
from corpus.shards import Sample, read_shard, write_shard
from tests.training.release_fixture import write_release
from training.config import LoaderConfig
from training.data import build_loader, reader_documents, reader_states
from training.packing import GROUP_BATCHES
from training.release import Release, ShardError, open_release, read_shard_tokens, steps_per_epoch

SEQ_LEN, MICRO_BATCH = 16, 2


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def release(release_dir) -> Release:
    return open_release(str(release_dir))


def chunks(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The seq_len+1 token chunks a batch was cut from (and a check that y is x shifted by one)."""
    x, y = batch
    assert x.shape == y.shape == (MICRO_BATCH, SEQ_LEN) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    return torch.cat([x, y[:, -1:]], dim=1)


def stream(batches) -> list[int]:
    return torch.cat([chunks(b).flatten() for b in batches]).tolist()


def packed(docs, eot: int) -> list[int]:
    return [t for tokens in docs for t in [*tokens.tolist(), eot]]


def take(loader, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(islice(loader, n))


def loader(release, rank=0, world_size=1, seed=0, num_workers=0, shuffle_buffer=4, **kw):
    config = LoaderConfig(
        "train", SEQ_LEN, MICRO_BATCH, rank, world_size, seed, num_workers, shuffle_buffer, **kw
    )
    return build_loader(release, config)


def test_open_release_local_path_and_file_url(release_dir):
    for root in (str(release_dir), f"file://{release_dir}/"):
        release = open_release(root)
        assert release.vocab_size == 400 and release.eot_id == 399
        assert [e["docs"] for e in release.shards("train")] == [9, 14, 11, 7]
        assert release.shards("train")[0]["url"] == f"{root.rstrip('/')}/train-000000.tar"
        assert release.shards("test") == []
        x, _ = next(iter(loader(release)))
        assert x.shape == (MICRO_BATCH, SEQ_LEN)


def test_missing_or_invalid_manifest_is_named(tmp_path, release_dir):
    with pytest.raises(InputError, match=r"nowhere: no committed release output"):
        open_release(str(tmp_path / "nowhere"))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match=r"manifest\.json: cannot read the manifest"):
        open_release(str(tmp_path))
    text = (release_dir / "manifest.json").read_text().replace('"eot_id": 399', '"eot_id": 400')
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(InputError, match=r"manifest\.json: tokenizer vocab_size 400 / eot_id 400"):
        open_release(str(tmp_path))


def test_packing_without_shuffle_is_the_split_in_order_with_eot_between_documents(release, release_dir):
    docs = [s.tokens for e in release.shards("train") for s in read_shard(str(release_dir / e["path"]))]
    epoch = packed(docs, release.eot_id)
    need = MICRO_BATCH * (SEQ_LEN + 1)
    n = len(epoch) * 2 // need + 1  # two epochs and a bit: the remainder carries over the epoch boundary
    got = stream(take(loader(release, shuffle_buffer=1), n))
    assert got == (epoch * 3)[: n * need]
    assert got.count(release.eot_id) >= 2 * len(docs) - 1


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ranks_and_workers_read_disjoint_documents_covering_the_split(release, num_workers):
    readers = 2 * max(1, num_workers)
    seen = [[k for k, _ in reader_documents(release, "train", 0, 0, r, readers, 4)] for r in range(readers)]
    keys = [k for part in seen for k in part]
    assert len(keys) == len(set(keys)) == sum(e["docs"] for e in release.shards("train"))
    assert all(seen)
    for rank in (0, 1):
        # What the loader packs is exactly those documents: worker w's batches come every num_workers-th.
        workers = max(1, num_workers)
        batches = take(loader(release, rank=rank, world_size=2, num_workers=num_workers), 12 * workers)
        for w in range(workers):
            reader = rank * workers + w
            got = stream(batches[w::workers])
            docs = [t for _, t in reader_documents(release, "train", 0, 0, reader, readers, 4)]
            want = packed(docs, release.eot_id)
            assert got[: len(want)] == want[: len(got)]


def test_sample_level_striding_when_fewer_shards_than_readers(tmp_path):
    release = open_release(str(write_release(tmp_path, {"train": [10, 7]})))
    order = [k for k, _ in reader_documents(release, "train", 0, 0, 0, 1, shuffle_buffer=1)]
    parts = [
        [k for k, _ in reader_documents(release, "train", 0, 0, r, 4, shuffle_buffer=1)] for r in range(4)
    ]
    assert parts == [order[r::4] for r in range(4)]
    shuffled = [
        {k for k, _ in reader_documents(release, "train", 3, 1, r, 4, shuffle_buffer=3)} for r in range(4)
    ]
    assert set().union(*shuffled) == set(order) and sum(map(len, shuffled)) == len(order)


def test_same_seed_same_batches_other_seed_or_epoch_other_order(release):
    first = take(loader(release, seed=7), 10)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, take(loader(release, seed=7), 10), strict=True))
    assert stream(first) != stream(take(loader(release, seed=8), 10))
    epochs = [[k for k, _ in reader_documents(release, "train", 7, e, 0, 1, 4)] for e in (0, 1)]
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])


def test_documents_are_reshuffled_inside_a_shard_each_epoch(tmp_path):
    release = open_release(str(write_release(tmp_path, {"train": [30]})))
    epochs = [[k for k, _ in reader_documents(release, "train", 0, e, 0, 1, 30)] for e in (0, 1)]
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_continues_with_exactly_the_uninterrupted_batches(release, num_workers):
    epoch_steps = steps_per_epoch(release, "train", SEQ_LEN, MICRO_BATCH, world_size=2)
    total = 2 * epoch_steps + 4
    full = take(loader(release, rank=1, world_size=2, num_workers=num_workers), total)
    for k in (3, epoch_steps - 1):  # mid-shard; just before an epoch boundary
        interrupted = loader(release, rank=1, world_size=2, num_workers=num_workers)
        assert len(take(interrupted, k)) == k
        saved = io.BytesIO()
        torch.save(interrupted.state_dict(), saved)
        state = torch.load(io.BytesIO(saved.getvalue()), weights_only=True)
        positions = reader_states(state)
        assert positions and any(p["sample"] > 0 or p["doc"] > 0 or p["token"] > 0 for p in positions)
        resumed = loader(release, rank=1, world_size=2, num_workers=num_workers)
        resumed.load_state_dict(state)
        rest = take(resumed, total - k)
        assert all(torch.equal(a[0], b[0]) for a, b in zip(rest, full[k:], strict=True))
        assert max(p["epoch"] for p in reader_states(resumed.state_dict())) >= 1  # crossed into epoch 1


def test_resume_from_every_batch_including_exact_document_ends(release):
    full = take(loader(release), 103)
    lengths = [[len(t) + 1 for _, t in reader_documents(release, "train", 0, e, 0, 1, 4)] for e in range(2)]
    running, exact_ends = loader(release), 0
    for k, batch in enumerate(islice(running, 100), start=1):
        assert torch.equal(batch[0], full[k - 1][0])
        state = running.state_dict()
        position = state["dataset_state"]
        exact_ends += position["token"] == lengths[position["epoch"]][4 * position["block"] + position["doc"]]
        resumed = loader(release)
        resumed.load_state_dict(state)
        assert all(torch.equal(a[1], b[1]) for a, b in zip(take(resumed, 3), full[k : k + 3], strict=True))
    assert exact_ends > 0  # a batch ended exactly on a document's EOT: nothing of it carries over


def test_a_state_from_another_world_size_is_refused(release):
    first = loader(release, rank=0, world_size=2)
    take(first, 2)
    other = loader(release, rank=0, world_size=1)
    other.load_state_dict(first.state_dict())
    with pytest.raises(InputError, match="resume with the same world size"):
        next(iter(other))


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_steps_per_epoch_is_agreed_from_the_manifest_and_every_rank_delivers_it(release, world_size):
    tokens = sum(e["tokens"] + e["docs"] for e in release.shards("train"))
    steps = steps_per_epoch(release, "train", SEQ_LEN, MICRO_BATCH, world_size, grad_accum=2)
    assert steps == tokens // (SEQ_LEN + 1) // (MICRO_BATCH * world_size * 2) > 0
    for rank in range(world_size):  # uneven shares roll into the next epoch instead of running dry
        assert len(take(loader(release, rank=rank, world_size=world_size), 2 * steps)) == 2 * steps


def damaged_copy(src: Path, dst: Path, damage: str) -> Path:
    shutil.copytree(src, dst)
    shard = dst / "train-000001.tar"
    data = shard.read_bytes()
    if damage == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        rng = np.random.default_rng(0)
        shard.write_bytes(data[:1536] + rng.bytes(len(data) - 3072) + data[-1536:])
    else:
        shard.unlink()
    return dst


@pytest.mark.parametrize(
    "damage,num_workers,message",
    [
        ("truncated", 0, "corrupt shard"),
        ("garbage", 0, "corrupt shard"),
        ("truncated", 2, "corrupt shard"),
        ("missing", 0, "shard missing"),
    ],
)
def test_a_damaged_shard_fails_with_one_line_naming_it(tmp_path, release_dir, damage, num_workers, message):
    release = open_release(str(damaged_copy(release_dir, tmp_path / "r", damage)))
    with pytest.raises(InputError) as failure:
        take(loader(release, num_workers=num_workers, shuffle_buffer=1), 10_000)
    text = str(failure.value)
    assert "\n" not in text and text.startswith(f"{release.root}/train-000001.tar: {message}")


def test_skip_corrupt_skips_counts_and_warns(tmp_path, release_dir, caplog):
    release = open_release(str(damaged_copy(release_dir, tmp_path / "r", "garbage")))
    docs = [t for _, t in reader_documents(release, "train", 0, 0, 0, 1, 1, skip_corrupt=True)]
    assert len(docs) == 9 + 11 + 7  # the damaged shard is checked whole before use: none of its documents
    want = packed(docs, release.eot_id)
    need = MICRO_BATCH * (SEQ_LEN + 1)
    skipping = loader(release, shuffle_buffer=1, skip_corrupt=True)
    with caplog.at_level(logging.WARNING, logger="training.data"):
        got = stream(take(skipping, len(want) // need))
    assert got == want[: len(got)]
    assert reader_states(skipping.state_dict())[0]["skipped_shards"] == 1
    assert any("train-000001.tar: corrupt shard" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("readers", [1, 3, 5, 8])
def test_block_starts_from_the_manifest_match_the_blocks_read(release, readers):
    for reader in range(readers):
        stream = loader(release, shuffle_buffer=3).dataset.stream(reader, readers)
        for epoch in (0, 1):
            starts = [start for _, start, _ in stream.blocks(epoch)]
            assert len(starts) == stream.num_blocks(epoch)
            assert starts == [stream.block_start(epoch, b) for b in range(len(starts))]
            assert stream.block_start(epoch, len(starts)) == (len(stream.part(epoch)[0]), 0)


def without_index(src: Path, dst: Path) -> Path:
    """A copy of the release as made before shard indexes: no index files, none in the manifest."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.idx.npy"))
    manifest = json.loads((dst / "manifest.json").read_text())
    for entries in manifest["splits"].values():
        for entry in entries:
            del entry["index"]
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_release_without_an_index_is_parsed_and_gives_the_same_batches(
    tmp_path, release, release_dir, num_workers
):
    assert all(e["index"] for e in release.shards("train"))  # the fixture's shards have one
    old = open_release(str(without_index(release_dir, tmp_path / "old")))
    assert not any(e["index"] for e in old.shards("train"))
    for shuffle_buffer in (1, 4):
        want = take(loader(release, num_workers=num_workers, shuffle_buffer=shuffle_buffer), 30)
        got = take(loader(old, num_workers=num_workers, shuffle_buffer=shuffle_buffer), 30)
        assert all(
            torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, want, strict=True)
        )


def test_read_shard_tokens_through_the_index_equals_parsing_the_tar(tmp_path):
    samples = [
        Sample(f"k{i}", "t", {}, np.arange(i, 3 * i, dtype=np.uint32 if i % 3 == 0 else np.uint16))
        for i in range(1, 9)
    ]  # mixed uint16 and uint32 samples: one view each instead of one array
    for name, chosen in (
        ("mixed", samples),
        ("uniform", [s for s in samples if s.tokens.dtype == np.uint16]),
    ):
        entry = write_shard(str(tmp_path / f"{name}.tar"), chosen) | {"url": str(tmp_path / f"{name}.tar")}
        for skip in (0, 2, len(chosen)):
            indexed = list(read_shard_tokens(entry, 100, skip))
            parsed = list(read_shard_tokens({**entry, "index": None}, 100, skip))
            assert [(i, k) for i, k, _ in indexed] == [(i, k) for i, k, _ in parsed]
            assert len(indexed) == len(chosen) - skip
            for (_, _, a), (_, _, b) in zip(indexed, parsed, strict=True):
                assert a.dtype == b.dtype and np.array_equal(a, b)
        with pytest.raises(ShardError, match=r"sample 'k7' has token id 20 >= vocab_size 20"):
            list(read_shard_tokens(entry, 20))


@pytest.mark.parametrize(
    "damage,message",
    [("altered", "corrupt index (sha256 differs from the manifest)"), ("missing", "index missing")],
)
def test_a_damaged_index_fails_naming_it_or_is_skipped(tmp_path, release_dir, damage, message, caplog):
    dst = shutil.copytree(release_dir, tmp_path / "r")
    index = dst / "train-000001.idx.npy"
    if damage == "altered":
        index.write_bytes(index.read_bytes()[:-1] + b"\x01")
    else:
        index.unlink()
    release = open_release(str(dst))
    with pytest.raises(InputError) as failure:
        take(loader(release, shuffle_buffer=1), 10_000)
    assert str(failure.value) == f"{release.root}/train-000001.idx.npy: {message}"
    docs = [t for _, t in reader_documents(release, "train", 0, 0, 0, 1, 1, skip_corrupt=True)]
    assert len(docs) == 9 + 11 + 7  # the shard whose index is damaged is skipped whole, like a damaged shard


def test_resume_with_workers_from_every_place_inside_a_batch_group(release):
    """Workers send GROUP_BATCHES batches at a time; a state taken between any two batches resumes exactly."""
    full = take(loader(release, num_workers=2), 3 * GROUP_BATCHES + 6)
    for k in (1, GROUP_BATCHES - 1, GROUP_BATCHES, GROUP_BATCHES + 1, 2 * GROUP_BATCHES + 3):
        interrupted = loader(release, num_workers=2)
        assert len(take(interrupted, k)) == k
        resumed = loader(release, num_workers=2)
        resumed.load_state_dict(interrupted.state_dict())
        rest = take(resumed, 5)
        assert all(torch.equal(a[0], b[0]) for a, b in zip(rest, full[k : k + 5], strict=True)), k
        again = loader(release, num_workers=2)  # a state taken after a resume, inside its first groups
        again.load_state_dict(resumed.state_dict())
        assert all(
            torch.equal(a[0], b[0]) for a, b in zip(take(again, 3), full[k + 5 : k + 8], strict=True)
        ), k


def test_an_index_that_does_not_describe_its_shard_is_named_and_a_hostile_tar_is_parsed(
    tmp_path, release_dir
):
    dst = shutil.copytree(release_dir, tmp_path / "r")
    index = dst / "train-000001.idx.npy"
    table = np.load(index, allow_pickle=False)
    table["key"][0] = b"train001x99999"  # the manifest is updated to match: only the tar can tell
    buf = io.BytesIO()
    np.save(buf, table, allow_pickle=False)
    index.write_bytes(buf.getvalue())
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["splits"]["train"][1]["index"] = {
        "bytes": len(buf.getvalue()),
        "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
    }
    (dst / "manifest.json").write_text(json.dumps(manifest))
    release = open_release(str(dst))
    with pytest.raises(InputError) as failure:
        take(loader(release, shuffle_buffer=1), 10_000)
    why = "its index train-000001.idx.npy does not describe it: a header names another member"
    assert str(failure.value) == f"{release.root}/train-000001.tar: corrupt shard (ValueError: {why})"
