"""Wikipedia detection: hosts from the packaged list, and 8-gram overlap with real Wikipedia article text."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import corpus.wikipedia as wikipedia
from corpus.errors import InputError
from corpus.ngrams import normalize, words
from corpus.wikipedia import (
    DEFAULT_MAX_OVERLAP,
    WIKIPEDIA,
    WIKIPEDIA_COPY,
    WikipediaReference,
    ngram_hashes,
    wikipedia_copy,
    wikipedia_host,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HERE = FIXTURES / "wikipedia"


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


ARTICLES = read_jsonl_gz(HERE / "articles.jsonl.gz")  # the reference: Wikipedia article text
PAGES = read_jsonl_gz(HERE / "pages.jsonl.gz")  # the same 4 articles' pages, extracted by the pipeline
PROJECTS = (HERE / "wikimedia_projects.txt").read_text(encoding="utf-8").split()
BOILERPLATE = (HERE / "boilerplate.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def reference() -> WikipediaReference:
    return WikipediaReference.from_file(str(HERE / "articles.jsonl.gz"))


def web_articles() -> list[str]:
    """Real web articles: human-annotated bodies (scrapinghub benchmark) and whole WebText documents."""
    truth = json.loads(
        (FIXTURES / "html" / "scrapinghub_aeb" / "ground-truth.json").read_text(encoding="utf-8")
    )
    with open(HERE / "webtext.jsonl", encoding="utf-8") as handle:
        webtext = [json.loads(line)["text"] for line in handle]
    return [entry["articleBody"] for entry in truth.values()] + webtext


def mirror(page: str, boilerplate_share: float) -> str:
    """A mirror of an article: real boilerplate (navigation, subscription and comment prompts) around it,
    `boilerplate_share` of the mirror's words."""
    page_words = len(page.split())
    wanted = round(page_words * boilerplate_share / (1 - boilerplate_share))
    lines, count = [], 0
    while count < wanted:
        for line in BOILERPLATE.splitlines():
            if count >= wanted:
                break
            lines.append(line)
            count += len(line.split())
    half = len(lines) // 2
    return "\n".join(lines[:half] + [page] + lines[half:])


# --- hosts ------------------------------------------------------------------------------------------------


def test_every_wikipedia_edition_and_its_mobile_host_matches():
    editions = [project for project in PROJECTS if project.endswith(".wikipedia")]
    assert len(editions) == 377  # Wikimedia's pageview allow-list: every language edition
    for edition in editions:
        assert wikipedia_host(f"https://{edition}.org/wiki/Main_Page", None) == f"{edition}.org"
        mobile = edition.replace(".wikipedia", ".m.wikipedia")
        assert wikipedia_host(f"https://{mobile}.org/wiki/Main_Page", None) == f"{mobile}.org"


def test_every_wikimedia_host_matches_and_sister_projects_do_not():
    for project in PROJECTS:
        host = f"{project}.org"
        matched = wikipedia_host(f"https://{host}/wiki/X", None)
        if project.split(".")[-1] in ("wikipedia", "wikimedia", "wikimediafoundation"):
            assert matched == host
        else:  # wiktionary, wikibooks, wikiquote, wikisource, wikinews, wikiversity, wikidata, ...
            assert matched is None, host


@pytest.mark.parametrize(
    "url, host",
    [
        ("https://en.wikipedia.org/wiki/Mozilla", "en.wikipedia.org"),
        ("https://de.m.wikipedia.org/wiki/Mozilla", "de.m.wikipedia.org"),
        ("https://upload.wikimedia.org/wikipedia/commons/a/a0/Firefox_logo.png", "upload.wikimedia.org"),
        ("https://wikipedia.org/", "wikipedia.org"),
        ("http://www.wikipedia.com/wiki/Mozilla", "www.wikipedia.com"),
        # not canonical: case, default port, userinfo, trailing dot, IDN-free unicode path
        ("HTTPS://EN.Wikipedia.ORG:443/wiki/Z%C3%BCrich", "en.wikipedia.org"),
        ("https://user@fr.wikipedia.org./wiki/Zürich", "fr.wikipedia.org"),
        ("  https://en.wikipedia.org/wiki/X  ", "en.wikipedia.org"),
    ],
)
def test_wikipedia_hosts(url, host):
    assert wikipedia_host(url, None) == host


