"""Main-text extraction with trafilatura: page bytes -> decoded HTML -> text + metadata, or why not.

`extract_page` runs in the calling process. `TimedExtractor` runs the same code in a child process so that a
page that makes trafilatura spin (megabytes of tags, pathological nesting) costs at most `timeout_seconds`:
the child is killed and restarted, the page becomes an `extract_timeout` row in the ledger.

Extraction rule (chosen on the scrapinghub article-extraction-benchmark, see tests/benchmarks/EXTRACTION.md):
trafilatura with `favor_precision`, comments off. When that text is too short to keep (under `min_words`),
trafilatura runs again with `favor_recall`, and if the precision text is under `recall_fallback` (half) of
the recall text, the precision mode has pruned the article itself and the recall text is taken instead.

Metadata: only what the docs table keeps (title, author, date, sitename), each computed as
trafilatura.extract_metadata does but without its other fields, the author search without copying the page,
and htmldate without its extensive search unless `extensive_date_search` asks for it (`metadata`, `_author`).

Outcomes (the ledger reasons of the extract stage):
- `ok`: text of at least `min_words` words.
- `too_short`: text found but shorter than `min_words`; `text` still holds it (for inspection).
- `no_text`: not parseable as HTML, or trafilatura found no main text.
- `extract_timeout`: `TimedExtractor` only, over `timeout_seconds`.
- `extract_error`: an exception inside trafilatura/lxml, or the extraction process died.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import html as html_entities
import logging
import multiprocessing
import re
import signal
import unicodedata
from dataclasses import dataclass
from typing import Any

import trafilatura
from htmldate import find_date
from lxml.etree import XPath
from trafilatura.htmlprocessing import prune_unwanted_nodes
from trafilatura.json_metadata import normalize_authors
from trafilatura.metadata import (
    META_URL,
    examine_meta,
    extract_author,
    extract_meta_json,
    extract_sitename,
    extract_title,
    extract_url,
)
from trafilatura.settings import set_date_params
from trafilatura.utils import detect_encoding, line_processing, load_html, trim
from trafilatura.xpaths import AUTHOR_DISCARD_XPATHS, AUTHOR_XPATHS

EXTRACTOR = f"trafilatura {trafilatura.__version__}"

OK = "ok"
NO_TEXT = "no_text"
TOO_SHORT = "too_short"
EXTRACT_TIMEOUT = "extract_timeout"
EXTRACT_ERROR = "extract_error"


@dataclass(frozen=True)
class ExtractConfig:
    # OpenWebText (the open WebText replica) dropped documents under 128 GPT-2 BPE tokens, ~100 English words
    # at GPT-2's ~1.3 tokens per word. Words are whitespace-separated runs (so unspaced CJK text counts few).
    min_words: int = 100
    timeout_seconds: float = 10.0
    favor_precision: bool = True
    # A text under min_words gets a favor_recall pass, taken when the first text is under this share of it
    # (0 turns the second pass off).
    recall_fallback: float = 0.5
    include_tables: bool = True
    include_comments: bool = False  # reader comments are not the page's text (and cost F1 on the benchmark)
    fast: bool = False  # trafilatura's fast mode skips its readability/jusText comparison
    # htmldate's extensive search: free-text date patterns, and dateparser for dates in words ("3 mars
    # 2019"). Off since issue 16: dateparser compiles its language tables on first use in every process
    # (seconds per extraction child), and on the 197 benchmark pages it dates 6 more pages: 2 right, 3 whose
    # gold says "no date", 1 without a gold date (tests/benchmarks/EXTRACTION.md). True restores trafilatura's
    # default.
    extensive_date_search: bool = False


@dataclass(frozen=True)
class Extracted:
    outcome: str
    text: str | None
    title: str | None
    author: str | None
    date: str | None  # ISO date, as trafilatura (htmldate) gives it
    sitename: str | None
    words: int
    detail: str  # one line for the ledger when not ok, "" when ok

    @classmethod
    def failed(cls, outcome: str, detail: str) -> Extracted:
        return cls(outcome, None, None, None, None, None, 0, detail)


# --- decoding ---------------------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^\s"';,]+)""", re.IGNORECASE)
# <meta charset=...>, <meta http-equiv="Content-Type" content="...; charset=...">, <?xml ... encoding=...?>
_DOCUMENT_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)|<\?xml[^>]*?encoding\s*=\s*["']([a-zA-Z0-9_.\-]+)""",
    re.IGNORECASE,
)
_PRESCAN_BYTES = 4096
# Browsers (WHATWG Encoding) read these labels as their supersets; Python's exact codecs would mangle the
# bytes the real pages use (0x80-0x9F in "latin-1" pages are cp1252 punctuation).
_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}
# Text codecs Python has that no web page means (and utf-7, which browsers refuse for safety).
_NOT_PAGE_CODECS = {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape", "utf-7"}


def _codec(label: str | bytes | None, from_document: bool = False) -> str | None:
    """Python codec name for a charset label, or None when it names no usable text encoding."""
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    try:
        name = codecs.lookup(label.strip().lower()).name
        b"a".decode(name)  # raises LookupError for bytes-to-bytes codecs (base64, zlib, ...)
    except (LookupError, ValueError, UnicodeError):
        return None
    if name in _NOT_PAGE_CODECS:
        return None
    if from_document and name.startswith(("utf-16", "utf-32")):
        return "utf-8"  # a page that can declare itself in ASCII is not UTF-16 (WHATWG prescan rule)
    return _SUPERSETS.get(name, name)


def decode_html(body: bytes, content_type: str | None) -> str:
    """Bytes of a page -> text. A BOM wins (as in browsers), then the Content-Type charset when it names a
    text codec, then the document's own <meta charset>/<?xml encoding?>, then UTF-8 when the bytes are
    valid UTF-8, then trafilatura's detection (charset_normalizer). Bad bytes become U+FFFD; never raises."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, "replace")
    header = _HEADER_CHARSET.search(content_type or "")
    name = _codec(header.group(1) if header else None)
    if name is None:
        declared = _DOCUMENT_CHARSET.search(body[:_PRESCAN_BYTES])
        name = _codec(declared and (declared.group(1) or declared.group(2)), from_document=True)
    if name is not None:
        return body.decode(name, "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        guesses = detect_encoding(body)
    except Exception:  # a detector bug must not lose the page
        guesses = []
    for guess in guesses:
        name = _codec(guess)
        if name is None:
            continue
        try:
            return body.decode(name)
        except UnicodeDecodeError:
            continue
    return body.decode("utf-8", "replace")


# --- metadata ---------------------------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    """As trafilatura's Document.clean_and_trim does to every string field: cap, unescape, trim."""
    if value is None:
        return None
    if len(value) > 10000:
        value = value[:9999] + "…"
    return line_processing(html_entities.unescape(value))


def _sitename(found: str | None, url: str | None) -> str | None:
    """extract_metadata's sitename rule: the meta/JSON-LD/title name tidied, else the URL's host."""
    if found:
        found = found.lstrip("@")  # a Twitter handle
        if found and "." not in found and not found[0].isupper():
            found = found.title()
        return found
    match = META_URL.match(url) if url else None
    return match[1] if match else None


def _ancestor_or_self(expression: XPath) -> XPath | None:
    """The test of one of trafilatura's AUTHOR_DISCARD_XPATHS (`.//*[...]` or `//a|//b`) applied to an
    element's own ancestor chain instead of the whole page; None for a shape this does not know (then
    `_author` falls back to trafilatura's extract_author). The predicates only read an element's own tag and
    attributes, so "some ancestor-or-self matches" is exactly "the page-wide prune removes this element";
    positional predicates would not survive the change of axis and are refused."""
    path = expression.path.strip()  # not whitespace-collapsed: string literals must stay as they are
    if re.search(r"\[\s*\d|position\(|last\(", path):
        return None
    if path.startswith(".//*[") and _only_predicates(path[4:]):
        return XPath(
            "ancestor-or-self::*" + path[4:], namespaces={"re": "http://exslt.org/regular-expressions"}
        )
    branches = [branch.strip() for branch in path.split("|")]
    if all(re.fullmatch(r"//[a-z][a-z0-9]*", branch) for branch in branches):
        return XPath("|".join(f"ancestor-or-self::{branch[2:]}" for branch in branches))
    return None


def _only_predicates(rest: str) -> bool:
    """True when `rest` is nothing but `[...]` groups (brackets inside quoted strings ignored), so that no
    union or further step follows the first one."""
    depth, quote = 0, ""
    for char in rest:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0 and not char.isspace():
            return False
    return depth == 0 and not quote


_DISCARD_ABOVE = [_ancestor_or_self(expression) for expression in AUTHOR_DISCARD_XPATHS]


def _author(tree: Any) -> str | None:
    """trafilatura's extract_author without copying the page. It deep-copies the whole tree, prunes the
    AUTHOR_DISCARD_XPATHS from it (comments, sidebars, <time>, <figure>, ...) and takes the first match of
    AUTHOR_XPATHS whose text is 3-119 characters. The author expressions only test tags and attributes, so
    their matches in the pruned tree are their matches here minus the pruned ones; this takes them in the
    same order, skips a match that the prune removes (`_DISCARD_ABOVE`), and prunes only the match's own
    copy before reading its text: the same answer (a unit test holds it equal on real pages) for about half
    the cost. One expression also compares the text of a <rel> child, which pruning inside it could change:
    a page with a <rel> element takes trafilatura's own path."""
    if None in _DISCARD_ABOVE or tree.find(".//rel") is not None:
        return extract_author(tree)
    for expression in AUTHOR_XPATHS:
        for element in expression(tree):
            if any(found.getparent() is not None for above in _DISCARD_ABOVE for found in above(element)):
                continue  # in (or is) a pruned section; the root <html> is never pruned
            pruned = prune_unwanted_nodes(copy.deepcopy(element), AUTHOR_DISCARD_XPATHS)
            content = trim(" ".join(pruned.itertext()))
            if content and 2 < len(content) < 120:  # extract_author's len_limit
                return normalize_authors(None, content)
    return None


def metadata(tree: Any, url: str | None, extensive_date_search: bool) -> tuple[str | None, ...]:
    """(title, author, date, sitename): the metadata the docs table keeps, each exactly as
    trafilatura.extract_metadata computes it (same functions, same order, same clean-up; a unit test holds
    the two equal). extract_metadata also finds categories, tags, licence, description and image, which the
    docs table does not keep: ~2.5 of its ~7 ms per page (its category/tag/licence searches scan the whole
    tree); `_author` saves another ~1 ms."""
    meta = examine_meta(tree)
    if meta.author and " " not in meta.author:
        meta.author = None  # extract_metadata's rule: a one-word meta author is a handle, not a name
    # As extract_metadata: a bug in trafilatura's JSON-LD code loses only that source.
    with contextlib.suppress(Exception):
        meta = extract_meta_json(tree, meta)
    title = meta.title or extract_title(tree)
    author = meta.author or _author(tree)
    page_url = meta.url or extract_url(tree, url)
    dates = set_date_params(extensive_date_search)
    dates["url"] = page_url
    date = find_date(tree, **dates)
    sitename = _sitename(meta.sitename or extract_sitename(tree), page_url)
    return _clean(title), _clean(author), _clean(date), _clean(sitename)


# --- extraction -------------------------------------------------------------------------------------------


def _main_text(tree: Any, url: str | None, config: ExtractConfig, **mode: bool) -> str:
    """One trafilatura pass over a parsed tree (bare_extraction copies it); "" when it finds nothing."""
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=config.fast,
        include_comments=config.include_comments,
        include_tables=config.include_tables,
        include_formatting=False,
        include_links=False,
        include_images=False,
        deduplicate=False,  # its cache spans documents: output would depend on the order pages arrive in
        **mode,
    )
    # As trafilatura.extract() returns txt: NFC-normalized and stripped.
    return (
        unicodedata.normalize("NFC", document.text).strip() if document is not None and document.text else ""
    )


