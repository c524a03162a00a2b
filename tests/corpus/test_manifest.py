"""Tests for corpus.manifest: the one schema, reader and serialization of a release's manifest.json."""

from __future__ import annotations

import copy
import json

import pytest

from corpus.errors import InputError
from corpus.manifest import (
    Manifest,
    ManifestError,
    NgramEntry,
    ShardEntry,
    TokenizerEntry,
    manifest_bytes,
    parse_manifest,
    validate_manifest,
)

WHERE = "/data/release/gen-1/manifest.json"
SHA_TRAIN = "4c9b10293fde99011d898bbb192d443ee3bc89ed9cdbbd6f62e8c4b4b72b61dc"
SHA_VAL = "9ff56827082198dd685d7b51da341af267b0cda4e54eb661a74ad6114dddfb4d"
SHA_TOKENIZER = "c36cf4aa285775178ab61b2d8d7a506af185a12f9bc161b53c2365e30638cb18"
SHA_BLOOM = "3305a5d50c31e05e2f483f344649187286007565b0539cd58830cfc975b5ce9d"

# What `webtext demo` wrote (release/gen-1/manifest.json), with config and stages cut to one stage each.
DEMO = {
    "build": {
        "dedup": {"in": 8, "out": 6},
        "extract": {"in": 9, "out": 8},
        "fetch": {"in": 519, "out": 9},
        "filter": {"in": 6, "out": 6},
        "links": {"in": 739, "out": 521},
        "ngrams": {"in": 4, "out": 1551},
        "release": {"in": 6, "out": 6},
    },
    "config": {
        "dedup": {
            "dedup": {
                "bands": 16, "num_perm": 128, "rounds": 10, "rows": 8, "seed": 1, "shingle": 5,
                "threshold": 0.8, "weights": [0.05, 0.95],
            }
        },
        "release": {
            "shard_bytes": 256000000, "shard_docs": None, "tokenizer": "train:2000", "val_fraction": 0.2,
        },
    },
    "created_by": "webtext 0.1.0",
    "format_version": 1,
    "ngrams": [
        {
            "bits": 59712, "bytes": 7528, "documents": 4, "fpr": 1e-08, "hash": "ngram64-v1", "hashes": 24,
            "items": 1551, "n": 8, "ngrams": 1551, "path": "ngrams-8-3305a5d50c31e05e.bloom",
            "sha256": SHA_BLOOM, "split": "train",
        }
    ],
    "splits": {
        "train": [
            {"bytes": 30720, "docs": 4, "path": "train-000000.tar", "sha256": SHA_TRAIN, "tokens": 2939},
        ],
        "val": [
            {"bytes": 20480, "docs": 2, "path": "val-000000.tar", "sha256": SHA_VAL, "tokens": 2022},
        ],
    },
    "stages": {
        "dedup": {
            "config": {"dedup": {"bands": 16, "seed": 1, "threshold": 0.8, "weights": [0.05, 0.95]}},
            "dropped": {"exact_duplicate": 1, "near_duplicate": 1},
            "in": 8, "out": 6, "stage": "dedup", "verified_pairs": 1,
        }
    },
    "tokenizer": {
        "eot_id": 1065, "path": "tokenizer/tokenizer.json", "sha256": SHA_TOKENIZER, "vocab_size": 1066,
    },
}  # fmt: skip

# The bytes the release stage writes for a small manifest: pins the format (key order, indent, lists, null,
# non-ASCII text kept as UTF-8, final newline) so a rebuilt release stays byte-identical.
SMALL = {
    "created_by": "webtext 0.1.0 — café",
    "config": {"release": {"allow_empty": True, "shard_docs": None, "val_fraction": 0.2}},
    "format_version": 1,
    "splits": {
        "val": [],
        "train": [{"path": "train-000000.tar", "docs": 1, "tokens": 2, "bytes": 3, "sha256": SHA_TRAIN}],
    },
    "tokenizer": {
        "vocab_size": 1066, "eot_id": 1065, "path": "tokenizer/tokenizer.json", "sha256": SHA_TOKENIZER,
    },
    "weights": [0.05, 0.95],
}  # fmt: skip
SMALL_TEXT = f"""{{
  "config": {{
    "release": {{
      "allow_empty": true,
      "shard_docs": null,
      "val_fraction": 0.2
    }}
  }},
  "created_by": "webtext 0.1.0 — café",
  "format_version": 1,
  "splits": {{
    "train": [
      {{
        "bytes": 3,
        "docs": 1,
        "path": "train-000000.tar",
        "sha256": "{SHA_TRAIN}",
        "tokens": 2
      }}
    ],
    "val": []
  }},
  "tokenizer": {{
    "eot_id": 1065,
    "path": "tokenizer/tokenizer.json",
    "sha256": "{SHA_TOKENIZER}",
    "vocab_size": 1066
  }},
  "weights": [
    0.05,
    0.95
  ]
}}
"""


