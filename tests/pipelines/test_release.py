"""`webtext release` and `webtext verify` on the DirectRunner: real documents, GPT-2's own vocabulary."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from corpus.docs import annotations
from corpus.language import LanguageIdentifier
from corpus.rules import drop_reason
from corpus.shard_index import index_name
from corpus.signal_histograms import PRESETS
from corpus.tokenizer import gpt2_tokenizer
from pipelines.outputs import stable_shard
from pipelines.release.transform import shard_numbers, split_of
from tests.conftest import committed
from tests.fixtures.near_duplicates import load_gold
from tests.pipelines.test_dedup_filter import MULTI, doc, write_docs
from webtext.cli import main

GPT2 = Path(__file__).resolve().parent.parent / "fixtures" / "gpt2_bpe"
SPLITS = ("train", "val")


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.tar"))} | {
        "manifest.json": hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    }


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    texts = load_gold()
    identifier = LanguageIdentifier()
    rows = [
        doc(f"https://example.org/{name}", text, karma=i) | annotations(text, identifier)
        for i, (name, text) in enumerate(sorted(texts.items()))
    ]
    rows[-1] = doc(rows[-1]["url"], rows[-1]["text"], karma=rows[-1]["karma"])  # one from before annotations
    work = write_docs(tmp_path_factory.mktemp("release"), rows)
    args = ["--tokenizer", f"gpt2:{GPT2}", "--val-fraction", "0.3", "--shard-docs", "1"]
    for out, extra in ((work / "one", []), (work / "two", MULTI)):
        assert main(["release", "--docs", str(work), "--out", str(out), *args, *extra]) == 0
    release = committed(work / "one", "release")
    manifest = json.loads((release / "manifest.json").read_text())
    return {"work": work, "rows": rows, "manifest": manifest, "release": release}


def test_same_bytes_on_one_and_two_workers(released):
    work = released["work"]
    assert digests(committed(work / "one", "release")) == digests(committed(work / "two", "release"))


def test_the_datasheet_shows_the_signals_and_what_each_preset_would_drop(released):
    work, rows = released["work"], released["rows"]
    text = (released["release"] / "datasheet.md").read_text(encoding="utf-8")
    annotated = [row for row in rows if row.get("word_count") is not None]
    assert len(annotated) == len(rows) - 1
    assert "## Quality signals" in text and "| `gopher_dup_line_frac` |" in text
    assert f"1 of {len(rows)} documents carry no signals" in text
    assert f"All {len(annotated)} documents counted here are in the release" in text
    for preset in PRESETS:
        dropped = sum(drop_reason(row, PRESETS[preset]) is not None for row in annotated)
        assert f"| {preset} | {dropped} | {100 * dropped / len(annotated):.1f}% |" in text, preset
    assert f"en {sum(row.get('language') == 'en' for row in rows)} (" in text
    two = committed(work / "two", "release")
    for name in ("datasheet.md", "signals.png"):  # the summaries of two workers' batches add up the same
        assert (two / name).read_bytes() == (released["release"] / name).read_bytes(), name
    assert (released["release"] / "signals.png").read_bytes().startswith(b"\x89PNG")


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


def test_shard_numbers_are_contiguous_and_webdataset_brace_patterns_read_every_document(released):
    ids = {split: [r["id"] for r in released["rows"] if split_of(r["id"], 0.3) == split] for split in SPLITS}
    hashed = sorted({stable_shard(i, len(ids["train"])) for i in ids["train"]})  # --shard-docs 1
    assert hashed != list(range(len(hashed)))  # some hash shards got no document: numbering closes the gaps
    for split, shards in released["manifest"]["splits"].items():
        count = len(shards)
        assert [s["path"] for s in shards] == [f"{split}-{i:06d}.tar" for i in range(count)]
        pattern = f"{released['release']}/{split}-{{000000..{count - 1:06d}}}.tar"
        keys = [sample["__key__"] for sample in wds.WebDataset(pattern, shardshuffle=False)]
        assert sorted(keys) == sorted(ids[split]) and sum(s["docs"] for s in shards) == len(keys)


def test_shard_numbers_skip_empty_shards():
    keys = [("train", 4), ("val", 0), ("train", 0), ("train", 3)]
    assert shard_numbers(keys) == {("train", 0): 0, ("train", 3): 1, ("train", 4): 2, ("val", 0): 0}


def test_verify_names_a_gap_in_the_shard_numbers(released, tmp_path, capsys):
    copy = shutil.copytree(released["release"], tmp_path / "release")
    last = released["manifest"]["splits"]["train"][-1]["path"]
    gap = last.replace(last[-10:-4], f"{int(last[-10:-4]) + 1:06d}")
    for name, moved in ((last, gap), (index_name(last), index_name(gap))):  # a shard moves with its index
        (copy / name).rename(copy / moved)
    (copy / "manifest.json").write_text((copy / "manifest.json").read_text().replace(last, gap))
    assert main(["verify", str(copy)]) == 1
    assert "split 'train' is not numbered train-000000.tar on without gaps" in capsys.readouterr().err


def test_an_empty_release_is_refused_unless_allowed(tmp_path, capsys):
    work = write_docs(tmp_path / "work", [])
    args = ["release", "--docs", str(work), "--out", str(work), "--tokenizer", f"gpt2:{GPT2}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no documents to release; an empty release needs --allow-empty" in err[0]
    assert not (work / "release").exists()
    assert main([*args, "--allow-empty"]) == 0
    manifest = json.loads((committed(work, "release") / "manifest.json").read_text())
    assert manifest["splits"] == {"train": [], "val": []} and manifest["config"]["release"]["allow_empty"]
    capsys.readouterr()
    assert main(["verify", str(work)]) == 0 and "verify: ok: 0 shards, 0 documents" in capsys.readouterr().out
    del manifest["config"]["release"]["allow_empty"]
    (committed(work, "release") / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(work)]) == 1
    assert "the release holds no documents" in capsys.readouterr().err
