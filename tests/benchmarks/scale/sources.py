"""The real samples every scale input is resampled from.

Only files inside this repository are needed (corpus/sample/, tests/fixtures/), so `make scale` runs on a
clean clone. An optional extra folder (e.g. ../shared/data) adds more of the same kinds: its `*.html.gz`
pages become more page templates, its `ground-truth.json` article bodies, `*.jsonl` texts and `*.txt` files
more sentences.

- Submissions: the 709 real 2005 Pushshift records and the 19 records of six eras (format drift: string and
  float `created_utc`, `_meta`, self posts, NSFW flags). Resampled whole, so URL, score, subreddit and time
  keep their joint distribution.
- Page templates: real HTML pages (the demo archive's news pages, the extraction fixtures, the Common Crawl
  excerpt) that hold at least three article paragraphs; the paragraphs are the slots new text goes into.
- Sentences: real English sentences (news articles, Wikipedia, WebText, WikiText), distinct. LAMBADA is left
  out: the filter stage decontaminates against it, and a pool containing it would make every document
  contaminated.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

import zstandard
from warcio.archiveiterator import ArchiveIterator

ROOT = Path(__file__).resolve().parents[3]
REDDIT = ROOT / "corpus" / "sample" / "reddit"
FIXTURES = ROOT / "tests" / "fixtures"
DUMPS = ("RS_v2_2005-06.shared.ndjson.zst", "RS_v2_2005-07.shared.ndjson.zst")
MIXED = "mixed_eras_submissions.shared.ndjson"
TEMPLATE_ARCHIVES = (
    ROOT / "corpus" / "sample" / "warc" / "demo-pages.warc.gz",
    FIXTURES / "warc" / "resiliparse_warcfile.warc.gz",
)
TEXT_FILES = (
    FIXTURES / "wikipedia" / "articles.jsonl.gz",
    FIXTURES / "wikipedia" / "pages.jsonl.gz",
    FIXTURES / "wikipedia" / "webtext.jsonl",
    ROOT / "corpus" / "sample" / "eval" / "webtext.test.first200.jsonl",
    FIXTURES / "eval" / "wikitext-2-raw-v1.test.first200lines.txt",
)
EXCLUDED_TEXT = ("lambada",)  # decontamination targets: never in the pool
MAX_EXTRA_TEMPLATES = 400
MAX_EXTRA_TEXT_BYTES = 64 * 2**20

_PARAGRAPH = re.compile(rb"<p(?:\s[^>]*)?>(.*?)</p>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
MIN_SLOT_WORDS = 15  # a <p> with fewer words of text is navigation or a caption, not article text
MIN_SLOTS = 3


@dataclass(frozen=True)
class Template:
    """A real HTML page and the byte spans of its article paragraphs' inner HTML (the slots)."""

    name: str
    html: bytes
    slots: tuple[tuple[int, int], ...]
    title: tuple[int, int] | None  # span of the <title> text


@dataclass(frozen=True)
class Samples:
    submissions: list[dict]  # real Pushshift records
    templates: list[Template]
    sentences: list[str]  # distinct real sentences, in a fixed order
    words: list[str]  # every word of the sentences, with repeats: sampling it follows their frequencies


def load_samples(extra: Path | None = None) -> Samples:
    """Everything the generator resamples, from the repository (and `extra` when given)."""
    templates = [*_archive_templates(), *_fixture_templates(sorted((FIXTURES / "html").rglob("*.html.gz")))]
    texts = _repository_texts()
    if extra is not None:
        templates += _fixture_templates(sorted(extra.rglob("*.html.gz"))[:MAX_EXTRA_TEMPLATES])
        texts += _extra_texts(extra)
    sentences = split_sentences(texts)
    return Samples(
        submissions=load_submissions(),
        templates=_distinct(templates),
        sentences=sentences,
        words=[w for s in sentences for w in s.split()],
    )


def load_submissions() -> list[dict]:
    records = []
    for name in DUMPS:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress((REDDIT / name).read_bytes())
        records += [json.loads(line) for line in raw.splitlines()]
    records += [json.loads(line) for line in (REDDIT / MIXED).read_text(encoding="utf-8").splitlines()]
    return records


