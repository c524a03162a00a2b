"""Wikipedia detection for the filter stage. GPT-2 removed every Wikipedia document from WebText, because
Wikipedia is a common source of evaluation data.

Two rules:

- ``wikipedia_host``: the document's URL or final URL (after redirects) is on a Wikipedia or Wikimedia host
  (``corpus/data/wikipedia_domains.txt``, the list the links stage uses), as defence in depth.
- ``wikipedia_copy``: the document's 8-grams overlap a reference text of Wikipedia articles by more than
  ``max_overlap``; this catches mirrors and copies on other hosts. 8-grams are taken over GPT-2's normalized
  words (``corpus.ngrams``), the n GPT-2 used to measure overlap with its evaluation sets (section 4).

``DEFAULT_MAX_OVERLAP`` is 0.5: a document is a copy when more than half of its 8-grams (counted with
multiplicity) occur in the reference. Measured with a reference of real articles (the 4 Wikipedia articles
of Mozilla Readability's test pages, as Readability renders them, and the ~60 articles of the WikiText-2 test
split; 233k distinct 8-grams):

| document | 8-gram overlap |
|---|---|
| the same 4 articles, extracted from their original pages with the pipeline's settings | 0.923-0.981 |
| mirrors: real boilerplate as 20% / 33% / 40% of the words | 0.73-0.79 / 0.61-0.67 / 0.55-0.60 |
| mirrors with 50% / 60% boilerplate (kept: the limit of the rule) | 0.46-0.50 / 0.36-0.40 |
| 109 human-annotated article bodies (scrapinghub benchmark), 197 pipeline extractions of real pages | 0.000 |
| 10 whole WebText documents; 9,447 WebText test/valid documents cut to 63 tokens | 0.000; max 0.021 |
| the 109 article bodies each followed by one 80-word Wikipedia paragraph | mean 0.16, 3 over 0.5 |

Web pages keep well under the limit; one quoting Wikipedia is dropped only when the quote is most of it (the
3 above: bodies of 18-68 words). Against all of Wikipedia, common phrases would add a few percent to every
web page, still far from 0.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache

import numpy as np

from corpus.link_rules import packaged_list, read_list
from corpus.ngrams import ngrams, stable_hash64, words
from corpus.overlap import jsonl_text, open_text
from corpus.urls import InvalidURL, canonicalize_url, host_in, host_of

WIKIPEDIA = "wikipedia"  # ledger reason: URL or final URL on a Wikipedia/Wikimedia host
WIKIPEDIA_COPY = "wikipedia_copy"  # ledger reason: the text overlaps the Wikipedia reference
DEFAULT_MAX_OVERLAP = 0.5
NGRAM = 8

# Hashes gathered (~64 MB) before they are sorted and de-duplicated into a run.
_BUILD_BATCH = 8_000_000
# A plain text reference is read in blocks of this many lines.
_BLOCK_LINES = 1000


@cache
def _packaged_domains() -> frozenset[str]:
    return read_list(packaged_list("wikipedia_domains.txt"))


def _host(url: str | None) -> str | None:
    """Host of a URL, canonical or not; None when there is no URL or it is not a valid http(s) URL."""
    if not url:
        return None
    try:
        return host_of(canonicalize_url(url))
    except InvalidURL:
        return None


def wikipedia_host(url: str, final_url: str | None, domains: frozenset[str] | None = None) -> str | None:
    """The host of `url` or else of `final_url` that is a Wikipedia/Wikimedia host (equal to an entry of
    `domains`, default the packaged list, or a subdomain of one), else None."""
    domains = _packaged_domains() if domains is None else domains
    for candidate in (url, final_url):
        host = _host(candidate)
        if host is not None and host_in(host, domains):
            return host
    return None


def ngram_hashes(text: str, n: int = NGRAM) -> np.ndarray:
    """Stable 64-bit hashes of the text's normalized n-grams, in text order, with repeats (uint64)."""
    return np.fromiter((stable_hash64(gram) for gram in ngrams(words(text), n)), dtype=np.uint64)


def _merge(parts: list[np.ndarray]) -> np.ndarray:
    """The sorted distinct hashes of some arrays."""
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)


