"""Tests for corpus.shards: deterministic WebDataset shards, reading back, release verification."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from corpus.shards import Sample, read_shard, shard_name, verify_release, write_shard


def _samples() -> list[Sample]:
    return [
        Sample(
            "ffee01",
            "zweite Zeile — ünïcödé\n",
            {"url": "https://b.example/", "karma": 7},
            np.array([5, 6, 7], np.uint16),
        ),
        Sample("00ab", "first doc", {"url": "https://a.example/", "karma": 3}, np.array([1, 2], np.uint16)),
        Sample("7c", "", {"url": "https://c.example/", "karma": 100}, np.array([], np.uint16)),
        Sample("a1b2", "big vocab", {"domain": "d.example"}, np.array([70000, 1], np.uint32)),
    ]


def _release(tmp_path) -> tuple[str, dict]:
    d = tmp_path / "release"
    d.mkdir()
    s = _samples()
    train = [
        write_shard(str(d / shard_name("train", 0)), s[:2]),
        write_shard(str(d / shard_name("train", 1)), s[2:3]),
    ]
    val = [write_shard(str(d / shard_name("val", 0)), s[3:])]
    return str(d), {"format_version": 1, "splits": {"train": train, "val": val}}


def test_shard_name() -> None:
    assert shard_name("train", 0) == "train-000000.tar"
    assert shard_name("val", 123) == "val-000123.tar"
    with pytest.raises(ValueError):
        shard_name("../x", 0)


def test_write_is_deterministic_and_sorted(tmp_path) -> None:
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    ra = write_shard(str(a), _samples())
    rb = write_shard(str(b), list(reversed(_samples())))
    assert a.read_bytes() == b.read_bytes()
    assert {k: v for k, v in ra.items() if k != "path"} == {k: v for k, v in rb.items() if k != "path"}
    assert ra["path"] == "a.tar" and ra["docs"] == 4 and ra["tokens"] == 3 + 2 + 0 + 2
    assert ra["bytes"] == a.stat().st_size
    assert not os.path.exists(str(a) + ".tmp")
    with tarfile.open(a) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    keys = sorted(s.key for s in _samples())
    assert names == [f"{k}.{ext}" for k in keys for ext in ("txt", "json", "tokens.npy")]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
        assert m.isreg()


def test_duplicate_or_bad_keys_rejected(tmp_path) -> None:
    s = _samples()[0]
    with pytest.raises(ValueError):
        write_shard(str(tmp_path / "x.tar"), [s, s])
    with pytest.raises(ValueError):
        write_shard(str(tmp_path / "x.tar"), [Sample("a.b", "t", {}, np.array([1], np.uint16))])
    with pytest.raises(ValueError):
        write_shard(str(tmp_path / "x.tar"), [Sample("ab", "t", {}, np.array([1], np.int64))])


def test_custom_open_and_rename(tmp_path) -> None:
    calls = []

    def rename(src: str, dst: str) -> None:
        calls.append((os.path.basename(src), os.path.basename(dst)))
        os.replace(src, dst)

    info = write_shard(str(tmp_path / "t.tar"), _samples(), open_fn=open, rename_fn=rename)
    assert calls == [("t.tar.tmp", "t.tar")] and info["docs"] == 4


def test_read_shard_round_trip(tmp_path) -> None:
    path = str(tmp_path / "t.tar")
    write_shard(path, _samples())
    got = list(read_shard(path))
    want = sorted(_samples(), key=lambda s: s.key)
    assert [g.key for g in got] == [w.key for w in want]
    for g, w in zip(got, want, strict=True):
        assert g.text == w.text and g.meta == w.meta
        assert g.tokens.dtype == w.tokens.dtype and np.array_equal(g.tokens, w.tokens)


def test_reads_back_with_plain_webdataset(tmp_path) -> None:
    path = str(tmp_path / "train-000000.tar")
    info = write_shard(path, _samples())
    got = list(wds.WebDataset(path, shardshuffle=False).decode())
    want = sorted(_samples(), key=lambda s: s.key)
    assert [g["__key__"] for g in got] == [w.key for w in want]
    for g, w in zip(got, want, strict=True):
        assert isinstance(g["txt"], str) and g["txt"] == w.text
        assert isinstance(g["json"], dict) and g["json"] == w.meta
        tokens = g["tokens.npy"]
        assert isinstance(tokens, np.ndarray) and tokens.dtype == w.tokens.dtype
        assert np.array_equal(tokens, w.tokens)
    assert sum(len(g["tokens.npy"]) for g in got) == info["tokens"]
    assert len(got) == info["docs"]


def test_verify_clean_release(tmp_path) -> None:
    d, manifest = _release(tmp_path)
    assert verify_release(d, manifest) == []


def _one(problems: list[str], name: str) -> None:
    assert problems, "expected a problem"
    assert all(p.startswith(name) for p in problems), problems


def test_verify_truncated_shard(tmp_path) -> None:
    d, manifest = _release(tmp_path)
    p = Path(d) / "train-000000.tar"
    p.write_bytes(p.read_bytes()[:700])
    _one(verify_release(d, manifest), "train-000000.tar")


def test_verify_checks_the_ngram_filter_the_manifest_lists(tmp_path) -> None:
    from corpus.shards import file_sha256

    d, manifest = _release(tmp_path)
    bloom = Path(d) / "ngrams-8.bloom"
    bloom.write_bytes(b"bits" * 100)
    sha, size = file_sha256(str(bloom))
    manifest["ngrams"] = [{"path": bloom.name, "sha256": sha, "bytes": size}]
    assert verify_release(d, manifest) == []
    bloom.write_bytes(b"bitz" * 100)
    _one(verify_release(d, manifest), "ngrams-8.bloom")
    bloom.unlink()
    _one(verify_release(d, manifest), "ngrams-8.bloom")


def test_verify_flipped_byte(tmp_path) -> None:
    d, manifest = _release(tmp_path)
    p = Path(d) / "val-000000.tar"
    data = bytearray(p.read_bytes())
    data[520] ^= 0x01  # inside the first member's payload
    p.write_bytes(bytes(data))
    problems = verify_release(d, manifest)
    _one(problems, "val-000000.tar")
    assert any("sha256" in p for p in problems)


def test_verify_missing_and_extra_shards(tmp_path) -> None:
    d, manifest = _release(tmp_path)
    os.remove(os.path.join(d, "train-000001.tar"))
    write_shard(os.path.join(d, "train-000009.tar"), _samples()[:1])
    problems = verify_release(d, manifest)
    assert problems == ["train-000001.tar: missing", "train-000009.tar: shard not listed in the manifest"]


def test_verify_wrong_counts(tmp_path) -> None:
    d, manifest = _release(tmp_path)
    manifest["splits"]["train"][0]["docs"] += 1
    manifest["splits"]["val"][0]["tokens"] = 999
    problems = verify_release(d, manifest)
    assert len(problems) == 2
    assert problems[0].startswith("train-000000.tar") and "docs" in problems[0]
    assert problems[1].startswith("val-000000.tar") and "tokens" in problems[1]


def test_verify_bad_manifest_does_not_raise(tmp_path) -> None:
    d, _ = _release(tmp_path)
    assert verify_release(d, {}) == ["manifest: no 'splits' mapping"]
    problems = verify_release(d, {"splits": {"train": [{"path": "../../etc/passwd"}, 5]}})
    assert any("../../etc/passwd" in p for p in problems)
    assert any("bad shard entry" in p for p in problems)


def _hostile_tar(path: str) -> None:
    def reg(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        return info, io.BytesIO(data)

    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(*reg("ab.txt", b"fine"))
        tar.addfile(*reg("ab.json", b"{}"))
        buf = io.BytesIO()
        np.save(buf, np.array([1, 2], np.uint16))
        tar.addfile(*reg("ab.tokens.npy", buf.getvalue()))
        tar.addfile(*reg("/tmp/webtext-abs-evil.txt", b"x"))
        tar.addfile(*reg("../webtext-evil.txt", b"x"))
        link = tarfile.TarInfo("cd.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        hard = tarfile.TarInfo("cd.json")
        hard.type, hard.linkname = tarfile.LNKTYPE, "ab.json"
        tar.addfile(hard)
        dev = tarfile.TarInfo("ef.txt")
        dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(dev)
        fifo = tarfile.TarInfo("gh.txt")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)
        tar.addfile(*reg("README.md", b"not in the schema"))
        tar.addfile(*reg("ij.tokens.npy", b"\x93NUMPY garbage"))
        d = tarfile.TarInfo("subdir")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)


def test_verify_malicious_tar(tmp_path, monkeypatch) -> None:
    d = tmp_path / "release"
    d.mkdir()
    path = d / "train-000000.tar"
    _hostile_tar(str(path))
    before = sorted(p for p in tmp_path.rglob("*"))
    monkeypatch.chdir(d)  # nothing may land relative to the cwd either
    import hashlib

    entry = {
        "path": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "bytes": path.stat().st_size,
    }
    entry |= {"docs": 1, "tokens": 2}
    problems = verify_release(str(d), {"splits": {"train": [entry]}})
    text = "\n".join(problems)
    assert all(p.startswith("train-000000.tar") for p in problems)
    assert "'/tmp/webtext-abs-evil.txt': absolute path" in text
    assert "'../webtext-evil.txt': path traversal" in text
    assert "'cd.txt': link to '/etc/passwd'" in text
    assert "'cd.json': link to 'ab.json'" in text
    assert "'ef.txt': device or fifo" in text
    assert "'gh.txt': device or fifo" in text
    assert "'README.md': name outside the schema" in text
    assert "'ij.tokens.npy': unreadable" in text
    assert "'subdir': not a regular file" in text
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not os.path.exists("/tmp/webtext-abs-evil.txt")
    assert not (tmp_path / "webtext-evil.txt").exists()


def test_verify_garbage_file_does_not_raise(tmp_path) -> None:
    d = tmp_path / "release"
    d.mkdir()
    (d / "train-000000.tar").write_bytes(b"\x00garbage" * 100)
    entry = {"path": "train-000000.tar", "sha256": "0" * 64, "bytes": 800, "docs": 0, "tokens": 0}
    problems = verify_release(str(d), {"splits": {"train": [entry]}})
    _one(problems, "train-000000.tar")


def test_verify_and_numbering_take_a_parsed_manifest_as_well_as_the_dict(tmp_path) -> None:
    from corpus.manifest import manifest_bytes, parse_manifest
    from corpus.shards import numbering_problems

    d, manifest = _release(tmp_path)
    manifest["tokenizer"] = {
        "path": "tokenizer/tokenizer.json",
        "sha256": "1" * 64,
        "vocab_size": 9,
        "eot_id": 8,
    }
    parsed = parse_manifest(manifest_bytes(manifest), f"{d}/manifest.json")
    assert verify_release(d, parsed) == verify_release(d, manifest) == []
    assert numbering_problems(parsed) == numbering_problems(manifest) == []
    for suffix in (".tar", ".idx.npy"):  # a shard moves with its index
        os.rename(os.path.join(d, f"train-000001{suffix}"), os.path.join(d, f"train-000002{suffix}"))
    manifest["splits"]["train"][1]["path"] = "train-000002.tar"
    parsed = parse_manifest(manifest_bytes(manifest), f"{d}/manifest.json")
    assert verify_release(d, parsed) == []
    assert numbering_problems(parsed) == [
        "manifest: split 'train' is not numbered train-000000.tar on without gaps"
    ]


def test_file_sha256_is_one_function_giving_hex_and_size(tmp_path) -> None:
    import hashlib

    import corpus.hashing
    import corpus.link_rules
    import corpus.shards

    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # over one read block
    path.write_bytes(data)
    digest = corpus.hashing.file_sha256(str(path))
    assert digest == (hashlib.sha256(data).hexdigest(), len(data))
    assert (digest.sha256, digest.size) == digest
    assert corpus.shards.file_sha256 is corpus.link_rules.file_sha256 is corpus.hashing.file_sha256


def test_verify_reports_a_bad_ngrams_entry_without_raising(tmp_path) -> None:
    d, manifest = _release(tmp_path)
    manifest["ngrams"] = [{"path": "../../etc/passwd", "sha256": "0" * 64, "bytes": 1}, 7]
    problems = verify_release(d, manifest)
    assert problems == [
        "manifest: bad ngrams entry {'path': '../../etc/passwd', 'sha256': '" + "0" * 64 + "', 'bytes': 1}",
        "manifest: bad ngrams entry 7",
    ]
    assert verify_release(d, {**manifest, "ngrams": {"path": "x"}}) == [
        "manifest: 'ngrams' is not a list of filters"
    ]


def _tarfile_shard(samples: list[Sample]) -> bytes:
    """A shard as tarfile.addfile and np.save write it: what write_shard's own tar headers must equal."""
    from corpus.shards import meta_bytes

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for s in sorted(samples, key=lambda s: s.key):
            npy = io.BytesIO()
            np.save(npy, s.tokens, allow_pickle=False)
            for suffix, data in (
                ("txt", s.text.encode()),
                ("json", meta_bytes(s.meta)),
                ("tokens.npy", npy.getvalue()),
            ):
                info = tarfile.TarInfo(f"{s.key}.{suffix}")
                info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
                    len(data),
                    0,
                    0o644,
                    0,
                    0,
                    "",
                    "",
                )
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_write_shard_writes_the_bytes_tarfile_and_np_save_write(tmp_path) -> None:
    rng = np.random.default_rng(0)
    samples = _samples() + [
        Sample("k" * 101, "a name over 100 bytes: GNU long-name block", {}, np.array([1], np.uint16)),
        Sample("x" * 100, "x" * 512, {"a": [1, None]}, rng.integers(0, 9, 255, dtype=np.uint16)),
        Sample("big", "é" * 5000, {"n": 1}, rng.integers(0, 70000, 20_000, dtype=np.uint32)),
        Sample("blockedge", "y" * 511, {}, np.zeros(0, np.uint32)),
    ]
    for n in range(0, 1200, 7):
        samples.append(
            Sample(f"n{n:05d}", "z" * (n % 600), {"n": n}, rng.integers(0, 50257, n, dtype=np.uint16))
        )
    path = tmp_path / "t.tar"
    info = write_shard(str(path), samples)
    assert path.read_bytes() == _tarfile_shard(samples)
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
