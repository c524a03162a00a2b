"""De-tokenizers for the whitespace-tokenized evaluation sets (GPT-2 paper, section 3.1).

WikiText, PTB, the Children's Book Test and the One Billion Word benchmark are distributed split into words
("It was n't", "co @-@ stars", "`` Oh , no , ''"), text a model trained on web pages rarely sees. GPT-2
reported its Table 3 "using invertible de-tokenizers which remove as many of these tokenization /
pre-processing artifacts as possible" and did not publish them; these are ours. They only move whitespace
and undo each set's escapes (WikiText's @-@ @,@ @.@ number separators, PTB's \\/, CBT's `` '' quotes):
no word is added, dropped or changed, so a perplexity per word is still normalized by the original word count.
"""

from __future__ import annotations

import re

Rule = tuple[re.Pattern[str], str]


def _rules(*pairs: tuple[str, str]) -> list[Rule]:
    return [(re.compile(pattern, re.MULTILINE), replacement) for pattern, replacement in pairs]


# Clitics split off their word: "was n't", "Teddy 's", "don 't", "you 're", "players ' union".
_CONTRACTIONS = _rules(
    (r" (n't|'s|'t|'re|'ve|'m|'ll|'d)(?=\s|$)", r"\1"),
    (r"(?<=s) '(?= )", "'"),
)
# No space before closing punctuation, none after an opening bracket.
_PUNCTUATION = _rules(
    (r" +([,.;:!?%)\]}])", r"\1"),
    (r"([(\[{]) +", r"\1"),
)
# Straight double quotes: pair them on a line, `" Craig "` -> `"Craig"`.
_QUOTES = _rules(
    (r'" ([^"\n]*?) "', r'"\1"'),
)
# Tokenized lines start and end with a space: " no it was n't black monday \n".
_LINE_EDGES = _rules(
    (r"^ +| +$", ""),
)

_WIKITEXT = _rules(
    (r" @([-,.])@ ", r"\1"),  # "2 @,@ 000" -> "2,000", "co @-@ star" -> "co-star"
    (r"(?<==) (?==)", ""),  # headings: "= = Career = =" -> "== Career =="
)
_PTB = _rules(
    (r"\\/", "/"),
)
_CBT = _rules(
    (r"`` ?", '"'),  # opening quote
    (r" ?''", '"'),  # closing quote
)

DETOKENIZERS: dict[str, list[Rule]] = {
    "wikitext": _WIKITEXT + _CONTRACTIONS + _PUNCTUATION + _QUOTES + _LINE_EDGES,
    "ptb": _PTB + _CONTRACTIONS + _LINE_EDGES,  # PTB (Mikolov's LM version) has no punctuation left
    "cbt": _CBT + _CONTRACTIONS + _PUNCTUATION + _LINE_EDGES,
    "1bw": _CONTRACTIONS + _PUNCTUATION + _QUOTES + _LINE_EDGES,
}


def detokenize(text: str, style: str) -> str:
    """`text` with the tokenization artifacts of `style` (a key of DETOKENIZERS) removed."""
    if style not in DETOKENIZERS:
        raise ValueError(f"unknown detokenizer {style!r}; known: {', '.join(DETOKENIZERS)}")
    for pattern, replacement in DETOKENIZERS[style]:
        text = pattern.sub(replacement, text)
    return text
