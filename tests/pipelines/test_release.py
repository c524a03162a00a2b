"""`webtext release` and `webtext verify` on the DirectRunner: real documents, GPT-2's own vocabulary."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from corpus.tokenizer import gpt2_tokenizer
from pipelines.cli import main
from pipelines.release import split_of
from tests.fixtures.near_duplicates import load_gold
from tests.pipelines.test_dedup_filter import MULTI, doc, write_docs

GPT2 = Path(__file__).resolve().parent.parent / "fixtures" / "gpt2_bpe"


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.tar"))} | {
        "manifest.json": hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    }


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    texts = load_gold()
    rows = [
        doc(f"https://example.org/{name}", text, karma=i)
        for i, (name, text) in enumerate(sorted(texts.items()))
    ]
    work = write_docs(tmp_path_factory.mktemp("release"), rows)
    args = ["--tokenizer", f"gpt2:{GPT2}", "--val-fraction", "0.3", "--shard-docs", "3"]
    for out, extra in ((work / "one", []), (work / "two", MULTI)):
        assert main(["release", "--docs", str(work), "--out", str(out), *args, *extra]) == 0
    manifest = json.loads((work / "one" / "release" / "manifest.json").read_text())
    return {"work": work, "rows": rows, "manifest": manifest, "release": work / "one" / "release"}


def test_same_bytes_on_one_and_two_workers(released):
    work = released["work"]
    assert digests(work / "one" / "release") == digests(work / "two" / "release")


def test_shards_read_back_with_webdataset_and_match_the_manifest(released):
    tokenizer = gpt2_tokenizer(str(GPT2))
    text_of = {row["id"]: row["text"] for row in released["rows"]}
    seen = {}
    for split, shards in released["manifest"]["splits"].items():
        for shard in shards:
            samples = list(
                wds.WebDataset(str(released["release"] / shard["path"]), shardshuffle=False).decode()
            )
            assert len(samples) == shard["docs"]
            assert sum(len(s["tokens.npy"]) for s in samples) == shard["tokens"]
            for sample in samples:
                assert sample["tokens.npy"].dtype == np.uint16 and sample["txt"] == text_of[sample["__key__"]]
                assert sample["tokens.npy"].tolist() == tokenizer.encode(sample["txt"])
                assert split_of(sample["__key__"], 0.3) == split and sample["__key__"] not in seen
                seen[sample["__key__"]] = split
    assert set(seen) == set(text_of) and {"train", "val"} == set(seen.values())  # val never leaks into train


def test_manifest_names_its_tokenizer_and_every_shard(released):
    manifest, release = released["manifest"], released["release"]
    tokenizer = manifest["tokenizer"]
    assert (tokenizer["vocab_size"], tokenizer["eot_id"]) == (50257, 50256)
    assert tokenizer["sha256"] == hashlib.sha256((release / tokenizer["path"]).read_bytes()).hexdigest()
    assert manifest["format_version"] == 1 and manifest["created_by"].startswith("webtext ")
    for shard in manifest["splits"]["train"]:
        assert hashlib.sha256((release / shard["path"]).read_bytes()).hexdigest() == shard["sha256"]


def test_verify_names_an_altered_shard(released, tmp_path, capsys):
    copy = tmp_path / "release"
    copy.mkdir()
    for path in released["release"].rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(released["release"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert main(["verify", str(copy)]) == 0
    shard = copy / released["manifest"]["splits"]["train"][0]["path"]
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert main(["verify", str(copy)]) == 1
    assert shard.name in capsys.readouterr().err
