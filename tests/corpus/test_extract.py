"""Extraction of real pages (tests/fixtures/html), charset decoding, outcomes, the per-document time limit."""

from __future__ import annotations

import gzip
import json
import pickle
import random
import threading
import time
from pathlib import Path

import pytest
import trafilatura
from lxml.etree import XPath
from trafilatura.metadata import extract_author
from trafilatura.settings import set_date_params
from trafilatura.utils import load_html

import corpus.extract as extract_module
from corpus.extract import (
    EXTRACTOR,
    ExtractConfig,
    Extracted,
    TimedExtractor,
    decode_html,
    extract_bytes,
    extract_page,
)
from corpus.extraction_eval import match_counts

AEB = Path(__file__).resolve().parent.parent / "fixtures" / "html" / "scrapinghub_aeb"
GOLD = json.loads((AEB / "ground-truth.json").read_text(encoding="utf-8"))
UTF8 = "text/html; charset=utf-8"

# One sentence of each page's gold text, which the extracted text must contain verbatim.
KNOWN = {
    "359fee22": 'a drone flying around on Titan," Lopes said.',
    "85439e26": "不正に改造したiPhoneを販売することは、商標の品質保証機能を害することになりますので",
    "c4a3637c": "Из рекомендации можно еще прописать player.modav speedmult 125",
    "d90bda7e": "snipers have also shot into crowds of people from rooftops and, in one case, a helicopter.",
    "e372e42c": "Fritz Eckart von Weizsäcker was stabbed to death",
    "f105de6e": "自分はずっとKeePassを愛用しています。",
    "f8ff621a": "Home Depot management hosts a conference call at 9 a.m. ET to discuss results",
    "fde930b0": "Teens love Apple's AirPods, and they're putting them on their holiday wish lists",
}


def page(prefix: str) -> tuple[bytes, str, str]:
    """(raw bytes, url, gold text) of a fixture page."""
    (key,) = [k for k in GOLD if k.startswith(prefix)]
    return (
        gzip.decompress((AEB / "html" / f"{key}.html.gz").read_bytes()),
        GOLD[key]["url"],
        GOLD[key]["articleBody"],
    )


def f1(gold: str, text: str | None) -> float:
    tp, fp, fn = match_counts(gold, text)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def html_doc(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}<title>T</title></head><body>{body}</body></html>"


ARTICLE_BODY = (
    "<article><h1>A title</h1>"
    + "".join(
        f"<p>Paragraph {i} says something about the subject at a reasonable length, as prose does.</p>"
        for i in range(12)
    )
    + "</article>"
)
ARTICLE = html_doc(ARTICLE_BODY)


# --- real pages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", sorted(KNOWN))
def test_real_pages_contain_their_gold_sentences(prefix):
    body, url, gold = page(prefix)
    result = extract_bytes(body, UTF8, url, ExtractConfig())
    assert KNOWN[prefix] in result.text
    assert f1(gold, result.text) > 0.8
    assert result.title and result.date and result.sitename
    assert result.words == len(result.text.split())
    assert result.outcome in ("ok", "too_short")


def test_metadata_of_a_real_page():
    body, url, _ = page("f8ff621a")
    result = extract_bytes(body, UTF8, url, ExtractConfig())
    assert (result.outcome, result.detail) == ("ok", "")
    assert result.title.startswith("Home Depot Stock Is Falling After Its Earnings Release")
    assert (result.author, result.date, result.sitename) == ("Al Root", "2019-11-19", "BarronsOnline")


def test_recall_fallback_rescues_an_article_the_precision_mode_prunes():
    body, url, gold = page("f8ff621a")
    precision_only = extract_bytes(body, UTF8, url, ExtractConfig(recall_fallback=0))
    chosen = extract_bytes(body, UTF8, url, ExtractConfig())
    assert len(precision_only.text) < 500 and f1(gold, precision_only.text) == 0.0
    assert f1(gold, chosen.text) > 0.8


def test_precision_mode_drops_boilerplate_the_default_mode_keeps():
    body, url, gold = page("fde930b0")
    default_mode = extract_bytes(body, UTF8, url, ExtractConfig(favor_precision=False, recall_fallback=0))
    chosen = extract_bytes(body, UTF8, url, ExtractConfig())
    assert len(default_mode.text) > 3 * len(gold) and f1(gold, default_mode.text) < 0.5
    assert f1(gold, chosen.text) > 0.95


def test_extractor_names_trafilatura_and_its_version():
    import trafilatura

    assert f"trafilatura {trafilatura.__version__}" == EXTRACTOR


