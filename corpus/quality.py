"""Document quality rules for the filter stage: a few cheap heuristics that drop pages which are not prose.

WebText itself only removed duplicates and Wikipedia; these rules come from later web corpora and are kept
few and conservative, so that they drop machine-made pages (tag clouds, link lists, repeated navigation)
rather than real articles. Each rule is a field of ``QualityConfig`` with its source:

| reason | drops a document when | default | source |
|---|---|---|---|
| ``too_few_words`` | fewer than ``min_words`` words | 100 | OpenWebText (< 128 GPT-2 tokens ~ 100 words) |
| ``symbol_ratio`` | ``#`` or ``...``/``…`` per word > ``max_symbol_word_ratio`` | 0.1 | Gopher |
| ``repeated_lines`` | duplicate lines / lines > ``max_repeated_line_ratio`` | 0.30 | Gopher |
| ``ellipsis_lines`` | lines ending in ``...``/``…`` / lines > ``max_ellipsis_line_ratio`` | 0.30 | Gopher |

Gopher is Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training Gopher",
appendix A.1.1 (MassiveWeb quality filters) and Table A1 (repetition filters). Words are whitespace-separated
tokens, as in Gopher and in the extract stage's ``--min-words`` (so Chinese or Japanese text counts as few
words). Lines are the stripped lines that hold a letter or digit: extraction leaves list bullets ("-"), table
bars ("|") and zero-width spaces on lines of their own, and those are layout, not repeated content. A limit
is inclusive: a document exactly at it passes.

Measured with the defaults: of the real documents of 100 words or more, the 8 whole WebText train documents,
the 101 human-annotated article bodies of the scrapinghub benchmark and 4 Wikipedia pages all pass; of the
pipeline's own extractions of 197 real pages (scrapinghub and trafilatura's English evaluation), 185 pass, 11
are too short and 1 has repeated lines (a recipe whose ingredient list is extracted twice). trafilatura
2.0's default mode fails 2 pages on repeated lines (an article three times over with its navigation, a
stats table). With no minimum, the ratio rules drop 107 (1.1%) of 9,447 WebText test/valid documents cut to
63 tokens, mostly two- and three-line snippets with one line ending in "...".

Not used, because they drop real articles: Gopher's "80% of words contain a letter" (sports results and
calendars: 2 of the 109 article bodies above, 185 (2.0%) of the 9,447 WebText snippets), its mean word
length of 3-10 characters (Chinese and Japanese text, 40 WebText snippets), its stop-word rule (every
non-English page; WebText was not filtered by language), and C4's "{" rule (every page that shows code).
"""

from __future__ import annotations

from dataclasses import dataclass

TOO_FEW_WORDS = "too_few_words"
SYMBOL_RATIO = "symbol_ratio"
REPEATED_LINES = "repeated_lines"
ELLIPSIS_LINES = "ellipsis_lines"
# Every reason quality_drop can give, in the order the rules are checked.
QUALITY_REASONS = (TOO_FEW_WORDS, SYMBOL_RATIO, REPEATED_LINES, ELLIPSIS_LINES)

_ELLIPSES = ("...", "\u2026")


@dataclass(frozen=True)
class QualityConfig:
    # OpenWebText dropped documents under 128 GPT-2 tokens, about 100 English words; the same figure as the
    # extract stage's --min-words, so this rule also holds for documents that came from elsewhere.
    # (Gopher's minimum is 50 words.)
    min_words: int = 100
    # Gopher: "a symbol-to-word ratio greater than 0.1 for either the hash symbol or the ellipsis".
    max_symbol_word_ratio: float = 0.1
    # Gopher, Table A1: fraction of duplicate lines 0.30.
    max_repeated_line_ratio: float = 0.30
    # Gopher: "more than 30% of lines ending with an ellipsis".
    max_ellipsis_line_ratio: float = 0.30

    def __post_init__(self) -> None:
        if self.min_words < 0:
            raise ValueError(f"min_words must be >= 0, got {self.min_words}")
        for name in ("max_symbol_word_ratio", "max_repeated_line_ratio", "max_ellipsis_line_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def text_lines(text: str) -> list[str]:
    """The stripped lines of a text that hold a letter or digit."""
    return [line for line in (raw.strip() for raw in text.splitlines()) if any(ch.isalnum() for ch in line)]


def duplicate_lines(lines: list[str]) -> int:
    """How many lines repeat an earlier line (the first occurrence is not a duplicate)."""
    return len(lines) - len(set(lines))


def symbol_counts(text: str) -> dict[str, int]:
    """Occurrences of Gopher's two symbols: the hash and the ellipsis (three dots or U+2026)."""
    return {"#": text.count("#"), "...": sum(text.count(ellipsis) for ellipsis in _ELLIPSES)}


def _ratio(count: int, total: int) -> str:
    return f"{count}/{total} = {count / total:.3f}"


def quality_drop(text: str, config: QualityConfig) -> tuple[str, str] | None:
    """None when the text passes every rule, else (reason, detail) for the first rule it fails, in the order
    of QUALITY_REASONS."""
    tokens = text.split()
    if len(tokens) < config.min_words:
        return TOO_FEW_WORDS, f"{len(tokens)} words < {config.min_words}"
    for symbol, count in symbol_counts(text).items():
        if tokens and count / len(tokens) > config.max_symbol_word_ratio:
            detail = f"{symbol!r} per word {_ratio(count, len(tokens))} > {config.max_symbol_word_ratio}"
            return SYMBOL_RATIO, detail
    lines = text_lines(text)
    if not lines:  # no line holds a word (or min_words = 0 let an empty text through): no ratio to take
        return None
    repeated = duplicate_lines(lines)
    if repeated / len(lines) > config.max_repeated_line_ratio:
        detail = f"duplicate lines {_ratio(repeated, len(lines))} > {config.max_repeated_line_ratio}"
        return REPEATED_LINES, detail
    ellipsis = sum(line.endswith(_ELLIPSES) for line in lines)
    if ellipsis / len(lines) > config.max_ellipsis_line_ratio:
        detail = (
            f"lines ending in an ellipsis {_ratio(ellipsis, len(lines))} > {config.max_ellipsis_line_ratio}"
        )
        return ELLIPSIS_LINES, detail
    return None