def template(name: str, page: bytes) -> Template | None:
    """The page as a template when it is UTF-8 and holds at least MIN_SLOTS article paragraphs."""
    try:
        page.decode("utf-8")
    except UnicodeDecodeError:
        return None  # re-encoding other charsets is not what this harness measures
    slots = tuple(m.span(1) for m in _PARAGRAPH.finditer(page) if _text_words(m.group(1)) >= MIN_SLOT_WORDS)
    if len(slots) < MIN_SLOTS:
        return None
    title = re.search(rb"<title[^>]*>(.*?)</title>", page, re.S | re.I)
    return Template(name, page, slots, title.span(1) if title else None)


def _text_words(inner: bytes) -> int:
    return len(_TAG.sub(" ", inner.decode("utf-8", "replace")).split())


def _archive_templates() -> list[Template]:
    found = []
    for path in TEMPLATE_ARCHIVES:
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type != "response":
                    continue
                url = record.rec_headers.get_header("WARC-Target-URI")
                made = template(f"{path.name}:{url}", record.content_stream().read())
                if made is not None:
                    found.append(made)
    return found


def _fixture_templates(paths: list[Path]) -> list[Template]:
    made = (template(str(p.relative_to(p.parents[2])), gzip.decompress(p.read_bytes())) for p in paths)
    return [t for t in made if t is not None]


def _distinct(templates: list[Template]) -> list[Template]:
    """One template per distinct page (the demo archive re-serves two of its pages)."""
    seen, kept = set(), []
    for t in templates:
        if t.html not in seen:
            seen.add(t.html)
            kept.append(t)
    return kept


def _repository_texts() -> list[str]:
    gold = json.loads((FIXTURES / "html" / "scrapinghub_aeb" / "ground-truth.json").read_text("utf-8"))
    texts = [entry["articleBody"] for _, entry in sorted(gold.items())]
    for path in TEXT_FILES:
        texts += _read_texts(path)
    return texts


def _read_texts(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = data.decode("utf-8", "replace")
    if ".jsonl" in path.name:
        rows = (json.loads(line) for line in text.splitlines() if line.strip())
        return [row["text"] for row in rows if isinstance(row, dict) and isinstance(row.get("text"), str)]
    return text.split("\n")


def _extra_texts(extra: Path) -> list[str]:
    texts: list[str] = []
    budget = MAX_EXTRA_TEXT_BYTES
    candidates = sorted([*extra.rglob("ground-truth.json"), *extra.rglob("*.jsonl"), *extra.rglob("*.txt")])
    for path in candidates:
        if budget <= 0 or any(word in path.name.lower() for word in EXCLUDED_TEXT):
            continue
        budget -= path.stat().st_size
        try:
            if path.name == "ground-truth.json":
                gold = json.loads(path.read_text("utf-8"))
                texts += [e["articleBody"] for _, e in sorted(gold.items()) if isinstance(e, dict)]
            else:
                texts += _read_texts(path)
        except (ValueError, KeyError, UnicodeDecodeError):
            continue  # not a text file of the expected shape
    return texts


def split_sentences(texts: list[str]) -> list[str]:
    """Distinct English sentences of 5+ words ending in . ! ? or a quote, first occurrence first."""
    seen: dict[str, None] = {}
    for text in texts:
        for paragraph in text.split("\n"):
            for sentence in _SENTENCE_END.split(html.unescape(paragraph.strip())):
                sentence = " ".join(sentence.split())
                if (
                    len(sentence.split()) >= 5
                    and sentence[-1] in ".!?\"'"
                    and sum(c.isascii() for c in sentence) >= 0.95 * len(sentence)
                ):
                    seen.setdefault(sentence, None)
    return list(seen)


def describe(samples: Samples) -> dict:
    """Sizes of the samples, for results.json."""
    return {
        "submissions": len(samples.submissions),
        "templates": len(samples.templates),
        "sentences": len(samples.sentences),
        "words": len(samples.words),
    }
