"""`webtext ngrams` and `webtext overlap` on a real release (DirectRunner): the filter, the manifest entry,
determinism, the memory refusal, the overlap report against exact sets, and that the release is reached only
through Beam's filesystems."""

import contextlib
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from corpus.bloom import BloomFilter
from corpus.ngrams import NgramHasher, ngrams, words
from corpus.shards import read_shard
from pipelines.ngrams.transform import read_filters
from tests.conftest import committed
from tests.pipelines.test_dedup_filter import MULTI, doc, write_docs
from webtext.cli import main

ROOT = Path(__file__).resolve().parents[2]
WEBTEXT = ROOT / "tests" / "fixtures" / "wikipedia" / "webtext.jsonl"
LAMBADA = ROOT / "corpus" / "sample" / "eval" / "lambada_test.first200.jsonl"
PTB_TEST = ROOT / "tests" / "fixtures" / "eval" / "ptb.test.first200.txt"
PTB_VALID = ROOT / "tests" / "fixtures" / "eval" / "ptb.valid.first200.txt"


def split_texts(release: Path, split: str) -> list[str]:
    manifest = json.loads((release / "manifest.json").read_text())
    return [s.text for shard in manifest["splits"][split] for s in read_shard(str(release / shard["path"]))]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bloom_name(release: Path, n: int = 8) -> str:
    """The file of the release's n-gram filter, as its manifest names it."""
    entries = json.loads((release / "manifest.json").read_text())["ngrams"]
    return next(entry["path"] for entry in entries if entry["n"] == n)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A release of 110 real WebText documents (10 whole, 100 cut to 63 tokens), with its 8-gram filter."""
    records = [json.loads(line) for line in WEBTEXT.read_text(encoding="utf-8").splitlines()]
    rows = [doc(f"https://webtext.example/{i}", r["text"], karma=i) for i, r in enumerate(records)]
    work = write_docs(tmp_path_factory.mktemp("ngrams"), rows)
    release_args = ["--tokenizer", "train:400", "--val-fraction", "0.2", "--shard-docs", "20"]
    assert main(["release", "--docs", str(work), "--out", str(work), *release_args]) == 0
    release = committed(work, "release")
    before = (release / "manifest.json").read_text()
    assert main(["ngrams", "--release", str(work)]) == 0
    return {"work": work, "release": release, "manifest_before": json.loads(before)}


def test_the_filter_holds_exactly_the_train_splits_ngrams(work):
    release = work["release"]
    train, val = split_texts(release, "train"), split_texts(release, "val")
    bloom = BloomFilter.load(str(release / bloom_name(release)))
    exact = {g for text in train for g in ngrams(words(text), 8)}
    assert bloom.params.items == len(exact) > 5000  # the exact count of distinct 8-grams sized it
    assert bloom.params.n == 8 and bloom.params.fpr == 1e-8
    hasher = NgramHasher(8)
    assert bloom.contains(hasher.hashes(train)[0]).all()  # no false negatives
    val_grams = [g for text in val for g in ngrams(words(text), 8)]
    found = bloom.contains(hasher.hashes(val)[0])
    assert found.tolist() == [g in exact for g in val_grams]  # val documents only share what they share


def test_manifest_records_the_filter_and_verify_still_passes(work, capsys):
    release = work["release"]
    manifest = json.loads((release / "manifest.json").read_text())
    entry = manifest.pop("ngrams")
    assert manifest == work["manifest_before"]  # nothing else changed
    name = bloom_name(release)
    bloom = BloomFilter.load(str(release / name))
    assert name == f"ngrams-8-{sha256(release / name)[:16]}.bloom"  # named by its content
    assert entry == [
        {
            "path": name,
            **bloom.params.to_dict(),
            "split": "train",
            "documents": len(split_texts(release, "train")),
            "ngrams": sum(max(len(words(t)) - 7, 0) for t in split_texts(release, "train")),
            "bytes": (release / name).stat().st_size,
            "sha256": sha256(release / name),
        }
    ]
    assert main(["verify", str(work["work"])]) == 0
    assert "verify: ok" in capsys.readouterr().out
    assert not [p.name for p in release.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


def test_same_bytes_on_two_workers_and_on_a_rerun(work, tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(work["release"], copy)
    (copy / bloom_name(copy)).unlink()
    assert main(["ngrams", "--release", str(copy), *MULTI]) == 0
    for name in (bloom_name(copy), "manifest.json"):
        assert sha256(copy / name) == sha256(work["release"] / name)
    assert main(["ngrams", "--release", str(copy)]) == 0  # a rerun replaces its entry, byte for byte
    assert sha256(copy / "manifest.json") == sha256(work["release"] / "manifest.json")


def test_another_filter_for_the_same_n_replaces_the_old_one_after_the_manifest(work, tmp_path):
    copy = shutil.copytree(work["release"], tmp_path / "release")
    old = bloom_name(copy)
    assert main(["ngrams", "--release", str(copy), "--fpr", "1e-4"]) == 0
    new = bloom_name(copy)
    assert new != old and not (copy / old).exists() and (copy / new).is_file()
    assert main(["verify", str(copy)]) == 0


# What a Python audit hook (PEP 578) reports of file access: opening, renaming, deleting, listing.
FILE_EVENTS = {"open", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.listdir", "os.scandir"}
FILE_EVENTS |= {"os.walk", "shutil.rmtree", "glob.glob"}
BEAM_IO = f"{os.sep}apache_beam{os.sep}io{os.sep}"
_watched: list[tuple[str, dict]] = []  # (directory, accesses) of the `file_access` blocks now running


def _audit(event: str, args: tuple) -> None:
    if not _watched or event not in FILE_EVENTS:
        return
    paths = [os.fsdecode(a) for a in args if isinstance(a, (str, bytes, os.PathLike))]
    for directory, accesses in _watched:
        for path in (p for p in paths if p == directory or p.startswith(directory + os.sep)):
            files = [f.f_code.co_filename for f in _frames(sys._getframe(1))]
            ours = next((f for f in files if f.startswith(str(ROOT)) and ".venv" not in f), "?")
            kind = "beam" if any(BEAM_IO in f for f in files) else "direct"
            accesses[kind].add((event, os.path.relpath(path, directory), os.path.relpath(ours, ROOT)))


def _frames(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


_hooked = []


@contextlib.contextmanager
def file_access(directory: Path):
    """Every file access under `directory` in this process (Beam's in-process DirectRunner workers too), as
    {"beam": ..., "direct": ...}: (event, relative path, the module of ours that made it), split by whether
    it went through Beam's filesystems (apache_beam/io on the stack) or not."""
    if not _hooked:  # an audit hook cannot be removed; it stays, idle, for the rest of the session
        sys.addaudithook(_audit)
        _hooked.append(True)
    accesses = {"beam": set(), "direct": set()}
    _watched.append((str(directory), accesses))
    try:
        yield accesses
    finally:
        _watched.remove((str(directory), accesses))


def test_the_release_is_reached_only_through_beam_filesystems(work, tmp_path):
    """What lets `--release gs://...` (s3://, hdfs://) work: no Beam filesystem but the local one is installed
    here, so instead every access to a local release is checked to go through Beam's FileSystems. The one
    exception is by design: overlap maps a local filter file with numpy (it may be larger than memory)."""
    copy = tmp_path / "release"
    shutil.copytree(work["release"], copy)
    name = bloom_name(copy)
    (copy / name).unlink()
    with file_access(copy) as ngrams_stage:
        assert main(["ngrams", "--release", str(copy)]) == 0
        (copy / "manifest.json").open().close()  # the check sees what does not go through Beam
    # The one other exception: write_atomic replaces manifest.json on a local disk with fsync and os.replace
    # (on any other filesystem it is one write through Beam).
    direct = {(event, path, module) for event, path, module in ngrams_stage["direct"]}
    assert ("open", "manifest.json", "tests/pipelines/test_ngrams.py") in direct
    atomic = direct - {("open", "manifest.json", "tests/pipelines/test_ngrams.py")}
    assert {module for _, _, module in atomic} == {"pipelines/files.py"}
    assert {path.split(".")[0] for _, path, _ in atomic} <= {"manifest", ""}
    read = {path for event, path, _ in ngrams_stage["beam"] if event == "open"}
    assert {s["path"] for s in json.loads((copy / "manifest.json").read_text())["splits"]["train"]} <= read
    assert {"manifest.json", name} <= {path for event, path, _ in ngrams_stage["beam"]}
    assert sha256(copy / name) == sha256(work["release"] / name)

    eval_set = ["--eval", f"lambada={LAMBADA}", "--fpr-check", "0"]
    with file_access(copy) as exact:
        assert main(["overlap", "--release", str(copy), "--exact", *eval_set]) == 0
    assert not exact["direct"] and any(path.startswith("train-") for _, path, _ in exact["beam"])
    with file_access(copy) as bloom:
        assert main(["overlap", "--release", str(copy), *eval_set]) == 0
    assert {(path, module) for _, path, module in bloom["direct"]} == {(name, "corpus/bloom.py")}


def test_a_path_on_a_filesystem_beam_does_not_have_is_one_clear_error(capsys):
    assert main(["ngrams", "--release", "nosuchfs://bucket/work"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("webtext ngrams: error: nosuchfs://bucket/work: Unable to get filesystem")
    assert len(err.strip().splitlines()) == 1


def test_refuses_a_filter_over_the_memory_limit_before_building(work, tmp_path, capsys):
    copy = tmp_path / "release"
    shutil.copytree(work["release"], copy)
    manifest = (copy / "manifest.json").read_bytes()
    assert main(["ngrams", "--release", str(copy), "--n", "5", "--max-memory", "10KiB"]) == 2
    out, err = capsys.readouterr()
    assert "building holds up to" in out  # the plan is printed first
    assert err.startswith(f"webtext ngrams: error: {copy}: the 5-gram filter needs ")
    assert "over --max-memory 10.0 KiB" in err and len(err.strip().splitlines()) == 1
    assert (copy / "manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in work["release"].iterdir())


@pytest.fixture(scope="module")
def report(work, tmp_path_factory):
    """overlap of val documents with 3 train documents among them, LAMBADA, and PTB test vs PTB valid."""
    release = work["release"]
    out = tmp_path_factory.mktemp("overlap")
    mixed = out / "mixed.jsonl"
    texts = split_texts(release, "val") + split_texts(release, "train")[:3]
    mixed.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    args = ["--release", str(work["work"]), "--eval", f"mixed={mixed}", "--eval", f"lambada={LAMBADA}"]
    args += ["--eval", f"ptb={PTB_TEST}", "--build-from", f"ptb={PTB_VALID}", "--fpr-check", "100000"]
    assert main(["overlap", *args, "--out", str(out / "bloom")]) == 0
    assert main(["overlap", *args, "--exact", "--out", str(out / "exact")]) == 0
    load = lambda kind: json.loads((out / kind / "overlap.json").read_text())  # noqa: E731
    return {"out": out, "texts": texts, "bloom": load("bloom"), "exact": load("exact")}


def test_overlap_with_the_filter_equals_the_exact_sets(report):
    for name in ("mixed", "lambada", "ptb"):
        for index in ("release", "ptb"):
            bloom, exact = report["bloom"]["evals"][name], report["exact"]["evals"][name]
            assert bloom["ngrams"] == exact["ngrams"]
            assert bloom["overlap"][index] == exact["overlap"][index], (name, index)
    assert report["bloom"]["indexes"]["release"]["fpr_check"]["hits"] == 0
    assert report["exact"]["indexes"]["release"]["method"] == "exact"


def test_dirty_examples_are_the_training_documents(report):
    mixed = report["bloom"]["evals"]["mixed"]
    assert mixed["examples"] == len(report["texts"]) and mixed["dirty_examples"] >= 3
    dirty = (report["out"] / "bloom" / "mixed.dirty.jsonl").read_text().splitlines()
    clean = (report["out"] / "bloom" / "mixed.clean.jsonl").read_text().splitlines()
    assert len(dirty) + len(clean) == len(report["texts"])
    assert [json.loads(line)["text"] for line in dirty[-3:]] == report["texts"][-3:]
    rows = [
        json.loads(line)
        for line in (report["out"] / "bloom" / "mixed.examples.jsonl").read_text().splitlines()
    ]
    assert all(r["found"]["release"] == r["ngrams"] for r in rows[-3:])
    assert [r["line"] for r in rows] == list(range(1, len(report["texts"]) + 1))


def test_the_markdown_table_has_the_own_train_split_row(report):
    table = (report["out"] / "bloom" / "overlap.md").read_text()
    ptb = report["bloom"]["evals"]["ptb"]["overlap"]["ptb"]["percent"]
    assert "| training set | mixed | lambada | ptb |" in table
    assert f"| own train split |  |  | {ptb:.2f}% |" in table
    assert ptb == 0.0  # the first 200 sentences of PTB test and valid share no 8-gram


def test_samples_report_memorization(work, tmp_path, capsys):
    samples = tmp_path / "generated.txt"
    copied = split_texts(work["release"], "train")[0].split("\n")[0]
    samples.write_text(f"{copied}\nan original sentence that no document of the release contains at all\n")
    assert (
        main(["overlap", "--release", str(work["work"]), "--samples", str(samples), "--fpr-check", "0"]) == 0
    )
    out = capsys.readouterr().out
    assert "| generated samples found in | generated |" in out and "| release train split | " in out
    percent = float(out.split("| release train split | ")[1].split("%")[0])
    expected = 100 * max(len(words(copied)) - 7, 0) / (max(len(words(copied)) - 7, 0) + 5)
    assert percent == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eval", "lambada"], "--eval lambada: expected NAME=PATH"),
        (["--eval", "x=/nonexistent/eval.txt"], "/nonexistent/eval.txt: cannot read"),
        (["--eval", f"a={LAMBADA}", "--n", "13"], "no 13-gram filter in the manifest"),
        ([], "nothing to measure"),
    ],
)
def test_bad_overlap_input_is_one_line(work, capsys, args, message):
    assert main(["overlap", "--release", str(work["work"]), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# --- a filter in partitions ----------------------------------------------------------------------------


def entry_of(release: Path, n: int = 8) -> dict:
    return next(e for e in json.loads((release / "manifest.json").read_text())["ngrams"] if e["n"] == n)


@pytest.fixture(scope="module")
def partitioned(work, tmp_path_factory):
    """The same release with its 8-gram filter rebuilt in 4 partitions (2 workers)."""
    copy = shutil.copytree(work["release"], tmp_path_factory.mktemp("partitioned") / "release")
    assert main(["ngrams", "--release", str(copy), "--partitions", "4", *MULTI]) == 0
    return copy


def test_partitions_hold_exactly_the_train_splits_ngrams_and_the_manifest_lists_them(work, partitioned):
    """Every partition is sized for its own distinct hashes (top 2 bits), the manifest lists the 4 files with
    their parameters and sha256, `verify` checks them, the one-file filter they replaced is gone, and every
    n-gram of the release gets the same answer from the partitions as from the one filter."""
    whole = entry_of(work["release"])
    entry = entry_of(partitioned)
    assert entry["partitions"] == 4 and len(entry["parts"]) == 4
    assert {k: entry[k] for k in ("n", "hash", "fpr", "items", "split", "documents", "ngrams")} == {
        k: whole[k] for k in ("n", "hash", "fpr", "items", "split", "documents", "ngrams")
    }
    hasher = NgramHasher(8)
    train_hashes = np.unique(hasher.hashes(split_texts(partitioned, "train"))[0])
    for index, part in enumerate(entry["parts"]):
        bloom = BloomFilter.load(str(partitioned / part["path"]))
        assert (
            part["path"] == f"ngrams-8-part{index:04d}of0004-{sha256(partitioned / part['path'])[:16]}.bloom"
        )
        assert (bloom.params.partition, bloom.params.partitions) == (index, 4)
        mine = train_hashes[(train_hashes >> np.uint64(62)) == index]
        assert part["items"] == bloom.params.items == len(mine) and bloom.params.expected_fpr() <= 1e-8
        assert {k: part[k] for k in ("bits", "hashes")} == {
            "bits": bloom.params.bits,
            "hashes": bloom.params.hashes,
        }
        assert part["bytes"] == (partitioned / part["path"]).stat().st_size and part["sha256"] == sha256(
            partitioned / part["path"]
        )
        assert bloom.contains(mine).all()
    assert entry["bits"] == sum(p["bits"] for p in entry["parts"]) and entry["items"] == len(train_hashes)
    assert not (partitioned / whole["path"]).exists()
    assert sorted(p.name for p in partitioned.glob("*.bloom")) == sorted(p["path"] for p in entry["parts"])
    assert main(["verify", str(partitioned)]) == 0
    one = read_filters([str(work["release"] / whole["path"])])
    four = read_filters([str(partitioned / p["path"]) for p in entry["parts"]])
    queries = hasher.hashes(split_texts(partitioned, "train") + split_texts(partitioned, "val"))[0]
    assert np.array_equal(one.contains(queries), four.contains(queries))


def test_partitions_are_the_same_bytes_on_one_worker_and_on_a_rerun(partitioned, tmp_path):
    copy = shutil.copytree(partitioned, tmp_path / "release")
    for part in entry_of(copy)["parts"]:
        (copy / part["path"]).unlink()
    assert main(["ngrams", "--release", str(copy), "--partitions", "4"]) == 0
    assert (copy / "manifest.json").read_bytes() == (partitioned / "manifest.json").read_bytes()
    assert main(["ngrams", "--release", str(copy), "--partitions", "4"]) == 0  # a rerun: the same bytes
    assert (copy / "manifest.json").read_bytes() == (partitioned / "manifest.json").read_bytes()
    for part in entry_of(copy)["parts"]:
        assert sha256(copy / part["path"]) == part["sha256"]
    assert main(["ngrams", "--release", str(copy), "--partitions", "1"]) == 0  # back to one file
    assert sorted(p.name for p in copy.glob("*.bloom")) == [entry_of(copy)["path"]]
    assert main(["verify", str(copy)]) == 0


def test_overlap_with_the_partitions_equals_overlap_with_the_one_filter(work, partitioned, report, tmp_path):
    """The same report, to the last example, as the one-file filter's (and so as the exact sets')."""
    args = ["--eval", f"mixed={report['out'] / 'mixed.jsonl'}", "--eval", f"lambada={LAMBADA}"]
    args += ["--eval", f"ptb={PTB_TEST}", "--fpr-check", "100000"]
    for release, out in ((work["release"], tmp_path / "one"), (partitioned, tmp_path / "four")):
        assert main(["overlap", "--release", str(release), *args, "--out", str(out)]) == 0
    one, four = (json.loads((tmp_path / d / "overlap.json").read_text()) for d in ("one", "four"))
    assert one["evals"] == four["evals"] and one["evals"]["mixed"]["dirty_examples"] >= 3
    assert four["indexes"]["release"]["params"]["partitions"] == 4
    assert four["indexes"]["release"]["fpr_check"]["hits"] == 0
    for name in ("mixed", "lambada", "ptb"):
        rows = [(tmp_path / d / f"{name}.examples.jsonl").read_text() for d in ("one", "four")]
        assert rows[0] == rows[1]


def test_partitions_default_to_the_fewest_that_fit_max_memory(work, tmp_path, capsys):
    """A worker holds a whole filter twice (its own and one merged in), or one partition, plus the hashes of
    its largest batch (16 bytes an n-gram; a batch is a shard here). With --max-memory under the whole
    filter's need but over a half partition's, the stage chooses the fewest partitions that fit on its own.
    A partition file alone is refused as a filter."""
    copy = shutil.copytree(work["release"], tmp_path / "release")
    manifest = json.loads((copy / "manifest.json").read_text())
    batch = max(
        sum(max(len(words(s.text)) - 7, 0) for s in read_shard(str(copy / shard["path"])))
        for shard in manifest["splits"]["train"]
    )
    budget = 16 * batch + int(0.6 * entry_of(copy)["bytes"])
    assert main(["ngrams", "--release", str(copy), "--max-memory", str(budget)]) == 0
    out = capsys.readouterr().out
    entry = entry_of(copy)
    assert entry["partitions"] in (2, 4) and f"in {entry['partitions']} partitions of up to" in out
    need = max(p["bytes"] for p in entry["parts"]) - 64 + 16 * batch
    assert f"building holds up to {need / 1024:.1f} KiB per worker" in out
    part = copy / entry["parts"][1]["path"]
    assert main(["overlap", "--bloom", str(part), "--eval", f"lambada={LAMBADA}"]) == 2
    err = capsys.readouterr().err
    assert f"{part}: partition 1 of a filter in {entry['partitions']} partitions" in err
    with pytest.raises(SystemExit) as refused:  # argparse refuses the flag
        main(["ngrams", "--release", str(copy), "--partitions", "3"])
    assert refused.value.code == 2 and "must be a power of two" in capsys.readouterr().err


def test_verify_checks_every_partition_file(partitioned, tmp_path):
    from corpus.shards import verify_release

    copy = shutil.copytree(partitioned, tmp_path / "release")
    manifest = json.loads((copy / "manifest.json").read_text())
    assert verify_release(str(copy), manifest) == []
    first, second = (p["path"] for p in entry_of(copy)["parts"][:2])
    data = (copy / first).read_bytes()
    (copy / first).write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    (copy / second).unlink()
    assert verify_release(str(copy), manifest) == [
        f"{first}: sha256 or size differs from the manifest",
        f"{second}: listed in the manifest but missing",
    ]
    manifest["ngrams"][0]["parts"] = "not a list"
    assert verify_release(str(copy), manifest)[0].startswith("manifest: bad ngrams entry")
