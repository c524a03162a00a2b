"""Quality signals: hand-checked counts on real documents, an independent brute-force computation of the
ratios, edge cases, and the column schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

from corpus.signals import SIGNALS, signals, signals_schema

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DOCS = FIXTURES / "signals"


def doc(name: str) -> str:
    return (DOCS / f"{name}.txt").read_text(encoding="utf-8")


# --- hand-checked literals (SOURCES.md says how: wc -w, wc -m, grep -c '^- ', sort | uniq -d) ---------------

# name: (words, characters, lines, bullet lines, duplicate lines, "javascript" lines)
HAND_CHECKED = {
    "nestle-family-com-chicken": (163, 795, 24, 22, 10, 0),
    "nextkabinett.wordpress.com.garden": (106, 647, 2, 2, 0, 0),
    "blog.amp.dev.axios": (725, 4251, 23, 0, 0, 1),
    "uraharajuku.st.ja": (98, 398, 23, 0, 0, 0),
}


@pytest.mark.parametrize("name", sorted(HAND_CHECKED))
def test_counts_on_real_documents_match_hand_checked_literals(name):
    words, chars, lines, bullets, duplicates, javascript = HAND_CHECKED[name]
    found = signals(doc(name))
    assert (found["word_count"], found["char_count"], found["line_count"]) == (words, chars, lines)
    assert found["gopher_bullet_line_frac"] == bullets / lines
    assert found["gopher_dup_line_frac"] == duplicates / lines
    assert found["c4_javascript_line_count"] == javascript


def test_recipe_with_its_ingredient_list_twice():
    """The 10 lines of the list and its heading come twice: every word of the first 20 lines is in a repeated
    n-gram (n = 5..10), and of the 4 nutrition lines ('- Energy 782 (Kcal)' ... '- Total Fat 39 (g)') only
    the first "-": n-grams run across lines, and "... Oriental Rice with -" ends both copies."""
    text = doc("nestle-family-com-chicken")
    found = signals(text)
    lines = text.split("\n")
    repeated = "\n".join(lines[10:20])
    assert lines[:10] == lines[10:20]
    # duplicate characters: the second copy of the 10 lines, over the characters of all 24 lines
    assert found["gopher_dup_line_char_frac"] == len(repeated.replace("\n", "")) / len(text.replace("\n", ""))
    list_words = sum(len(w) for w in "\n".join(lines[:20]).split())
    nutrition_words = sum(len(w) for w in "\n".join(lines[20:]).split())
    for n in range(5, 11):
        assert found[f"gopher_dup_{n}gram_char_frac"] == (list_words + 1) / (list_words + nutrition_words)
    assert found["gopher_bullet_line_frac"] == 22 / 24 and found["gopher_dup_line_frac"] == 10 / 24
    assert found["c4_terminal_punct_line_frac"] == 0.0 and found["c4_sentence_count"] == 0
    assert found["gopher_alpha_word_frac"] == pytest.approx(
        0.681, abs=1e-3
    )  # "-", "1200", "½" have no letter


def test_japanese_without_spaces_is_few_long_words():
    found = signals(doc("uraharajuku.st.ja"))
    assert found["gopher_stop_word_count"] == 0
    assert found["c4_terminal_punct_line_frac"] == 0.0  # table rows end in "|"
    assert found["fineweb_short_line_frac"] == 21 / 23  # 2 of the 23 rows have 30 characters or more


# --- an independent, brute-force computation of the same signals --------------------------------------------


def brute_force(text: str) -> dict[str, float]:
    """The ratios computed the slow, obvious way: lines with a regex, n-grams as strings, coverage by sets of
    word positions."""
    lines = [m.group(0).strip() for m in re.finditer(r"[^\r\n]+", text)]
    lines = [line for line in lines if re.search(r"\w", line) and any(c.isalnum() for c in line)]
    words = re.findall(r"\S+", text)
    total = sum(len(w) for w in words)
    out: dict[str, float] = {}
    dup_lines = [line for i, line in enumerate(lines) if line in lines[:i]]
    out["gopher_dup_line_frac"] = len(dup_lines) / len(lines) if lines else 0.0
    out["gopher_dup_line_char_frac"] = sum(map(len, dup_lines)) / sum(map(len, lines)) if lines else 0.0
    out["gopher_mean_word_length"] = total / len(words) if words else 0.0
    out["unique_word_frac"] = len({w.lower() for w in words}) / len(words) if words else 0.0
    for n in range(2, 11):
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        counts = {g: grams.count(g) for g in grams}
        if n <= 4:
            best = max(counts.values(), default=0)
            top = next((g for g in grams if counts[g] == best), None)
            chosen = {i for i, g in enumerate(grams) if g == top} if best > 1 else set()
            name = f"gopher_top_{n}gram_char_frac"
        else:
            chosen = {i for i, g in enumerate(grams) if counts[g] > 1}
            name = f"gopher_dup_{n}gram_char_frac"
        covered = {i + k for i in chosen for k in range(n)}
        out[name] = sum(len(words[i]) for i in covered) / total if total else 0.0
    return out


REAL_TEXTS = [doc(name) for name in sorted(HAND_CHECKED)]


def webtext_train_docs() -> list[str]:
    with open(FIXTURES / "wikipedia" / "webtext.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle][:10]


@pytest.mark.parametrize("index", range(len(REAL_TEXTS) + 10))
def test_signals_agree_with_brute_force_on_real_documents(index):
    text = (REAL_TEXTS + webtext_train_docs())[index]
    found = signals(text)
    for name, value in brute_force(text).items():
        assert found[name] == pytest.approx(value, abs=1e-12), name


def test_a_webtext_document_with_a_repeated_gallery_caption():
    """WebText train document 2 repeats a photo gallery's captions ("Shape Created with Sketch. England Ashes
    squad ..."): its repeated 5-grams cover 18% of its word characters, above Gopher's 15%."""
    found = signals(webtext_train_docs()[2])
    assert found["gopher_dup_5gram_char_frac"] == pytest.approx(0.1792, abs=1e-4)
    assert found["gopher_dup_line_frac"] == 0.0


