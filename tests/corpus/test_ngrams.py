"""GPT-2's n-gram definition (section 4): normalization, n-grams, and their vectorized stable hashes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.ngrams import (
    NgramHasher,
    WordTable,
    combine_word_hashes,
    ngram_hash,
    ngrams,
    normalize,
    rolling_hashes,
    stable_hash64,
    text_word_hashes,
    words,
)

ROOT = Path(__file__).resolve().parents[2]
LAMBADA = ROOT / "corpus" / "sample" / "eval" / "lambada_test.first200.jsonl"
WIKITEXT_RAW = ROOT / "tests" / "fixtures" / "eval" / "wikitext-2-raw-v1.test.first200lines.txt"
WIKITEXT_TOKENS = ROOT / "tests" / "fixtures" / "eval" / "wikitext-2_tokens.test.first128.txt"


def lambada() -> list[str]:
    return [json.loads(line)["text"] for line in LAMBADA.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Don't STOP: it's 3.14 -- pi's value!", "don t stop it s 3 14 pi s value"),  # punctuation, case
        ("COVID-19 hit in 2020; 1,000,000 cases", "covid 19 hit in 2020 1 000 000 cases"),  # digits are words
        ("Café naïve Ωmega Straße 東京タワー", "café naïve ωmega straße 東京タワー"),  # letters of any script
        ("snake_case and e-mail", "snake case and e mail"),  # "_" separates like punctuation
        ("  many\t\tspaces\n\n\nand lines  ", "many spaces and lines"),  # one space between words
        ("— … « » ¡ ¿ ©", ""),  # no letters or digits: no words
    ],
)
def test_gpt2_normalization(text, expected):
    """Lower-cased alphanumeric words separated by single spaces."""
    assert normalize(text) == expected
    assert words(text) == expected.split()


def test_code_points_are_not_unicode_normalized():
    """Words are runs of letter and digit code points: a decomposed accent (NFD) is a combining mark, not a
    letter, so it separates; precomposed text (NFC, what web pages almost always carry) stays one word."""
    assert words("caf\u00e9") == ["café"]
    assert words("cafe\u0301") == ["cafe"]


def test_real_evaluation_text_normalizes_as_expected():
    """WikiText's tokenized file and its raw text normalize to the same words except the <unk> rewrites:
    " @-@ ", " , " and spaced quotes vanish with the punctuation."""
    raw = "He had a guest-starring role on the television series The Bill in 2000."
    tokens = "He had a guest @-@ starring role on the television series The Bill in 2000 ."
    assert normalize(raw) == normalize(tokens)
    assert "robert unk is an english film" in normalize(WIKITEXT_TOKENS.read_text(encoding="utf-8"))
    assert "robert boulter is an english film" in normalize(WIKITEXT_RAW.read_text(encoding="utf-8"))


def test_ngrams_cross_line_breaks_inside_a_document_but_never_documents():
    """Inside a text a line break is whitespace, so an 8-gram spans it; two texts are two documents."""
    text = "one two three four\nfive six seven eight"
    assert ngrams(words(text), 8) == ["one two three four five six seven eight"]
    hasher = NgramHasher(8)
    hashes, counts = hasher.hashes([text])
    assert counts.tolist() == [1] and hashes.tolist() == [ngram_hash(ngrams(words(text), 8)[0], 8)]
    hashes, counts = hasher.hashes(["one two three four", "five six seven eight"])
    assert counts.tolist() == [0, 0] and len(hashes) == 0


def test_a_text_shorter_than_n_has_no_ngrams():
    assert ngrams(words("seven words are not enough for one"), 8) == []
    hashes, counts = NgramHasher(8).hashes(["", "seven words are not enough for one", "a b c d e f g h"])
    assert counts.tolist() == [0, 0, 1] and len(hashes) == 1


def test_bulk_hashes_equal_the_scalar_definition_on_real_text():
    texts = lambada()[:50] + [""] + lambada()[50:60]
    hashes, counts = NgramHasher(8).hashes(texts)
    expected = [ngram_hash(g, 8) for text in texts for g in ngrams(words(text), 8)]
    assert hashes.tolist() == expected
    assert counts.tolist() == [max(len(words(t)) - 7, 0) for t in texts]


def test_word_hash_rows_combine_like_the_hasher():
    text = "the quick brown fox jumps over the lazy dog again"
    grams = ngrams(words(text), 8)
    rows = np.array([[stable_hash64(w) for w in g.split()] for g in grams], dtype=np.uint64)
    assert combine_word_hashes(rows).tolist() == NgramHasher(8).hashes([text])[0].tolist()


def test_hashes_are_pinned_and_the_same_in_another_process():
    """The definition is recorded with every filter (`ngram64-v1`): a filter built on one machine is queried
    on another, so the value may never change, and Python's per-process `hash` is never involved."""
    gram = "the quick brown fox jumps over the lazy"
    assert ngram_hash(gram, 8) == 0xADA262F92D1DBE83
    code = f"from corpus.ngrams import NgramHasher; print(NgramHasher(8).hashes([{gram!r}])[0][0])"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        assert int(out) == ngram_hash(gram, 8)