def _extract(html: str, url: str | None, config: ExtractConfig) -> Extracted:
    tree = load_html(html)
    if tree is None:
        return Extracted.failed(NO_TEXT, "not parseable as HTML")
    text = _main_text(tree, url, config, favor_precision=config.favor_precision)
    words = len(text.split())
    # Only a text too short to keep gets the second pass: on long pages favor_recall mostly adds boilerplate.
    if config.recall_fallback > 0 and words < max(config.min_words, 1):
        recall = _main_text(tree, url, config, favor_recall=True)
        if len(text) < config.recall_fallback * len(recall):
            text, words = recall, len(recall.split())
    if not text:
        return Extracted.failed(NO_TEXT, "trafilatura found no main text")
    title, author, date, sitename = metadata(tree, url, config.extensive_date_search)
    outcome, detail = (
        (OK, "") if words >= config.min_words else (TOO_SHORT, f"{words} words < {config.min_words}")
    )
    return Extracted(outcome, text, title, author, date, sitename, words, detail)


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


def extract_page(html: str, url: str | None, config: ExtractConfig) -> Extracted:
    """trafilatura on one page, in this process, no time limit."""
    try:
        return _extract(html, url, config)
    except Exception as err:  # lxml/trafilatura bugs on odd pages are ledger rows, not crashes
        return Extracted.failed(EXTRACT_ERROR, _one_line(err))


