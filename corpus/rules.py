"""Quality rules as thresholds over the signals of corpus/signals.py: named presets and rules files.

A rule drops a document when ``signal op threshold`` holds (``word_count < 50`` drops documents under 50
words). A rule set runs its rules in order and the first that holds names the drop: ``preset:rule``, e.g.
``gopher:dup_line_frac``. Presets, each with its paper's thresholds:

- ``webtext``: exactly corpus.quality.quality_drop with a QualityConfig (the default one unless given), the
  rule names being quality_drop's reasons (``webtext:too_few_words``, ...).
- ``gopher``: Rae et al. 2021, appendix A.1.1 and Table A1 (quality, then repetition filters).
- ``c4``: Raffel et al. 2020, section 2.2, the page-level rules: "lorem ipsum", a curly bracket, fewer than 3
  sentences in the lines C4 keeps. C4's line rules (drop lines without terminal punctuation, of fewer than
  5 words, or holding "javascript") rewrite a page rather than drop it; this filter does not rewrite text,
  so they count only through ``c4_sentence_count``. The bad-words list is not applied.
- ``fineweb``: Penedo et al. 2024's three custom filters, plus datatrove's ``list_ratio``. FineWeb ran them
  after Gopher's and C4's rules: ``gopher,c4,fineweb`` is its whole heuristic stage (FineWeb left out C4's
  terminal-punctuation line rule, which this c4 preset applies only through the sentence count).
- ``none``: no rule.

Rules files are TOML (Python's tomllib reads them, no dependency; a person writes them, with comments;
order is kept, and the rule name is the key)::

    name = "mine"                      # the reason prefix; default: the file name without .toml
    [rules]
    too_short = "word_count < 200"
    dup_lines = "gopher_dup_line_frac > 0.2"
"""

from __future__ import annotations

import math
import operator
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corpus.errors import InputError
from corpus.quality import ELLIPSIS_LINES, REPEATED_LINES, SYMBOL_RATIO, TOO_FEW_WORDS, QualityConfig
from corpus.signals import DUP_NGRAMS, SIGNAL_TYPES, TOP_NGRAMS

DEFAULT_QUALITY = QualityConfig()
OPERATORS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Rule:
    """Drop a document when ``signals[signal] op threshold``."""

    name: str
    signal: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.signal not in SIGNAL_TYPES:
            raise ValueError(f"unknown signal {self.signal!r} (known: {', '.join(SIGNAL_TYPES)})")
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r} (known: {' '.join(OPERATORS)})")

    def holds(self, signals: Mapping[str, float | int]) -> bool:
        return OPERATORS[self.op](signals[self.signal], self.threshold)

    def detail(self, signals: Mapping[str, float | int]) -> str:
        value = signals[self.signal]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f"{self.signal} {shown} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class RuleSet:
    """Named rules, checked in order; the name is the prefix of every reason."""

    name: str
    rules: tuple[Rule, ...] = field(default_factory=tuple)


def parse_rule(name: str, text: str) -> Rule:
    """``"signal op threshold"`` (spaces around op) -> Rule; ValueError saying what is wrong."""
    parts = text.split()
    if len(parts) != 3:
        raise ValueError(f"expected 'signal op threshold', got {text!r}")
    signal, op, number = parts
    try:
        threshold = float(number)
    except ValueError:
        raise ValueError(f"threshold {number!r} is not a number") from None
    if not math.isfinite(threshold):  # a NaN threshold would make the rule silently never hold
        raise ValueError(f"threshold {number!r} is not a finite number")
    return Rule(name, signal, op, threshold)


def webtext_rules(config: QualityConfig = DEFAULT_QUALITY) -> RuleSet:
    """quality_drop's rules, in its order and with its reasons, over the signals."""
    return RuleSet(
        "webtext",
        (
            Rule(TOO_FEW_WORDS, "word_count", "<", config.min_words),
            Rule(SYMBOL_RATIO, "gopher_hash_word_ratio", ">", config.max_symbol_word_ratio),
            Rule(SYMBOL_RATIO, "gopher_ellipsis_word_ratio", ">", config.max_symbol_word_ratio),
            Rule(REPEATED_LINES, "gopher_dup_line_frac", ">", config.max_repeated_line_ratio),
            Rule(ELLIPSIS_LINES, "gopher_ellipsis_line_frac", ">", config.max_ellipsis_line_ratio),
        ),
    )


# Gopher, appendix A.1.1 (quality filters), then Table A1 (repetition filters).
GOPHER = RuleSet(
    "gopher",
    (
        Rule("word_count", "word_count", "<", 50),
        Rule("word_count", "word_count", ">", 100_000),
        Rule("mean_word_length", "gopher_mean_word_length", "<", 3),
        Rule("mean_word_length", "gopher_mean_word_length", ">", 10),
        Rule("symbol_ratio", "gopher_hash_word_ratio", ">", 0.1),
        Rule("symbol_ratio", "gopher_ellipsis_word_ratio", ">", 0.1),
        Rule("bullet_lines", "gopher_bullet_line_frac", ">", 0.9),
        Rule("ellipsis_lines", "gopher_ellipsis_line_frac", ">", 0.3),
        Rule("alpha_words", "gopher_alpha_word_frac", "<", 0.8),
        Rule("stop_words", "gopher_stop_word_count", "<", 2),
        Rule("dup_line_frac", "gopher_dup_line_frac", ">", 0.30),
        Rule("dup_para_frac", "gopher_dup_para_frac", ">", 0.30),
        Rule("dup_line_char_frac", "gopher_dup_line_char_frac", ">", 0.20),
        Rule("dup_para_char_frac", "gopher_dup_para_char_frac", ">", 0.20),
        *(
            Rule(f"top_{n}gram_char_frac", f"gopher_top_{n}gram_char_frac", ">", limit)
            for n, limit in zip(TOP_NGRAMS, (0.20, 0.18, 0.16), strict=True)
        ),
        *(
            Rule(f"dup_{n}gram_char_frac", f"gopher_dup_{n}gram_char_frac", ">", limit)
            for n, limit in zip(DUP_NGRAMS, (0.15, 0.14, 0.13, 0.12, 0.11, 0.10), strict=True)
        ),
    ),
)

