"""Tests for corpus.shard_index: the byte-offset index written beside each shard, what verify checks of it,
and the checks the training loader makes before trusting it."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from corpus.shards import Sample, read_shard, verify_release, write_shard
from tests.corpus.test_shards import _release, _samples


def test_the_index_gives_every_members_place_as_tarfile_reads_it(tmp_path) -> None:
    from corpus.shard_index import decode_index, index_name, keys_of, token_spans

    path = tmp_path / "train-000000.tar"
    long_key = Sample(
        "k" * 150, "a name over 100 bytes: a GNU long-name header", {}, np.array([9], np.uint16)
    )
    samples = [*_samples(), long_key]
    info = write_shard(str(path), samples)
    index = Path(index_name(str(path)))
    assert index.name == "train-000000.idx.npy"
    assert info["index"] == {
        "bytes": index.stat().st_size,
        "sha256": hashlib.sha256(index.read_bytes()).hexdigest(),
    }
    data = path.read_bytes()
    table = decode_index(index.read_bytes(), len(data))
    assert np.array_equal(np.load(index, allow_pickle=False), table)  # plain numpy opens it
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    assert keys_of(table) == sorted(s.key for s in samples)
    for row, (txt, meta, npy) in zip(table, zip(*[iter(members)] * 3, strict=True), strict=True):
        for prefix, member in (("txt", txt), ("json", meta), ("npy", npy)):
            assert (row[f"{prefix}_offset"], row[f"{prefix}_bytes"]) == (member.offset_data, member.size)
    starts, ends = token_spans(table)
    for sample, row, start, end in zip(read_shard(str(path)), table, starts, ends, strict=True):
        dtype = f"<u{row['itemsize']}"
        assert np.array_equal(np.frombuffer(data[start:end], dtype), sample.tokens)
        assert sample.tokens.dtype == np.dtype(dtype) and row["tokens"] == len(sample.tokens)


def test_an_index_is_optional_and_the_same_samples_give_the_same_index(tmp_path) -> None:
    plain = write_shard(str(tmp_path / "a.tar"), _samples(), index=False)
    assert "index" not in plain and not (tmp_path / "a.idx.npy").exists()
    indexed = write_shard(str(tmp_path / "b.tar"), list(reversed(_samples())))
    assert (tmp_path / "b.tar").read_bytes() == (tmp_path / "a.tar").read_bytes()  # the tar is the same
    again = write_shard(str(tmp_path / "c.tar"), _samples())
    assert indexed["index"] == again["index"]
    assert (tmp_path / "b.idx.npy").read_bytes() == (tmp_path / "c.idx.npy").read_bytes()


def test_verify_checks_the_index_against_the_manifest_and_the_shard(tmp_path) -> None:
    from corpus.shard_index import IndexRow, encode_index

    d, manifest = _release(tmp_path)
    index = Path(d) / "train-000000.idx.npy"
    good = index.read_bytes()
    index.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert verify_release(d, manifest) == [
        "train-000000.tar: index train-000000.idx.npy: sha256 or size differs from the manifest"
    ]
    index.unlink()
    assert verify_release(d, manifest) == ["train-000000.tar: index train-000000.idx.npy missing"]
    # An index the manifest pins but that disagrees with the tar (a release written wrongly) is named too.
    wrong = encode_index(
        [IndexRow("00ab", 512, 9, 1536, 2, 2560, 132, 2, 2), IndexRow("ffee01", 0, 0, 0, 0, 0, 16, 3, 2)]
    )
    index.write_bytes(wrong)
    manifest["splits"]["train"][0]["index"] = {
        "bytes": len(wrong),
        "sha256": hashlib.sha256(wrong).hexdigest(),
    }
    assert verify_release(d, manifest) == [
        "train-000000.tar: index train-000000.idx.npy does not match the shard's members"
    ]
    manifest["splits"]["train"][0]["index"] = {"sha256": 5}
    assert verify_release(d, manifest) == ["train-000000.tar: manifest: bad index entry {'sha256': 5}"]
    del manifest["splits"]["train"][0]["index"]  # a release made before indexes: nothing to check
    assert verify_release(d, manifest) == []


def test_decode_index_refuses_what_the_loader_must_not_use(tmp_path) -> None:
    from corpus.shard_index import IndexRow, decode_index, encode_index

    path = tmp_path / "t.tar"
    write_shard(str(path), _samples()[:2])
    size, data = path.stat().st_size, (tmp_path / "t.idx.npy").read_bytes()
    assert len(decode_index(data, size)) == 2
    row = IndexRow("ab", 512, 1, 1536, 2, 2560, 132, 2, 2)
    bad = {
        "past the end": [row._replace(npy_offset=size - 100)],
        "past the end of the shard (txt": [row._replace(txt_bytes=2**63)],
        "itemsize": [row._replace(itemsize=8)],
        "more tokens": [row._replace(tokens=70)],
    }
    for reason, rows in bad.items():
        with pytest.raises(ValueError, match=re.escape(reason)):
            decode_index(encode_index(rows), size)
    for garbage in (b"not npy", _npy(np.arange(3)), _npy(np.zeros((2, 2), np.uint8))):
        with pytest.raises(ValueError, match="index"):
            decode_index(garbage, size)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _with_header(data: bytes, at: int, **fields: bytes) -> bytes:
    """`data` with the header block at byte `at` changed (fields: name=, type=) and its checksum redone."""
    block = bytearray(data[at : at + 512])
    if "name" in fields:
        block[0:100] = fields["name"].ljust(100, b"\0")
    if "type" in fields:
        block[156:157] = fields["type"]
    block[148:156] = b"        "
    block[148:155] = b"%06o\0" % sum(block)
    return data[:at] + bytes(block) + data[at + 512 :]


def test_layout_problem_says_when_the_tar_is_not_what_its_index_describes(tmp_path) -> None:
    from corpus.shard_index import decode_index, layout_problem

    path = tmp_path / "t.tar"
    write_shard(str(path), _samples())
    data = path.read_bytes()
    table = decode_index((tmp_path / "t.idx.npy").read_bytes(), len(data))
    assert layout_problem(table, data) is None
    first_txt = int(table["txt_offset"][0]) - 512
    extra = tarfile.TarInfo("zz.txt")
    extra.size = 3
    inserted = (
        data[:first_txt] + extra.tobuf(tarfile.GNU_FORMAT) + b"abc".ljust(512, b"\0") + data[first_txt:]
    )
    assert layout_problem(table, inserted)  # a member slipped in (and the manifest rehashed to match)
    changed = {
        "a header names another member": _with_header(data, first_txt, name=b"zz.txt"),
        "more follows its last member": data[:-512] + b"x" * 512,
        "not a plain regular file": _with_header(data, first_txt, type=tarfile.SYMTYPE),
        "a header's checksum is wrong": data[: first_txt + 153] + b"9" + data[first_txt + 154 :],
    }
    for why, shard in changed.items():
        assert why in (layout_problem(table, shard) or ""), why
    gap = table.copy()
    gap["json_offset"] += 512  # an index that leaves room for a member it does not list
    assert "not back to back" in layout_problem(gap, data)
    long_key = tmp_path / "long.tar"
    write_shard(str(long_key), [Sample("k" * 90, "t", {}, np.array([1], np.uint16))])
    table = decode_index((tmp_path / "long.idx.npy").read_bytes(), long_key.stat().st_size)
    assert "over 100 bytes" in layout_problem(table, long_key.read_bytes())  # parsed the slow way instead