def demo_bytes() -> bytes:
    return json.dumps(DEMO, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"


def test_the_demo_manifest_parses_into_typed_entries() -> None:
    manifest = parse_manifest(demo_bytes(), WHERE)
    assert isinstance(manifest, Manifest) and manifest.data == DEMO
    assert manifest.tokenizer == TokenizerEntry("tokenizer/tokenizer.json", SHA_TOKENIZER, 1066, 1065)
    assert manifest.shards("train") == [ShardEntry("train-000000.tar", 4, 2939, 30720, SHA_TRAIN)]
    assert manifest.shards("val") == [ShardEntry("val-000000.tar", 2, 2022, 20480, SHA_VAL)]
    assert manifest.shards("test") == []
    assert [e.path for e in manifest.all_shards()] == ["train-000000.tar", "val-000000.tar"]
    assert (manifest.documents(), manifest.tokens(), manifest.documents("val")) == (6, 4961, 2)
    assert manifest.ngrams == [NgramEntry("ngrams-8-3305a5d50c31e05e.bloom", SHA_BLOOM, 7528, 8)]
    assert manifest.format_version == 1 and manifest.allow_empty is False
    assert parse_manifest(demo_bytes().decode("utf-8"), WHERE) == manifest  # text works as well as bytes


def test_allow_empty_comes_from_the_release_config() -> None:
    manifest = parse_manifest(manifest_bytes(SMALL), WHERE)
    assert manifest.allow_empty is True and manifest.documents("val") == 0
    assert parse_manifest(manifest_bytes({**SMALL, "config": "odd"}), WHERE).allow_empty is False


def test_manifest_bytes_is_the_release_stages_format_byte_for_byte() -> None:
    assert manifest_bytes(SMALL) == SMALL_TEXT.encode("utf-8")
    assert manifest_bytes(DEMO) == demo_bytes()
    manifest = parse_manifest(demo_bytes(), WHERE)
    assert manifest_bytes(manifest) == manifest_bytes(manifest.data) == demo_bytes()


def test_a_writer_changes_data_and_writes_back_everything_it_read() -> None:
    manifest = parse_manifest(demo_bytes(), WHERE)
    manifest.data["build"]["release"]["out"] = 7
    again = parse_manifest(manifest_bytes(manifest), WHERE)
    assert again.data["build"]["release"] == {"in": 6, "out": 7}
    rest = {k: v for k, v in again.data.items() if k != "build"}
    assert rest == {k: v for k, v in DEMO.items() if k != "build"}


def broken(change) -> bytes:
    manifest = copy.deepcopy(DEMO)
    change(manifest)
    return json.dumps(manifest).encode("utf-8")


def _set(path: str, value):
    def change(manifest: dict) -> None:
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{not json", "cannot read the manifest (Expecting property name enclosed in double quotes"),
        (b"\xff\xfe\x00", "cannot read the manifest ("),
        (b"[" * 100_000 + b"]" * 100_000, "cannot read the manifest (nested too deeply)"),
        (b"[1, 2]", "not a JSON object"),
        (b'"manifest"', "not a JSON object"),
        (broken(_set("tokenizer", _DELETE)), "no 'tokenizer' entry with a 'path'"),
        (broken(_set("tokenizer.path", 7)), "no 'tokenizer' entry with a 'path'"),
        (
            broken(_set("tokenizer.eot_id", 1066)),
            "tokenizer vocab_size 1066 / eot_id 1066 are not integers with 0 <= eot_id < vocab_size",
        ),
        (
            broken(_set("tokenizer.vocab_size", "1066")),
            "tokenizer vocab_size '1066' / eot_id 1065 are not integers with 0 <= eot_id < vocab_size",
        ),
        (broken(_set("tokenizer.sha256", None)), "tokenizer sha256 None is not a SHA-256 hex digest"),
        (
            broken(_set("splits", ["train-000000.tar"])),
            "no 'splits' mapping of split name to a list of shards",
        ),
        (
            broken(_set("splits.val", {"path": "val-000000.tar"})),
            "no 'splits' mapping of split name to a list",
        ),
        (broken(_set("splits", _DELETE)), "no 'splits' mapping of split name to a list of shards"),
        (
            broken(_set("splits.train.0.path", "../etc/passwd")),
            "split 'train': bad shard entry {'bytes': 30720, 'docs': 4, 'path': '../etc/passwd',",
        ),
        (
            broken(_set("splits.val.0", 5)),
            "split 'val': bad shard entry 5 (path must be like val-000000.tar)",
        ),
        (
            broken(_set("splits.train.0.docs", "4")),
            "split 'train': shard train-000000.tar has no integer 'docs' and 'tokens' counts",
        ),
        (
            broken(_set("splits.train.0.docs", True)),
            "split 'train': shard train-000000.tar has no integer 'docs' and 'tokens' counts",
        ),
        (
            broken(_set("splits.val.0.tokens", -1)),
            "split 'val': shard val-000000.tar has no integer 'docs' and 'tokens' counts",
        ),
        (
            broken(_set("splits.train.0.tokens", _DELETE)),
            "split 'train': shard train-000000.tar has no integer 'docs' and 'tokens' counts",
        ),
        (
            broken(_set("splits.train.0.sha256", _DELETE)),
            "split 'train': shard train-000000.tar has no integer 'bytes' and hex 'sha256' to check",
        ),
        (
            broken(_set("splits.val.0.bytes", 1.5)),
            "split 'val': shard val-000000.tar has no integer 'bytes' and hex 'sha256' to check",
        ),
        (
            broken(lambda m: m["splits"]["val"].append(m["splits"]["train"][0])),
            "split 'val': shard train-000000.tar is listed twice",
        ),
        (broken(_set("ngrams", {})), "'ngrams' is not a list of filters"),
        (broken(_set("ngrams.0.path", "../x.bloom")), "bad ngrams entry {'bits': 59712,"),
        (broken(_set("ngrams.0.n", _DELETE)), "bad ngrams entry {'bits': 59712,"),
        (broken(_set("format_version", 2)), "format_version 2 is newer than this webtext reads (1)"),
        (broken(_set("format_version", "1")), "format_version '1' is not an integer"),
    ],
)
def test_each_broken_manifest_is_one_line_naming_the_file(data: bytes, problem: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_manifest(data, WHERE)
    message = str(raised.value)
    assert message.startswith(f"{WHERE}: {problem}"), message
    assert "\n" not in message and len(message) < 400
    assert isinstance(raised.value, InputError)  # the CLI shows it as one line, exit 2


def test_a_huge_bad_entry_is_cut_in_the_message() -> None:
    data = broken(_set("splits.train.0", {"path": "x" * 10_000}))
    with pytest.raises(ManifestError, match=r"bad shard entry \{'path': 'xxx+\.\.\. \(path must be like"):
        parse_manifest(data, WHERE)


def test_an_absent_ngrams_or_format_version_is_fine() -> None:
    manifest = parse_manifest(broken(lambda m: (m.pop("ngrams"), m.pop("format_version"))), WHERE)
    assert manifest.ngrams == [] and manifest.format_version is None


def test_validate_manifest_takes_an_already_decoded_object() -> None:
    assert validate_manifest(copy.deepcopy(DEMO), WHERE).documents() == 6
    with pytest.raises(ManifestError, match=r"^x\.json: not a JSON object$"):
        validate_manifest(None, "x.json")


def test_a_shard_index_entry_is_optional_and_checked_when_present() -> None:
    from corpus.manifest import IndexEntry

    index = {"bytes": 312, "sha256": SHA_VAL}
    manifest = parse_manifest(broken(_set("splits.train.0.index", index)), WHERE)
    assert manifest.shards("train") == [
        ShardEntry("train-000000.tar", 4, 2939, 30720, SHA_TRAIN, IndexEntry(312, SHA_VAL))
    ]
    assert manifest.shards("val")[0].index is None  # a release made before indexes
    for bad in ({"bytes": 312}, {"bytes": -1, "sha256": SHA_VAL}, "val-000000.idx.npy"):
        with pytest.raises(ManifestError) as raised:
            parse_manifest(broken(_set("splits.train.0.index", bad)), WHERE)
        problem = "shard train-000000.tar has an 'index' without integer 'bytes' and hex sha256"
        assert str(raised.value) == f"{WHERE}: split 'train': {problem}"


def _partitioned_filter(manifest: dict) -> None:
    """The demo's 8-gram filter as `webtext ngrams --partitions 2` records it."""
    part = {"bits": 29888, "hashes": 24, "items": 776, "bytes": 3800}
    parts = [
        {**part, "path": "ngrams-8-part0000of0002-1111111111111111.bloom", "sha256": SHA_VAL},
        {**part, "path": "ngrams-8-part0001of0002-2222222222222222.bloom", "sha256": SHA_TRAIN},
    ]
    manifest["ngrams"] = [
        {
            "bits": 59776, "bytes": 7600, "documents": 4, "fpr": 1e-08, "hash": "ngram64-v1", "items": 1552,
            "n": 8, "ngrams": 1551, "partitions": 2, "parts": parts, "split": "train",
        }
    ]  # fmt: skip


def test_a_filter_in_partitions_lists_its_files_in_order() -> None:
    manifest = parse_manifest(broken(_partitioned_filter), WHERE)
    (entry,) = manifest.ngrams
    assert (entry.n, entry.partitions, entry.path, entry.sha256, entry.bytes) == (8, 2, None, None, 7600)
    assert [(f.path, f.sha256, f.bytes) for f in entry.files()] == [
        ("ngrams-8-part0000of0002-1111111111111111.bloom", SHA_VAL, 3800),
        ("ngrams-8-part0001of0002-2222222222222222.bloom", SHA_TRAIN, 3800),
    ]
    whole = parse_manifest(demo_bytes(), WHERE).ngrams[0]  # a whole filter: partitions 1, its one file
    assert whole.partitions == 1 and [f.path for f in whole.files()] == ["ngrams-8-3305a5d50c31e05e.bloom"]
    explicit = parse_manifest(broken(_set("ngrams.0.partitions", 1)), WHERE).ngrams  # "partitions": 1 is fine
    assert explicit == [NgramEntry("ngrams-8-3305a5d50c31e05e.bloom", SHA_BLOOM, 7528, 8)]


def _in_parts(*changes):
    def change(manifest: dict) -> None:
        _partitioned_filter(manifest)
        for step in changes:
            step(manifest)

    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set("ngrams.0.partitions", 3), "ngrams entry for n=8: 'partitions' 3 is not a power of two"),
        (_set("ngrams.0.partitions", True), "ngrams entry for n=8: 'partitions' True is not a power of two"),
        (_set("ngrams.0.partitions", 4), "ngrams entry for n=8: needs a list 'parts' of 4 files"),
        (_set("ngrams.0.parts", _DELETE), "ngrams entry for n=8: needs a list 'parts' of 2 files"),
        (
            _set("ngrams.0.parts.1.path", "../x.bloom"),
            "ngrams entry for n=8: needs a list 'parts' of 2 files",
        ),
        (_set("ngrams.0.parts.0.sha256", "x"), "ngrams entry for n=8: needs a list 'parts' of 2 files"),
        (
            _set("ngrams.0.parts.1.path", "ngrams-8-part0000of0002-1111111111111111.bloom"),
            "ngrams entry for n=8: a partition file is listed twice",
        ),
    ],
)
def test_a_bad_filter_in_partitions_is_one_line(change, problem: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_manifest(broken(_in_parts(change)), WHERE)
    assert str(raised.value).startswith(f"{WHERE}: {problem}"), str(raised.value)