def _push(runs: list[np.ndarray], run: np.ndarray) -> None:
    """Add a sorted distinct run, first merging into it the last runs up to twice its size, so that sizes more
    than halve along the list: a hash is merged O(log n) times and the runs hold less than 2x the result."""
    while runs and len(runs[-1]) <= 2 * len(run):
        run = _merge([runs.pop(), run])
    runs.append(run)


class WikipediaReference:
    """The distinct 8-grams of a reference text (Wikipedia articles) as a sorted numpy array of stable 64-bit
    hashes: 8 bytes per distinct 8-gram (English Wikipedia's ~4 billion words would take ~32 GB; a sample of
    articles is what a single worker can hold). Picklable, so it can be a Beam side input. A hash collision
    (probability ~ size / 2^64 per 8-gram) can only raise an overlap, by a negligible amount."""

    def __init__(self, hashes: np.ndarray, n: int = NGRAM) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.hashes = hashes  # sorted, distinct, uint64
        self.n = n

    @classmethod
    def from_texts(cls, texts: Iterable[str], n: int = NGRAM) -> WikipediaReference:
        """The reference of some texts, each its own article: no n-gram spans two texts. Streams the texts;
        a build needs up to ~3x the memory of the result."""
        runs: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        size = 0
        for text in texts:
            pending.append(ngram_hashes(text, n))
            size += len(pending[-1])
            if size >= _BUILD_BATCH:
                _push(runs, _merge(pending))
                pending, size = [], 0
        _push(runs, _merge(pending))
        return cls(_merge(runs), n)

    @classmethod
    def from_file(cls, path: str, n: int = NGRAM) -> WikipediaReference:
        """The reference of a file, gzip-compressed when its name ends in .gz. A `.jsonl` file holds one
        article per line in its "text" field (the output of Wikipedia dump extractors such as WikiExtractor
        --json); any other file is plain UTF-8 text, taken as one text (articles one after the other, in any
        layout) and read in blocks of lines, so that its size does not matter."""
        jsonl = path.removesuffix(".gz").endswith(".jsonl")
        return cls.from_texts(_jsonl_texts(path) if jsonl else _text_windows(path, n), n)

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask: which of the hashes are in the reference (binary search in the sorted array)."""
        if len(self.hashes) == 0:
            return np.zeros(len(hashes), dtype=bool)
        index = np.searchsorted(self.hashes, hashes).clip(max=len(self.hashes) - 1)
        return self.hashes[index] == hashes

    def overlap(self, text: str) -> float:
        """Fraction of the text's 8-grams, counted with multiplicity (a repeated 8-gram counts each time),
        that occur in the reference; 0.0 when the text has fewer than 8 words."""
        hashes = ngram_hashes(text, self.n)
        return float(self.contains(hashes).mean()) if len(hashes) else 0.0


def _jsonl_texts(path: str) -> Iterator[str]:
    with open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield jsonl_text(path, number, line)


def _text_windows(path: str, n: int) -> Iterator[str]:
    """A plain text file as blocks of lines, each block led by the last n-1 words of the one before, so that
    their n-grams are exactly the n-grams of the whole file."""
    tail: list[str] = []
    block: list[str] = []
    with open_text(path) as handle:
        for line in handle:
            block.append(line)
            if len(block) >= _BLOCK_LINES:
                text_words = tail + words("".join(block))
                yield " ".join(text_words)
                tail, block = text_words[max(len(text_words) - (n - 1), 0) :], []
    yield " ".join(tail + words("".join(block)))


def wikipedia_copy(
    text: str, reference: WikipediaReference | None, max_overlap: float
) -> tuple[str, str] | None:
    """(WIKIPEDIA_COPY, detail) when the text's 8-gram overlap with the reference exceeds `max_overlap`; None
    when it does not or there is no reference."""
    if reference is None:
        return None
    overlap = reference.overlap(text)
    if overlap > max_overlap:
        return WIKIPEDIA_COPY, f"{reference.n}-gram overlap with Wikipedia {overlap:.3f} > {max_overlap}"
    return None