def test_ngrams_that_differ_in_one_word_or_in_order_get_different_hashes():
    base = list("abcdefgh")
    variants = {" ".join(base)}
    for i in range(8):
        variants.add(" ".join(base[:i] + ["z"] + base[i + 1 :]))
        variants.add(" ".join(base[:i] + base[i + 1 :] + [base[i]]))
    assert len({ngram_hash(v, 8) for v in variants}) == len(variants)


# --- the vectorized path -----------------------------------------------------------------------------------

TRICKY = [
    "ΣΑΣ ΟΔΟΣ İstanbul ǅemal ß ﬁne ½ ² ٣ 東京タワー café cafe\u0301 a_b \u200bzero\u00a0nbsp",
    "\ud800lone\udfffsurrogates x\udbff",  # JSON may carry them; they are no letters
    "x" * 16 + " " + "y" * 17 + " " + "é" * 8 + " " + "é" * 9 + " " + "a" * 15 + "é " + "😀" * 4 + "z",
    "",
    "   ",
    "one",
    "😀smile😀 🇫🇷 a\u0300b \x00nul\x00 tab\tand\nlines ǈ ǋ ǲ ẞ Ω K Å",
    "Don't STOP: it's 3.14 -- pi's value! COVID-19 hit in 2020; 1,000,000 cases",
]


def by_words(texts: list[str]) -> tuple[list[int], list[int]]:
    """The word hashes and word counts the definition gives: `words`, then `stable_hash64` of each."""
    return [stable_hash64(w) for t in texts for w in words(t)], [len(words(t)) for t in texts]


def test_words_found_in_numpy_are_the_words_of_the_regular_expression():
    """Real text of every split we have, and the hard cases: scripts, case folding that changes length,
    combining marks, digits of other scripts, surrogates, NUL, words of 8, 9, 16, 17 bytes."""
    texts = lambada() + WIKITEXT_RAW.read_text(encoding="utf-8").splitlines() + TRICKY
    flat, lengths = text_word_hashes(texts, WordTable(), {})
    assert (flat.tolist(), lengths.tolist()) == by_words(texts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=60), max_size=8))
def test_words_found_in_numpy_on_any_unicode_text(texts):
    flat, lengths = text_word_hashes(texts, WordTable(capacity=16), {})
    assert (flat.tolist(), lengths.tolist()) == by_words(texts)


def test_vectorized_ngram_hashes_equal_the_word_by_word_ones():
    """`hashes` takes the vectorized path for batches of 4,096 characters and more, `words` and a dict for
    less: both give the n-gram hashes and counts of the definition, batch after batch (a warm table)."""
    texts = lambada() + TRICKY
    assert sum(map(len, texts)) > 4096 > sum(map(len, TRICKY))
    for n in (1, 2, 8, 13):
        hasher, reference = NgramHasher(n), NgramHasher(n)
        for batch in (texts, texts[::-1], TRICKY, texts[:3]):
            got, expected = hasher.hashes(batch), reference.hashes_of_words([words(t) for t in batch])
            assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]), n


def test_the_word_table_grows_and_is_bounded(monkeypatch):
    """It stays at most half full as it grows, answers every word it held after a growth, and starts over
    at the bound, as the dict of `hashes_of_words` does."""
    import corpus.ngrams as module

    table = WordTable(capacity=4)
    texts = [" ".join(f"w{i}x{j}" for j in range(50)) for i in range(40)]  # 2,000 distinct words
    flat, _ = text_word_hashes(texts, table, {})
    assert len(table) == 2000 and len(table.rows) >= 4000 and flat.tolist() == by_words(texts)[0]
    again, _ = text_word_hashes(texts[::-1], table, {})
    assert again.tolist() == by_words(texts[::-1])[0] and len(table) == 2000
    monkeypatch.setattr(module, "_CACHE_WORDS", 2500)
    more = [" ".join(f"v{i}y{j}" for j in range(50)) for i in range(20)]  # 1,000 more: over the bound
    assert text_word_hashes(more, table, {})[0].tolist() == by_words(more)[0] and len(table) == 1000


def test_ngram_hashes_from_word_hashes_of_any_source():
    """`rolling_hashes` is what every way in ends with: word ids looked up in a table of word hashes give
    the same n-gram hashes as the text."""
    texts = lambada()[:20]
    vocabulary = sorted({w for t in texts for w in words(t)})
    table = np.array([stable_hash64(w) for w in vocabulary], dtype=np.uint64)
    ids = np.array([vocabulary.index(w) for t in texts for w in words(t)])
    lengths = np.array([len(words(t)) for t in texts])
    hashes, counts = rolling_hashes(table[ids], lengths, 8)
    expected = NgramHasher(8).hashes(texts)
    assert np.array_equal(hashes, expected[0]) and np.array_equal(counts, expected[1])
