"""Rules over signals: the webtext preset decides exactly as quality_drop on real texts, the paper presets
hold their papers' thresholds, rules files load or fail with one line, and would_drop's counts reconcile."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from corpus.errors import InputError
from corpus.extract import ExtractConfig, extract_bytes
from corpus.quality import QualityConfig, quality_drop
from corpus.rules import (
    C4,
    FINEWEB,
    GOPHER,
    PRESETS,
    Rule,
    RuleSet,
    drop_reason,
    load_rules,
    parse_rule,
    resolve,
    webtext_rules,
    would_drop,
)
from corpus.signals import signals

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE = ROOT / "corpus" / "sample"


def jsonl_texts(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def line_documents(path: Path, lines_per_doc: int = 20) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return ["\n".join(lines[i : i + lines_per_doc]) for i in range(0, len(lines), lines_per_doc)]


def extracted_fixture_pages() -> list[str]:
    config = ExtractConfig(min_words=0)
    texts = []
    logging.disable(logging.WARNING)  # trafilatura's warnings about the pages; restored for later tests
    try:
        for path in sorted((FIXTURES / "html").glob("*/html/*.gz")):
            page = gzip.decompress(path.read_bytes())
            texts.append(extract_bytes(page, None, "https://example.org/a", config).text or "")
    finally:
        logging.disable(logging.NOTSET)
    return texts


def real_texts() -> list[str]:
    """Every real text the repository's fixtures and samples hold: whole and cut WebText documents, article
    bodies, Wikipedia pages, evaluation sets in 20-line documents, the pipeline's own extractions."""
    texts = jsonl_texts(FIXTURES / "wikipedia" / "webtext.jsonl")
    texts += jsonl_texts(FIXTURES / "wikipedia" / "pages.jsonl.gz")
    texts += jsonl_texts(FIXTURES / "wikipedia" / "articles.jsonl.gz")
    truth = json.loads(
        (FIXTURES / "html" / "scrapinghub_aeb" / "ground-truth.json").read_text(encoding="utf-8")
    )
    texts += [entry["articleBody"] for entry in truth.values()]
    texts += jsonl_texts(SAMPLE / "eval" / "webtext.test.first200.jsonl")
    texts += jsonl_texts(SAMPLE / "eval" / "lambada_test.first200.jsonl")
    texts += jsonl_texts(FIXTURES / "text" / "lambada_test.first30.jsonl")
    for path in [*(FIXTURES / "eval").glob("*.txt"), *(SAMPLE / "zero_shot").glob("*.txt")]:
        texts += line_documents(path)
    texts += [path.read_text(encoding="utf-8") for path in sorted((FIXTURES / "signals").glob("*.txt"))]
    texts += [(FIXTURES / "wikipedia" / "boilerplate.txt").read_text(encoding="utf-8")]
    texts += extracted_fixture_pages()
    return texts


REAL = real_texts()
RATIO_RULES = {"symbol_ratio", "repeated_lines", "ellipsis_lines"}
# (config, the reasons it gives on REAL): the defaults, no minimum (every ratio rule gets its turn), strict
CONFIGS = [
    (QualityConfig(), {"too_few_words", "repeated_lines"}),
    (QualityConfig(min_words=0), RATIO_RULES),
    (
        QualityConfig(
            min_words=20,
            max_symbol_word_ratio=0.01,
            max_repeated_line_ratio=0.05,
            max_ellipsis_line_ratio=0.05,
        ),
        RATIO_RULES | {"too_few_words"},
    ),
]


def test_there_are_many_real_texts():
    assert len(REAL) >= 600


@pytest.mark.parametrize("config, reasons", CONFIGS, ids=["default", "no_minimum", "strict"])
def test_webtext_preset_decides_exactly_as_quality_drop(config, reasons):
    rules = webtext_rules(config)
    outcomes = []
    for text in REAL:
        expected = quality_drop(text, config)
        found = drop_reason(signals(text), rules)
        assert (found is None) == (expected is None), text[:200]
        if found is not None:
            assert found[0] == f"webtext:{expected[0]}", text[:200]
            outcomes.append(expected[0])
    # the comparison exercised the rules, and kept documents too
    assert set(outcomes) == reasons
    assert len(outcomes) < len(REAL)


