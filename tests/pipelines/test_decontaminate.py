"""`webtext filter --decontaminate`: training documents sharing a 13-gram with an evaluation set are dropped
(GPT-3's rule), each a ledger row naming the set, counted in stats.json."""

import json
from pathlib import Path

import pytest

from corpus.docs import doc_id
from corpus.ngrams import words
from pipelines.outputs import read_table
from tests.conftest import committed
from tests.fixtures.near_duplicates import load_gold
from tests.pipelines.test_dedup_filter import doc, write_docs
from webtext.cli import main

ROOT = Path(__file__).resolve().parents[2]
LAMBADA = ROOT / "corpus" / "sample" / "eval" / "lambada_test.first200.jsonl"
PTB_TEST = ROOT / "tests" / "fixtures" / "eval" / "ptb.test.first200.txt"


def lambada(i: int) -> str:
    return json.loads(LAMBADA.read_text(encoding="utf-8").splitlines()[i])["text"]


def ptb_sentence(min_words: int) -> str:
    return next(line for line in PTB_TEST.read_text().splitlines() if len(words(line)) >= min_words)


@pytest.fixture(scope="module")
def articles() -> list[str]:
    return [text for text in load_gold().values() if len(text.split()) >= 100]


def documents(articles: list[str]) -> list[dict]:
    """Real articles; three carry evaluation text (a LAMBADA passage, a PTB sentence, both), one only the
    first 12 (normalized) words of a LAMBADA passage."""
    twelve = " ".join(words(lambada(3))[:12])
    return [
        doc("https://clean.example/a", articles[0]),
        doc("https://clean.example/b", articles[1]),
        doc("https://quotes.example/novel", articles[2] + "\n\n" + lambada(7)),
        doc("https://quotes.example/wsj", articles[3] + "\n\nAs reported: " + ptb_sentence(20)),
        doc("https://quotes.example/both", ptb_sentence(20) + "\n\n" + articles[4] + "\n\n" + lambada(9)),
        doc("https://near.example/twelve", articles[1][:2000] + "\n\n" + twelve + " ..."),
    ]


def run_filter(work: Path, *extra: str) -> tuple[list[str], dict[str, tuple[str, str]], dict]:
    args = ["filter", "--docs", str(work), "--out", str(work)]
    assert (
        main([*args, "--decontaminate", f"ptb={PTB_TEST}", "--decontaminate", f"lambada={LAMBADA}", *extra])
        == 0
    )
    out = committed(work, "filter")
    kept = sorted(row["url"] for row in read_table(str(out / "part-*.parquet")).to_pylist())
    ledger = {
        row["id"]: (row["reason"], row["detail"])
        for row in read_table(str(out / "ledger" / "filter-*.parquet")).to_pylist()
    }
    return kept, ledger, json.loads((out / "stats.json").read_text())


def test_documents_sharing_a_13_gram_are_dropped_with_the_set_named(articles, tmp_path):
    rows = documents(articles)
    kept, ledger, stats = run_filter(write_docs(tmp_path, rows))
    assert kept == ["https://clean.example/a", "https://clean.example/b", "https://near.example/twelve"]
    reason, detail = ledger[doc_id("https://quotes.example/novel")]
    assert reason == "decontaminated" and detail.startswith("https://quotes.example/novel: lambada: ")
    assert detail.endswith("13-grams shared") and int(detail.split(": ")[2].split()[0]) > 40
    assert ledger[doc_id("https://quotes.example/wsj")][1].startswith("https://quotes.example/wsj: ptb: ")
    assert ": lambada: " in ledger[doc_id("https://quotes.example/both")][1]  # the first set by name
    assert stats["dropped"] == {"decontaminated": 3}
    assert stats["in"] == len(rows) == stats["out"] + sum(stats["dropped"].values())
    config = stats["config"]["filter"]
    assert config["decontam_n"] == 13 and set(config["decontaminate"]) == {"lambada", "ptb"}
    assert config["decontaminate"]["ptb"] > 1000  # distinct 13-grams of the set


def test_a_smaller_n_catches_the_shorter_quote(articles, tmp_path):
    kept, ledger, stats = run_filter(write_docs(tmp_path, documents(articles)), "--decontam-n", "8")
    assert "https://near.example/twelve" not in kept
    assert ledger[doc_id("https://near.example/twelve")][1].endswith("lambada: 5 8-grams shared")
    assert stats["dropped"] == {"decontaminated": 4} and stats["config"]["filter"]["decontam_n"] == 8


def test_without_the_flag_nothing_changes(articles, tmp_path):
    work = write_docs(tmp_path, documents(articles))
    assert main(["filter", "--docs", str(work), "--out", str(work)]) == 0
    stats = json.loads((committed(work, "filter") / "stats.json").read_text())
    assert stats["out"] == 6 and "decontaminate" not in stats["config"]["filter"]


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("lambada", "--decontaminate lambada: expected NAME=PATH"),
        ("x=/no/such.jsonl", "/no/such.jsonl: cannot read"),
    ],
)
def test_bad_decontamination_input_is_one_line(articles, tmp_path, capsys, flag, message):
    work = write_docs(tmp_path, documents(articles)[:1])
    assert main(["filter", "--docs", str(work), "--out", str(work), "--decontaminate", flag]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (work / "filter").exists()
