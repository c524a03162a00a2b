"""The language label: py3langid on real pages in nine languages (tests/fixtures/language/SOURCES.md)."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.language import MAX_CHARS, UNDETERMINED, LanguageIdentifier

ROOT = Path(__file__).resolve().parents[2]
EXCERPTS = ROOT / "tests" / "fixtures" / "language" / "excerpts.jsonl"


def excerpts() -> list[dict]:
    return [json.loads(line) for line in EXCERPTS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def test_the_fixtures_cover_the_scripts_and_languages():
    languages = {excerpt["language"] for excerpt in excerpts()}
    assert languages == {"zh", "ja", "ko", "ru", "de", "nl", "pt", "id", "en"}


@pytest.mark.parametrize(
    "excerpt", excerpts(), ids=lambda excerpt: f"{excerpt['language']}:{excerpt['page']}"
)
def test_real_pages_get_their_language(identifier, excerpt):
    language, score = identifier.identify(excerpt["text"])
    assert language == excerpt["language"]
    assert 0.9 <= score <= 1.0


def test_a_german_page_declaring_english_is_german(identifier):
    """The label comes from the text, not from the page's own <html lang="en">."""
    (german,) = [excerpt for excerpt in excerpts() if excerpt["language"] == "de"]
    assert identifier.identify(german["text"])[0] == "de"


def test_only_two_letter_codes_come_out(identifier):
    """The model's three-letter labels (wuu, yue, pcm, zxx, ...) are left out, so Chinese is zh and short
    English is en, never a related language's three-letter code."""
    model = identifier.model()
    assert all(len(label) == 2 for label in model.labels)
    assert {"en", "zh", "ja", "de"} <= set(model.labels)


def test_short_text_is_labelled_with_less_confidence(identifier):
    """The first sentence alone gets the language right, with a score no higher than the full excerpt's:
    the score is a probability whose temperature grows with the text's length."""
    for excerpt in excerpts():
        if excerpt["language"] in ("de", "ru", "ja", "en"):
            short = excerpt["text"][:60]
            language, score = identifier.identify(short)
            assert language == excerpt["language"], short
            assert 0.0 <= score <= identifier.identify(excerpt["text"])[1] <= 1.0


def test_text_without_letters_is_undetermined(identifier):
    for text in ("", "   \n\t", "12345 !!!", "2020-08-08 | 0:13 | 100%", "— … « » ©"):
        assert identifier.identify(text) == (UNDETERMINED, 0.0)


def test_one_letter_is_enough_to_ask_the_model(identifier):
    language, score = identifier.identify("42 a")
    assert language != UNDETERMINED and len(language) == 2
    assert 0.0 < score < 0.5  # a guess, and the score says so


def test_hostile_characters_do_not_raise(identifier):
    """Control characters, noncharacters and lone surrogates (which make other detectors raise) are just
    bytes to the model."""
    assert identifier.identify("Hallo \x07\x80\ufdd0 Welt, wie geht es dir heute?")[0] == "de"
    language, score = identifier.identify("abc\ud800def")
    assert len(language) == 2 and 0.0 <= score <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gets_a_code_and_a_probability(text):
    language, score = LanguageIdentifier().identify(text)
    assert (language, score) == (UNDETERMINED, 0.0) or (len(language) == 2 and 0.0 <= score <= 1.0)


def test_only_the_first_max_chars_count(identifier):
    german = next(excerpt["text"] for excerpt in excerpts() if excerpt["language"] == "de")
    english = next(excerpt["text"] for excerpt in excerpts() if excerpt["language"] == "en")
    head = (german * (MAX_CHARS // len(german) + 1))[:MAX_CHARS]
    assert identifier.identify(head + english * 20) == identifier.identify(head)
    assert identifier.identify(head + english * 20)[0] == "de"


def test_identical_answers_on_repeated_calls_and_new_instances(identifier):
    first = [identifier.identify(excerpt["text"]) for excerpt in excerpts()]
    assert [identifier.identify(excerpt["text"]) for excerpt in excerpts()] == first
    assert [LanguageIdentifier().identify(excerpt["text"]) for excerpt in excerpts()] == first


def test_identical_answers_in_a_fresh_process(identifier):
    here = [list(identifier.identify(excerpt["text"])) for excerpt in excerpts()]
    code = (
        "import json, sys; from corpus.language import LanguageIdentifier; i = LanguageIdentifier(); "
        f"print(json.dumps([i.identify(json.loads(line)['text']) for line in open({str(EXCERPTS)!r})]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == here


def test_pickles_without_the_model(identifier):
    """It travels inside Beam DoFns: the pickle is a few bytes, and the copy loads the model where it runs."""
    identifier.model()  # loaded here
    data = pickle.dumps(identifier)
    assert len(data) < 200
    copy = pickle.loads(data)
    text = excerpts()[0]["text"]
    assert copy.identify(text) == identifier.identify(text)


def test_the_model_is_loaded_once_per_process(identifier):
    assert LanguageIdentifier().model() is identifier.model()