def test_webtext_preset_at_the_limits():
    words = " ".join(["word"] * 100)
    assert drop_reason(signals(words), PRESETS["webtext"]) is None  # 100 words: inclusive
    assert drop_reason(signals(words[5:]), PRESETS["webtext"]) == (
        "webtext:too_few_words",
        "word_count 99 < 100",
    )
    hashes = " ".join(["#tag"] * 10 + ["word"] * 90)
    assert drop_reason(signals(hashes), PRESETS["webtext"]) is None  # exactly 0.1 per word
    assert quality_drop(hashes, QualityConfig()) is None


def test_presets_hold_the_papers_thresholds():
    def table(rule_set: RuleSet) -> list[tuple[str, str, float]]:
        return [(rule.signal, rule.op, rule.threshold) for rule in rule_set.rules]

    # Gopher, Rae et al. 2021, appendix A.1.1 and Table A1
    assert table(GOPHER) == [
        ("word_count", "<", 50),
        ("word_count", ">", 100_000),
        ("gopher_mean_word_length", "<", 3),
        ("gopher_mean_word_length", ">", 10),
        ("gopher_hash_word_ratio", ">", 0.1),
        ("gopher_ellipsis_word_ratio", ">", 0.1),
        ("gopher_bullet_line_frac", ">", 0.9),
        ("gopher_ellipsis_line_frac", ">", 0.3),
        ("gopher_alpha_word_frac", "<", 0.8),
        ("gopher_stop_word_count", "<", 2),
        ("gopher_dup_line_frac", ">", 0.3),
        ("gopher_dup_para_frac", ">", 0.3),
        ("gopher_dup_line_char_frac", ">", 0.2),
        ("gopher_dup_para_char_frac", ">", 0.2),
        ("gopher_top_2gram_char_frac", ">", 0.2),
        ("gopher_top_3gram_char_frac", ">", 0.18),
        ("gopher_top_4gram_char_frac", ">", 0.16),
        ("gopher_dup_5gram_char_frac", ">", 0.15),
        ("gopher_dup_6gram_char_frac", ">", 0.14),
        ("gopher_dup_7gram_char_frac", ">", 0.13),
        ("gopher_dup_8gram_char_frac", ">", 0.12),
        ("gopher_dup_9gram_char_frac", ">", 0.11),
        ("gopher_dup_10gram_char_frac", ">", 0.1),
    ]
    # C4, Raffel et al. 2020, section 2.2: the page-level rules
    assert table(C4) == [
        ("c4_lorem_ipsum", ">", 0),
        ("c4_curly_brace", ">", 0),
        ("c4_sentence_count", "<", 3),
    ]
    # FineWeb, Penedo et al. 2024: "<= 0.12", ">= 0.67", ">= 0.1"; datatrove's list ratio 0.3
    assert table(FINEWEB) == [
        ("c4_terminal_punct_line_frac", "<=", 0.12),
        ("fineweb_short_line_frac", ">=", 0.67),
        ("gopher_dup_line_char_frac", ">=", 0.1),
        ("fineweb_newline_word_ratio", ">", 0.3),
    ]
    assert PRESETS["none"].rules == ()
    assert list(PRESETS) == ["webtext", "gopher", "c4", "fineweb", "none"]


def test_reasons_name_preset_and_rule():
    recipe = signals((FIXTURES / "signals" / "nestle-family-com-chicken.txt").read_text(encoding="utf-8"))
    assert drop_reason(recipe, GOPHER) == ("gopher:bullet_lines", "gopher_bullet_line_frac 0.9167 > 0.9")
    assert drop_reason(recipe, FINEWEB)[0] == "fineweb:line_punct_ratio"
    assert drop_reason(recipe, C4)[0] == "c4:too_few_sentences"
    assert drop_reason(recipe, PRESETS["none"]) is None
    # rule sets run in the order given; the first rule that holds names the drop
    assert drop_reason(recipe, [PRESETS["none"], C4, GOPHER])[0] == "c4:too_few_sentences"