def extract_bytes(body: bytes, content_type: str | None, url: str | None, config: ExtractConfig) -> Extracted:
    """decode_html + extract_page: what TimedExtractor runs in its child process."""
    return extract_page(decode_html(body, content_type), url, config)


# --- per-document time limit ------------------------------------------------------------------------------

_STARTUP_TIMEOUT = 120.0  # seconds for a fresh child to import trafilatura (not part of any page's budget)


def _serve(conn: Any, config: ExtractConfig) -> None:
    """Child process loop: (body, content_type, url) in, Extracted out, until None or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # trafilatura logs a warning per discarded page; the outcome already says it.
    for name in ("trafilatura", "htmldate", "courlan", "justext", "charset_normalizer"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    conn.send("ready")
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        conn.send(extract_bytes(*request, config))


class TimedExtractor:
    """Per-document time limit: extraction runs in a child process (one per TimedExtractor, started lazily,
    reused across documents); a document that exceeds timeout_seconds kills and restarts the child and gives
    outcome extract_timeout. Context manager; close() stops the child. Only the picklable config, the request
    (body bytes, content_type, url) and the Extracted result cross the pipe. Not thread-safe: one per thread.

    The child is started with "forkserver" (safe when the caller has threads, unlike fork; a restart after a
    timeout forks a process that already imported trafilatura) or "spawn" where forkserver is unavailable.
    """

    def __init__(self, config: ExtractConfig, start_method: str | None = None):
        self.config = config
        methods = multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context(
            start_method or ("forkserver" if "forkserver" in methods else "spawn")
        )
        self._process: Any = None
        self._conn: Any = None
        self._starts = 0

    @property
    def restarts(self) -> int:
        """Children started after the first one (after timeouts and crashes)."""
        return max(0, self._starts - 1)

    def _start(self) -> None:
        if self._context.get_start_method() == "forkserver":
            self._context.set_forkserver_preload([__name__])
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(child, self.config), daemon=True, name="extract")
        process.start()
        child.close()
        if not parent.poll(_STARTUP_TIMEOUT) or parent.recv() != "ready":
            process.kill()
            raise RuntimeError(f"extraction process did not start (exit code {process.exitcode})")
        self._starts += 1
        self._process, self._conn = process, parent

    def _stop(self, kill: bool) -> None:
        if self._process is None:
            return
        if not kill:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._conn.close()
        self._process = self._conn = None

    def extract(self, body: bytes, content_type: str | None, url: str | None) -> Extracted:
        if self._process is not None and not self._process.is_alive():
            self._stop(kill=True)  # died between documents (killed from outside): not this page's fault
        if self._process is None:
            self._start()
        try:
            self._conn.send((body, content_type, url))
            if not self._conn.poll(self.config.timeout_seconds):
                self._stop(kill=True)
                return Extracted.failed(EXTRACT_TIMEOUT, f"over {self.config.timeout_seconds:g} s")
            return self._conn.recv()
        except (EOFError, OSError):  # killed by the OS (out of memory) or crashed in lxml's C code
            self._process.join(1)
            exitcode = self._process.exitcode
            self._stop(kill=True)
            return Extracted.failed(EXTRACT_ERROR, f"extraction process died (exit code {exitcode})")

    def close(self) -> None:
        self._stop(kill=False)

    def __enter__(self) -> TimedExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
