"""8-gram overlap of evaluation sets with training text: readers, Bloom vs exact, dirty examples, reports."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from corpus.bloom import BloomFilter, PartitionedBloom
from corpus.errors import InputError
from corpus.ngrams import NgramHasher, words
from corpus.overlap import (
    BloomIndex,
    EvalNgrams,
    EvalSet,
    ExactNgrams,
    Overlap,
    bloom_from_texts,
    distinct_hashes,
    fpr_check,
    measure,
    read_examples,
    report_json,
    report_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "corpus" / "sample" / "eval"
EVAL = ROOT / "tests" / "fixtures" / "eval"
SETS = {
    "lambada": SAMPLE / "lambada_test.first200.jsonl",
    "webtext": SAMPLE / "webtext.test.first200.jsonl",
    "ptb_test": EVAL / "ptb.test.first200.txt",
    "wikitext_tokens": EVAL / "wikitext-2_tokens.test.first128.txt",
}
TRAIN = {
    "wikitext_raw": EVAL / "wikitext-2-raw-v1.test.first200lines.txt",
    "ptb_valid": EVAL / "ptb.valid.first200.txt",
}


def texts(path: Path) -> list[str]:
    return [example.text for example in read_examples(str(path))]


def test_examples_are_jsonl_records_or_non_blank_lines(tmp_path):
    plain = tmp_path / "eval.txt"
    plain.write_text("first line\n\n   \nthird line\r\n", encoding="utf-8")
    assert [(e.line, e.raw, e.text) for e in read_examples(str(plain))] == [
        (1, "first line", "first line"),
        (4, "third line", "third line"),
    ]
    records = tmp_path / "eval.jsonl.gz"
    with gzip.open(records, "wt", encoding="utf-8") as handle:
        handle.write('{"text": "a\\nb", "id": 1}\n\n{"text": "c"}\n')
    examples = read_examples(str(records))
    assert [(e.line, e.text) for e in examples] == [(1, "a\nb"), (3, "c")]
    assert examples[0].raw == '{"text": "a\\nb", "id": 1}'  # written back unchanged to the clean/dirty lists
    assert len(read_examples(str(SETS["lambada"]))) == 200
    assert len(read_examples(str(SETS["ptb_test"]))) == 200


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("bad.jsonl", b'{"text": "ok"}\n{"text": \n', "bad.jsonl:2: not JSON"),
        ("notext.jsonl", b'{"body": "x"}\n', 'notext.jsonl:1: not a JSON object with a "text" string'),
        ("latin1.txt", "caf\u00e9\n".encode("latin-1"), "latin1.txt: not UTF-8"),
    ],
)
def test_a_bad_evaluation_file_is_one_error_naming_it(tmp_path, name, content, problem):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=problem):
        read_examples(str(tmp_path / name))
    with pytest.raises(InputError, match="missing.txt: cannot read"):
        read_examples(str(tmp_path / "missing.txt"))


@pytest.fixture(scope="module")
def indexes():
    train = {name: texts(path) for name, path in TRAIN.items()}
    return {
        name: (BloomIndex(bloom_from_texts(t, 8, 1e-8)), ExactNgrams.from_texts(t, 8))
        for name, t in train.items()
    }


def test_bloom_counts_equal_exact_counts_on_real_evaluation_text(indexes):
    """Every example's count of 8-grams found is the same with the filter as with the exact set of strings
    (a false positive is possible at rate 1e-8 per absent 8-gram: ~0.0003 expected here)."""
    for name, path in SETS.items():
        evaluation = texts(path)
        for train, (bloom, exact) in indexes.items():
            by_bloom, by_exact = measure(evaluation, bloom), measure(evaluation, exact)
            assert np.array_equal(by_bloom.ngrams, by_exact.ngrams), (name, train)
            assert np.array_equal(by_bloom.found, by_exact.found), (name, train)


def test_overlap_figures_of_real_sets(indexes):
    """The tokenized WikiText articles are the raw ones after normalization, except where <unk> replaced a
    rare word; PTB test and valid are different Wall Street Journal articles; LAMBADA is novels."""
    bloom = {name: index for name, (index, _) in indexes.items()}
    tokens = measure(texts(SETS["wikitext_tokens"]), bloom["wikitext_raw"])
    assert 50 < tokens.percent < 95
    assert measure(texts(SETS["ptb_test"]), bloom["ptb_valid"]).percent < 2
    assert measure(texts(SETS["lambada"]), bloom["wikitext_raw"]).total_found == 0
    same = measure(texts(TRAIN["ptb_valid"]), bloom["ptb_valid"])
    assert same.percent == 100.0
    assert np.array_equal(same.dirty(), same.ngrams > 0)  # a sentence under 8 words has no 8-gram: clean


def test_dirty_examples_and_the_threshold():
    overlap = Overlap(ngrams=np.array([10, 10, 10, 0, 4]), found=np.array([0, 1, 6, 0, 4]))
    assert overlap.fractions().tolist() == [0.0, 0.1, 0.6, 0.0, 1.0]
    assert overlap.dirty().tolist() == [False, True, True, False, True]  # any 8-gram found
    assert overlap.dirty(0.5).tolist() == [False, False, True, False, True]
    assert (
        overlap.total == 34 and overlap.total_found == 11 and overlap.percent == pytest.approx(100 * 11 / 34)
    )


def test_measure_counts_per_example_across_batches():
    train = "one two three four five six seven eight nine ten"
    index = ExactNgrams.from_texts([train], 8)
    assert len(index) == 3
    examples = ["zero one two three four five six seven eight", "short text", train] * 1500  # > one batch
    result = measure(examples, index)
    assert result.ngrams.tolist()[:3] == [2, 0, 3] and result.found.tolist()[:3] == [1, 0, 3]
    assert result.total == 5 * 1500 and result.total_found == 4 * 1500


def test_decontamination_finds_a_shared_13_gram_and_names_the_set():
    lambada = texts(SETS["lambada"])
    sets = EvalNgrams.from_files({"ptb": str(SETS["ptb_test"]), "lambada": str(SETS["lambada"])}, 13)
    assert sets.sizes()["lambada"] == len(distinct_hashes(lambada, 13))
    passage = " ".join(words(lambada[7])[:13])
    article = "A web page about something else entirely, quoting a novel: "
    assert sets.shared(article + passage + " and more words after it.") == ("lambada", 1)
    assert sets.shared(article + " ".join(words(lambada[7])[:12])) is None  # 12 words share no 13-gram
    assert sets.shared("") is None


def test_a_filter_passes_the_random_string_check(indexes):
    """1M random strings against a filter at 1e-8: ~0.01 hits expected; 3 or more would have probability
    2e-7. (This filter, seed 0, answers one: over 10 seeds it answers 1 of 10M, as the bound predicts.)"""
    bloom, _ = indexes["wikitext_raw"]
    check = fpr_check(bloom.bloom, 1_000_000)
    assert check.hits <= 2 and check.estimated < 1.1e-8 and check.bound == 1e-8


def test_markdown_report_has_table_6_shape(indexes):
    evals = [
        EvalSet(name, str(SETS[name]), read_examples(str(SETS[name]))) for name in ("ptb_test", "lambada")
    ]
    bloom = {"ptb_test": indexes["ptb_valid"][0], "wikitext": indexes["wikitext_raw"][0]}
    results = {
        label: {ev.name: measure([e.text for e in ev.examples], i) for ev in evals}
        for label, i in bloom.items()
    }
    infos = {"ptb_test": {"description": "PTB valid"}, "wikitext": {"description": "WikiText-2 raw test"}}
    report = report_json(8, infos, evals, results, 0.0)
    assert json.loads(json.dumps(report)) == report
    assert report["evals"]["lambada"]["overlap"]["ptb_test"]["found"] == 0
    lines = report_markdown(report, {"ptb_test": "ptb_test"}).splitlines()
    assert lines[2:6] == [
        "| training set | ptb_test | lambada |",
        "|---|---:|---:|",
        f"| PTB valid | {results['ptb_test']['ptb_test'].percent:.2f}% | 0.00% |",
        "| WikiText-2 raw test | 0.00% | 0.00% |",
    ]
    assert lines[6] == f"| own train split | {results['ptb_test']['ptb_test'].percent:.2f}% |  |"


def test_a_filter_in_partitions_answers_and_reports_as_the_whole_filter():
    """Built from the same text in 1 and in 4 partitions: the same answer for every 8-gram of every
    evaluation set (each the exact answer: no false negatives, and no false positive here), the same
    overlap per example, the same report, and both pass the random-string check."""
    train = texts(TRAIN["wikitext_raw"]) + texts(TRAIN["ptb_valid"])
    one, four = bloom_from_texts(train, 8, 1e-8), bloom_from_texts(train, 8, 1e-8, partitions=4)
    assert isinstance(one, BloomFilter) and isinstance(four, PartitionedBloom) and len(four.parts) == 4
    assert four.params.items == one.params.items and [p.params.items > 0 for p in four.parts] == [True] * 4
    exact = ExactNgrams.from_texts(train, 8)
    hasher = NgramHasher(8)
    evals = [EvalSet(name, str(path), read_examples(str(path))) for name, path in {**SETS, **TRAIN}.items()]
    for ev in evals:
        hashes, _ = hasher.hashes([e.text for e in ev.examples])
        assert np.array_equal(one.contains(hashes), four.contains(hashes)), ev.name
        assert np.array_equal(one.contains(hashes), exact.found([e.text for e in ev.examples])[0]), ev.name
    indexes = {"one": BloomIndex(one), "four": BloomIndex(four)}
    results = {
        label: {ev.name: measure([e.text for e in ev.examples], index) for ev in evals}
        for label, index in indexes.items()
    }
    for ev in evals:
        by_one, by_four = results["one"][ev.name], results["four"][ev.name]
        assert np.array_equal(by_one.found, by_four.found) and np.array_equal(by_one.ngrams, by_four.ngrams)
    reports = [
        report_json(8, {"train": {"description": "train"}}, evals, {"train": results[label]}, 0.0)
        for label in ("one", "four")
    ]
    assert reports[0] == reports[1] and reports[0]["evals"]["ptb_valid"]["overlap"]["train"]["percent"] == 100
    assert fpr_check(one, 200_000).hits == fpr_check(four, 200_000).hits == 0
    assert four.describe()["partitions"] == 4 and one.describe() == one.params.to_dict()
