"""GPT-2's text normalization for n-grams (section 4): lower-cased alphanumeric words separated by single
spaces. The one implementation every n-gram user shares: near-duplicate shingles, Wikipedia overlap, the
8-gram Bloom filter and decontamination.
"""

from __future__ import annotations

import hashlib
import re

# Runs of letters and digits in any script; "_" and punctuation separate words.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The normalized words of a text: lower-case alphanumeric runs."""
    return _WORD.findall(text.lower())


def normalize(text: str) -> str:
    """Lower-cased alphanumeric words separated by single spaces."""
    return " ".join(words(text))


def ngrams(tokens: list[str], n: int) -> list[str]:
    """The n-grams of a word list as space-joined strings (a text shorter than n gives none)."""
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def stable_hash64(text: str) -> int:
    """A 64-bit hash that is the same in every process and on every machine (never Python's `hash`)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
