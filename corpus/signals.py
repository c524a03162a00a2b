"""Per-document quality signals: the numbers that Gopher's, C4's and FineWeb's rules threshold, computed once
per document so that rules (corpus/rules.py) are thresholds over stored columns, as in RedPajama-V2.

Sources: Gopher is Rae et al. 2021, appendix A.1.1 (MassiveWeb quality filters) and Table A1 (repetition
filters); C4 is Raffel et al. 2020, section 2.2; FineWeb is Penedo et al. 2024, its "custom filters" (fraction
of lines ending in punctuation, of characters in duplicated lines, of short lines); datatrove is the
reference implementation of all three used for FineWeb.

How a text is split (one definition for every signal, so that the numbers agree with each other):

- **words**: ``text.split()``, whitespace-separated tokens, as in Gopher and in corpus/quality.py (so the
  ``webtext`` preset's decisions are exactly ``quality_drop``'s). Punctuation stays on its word ("end." is
  one word of 4 characters). datatrove splits with a language word tokenizer (NLTK for English), which makes
  punctuation words of its own; its counts and mean word lengths differ from ours on the same text. Chinese
  or Japanese text without spaces is a few long "words".
- **lines**: ``corpus.quality.text_lines``: the stripped lines (``str.splitlines``) that hold a letter or
  digit. Extraction leaves lone bullets ("-"), table bars and zero-width spaces on lines of their own; those
  are layout, not lines of content. datatrove splits on "\\n" and keeps every non-blank line unstripped.
- **paragraphs**: runs of consecutive non-blank lines, separated by blank (whitespace-only) lines; a
  paragraph is its stripped lines joined by "\\n" and counts when it holds a letter or digit. datatrove
  splits on two or more "\\n". The extract stage writes one paragraph per line with no blank line between,
  so for its documents a paragraph is usually the whole text and the paragraph signals are 0.
- **characters**: Python characters (code points). The character fractions of lines and paragraphs divide
  by the characters of all lines (paragraphs), so layout whitespace does not dilute them; datatrove divides
  by ``len(text)``. The n-gram fractions count the characters of the words an n-gram covers, spaces left
  out, over the characters of all words, and a word covered twice counts once, so a fraction is at most 1.

A ratio whose denominator is 0 (no words, no lines) is 0.0, so that a ``>`` rule passes it: the count rules
(``word_count < 50``) are the ones that drop empty documents.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

import pyarrow as pa

from corpus.quality import duplicate_lines, symbol_counts, text_lines

ELLIPSES = ("...", "\u2026")
# Gopher: "lines starting with a bullet point". The marks extraction and web pages use for list items.
BULLETS = ("-", "*", "\u2022", "\u2023", "\u2043", "\u25e6", "\u25aa", "\u25ab", "\u25cf", "\u25cb", "\u25a0")
BULLETS += ("\u25a1", "\u25ba", "\u25b8", "\u2013", "\u2014", "\u27a2", "\u2713", "\u00b7")
# Gopher, A.1.1: "at least two of the following English words: the, be, to, of, and, that, have, with".
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
# C4: "a terminal punctuation mark (i.e. a period, exclamation mark, question mark, or end quotation mark)";
# plus the CJK full stops, so that a Chinese or Japanese line is not taken for a menu.
TERMINAL_PUNCTUATION = (".", "!", "?", '"', "\u201d", "'", "\u2019", "\u3002", "\uff01", "\uff1f")
# A sentence end for C4's "fewer than 3 sentences": terminal punctuation, then closing quotes or brackets,
# then whitespace or the end of the line. C4 (TFDS c4_utils) counts sentences with NLTK's punkt tokenizer,
# which also knows that "Dr." ends no sentence; this count is a little higher on such text.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*(?=\s|$)")
_STRIP_PUNCTUATION = "\"'()[]{}<>.,;:!?\u201c\u201d\u2018\u2019"
FINEWEB_SHORT_LINE = 30  # FineWeb: "lines shorter than 30 characters"
TOP_NGRAMS = (2, 3, 4)  # Gopher, Table A1: "top n-gram character fraction"
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)  # Gopher, Table A1: "duplicate n-gram character fraction"

# Every signal, in column order, with its Arrow type. Ratios are float64 so that a stored ratio compares with
# a threshold exactly as the ratio computed on the fly does (the webtext preset's equality with quality_drop).
SIGNAL_TYPES: dict[str, pa.DataType] = {
    "word_count": pa.int64(),
    "char_count": pa.int64(),
    "line_count": pa.int64(),
    "gopher_mean_word_length": pa.float64(),
    "gopher_hash_word_ratio": pa.float64(),
    "gopher_ellipsis_word_ratio": pa.float64(),
    "gopher_bullet_line_frac": pa.float64(),
    "gopher_ellipsis_line_frac": pa.float64(),
    "gopher_alpha_word_frac": pa.float64(),
    "gopher_stop_word_count": pa.int64(),
    "unique_word_frac": pa.float64(),
    "gopher_dup_line_frac": pa.float64(),
    "gopher_dup_line_char_frac": pa.float64(),
    "gopher_dup_para_frac": pa.float64(),
    "gopher_dup_para_char_frac": pa.float64(),
    **{f"gopher_top_{n}gram_char_frac": pa.float64() for n in TOP_NGRAMS},
    **{f"gopher_dup_{n}gram_char_frac": pa.float64() for n in DUP_NGRAMS},
    "c4_javascript_line_count": pa.int64(),
    "c4_lorem_ipsum": pa.int64(),
    "c4_curly_brace": pa.int64(),
    "c4_terminal_punct_line_frac": pa.float64(),
    "c4_sentence_count": pa.int64(),
    "fineweb_short_line_frac": pa.float64(),
    "fineweb_newline_word_ratio": pa.float64(),
}
SIGNALS: tuple[str, ...] = tuple(SIGNAL_TYPES)


def signals_schema() -> pa.Schema:
    """The signals as Arrow columns, in SIGNALS order (non-null: every document has every signal)."""
    return pa.schema([pa.field(name, kind, nullable=False) for name, kind in SIGNAL_TYPES.items()])


def _ratio(count: float, total: float) -> float:
    return count / total if total else 0.0


def paragraphs(text: str) -> list[str]:
    """Runs of non-blank lines separated by blank lines, each its stripped lines joined by "\\n", that hold a
    letter or digit."""
    found: list[str] = []
    run: list[str] = []
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if line:
            run.append(line)
        elif run:
            paragraph = "\n".join(run)
            if any(ch.isalnum() for ch in paragraph):
                found.append(paragraph)
            run = []
    return found


def duplicate_chars(items: list[str]) -> int:
    """Characters of the items that repeat an earlier item (the first occurrence is not a duplicate), as
    duplicate_lines counts them."""
    seen: set[str] = set()
    total = 0
    for item in items:
        if item in seen:
            total += len(item)
        else:
            seen.add(item)
    return total


def _ngrams(ids: list[int], n: int) -> list[tuple[int, ...]]:
    return list(zip(*(ids[i:] for i in range(n)), strict=False))


def _covered_chars(starts: list[int], n: int, prefix: list[int]) -> int:
    """Characters of the words in the n-word spans that begin at ``starts`` (ascending), a word that several
    spans cover counted once; ``prefix[k]`` is the characters of the first k words."""
    total = 0
    begin = end = 0  # the current run of overlapping spans: words [begin, end)
    for start in starts:
        if start > end:
            total += prefix[end] - prefix[begin]
            begin = start
        end = start + n
    return total + prefix[end] - prefix[begin]


def ngram_signals(words: list[str]) -> dict[str, float]:
    """Gopher's n-gram repetition fractions (Table A1) over the words as they are (no case folding).

    - ``gopher_top_{n}gram_char_frac`` (n = 2, 3, 4): characters of the words covered by the occurrences of
      the most frequent n-gram, over the characters of all words; 0 when no n-gram occurs twice (a document
      of distinct n-grams has no "top" repetition). Ties go to the n-gram that occurs first. datatrove takes
      count x length of the top n-gram (spaces included, overlaps counted twice) over ``len(text)``.
    - ``gopher_dup_{n}gram_char_frac`` (n = 5..10): characters of the words covered by any occurrence of an
      n-gram that occurs more than once (the first occurrence included, overlaps counted once), over the
      characters of all words, as RedPajama-V2 counts them. datatrove counts only the repeats after the
      first and skips n words after each.
    """
    prefix = [0, *itertools.accumulate(len(word) for word in words)]
    total = prefix[-1]
    vocabulary: dict[str, int] = {}
    ids = [vocabulary.setdefault(word, len(vocabulary)) for word in words]
    found: dict[str, float] = {}
    for n in TOP_NGRAMS:
        grams = _ngrams(ids, n)
        counts = Counter(grams)
        top, top_count = counts.most_common(1)[0] if counts else ((), 0)
        starts = [i for i, gram in enumerate(grams) if gram == top] if top_count > 1 else []
        chars = _covered_chars(starts, n, prefix)
        found[f"gopher_top_{n}gram_char_frac"] = _ratio(chars, total)
    repeated = True
    for n in DUP_NGRAMS:
        chars = 0
        if repeated:  # an n-gram that repeats holds a repeating (n-1)-gram: none at n-1, none at n
            grams = _ngrams(ids, n)
            counts = Counter(grams)
            repeated = len(counts) < len(grams)
            if repeated:
                chars = _covered_chars([i for i, gram in enumerate(grams) if counts[gram] > 1], n, prefix)
        found[f"gopher_dup_{n}gram_char_frac"] = _ratio(chars, total)
    return found


def signals(text: str) -> dict[str, float | int]:
    """Every signal of SIGNALS for one document (words, lines and paragraphs as the module docstring splits
    them):

    - ``word_count``, ``char_count`` (``len(text)``), ``line_count``: sizes. Gopher keeps 50..100,000 words;
      the webtext preset (OpenWebText) needs 100.
    - ``gopher_mean_word_length``: mean characters per word (Gopher keeps 3..10).
    - ``gopher_hash_word_ratio``, ``gopher_ellipsis_word_ratio``: occurrences of "#", and of "..." or "…",
      per word (Gopher: "symbol-to-word ratio greater than 0.1 for either the hash symbol or the ellipsis"),
      counted as corpus.quality.symbol_counts counts them.
    - ``gopher_bullet_line_frac``: lines that start with a bullet mark (BULLETS) (Gopher: more than 90%).
    - ``gopher_ellipsis_line_frac``: lines that end in "..." or "…" (Gopher: more than 30%).
    - ``gopher_alpha_word_frac``: words that hold an alphabetic character (Gopher: at least 80%).
    - ``gopher_stop_word_count``: occurrences of Gopher's eight stop words, a word lower-cased with quotes
      and punctuation stripped from both ends (Gopher: at least two; counting occurrences, as datatrove does).
    - ``unique_word_frac``: distinct lower-cased words over words (RedPajama-V2's
      ``rps_doc_frac_unique_words``; no paper threshold).
    - ``gopher_dup_line_frac``, ``gopher_dup_para_frac``: lines (paragraphs) that repeat an earlier one, over
      lines (paragraphs); ``gopher_dup_line_char_frac``, ``gopher_dup_para_char_frac``: their characters over
      the characters of all lines (paragraphs) (Gopher, Table A1). FineWeb's "fraction of characters in
      duplicated lines" is ``gopher_dup_line_char_frac``.
    - the n-gram fractions of ngram_signals.
    - ``c4_javascript_line_count``: lines that hold "javascript" in any case (C4 removes those lines).
    - ``c4_lorem_ipsum``: 1 when "lorem ipsum" appears in any case, else 0 (C4 drops the page).
    - ``c4_curly_brace``: 1 when "{" appears, else 0 (C4 drops the page).
    - ``c4_terminal_punct_line_frac``: lines ending in TERMINAL_PUNCTUATION (C4 keeps only those lines;
      FineWeb drops a document when at most 12% of its lines do).
    - ``c4_sentence_count``: sentence ends (_SENTENCE_END) in the lines that C4's line rules keep: ending in
      terminal punctuation, at least 5 words, no "javascript" (C4 drops a page of fewer than 3 sentences).
    - ``fineweb_short_line_frac``: lines shorter than 30 characters (FineWeb: at least 67% drops).
    - ``fineweb_newline_word_ratio``: "\\n" characters per word (datatrove's FineWeb ``list_ratio``, more than
      0.3 drops; not in the paper).
    """
    words = text.split()
    lines = text_lines(text)
    paras = paragraphs(text)
    lowered = text.lower()
    symbols = symbol_counts(text)
    line_chars = sum(map(len, lines))
    para_chars = sum(map(len, paras))
    javascript = [("javascript" in line.lower()) for line in lines]
    terminal = [line.endswith(TERMINAL_PUNCTUATION) for line in lines]
    c4_kept = [
        line
        for line, js, end in zip(lines, javascript, terminal, strict=True)
        if end and not js and len(line.split()) >= 5
    ]
    bare = [word.strip(_STRIP_PUNCTUATION).lower() for word in words]
    found: dict[str, float | int] = {
        "word_count": len(words),
        "char_count": len(text),
        "line_count": len(lines),
        "gopher_mean_word_length": _ratio(sum(map(len, words)), len(words)),
        "gopher_hash_word_ratio": _ratio(symbols["#"], len(words)),
        "gopher_ellipsis_word_ratio": _ratio(symbols["..."], len(words)),
        "gopher_bullet_line_frac": _ratio(sum(line.startswith(BULLETS) for line in lines), len(lines)),
        "gopher_ellipsis_line_frac": _ratio(sum(line.endswith(ELLIPSES) for line in lines), len(lines)),
        "gopher_alpha_word_frac": _ratio(sum(any(map(str.isalpha, word)) for word in words), len(words)),
        "gopher_stop_word_count": sum(word in GOPHER_STOP_WORDS for word in bare),
        "unique_word_frac": _ratio(len({word.lower() for word in words}), len(words)),
        "gopher_dup_line_frac": _ratio(duplicate_lines(lines), len(lines)),
        "gopher_dup_line_char_frac": _ratio(duplicate_chars(lines), line_chars),
        "gopher_dup_para_frac": _ratio(duplicate_lines(paras), len(paras)),
        "gopher_dup_para_char_frac": _ratio(duplicate_chars(paras), para_chars),
        **ngram_signals(words),
        "c4_javascript_line_count": sum(javascript),
        "c4_lorem_ipsum": int("lorem ipsum" in lowered),
        "c4_curly_brace": int("{" in text),
        "c4_terminal_punct_line_frac": _ratio(sum(terminal), len(lines)),
        "c4_sentence_count": sum(len(_SENTENCE_END.findall(line)) for line in c4_kept),
        "fineweb_short_line_frac": _ratio(sum(len(line) < FINEWEB_SHORT_LINE for line in lines), len(lines)),
        "fineweb_newline_word_ratio": _ratio(text.count("\n"), len(words)),
    }
    return found