# C4, section 2.2: the rules that drop a whole page.
C4 = RuleSet(
    "c4",
    (
        Rule("lorem_ipsum", "c4_lorem_ipsum", ">", 0),
        Rule("curly_brace", "c4_curly_brace", ">", 0),
        Rule("too_few_sentences", "c4_sentence_count", "<", 3),
    ),
)

# FineWeb's custom filters as the paper states them ("<= 0.12", ">= 0.1", ">= 0.67"); datatrove's
# char_duplicates_ratio default is 0.01, not the paper's 0.1, and list_ratio is datatrove's alone.
FINEWEB = RuleSet(
    "fineweb",
    (
        Rule("line_punct_ratio", "c4_terminal_punct_line_frac", "<=", 0.12),
        Rule("short_line_ratio", "fineweb_short_line_frac", ">=", 0.67),
        Rule("char_dup_ratio", "gopher_dup_line_char_frac", ">=", 0.1),
        Rule("list_ratio", "fineweb_newline_word_ratio", ">", 0.3),
    ),
)

NONE = RuleSet("none")

PRESETS: dict[str, RuleSet] = {
    "webtext": webtext_rules(),
    "gopher": GOPHER,
    "c4": C4,
    "fineweb": FINEWEB,
    "none": NONE,
}


def load_rules(path: str | Path) -> RuleSet:
    """A TOML rules file (module docstring) -> RuleSet; InputError naming the file and the problem."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(f"{path}: cannot read rules: {err}") from None
    unknown = set(table) - {"name", "rules"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; expected 'name' and [rules]")
    name = table.get("name", path.stem)
    rules = table.get("rules", {})
    if not isinstance(name, str) or not name or not isinstance(rules, dict):
        raise InputError(f"{path}: 'name' must be a non-empty string and [rules] a table")
    parsed = []
    for rule_name, text in rules.items():
        if not isinstance(text, str):
            raise InputError(f"{path}: rule {rule_name!r}: expected a string 'signal op threshold'")
        try:
            parsed.append(parse_rule(rule_name, text))
        except ValueError as err:
            raise InputError(f"{path}: rule {rule_name!r}: {err}") from None
    return RuleSet(name, tuple(parsed))


def resolve(spec: str, config: QualityConfig = DEFAULT_QUALITY) -> list[RuleSet]:
    """A ``--rules`` value: comma-separated preset names and rules-file paths (``gopher,c4,my.toml``) ->
    the rule sets, in that order. ``webtext`` takes its thresholds from ``config``."""
    found = []
    for item in (part.strip() for part in spec.split(",")):
        if item == "webtext":
            found.append(webtext_rules(config))
        elif item in PRESETS:
            found.append(PRESETS[item])
        elif item.endswith(".toml"):
            found.append(load_rules(item))
        else:
            raise InputError(
                f"--rules: unknown preset {item!r} (presets: {', '.join(PRESETS)}; or a .toml file)"
            )
    return found


def _as_sets(rules: RuleSet | Sequence[RuleSet]) -> Sequence[RuleSet]:
    return (rules,) if isinstance(rules, RuleSet) else rules


def drop_reason(
    signals: Mapping[str, float | int], rules: RuleSet | Sequence[RuleSet]
) -> tuple[str, str] | None:
    """None when no rule holds, else (``preset:rule``, detail) for the first that does, rule sets in order."""
    for rule_set in _as_sets(rules):
        for rule in rule_set.rules:
            if rule.holds(signals):
                return f"{rule_set.name}:{rule.name}", rule.detail(signals)
    return None


@dataclass
class WouldDrop:
    """What one rule set would do to a set of documents: ``by_rule`` counts each document under the first rule
    that drops it (so the counts add up to ``dropped``), ``alone`` under every rule that holds."""

    documents: int = 0
    dropped: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    alone: dict[str, int] = field(default_factory=dict)


def would_drop(
    signals_rows: Iterable[Mapping[str, float | int]], presets: Mapping[str, RuleSet] | Sequence[RuleSet]
) -> dict[str, WouldDrop]:
    """For the datasheet: per rule set (by name), how many documents it would drop, and by which rule."""
    sets = list(presets.values()) if isinstance(presets, Mapping) else list(presets)
    counts = {}
    for rule_set in sets:
        names = dict.fromkeys(rule.name for rule in rule_set.rules)
        counts[rule_set.name] = WouldDrop(by_rule=dict.fromkeys(names, 0), alone=dict.fromkeys(names, 0))
    for row in signals_rows:
        for rule_set in sets:
            tally = counts[rule_set.name]
            tally.documents += 1
            holding = dict.fromkeys(rule.name for rule in rule_set.rules if rule.holds(row))
            if holding:
                tally.dropped += 1
                tally.by_rule[next(iter(holding))] += 1
            for name in holding:
                tally.alone[name] += 1
    return counts