@pytest.mark.parametrize(
    "url",
    [
        "https://wikipedia.org.evil.com/wiki/Mozilla",
        "https://en.wikipedia.org.evil.com/wiki/Mozilla",
        "https://notwikipedia.org/wiki/Mozilla",
        "https://en.wikipedia-mirror.org/wiki/Mozilla",
        "https://en.wiktionary.org/wiki/mirror",
        "https://www.example.com/wiki/en.wikipedia.org",
        "https://example.com/?from=https://en.wikipedia.org/wiki/X",
        "http://en.wikipedia.org@evil.com/wiki/X",  # userinfo, the host is evil.com
        "ftp://en.wikipedia.org/pub",  # not http(s): no document comes from it
        "not a url",
        "",
    ],
)
def test_lookalikes_do_not_match(url):
    assert wikipedia_host(url, None) is None


def test_final_url_matters():
    assert (
        wikipedia_host("https://bit.ly/3xYz", "https://en.m.wikipedia.org/wiki/Mozilla")
        == "en.m.wikipedia.org"
    )
    assert (
        wikipedia_host("https://en.wikipedia.org/wiki/Mozilla", "https://www.mozilla.org/")
        == "en.wikipedia.org"
    )
    assert wikipedia_host("https://bit.ly/3xYz", "https://www.mozilla.org/") is None
    assert wikipedia_host("https://bit.ly/3xYz", "") is None
    assert wikipedia_host("not a url", "https://en.wikipedia.org/wiki/X") == "en.wikipedia.org"


def test_other_domain_lists():
    assert wikipedia_host("https://en.wikipedia.org/", None, domains=frozenset({"example.org"})) is None
    assert (
        wikipedia_host("https://a.example.org/", None, domains=frozenset({"example.org"})) == "a.example.org"
    )


def test_reasons():
    assert (WIKIPEDIA, WIKIPEDIA_COPY) == ("wikipedia", "wikipedia_copy")
    assert DEFAULT_MAX_OVERLAP == 0.5


# --- the reference ----------------------------------------------------------------------------------------


def test_reference_is_sorted_distinct_hashes(reference):
    hashes = np.concatenate([ngram_hashes(article["text"]) for article in ARTICLES])
    assert reference.hashes.dtype == np.uint64
    assert np.array_equal(reference.hashes, np.unique(hashes))
    assert len(reference) > 40_000
    assert reference.n == 8


def test_reference_memory_is_8_bytes_per_ngram(reference):
    assert reference.nbytes == 8 * len(reference)
    pickled = pickle.dumps(reference)
    assert len(pickled) < 8 * len(reference) + 1000


def test_reference_pickles(reference):
    copy = pickle.loads(pickle.dumps(reference))
    assert copy.n == reference.n
    assert np.array_equal(copy.hashes, reference.hashes)
    assert copy.overlap(PAGES[0]["text"]) == reference.overlap(PAGES[0]["text"])


def test_from_texts_equals_from_file(reference, monkeypatch):
    assert np.array_equal(WikipediaReference.from_texts(a["text"] for a in ARTICLES).hashes, reference.hashes)
    monkeypatch.setattr(wikipedia, "_BUILD_BATCH", 1000)  # many runs, merged as they come
    assert np.array_equal(WikipediaReference.from_texts(a["text"] for a in ARTICLES).hashes, reference.hashes)


def test_from_plain_text_file(tmp_path, monkeypatch):
    text = "\n\n".join(article["text"] for article in ARTICLES)
    path = tmp_path / "articles.txt"
    path.write_text(text, encoding="utf-8")
    whole = np.unique(ngram_hashes(text))
    assert np.array_equal(WikipediaReference.from_file(str(path)).hashes, whole)
    # Read in blocks of a few lines: the n-grams across block boundaries are all there, none is added.
    monkeypatch.setattr(wikipedia, "_BLOCK_LINES", 3)
    assert np.array_equal(WikipediaReference.from_file(str(path)).hashes, whole)
    gz = tmp_path / "articles.txt.gz"
    gz.write_bytes(gzip.compress(text.encode("utf-8")))
    assert np.array_equal(WikipediaReference.from_file(str(gz), n=5).hashes, np.unique(ngram_hashes(text, 5)))