# --- edge cases ------------------------------------------------------------------------------------------


def test_empty_text_has_every_signal_zero():
    found = signals("")
    assert tuple(found) == SIGNALS
    assert all(value == 0 for value in found.values())


def test_one_line():
    found = signals("The cat sat on the mat...")
    assert found["word_count"] == 6 and found["line_count"] == 1 and found["char_count"] == 25
    assert found["gopher_ellipsis_line_frac"] == 1.0
    assert found["gopher_ellipsis_word_ratio"] == 1 / 6
    assert found["gopher_stop_word_count"] == 2  # "The", "the"
    assert found["gopher_mean_word_length"] == (3 + 3 + 3 + 2 + 3 + 6) / 6
    assert found["gopher_top_2gram_char_frac"] == 0.0  # no 2-gram repeats
    assert found["c4_sentence_count"] == 1 and found["c4_terminal_punct_line_frac"] == 1.0


def test_chinese_without_spaces_is_one_word():
    text = "北京是中华人民共和国的首都。它有三千多年的历史。"
    found = signals(text)
    assert found["word_count"] == 1 and found["gopher_mean_word_length"] == len(text)
    assert found["gopher_alpha_word_frac"] == 1.0  # CJK ideographs are alphabetic to str.isalpha
    assert found["c4_terminal_punct_line_frac"] == 1.0  # ends in "。"


def test_only_bullets():
    text = "- Home\n- News\n- Sport\n* Weather\n• Contact us\n-\n"
    found = signals(text)
    assert found["line_count"] == 5  # the lone "-" holds no letter: layout, not a line
    assert found["gopher_bullet_line_frac"] == 1.0
    assert found["fineweb_short_line_frac"] == 1.0
    assert found["fineweb_newline_word_ratio"] == 6 / 12


def test_paragraphs_are_separated_by_blank_lines():
    para = "A paragraph of real prose.\nIt has two lines."
    text = f"{para}\n\n  \n{para}\n\nAnother one entirely.\n\n{para}"
    found = signals(text)
    assert found["gopher_dup_para_frac"] == 2 / 4
    chars = 3 * len(para) + len("Another one entirely.")
    assert found["gopher_dup_para_char_frac"] == 2 * len(para) / chars


def test_c4_page_rules():
    assert signals("Lorem Ipsum dolor sit amet")["c4_lorem_ipsum"] == 1
    assert signals("function f() { return 1; }")["c4_curly_brace"] == 1
    text = "Please enable JavaScript to view this page.\nShort line.\nThis has five words here. And two more!"
    found = signals(text)
    assert found["c4_javascript_line_count"] == 1
    # kept by C4's line rules: the third line only (the first says javascript, the second has 2 words)
    assert found["c4_sentence_count"] == 2


def test_hash_ratio_counts_every_hash():
    found = signals("#one #two #three four five six seven eight nine ten")
    assert found["gopher_hash_word_ratio"] == 3 / 10


def test_deterministic_and_ordered():
    text = doc("blog.amp.dev.axios")
    assert signals(text) == signals(text)
    assert tuple(signals(text)) == SIGNALS


# --- schema ----------------------------------------------------------------------------------------------


def test_schema_stores_the_signals_as_columns():
    rows = [signals(text) for text in REAL_TEXTS + [""]]
    table = pa.Table.from_pylist(rows, schema=signals_schema())
    assert table.column_names == list(SIGNALS)
    assert table.to_pylist() == rows  # float64 and int64 keep every value exactly
    for name in SIGNALS:
        expected = pa.int64() if isinstance(rows[0][name], int) else pa.float64()
        assert table.schema.field(name).type == expected, name