# --- metadata: only the docs table's four fields, each as trafilatura computes it --------------------------

FIXTURE_PAGES = sorted(AEB.parent.glob("*/html/*.html.gz"))


def fixture_tree(path: Path):
    return load_html(decode_html(gzip.decompress(path.read_bytes()), None))


@pytest.mark.parametrize("extensive", [False, True])
def test_metadata_is_the_four_fields_of_trafilatura_extract_metadata(extensive):
    assert len(FIXTURE_PAGES) == 10
    for path in FIXTURE_PAGES:
        tree = fixture_tree(path)
        full = trafilatura.extract_metadata(tree, "https://example.org/a", set_date_params(extensive))
        expected = (full.title, full.author, full.date, full.sitename)
        assert extract_module.metadata(tree, "https://example.org/a", extensive) == expected, path.name


def test_the_extensive_date_search_is_off_unless_asked():
    html = html_doc("<p>Posted: mardi 5 mars 2019 à 10h</p>" + ARTICLE_BODY)  # a date in French words
    assert ExtractConfig().extensive_date_search is False
    assert extract_page(html, "https://example.org/a", ExtractConfig()).date is None
    extensive = extract_page(html, "https://example.org/a", ExtractConfig(extensive_date_search=True))
    assert extensive.date == "2019-03-05"


def test_author_agrees_with_trafilatura_on_real_pages():
    for path in FIXTURE_PAGES:
        tree = fixture_tree(path)
        assert extract_module._author(tree) == extract_author(tree), path.name


@pytest.mark.parametrize(
    ("byline", "author"),
    [
        # a match inside a pruned section (sidebar) is skipped: the next one counts
        (
            '<div class="sidebar"><span class="author">Side Bar</span></div>'
            '<p class="byline">By Jane Doe</p>',
            "Jane Doe",
        ),
        # a pruned <time> leaves the byline's text, its tail stays
        (
            '<div class="byline">By Jane Doe<time>5 March 2019</time> and Max Mustermann</div>',
            "Jane Doe; Max Mustermann",
        ),
        # text of 120 characters or more is not an author: the next match counts
        ('<span class="author">' + "word " * 30 + '</span><a rel="author">John Roe</a>', "John Roe"),
        (
            '<section id="comments"><a rel="author">A Commenter</a></section>'
            '<div id="author">Real Author</div>',
            "Real Author",
        ),
        (
            '<figure><figcaption class="author">Photo Grapher</figcaption></figure>'
            '<span class="writer">Wanda Writer</span>',
            "Wanda Writer",
        ),
        (
            '<div class="author-box"><span class="print">Print this</span>Anna Author'
            '<span class="quote">"q"</span> tail words</div>',
            "Anna Author tail words",
        ),
        ("<p>No byline here</p>", None),
    ],
)
def test_author_without_copying_the_page_agrees_with_trafilatura(byline, author):
    tree = load_html(html_doc(byline + ARTICLE_BODY))
    assert extract_module._author(tree) == extract_author(tree) == author


def test_author_takes_trafilaturas_path_for_a_rel_element_or_an_unknown_discard_shape(monkeypatch):
    calls = []
    monkeypatch.setattr(
        extract_module, "extract_author", lambda tree: calls.append(tree) or "From Trafilatura"
    )
    rel = load_html(html_doc('<span class="x"><rel>me</rel> Jane Doe</span>' + ARTICLE_BODY))
    assert extract_module._author(rel) == "From Trafilatura" and len(calls) == 1
    monkeypatch.setattr(extract_module, "_DISCARD_ABOVE", [*extract_module._DISCARD_ABOVE, None])
    plain = load_html(html_doc('<p class="byline">By Jane Doe</p>' + ARTICLE_BODY))
    assert extract_module._author(plain) == "From Trafilatura" and len(calls) == 2


def test_discard_tests_move_to_the_ancestor_axis_only_for_known_shapes():
    convert = extract_module._ancestor_or_self
    assert (
        convert(XPath(".//*[self::div][@class='a]|b']")).path
        == "ancestor-or-self::*[self::div][@class='a]|b']"
    )
    assert convert(XPath("//time|//figure")).path == "ancestor-or-self::time|ancestor-or-self::figure"
    assert all(expression is not None for expression in extract_module._DISCARD_ABOVE)  # trafilatura's own
    refused = [
        ".//*[self::div][1]",
        ".//*[position()=2]",
        ".//*[@class='a']|//b",
        ".//*[@a]/span",
        ".//div[@a]",
    ]
    assert [convert(XPath(path)) for path in refused] == [None] * len(refused)