def test_from_jsonl_file(tmp_path):
    path = tmp_path / "articles.jsonl"
    path.write_text(
        '{"text": "one two three four five six seven eight"}\n\n{"text": "nine"}\n', encoding="utf-8"
    )
    assert len(WikipediaReference.from_file(str(path))) == 1
    path.write_text('{"text": "one two"}\n{"title": "no text"}\n', encoding="utf-8")
    # An InputError: the filter command shows it as one line naming file:line, not a traceback.
    with pytest.raises(InputError, match=r'articles\.jsonl:2: not a JSON object with a "text" string'):
        WikipediaReference.from_file(str(path))


def test_empty_reference():
    empty = WikipediaReference.from_texts([])
    assert len(empty) == 0
    assert empty.overlap(PAGES[0]["text"]) == 0.0


# --- overlap ----------------------------------------------------------------------------------------------


def test_wikipedia_article_copies_overlap_almost_entirely(reference):
    # The reference holds Readability's rendering of each article; the documents are the pipeline's own
    # extraction of the original pages, so a little differs (references, infobox, tables, captions).
    for page in PAGES:
        assert reference.overlap(page["text"]) > 0.9, page["title"]
        assert wikipedia_copy(page["text"], reference, DEFAULT_MAX_OVERLAP)[0] == WIKIPEDIA_COPY
    for article in ARTICLES:
        assert reference.overlap(article["text"]) == 1.0


def test_mirrors_with_boilerplate_exceed_the_default(reference):
    for page in PAGES:
        with_boilerplate = mirror(page["text"], 1 / 3)
        assert 0.55 < reference.overlap(with_boilerplate) < 0.7, page["title"]
        reason, detail = wikipedia_copy(with_boilerplate, reference, DEFAULT_MAX_OVERLAP)
        assert reason == WIKIPEDIA_COPY
        assert detail.startswith("8-gram overlap with Wikipedia 0.") and detail.endswith("> 0.5")
        # The limit of the rule: when boilerplate is most of the page, the copy is kept.
        assert reference.overlap(mirror(page["text"], 0.6)) < DEFAULT_MAX_OVERLAP


def test_real_web_articles_overlap_little(reference):
    articles = web_articles()
    overlaps = [reference.overlap(text) for text in articles]
    assert max(overlaps) < 0.05
    assert [wikipedia_copy(text, reference, DEFAULT_MAX_OVERLAP) for text in articles] == [None] * len(
        articles
    )


def test_overlap_is_on_normalized_words(reference):
    text = ARTICLES[2]["text"]
    assert reference.overlap(text.upper().replace(" ", "  ,  ")) == 1.0
    assert reference.overlap(normalize(text)) == 1.0


def test_overlap_counts_ngrams_with_multiplicity():
    reference = WikipediaReference.from_texts(["w0 w1 w2 w3 w4 w5 w6 w7 w8"])  # 2 8-grams
    half = "w0 w1 w2 w3 w4 w5 w6 w7 w8 x0 x1"  # 4 8-grams, the first 2 in the reference
    assert reference.overlap(half) == 0.5
    assert wikipedia_copy(half, reference, 0.5) is None  # the limit is inclusive
    assert wikipedia_copy(half, reference, 0.49) == (
        WIKIPEDIA_COPY,
        "8-gram overlap with Wikipedia 0.500 > 0.49",
    )
    # Repeating the known 8-grams counts them again: 2 + 2 known of 20 - 7 = 13
    assert reference.overlap(half + " w0 w1 w2 w3 w4 w5 w6 w7 w8") == pytest.approx(4 / 13)
    assert reference.overlap("w0 w1 w2 w3 w4 w5 w6 w7 w0 w1 w2 w3 w4 w5 w6 w7") == pytest.approx(2 / 9)


def test_short_texts_have_no_overlap(reference):
    assert reference.overlap("") == 0.0
    assert reference.overlap(" ".join(words(ARTICLES[0]["text"])[:7])) == 0.0
    assert reference.overlap(" ".join(words(ARTICLES[0]["text"])[:8])) == 1.0


def test_no_reference_drops_nothing():
    assert wikipedia_copy(PAGES[0]["text"], None, DEFAULT_MAX_OVERLAP) is None