def test_prose_passes_every_preset():
    row = signals(jsonl_texts(FIXTURES / "wikipedia" / "webtext.jsonl")[3])  # a whole WebText train document
    assert [drop_reason(row, rules) for rules in PRESETS.values()] == [None] * len(PRESETS)


def test_would_drop_counts_reconcile_with_drop_reason():
    rows = [signals(text) for text in REAL]
    counts = would_drop(rows, PRESETS)
    assert list(counts) == list(PRESETS)
    for name, rule_set in PRESETS.items():
        tally = counts[name]
        reasons = [drop_reason(row, rule_set) for row in rows]
        assert tally.documents == len(rows)
        assert tally.dropped == sum(reason is not None for reason in reasons)
        assert sum(tally.by_rule.values()) == tally.dropped
        for rule in tally.by_rule:
            assert tally.by_rule[rule] == sum(r is not None and r[0] == f"{name}:{rule}" for r in reasons)
            assert tally.alone[rule] >= tally.by_rule[rule]
    assert counts["none"].dropped == 0 and 0 < counts["gopher"].dropped < len(rows)


# --- rules files -----------------------------------------------------------------------------------------


def test_rules_file(tmp_path):
    path = tmp_path / "strict.toml"
    path.write_text(
        '# my thresholds\n[rules]\ntoo_short = "word_count < 200"\n'
        'dup_lines = "gopher_dup_line_frac >= 0.2"\n',
        encoding="utf-8",
    )
    rules = load_rules(path)
    assert rules == RuleSet(
        "strict",
        (Rule("too_short", "word_count", "<", 200), Rule("dup_lines", "gopher_dup_line_frac", ">=", 0.2)),
    )
    assert drop_reason(signals("a few words"), rules) == ("strict:too_short", "word_count 3 < 200")
    named = tmp_path / "x.toml"
    named.write_text('name = "mine"\n[rules]\nbraces = "c4_curly_brace > 0"\n', encoding="utf-8")
    assert drop_reason(signals("{"), resolve(f"none,{named}"))[0] == "mine:braces"


@pytest.mark.parametrize(
    "content, message",
    [
        ('[rules]\nx = "word_count < "\n', "rule 'x': expected 'signal op threshold'"),
        ('[rules]\nx = "words < 5"\n', "rule 'x': unknown signal 'words'"),
        ('[rules]\nx = "word_count =< 5"\n', "rule 'x': unknown operator '=<'"),
        ('[rules]\nx = "word_count < many"\n', "rule 'x': threshold 'many' is not a number"),
        ('[rules]\nx = "word_count < nan"\n', "rule 'x': threshold 'nan' is not a finite number"),
        ("[rules]\nx = 5\n", "rule 'x': expected a string"),
        ('[rules\nx = "word_count < 5"\n', "cannot read rules"),
        ('rule = "word_count < 5"\n', "unknown key(s) rule"),
    ],
)
def test_bad_rules_file_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_resolve():
    assert [rules.name for rules in resolve("gopher, c4,fineweb")] == ["gopher", "c4", "fineweb"]
    assert resolve("webtext", QualityConfig(min_words=5))[0].rules[0] == Rule(
        "too_few_words", "word_count", "<", 5
    )
    with pytest.raises(InputError, match="unknown preset 'gopherr'"):
        resolve("gopherr")
    with pytest.raises(InputError, match="cannot read rules"):
        resolve("missing.toml")


def test_parse_rule():
    assert parse_rule("r", "gopher_alpha_word_frac < 0.8") == Rule("r", "gopher_alpha_word_frac", "<", 0.8)
    with pytest.raises(ValueError, match="unknown signal"):
        Rule("r", "nope", "<", 1)