# --- outcomes ---------------------------------------------------------------------------------------------


def test_ok_and_too_short_follow_min_words():
    result = extract_page(ARTICLE, "https://example.org/a", ExtractConfig(min_words=100))
    assert result.outcome == "ok" and result.words >= 100 and "Paragraph 11 says" in result.text
    short = extract_page(ARTICLE, "https://example.org/a", ExtractConfig(min_words=10_000))
    assert short.outcome == "too_short" and short.text == result.text
    assert short.detail == f"{result.words} words < 10000"


def test_real_short_page_is_too_short():
    body, url, _ = page("e372e42c")
    result = extract_bytes(body, UTF8, url, ExtractConfig())
    assert (result.outcome, result.words) == ("too_short", 65)


@pytest.mark.parametrize(
    "html",
    [
        html_doc(""),
        html_doc("<script>var words = 'not text';</script><style>p { color: red }</style>"),
        "",
        "just some words, no markup",
    ],
)
def test_pages_without_main_text_are_no_text(html):
    result = extract_page(html, "https://example.org/", ExtractConfig())
    assert result == Extracted.failed("no_text", result.detail) and result.detail


def test_an_exception_inside_trafilatura_is_extract_error(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("lxml\nexploded")

    monkeypatch.setattr(extract_module.trafilatura, "bare_extraction", broken)
    result = extract_page(ARTICLE, "https://example.org/", ExtractConfig())
    assert (result.outcome, result.detail, result.text) == (
        "extract_error",
        "RuntimeError: lxml exploded",
        None,
    )


def test_config_and_results_pickle():
    config = ExtractConfig(min_words=5, timeout_seconds=1.5)
    result = extract_page(ARTICLE, "https://example.org/", config)
    assert pickle.loads(pickle.dumps(config)) == config
    assert pickle.loads(pickle.dumps(result)) == result


# --- decoding ---------------------------------------------------------------------------------------------

RUSSIAN = "Скайрим скорость бега как увеличить: пропишите player.modav speedmult 125 в консоли."
JAPANESE = "このご時世パスワードの強化は非常に重要なことであり、自分はずっとKeePassを愛用しています。"


def test_header_charset():
    body = html_doc(f"<p>{RUSSIAN}</p>").encode("windows-1251")
    assert RUSSIAN in decode_html(body, "text/html; charset=windows-1251")
    assert RUSSIAN in decode_html(body, 'text/html;charset="WINDOWS-1251"')


def test_header_charset_wins_over_the_document():
    body = html_doc(f"<p>{RUSSIAN}</p>", '<meta charset="iso-8859-1">').encode("windows-1251")
    assert RUSSIAN in decode_html(body, "text/html; charset=cp1251")


def test_real_page_with_only_a_meta_charset_windows_1251():
    body, url, gold = page("c4a3637c")
    html = body.decode("utf-8")
    assert 'charset="UTF-8"' in html
    legacy = html.replace('charset="UTF-8"', 'charset="windows-1251"').encode("windows-1251", "replace")
    assert RUSSIAN[:7] not in legacy.decode("utf-8", "replace")
    result = extract_bytes(legacy, "text/html", url, ExtractConfig())
    assert KNOWN["c4a3637c"] in result.text
    assert result.title == "Скайрим (skyrim) скорость бега как увеличить"


def test_real_page_with_an_http_equiv_shift_jis_declaration():
    body, url, _ = page("f105de6e")
    html = body.decode("utf-8").replace('<meta charset="UTF-8">', "")
    head = '<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
    legacy = html.replace("<head>", "<head>" + head, 1).encode("shift_jis", "replace")
    result = extract_bytes(legacy, None, url, ExtractConfig())
    assert KNOWN["f105de6e"] in result.text


def test_xml_declaration_counts_as_a_document_charset():
    body = ('<?xml version="1.0" encoding="windows-1251"?>' + html_doc(f"<p>{RUSSIAN}</p>")).encode("cp1251")
    assert RUSSIAN in decode_html(body, None)


@pytest.mark.parametrize("label", ["foobar-99", "base64", "rot13", "unicode-escape", "utf-7", "", '"'])
def test_invalid_header_labels_fall_back_gracefully(label):
    utf8 = html_doc(f"<p>{JAPANESE}</p>").encode("utf-8")
    assert JAPANESE in decode_html(utf8, f"text/html; charset={label}")
    declared = html_doc(f"<p>{JAPANESE}</p>", '<meta charset="shift_jis">').encode("shift_jis")
    assert JAPANESE in decode_html(declared, f"text/html; charset={label}")


def test_invalid_document_label_falls_back_to_utf8():
    body = html_doc(f"<p>{JAPANESE}</p>", '<meta charset="no-such-charset">').encode("utf-8")
    assert JAPANESE in decode_html(body, None)


def test_meta_cannot_declare_utf16():
    body = html_doc(f"<p>{JAPANESE}</p>", '<meta charset="utf-16">').encode("utf-8")
    assert JAPANESE in decode_html(body, None)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_bom_wins_over_a_wrong_header(encoding):
    body = html_doc(f"<p>{RUSSIAN}</p>").encode(encoding)  # both codecs write a BOM
    text = decode_html(body, "text/html; charset=iso-8859-1")
    assert RUSSIAN in text and not text.startswith("\ufeff")


def test_latin1_label_reads_as_windows_1252_like_browsers():
    assert "“quoted” – dash" in decode_html(
        b"<p>\x93quoted\x94 \x96 dash</p>", "text/html; charset=ISO-8859-1"
    )


def test_undeclared_legacy_encoding_is_detected():
    body = html_doc("".join(f"<p>{RUSSIAN} Абзац {i}.</p>" for i in range(20))).encode("windows-1251")
    assert RUSSIAN in decode_html(body, "text/html")


def test_binary_garbage_never_raises():
    garbage = random.Random(0).randbytes(200_000)
    for content_type in (None, "text/html", "text/html; charset=utf-8", "image/png; charset=foobar-99"):
        assert isinstance(decode_html(garbage, content_type), str)
    assert extract_bytes(garbage, None, "https://example.org/x.bin", ExtractConfig()).outcome == "no_text"
    assert decode_html(b"", None) == ""


# --- time limit in a child process ------------------------------------------------------------------------


def slow_page() -> bytes:
    """3 MB of paragraphs: trafilatura needs several seconds (3.5 s on a 2-core machine)."""
    return html_doc("<p>word word word word word</p>" * 100_000).encode()


def test_timed_extractor_gives_the_same_results_as_extract_page():
    pages = [page(prefix) for prefix in ("359fee22", "c4a3637c", "f8ff621a", "e372e42c")]
    config = ExtractConfig()
    with TimedExtractor(config) as extractor:
        timed = [extractor.extract(body, UTF8, url) for body, url, _ in pages]
        assert extractor.restarts == 0
    assert timed == [extract_page(body.decode("utf-8"), url, config) for body, url, _ in pages]
    assert [r.outcome for r in timed] == ["ok", "ok", "ok", "too_short"]


def test_slow_page_times_out_and_the_next_page_still_extracts():
    body, url, _ = page("359fee22")
    with TimedExtractor(ExtractConfig(timeout_seconds=0.5)) as extractor:
        assert extractor.extract(body, UTF8, url).outcome == "ok"
        started = time.perf_counter()
        result = extractor.extract(slow_page(), "text/html", "https://example.org/slow")
        assert time.perf_counter() - started < 3.0
        assert result == Extracted.failed("extract_timeout", "over 0.5 s")
        assert extractor._process is None  # killed; the next page starts another child
        assert extractor.extract(body, UTF8, url).outcome == "ok"
        assert extractor.restarts == 1


def test_a_child_that_dies_mid_page_is_an_error_and_is_replaced():
    body, url, _ = page("359fee22")
    with TimedExtractor(ExtractConfig(timeout_seconds=60)) as extractor:
        extractor.extract(body, UTF8, url)
        killer = threading.Timer(0.3, extractor._process.kill)
        killer.start()
        result = extractor.extract(slow_page(), "text/html", "https://example.org/slow")
        killer.join()
        assert result.outcome == "extract_error" and result.detail.startswith("extraction process died")
        assert extractor.extract(body, UTF8, url).outcome == "ok"
        extractor._process.kill()  # between pages: restarted without blaming the next page
        extractor._process.join()
        assert extractor.extract(body, UTF8, url).outcome == "ok"
        assert extractor.restarts == 2


def test_close_stops_the_child_and_spawn_works_too():
    extractor = TimedExtractor(ExtractConfig(), start_method="spawn")
    assert extractor._process is None  # started lazily
    assert extractor.extract(ARTICLE.encode(), None, "https://example.org/").outcome == "ok"
    process = extractor._process
    extractor.close()
    assert not process.is_alive() and process.exitcode == 0
    extractor.close()  # idempotent
