"""How much of an evaluation set's text is in a training corpus: GPT-2's 8-gram overlap (section 4, Table 6).

An evaluation file is a list of examples: a `.jsonl` file (gzip when it ends in `.gz`) holds one per line, its
"text" field; in any other file each non-blank line is an example (a PTB sentence, a WikiText paragraph or
heading). An example's n-grams are taken over GPT-2's normalized words (`corpus.ngrams`) and never span two
examples; inside a jsonl text, line breaks are whitespace like any other. Counts are of n-gram occurrences:
an n-gram repeated in an example counts each time.

The training side is an `NgramIndex`: a Bloom filter, whole or in partitions (`BloomIndex`: no false
negatives, false positives at the filter's rate; a key is asked of its partition only) or an exact set of
n-gram strings (`ExactNgrams`, for small corpora and for checking the filter). An example is dirty when the
fraction of its n-grams found exceeds a threshold (default 0: any n-gram found); an example of fewer than n
words has no n-grams and is clean.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from corpus.bloom import BloomFilter, PartitionedBloom, plan_partitions, split_sorted
from corpus.errors import InputError
from corpus.ngrams import NgramHasher, combine_word_hashes, ngrams, stable_hash64, words

BATCH = 2048  # examples hashed together
_BUILD_BATCH = 8_000_000  # hashes gathered before they are de-duplicated into a run


@dataclass(frozen=True)
class Example:
    line: int  # 1-based line of the file
    raw: str  # the line as in the file, without its line break
    text: str


def is_jsonl(path: str) -> bool:
    return path.removesuffix(".gz").endswith((".jsonl", ".ndjson"))


def open_text(path: str):
    """A UTF-8 text file, gunzipped when its name ends in .gz."""
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def read_examples(path: str) -> list[Example]:
    """The examples of an evaluation file; one clear InputError for a file that cannot be read."""
    jsonl = is_jsonl(path)
    examples = []
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, 1):
                raw = line.rstrip("\r\n")
                if not raw.strip():
                    continue
                examples.append(Example(number, raw, jsonl_text(path, number, raw) if jsonl else raw))
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return examples


def jsonl_text(path: str, number: int, line: str) -> str:
    """The "text" of one JSON-lines record; InputError naming file:line otherwise."""
    try:
        record = json.loads(line)
    except ValueError as err:
        raise InputError(f"{path}:{number}: not JSON ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise InputError(f'{path}:{number}: not a JSON object with a "text" string')
    return record["text"]


class NgramIndex(Protocol):
    n: int

    def found(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(found, counts): for every n-gram occurrence of the texts, in order, whether it is in the index;
        and the number of n-grams per text."""
        ...


class BloomIndex:
    """A Bloom filter (or the partitions of one) as an index: n-gram hashes queried in bulk."""

    def __init__(self, bloom: BloomFilter | PartitionedBloom) -> None:
        self.bloom, self.n = bloom, bloom.params.n
        self._hasher = NgramHasher(self.n)

    def found(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        hashes, counts = self._hasher.hashes(texts)
        return self.bloom.contains(hashes), counts


class ExactNgrams:
    """The distinct n-grams of some texts as a set of strings: exact, ~100 bytes per n-gram."""

    def __init__(self, grams: set[str], n: int) -> None:
        self.grams, self.n = grams, n

    @classmethod
    def from_texts(cls, texts: Iterable[str], n: int) -> ExactNgrams:
        grams: set[str] = set()
        for text in texts:
            grams.update(ngrams(words(text), n))
        return cls(grams, n)

    def __len__(self) -> int:
        return len(self.grams)

    def found(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        per_text = [ngrams(words(text), self.n) for text in texts]
        found = np.fromiter((g in self.grams for grams in per_text for g in grams), dtype=bool)
        return found, np.array([len(grams) for grams in per_text], dtype=np.int64)


def distinct_hashes(texts: Iterable[str], n: int) -> np.ndarray:
    """The sorted distinct n-gram hashes of some texts (each its own document), streamed: memory is ~2x the
    result plus one batch."""
    hasher = NgramHasher(n)
    runs: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    size = 0
    for batch in _batches(texts, BATCH):
        pending.append(np.unique(hasher.hashes(batch)[0]))
        size += len(pending[-1])
        if size >= _BUILD_BATCH:
            _push(runs, np.unique(np.concatenate(pending)))
            pending, size = [], 0
    _push(runs, np.unique(np.concatenate(pending)) if pending else np.empty(0, dtype=np.uint64))
    return np.unique(np.concatenate(runs))


def _push(runs: list[np.ndarray], run: np.ndarray) -> None:
    """Add a sorted distinct run, first merging the last runs up to twice its size (sizes halve along the
    list, so a hash is merged O(log n) times)."""
    while runs and len(runs[-1]) <= 2 * len(run):
        run = np.union1d(runs.pop(), run)
    runs.append(run)


def bloom_from_texts(
    texts: Iterable[str], n: int, fpr: float, partitions: int = 1
) -> BloomFilter | PartitionedBloom:
    """A filter of the n-grams of some texts, sized from their exact number of distinct n-gram hashes; in
    `partitions` (a power of two) partitions, each sized from its own number, when more than 1."""
    keys = distinct_hashes(texts, n)
    parts = split_sorted(keys, partitions)
    bloom = PartitionedBloom.planned(plan_partitions([len(part) for part in parts], fpr, n))
    for part, filled in zip(parts, bloom.parts, strict=True):
        filled.add(part)
    return bloom.parts[0] if partitions == 1 else bloom


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Overlap:
    """One evaluation set against one index: per example, its n-grams and how many were found."""

    ngrams: np.ndarray  # int64 per example
    found: np.ndarray  # int64 per example

    @property
    def total(self) -> int:
        return int(self.ngrams.sum())

    @property
    def total_found(self) -> int:
        return int(self.found.sum())

    @property
    def percent(self) -> float:
        """Share of the set's n-grams (occurrences) found, in percent; 0 for a set without n-grams."""
        return 100.0 * self.total_found / self.total if self.total else 0.0

    def fractions(self) -> np.ndarray:
        """The fraction of each example's n-grams found (0 for an example without n-grams)."""
        return np.divide(self.found, self.ngrams, out=np.zeros(len(self.ngrams)), where=self.ngrams > 0)

    def dirty(self, threshold: float = 0.0) -> np.ndarray:
        """Which examples are dirty: the fraction of their n-grams found is above `threshold`."""
        return (self.found > 0) & (self.fractions() > threshold)


def measure(texts: list[str], index: NgramIndex) -> Overlap:
    """How many of each text's n-grams the index holds."""
    ngram_counts, found_counts = [], []
    for batch in _batches(texts, BATCH):
        found, counts = index.found(batch)
        ends = np.cumsum(counts)
        hits = np.concatenate([[0], np.cumsum(found, dtype=np.int64)])
        found_counts.append(hits[ends] - hits[ends - counts])
        ngram_counts.append(counts)
    empty = [np.empty(0, dtype=np.int64)]
    return Overlap(np.concatenate(ngram_counts or empty), np.concatenate(found_counts or empty))


def random_ngram_hashes(count: int, n: int, seed: int = 0, vocabulary: int = 100_000) -> np.ndarray:
    """The hashes of `count` random n-grams of random 12-character words (seeded): text no corpus holds, so
    every hit of a filter is a false positive. Hashed as real n-grams are (word hashes combined)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
    spellings = letters[rng.integers(0, len(letters), size=(vocabulary, 12))]
    word_hashes = np.array([stable_hash64(bytes(w).decode("ascii")) for w in spellings], dtype=np.uint64)
    return combine_word_hashes(word_hashes[rng.integers(0, vocabulary, size=(count, n))])


@dataclass(frozen=True)
class FprCheck:
    strings: int
    hits: int
    bound: float  # the FPR the filter was sized for
    estimated: float  # fill^k: the FPR its actual content gives

    def to_dict(self) -> dict:
        return {"strings": self.strings, "hits": self.hits, "bound": self.bound, "estimated": self.estimated}


def fpr_check(bloom: BloomFilter | PartitionedBloom, count: int = 1_000_000, seed: int = 0) -> FprCheck:
    """GPT-2's check of a filter: `count` random strings queried, every hit a false positive."""
    hits = int(bloom.contains(random_ngram_hashes(count, bloom.params.n, seed)).sum())
    return FprCheck(count, hits, bloom.params.fpr, bloom.estimated_fpr())


class EvalNgrams:
    """The distinct n-gram hashes of named evaluation sets, for decontaminating training documents (GPT-3's
    rule: a document sharing any n-gram with an evaluation set is dropped). Picklable: it travels to the
    workers with the filter stage's DoFn, ~8 bytes per distinct n-gram."""

    def __init__(self, sets: dict[str, np.ndarray], n: int) -> None:
        self.sets = dict(sorted(sets.items()))  # name -> sorted distinct uint64 hashes
        self.n = n
        self._hasher = NgramHasher(n)

    @classmethod
    def from_files(cls, paths: dict[str, str], n: int) -> EvalNgrams:
        """The sets of some evaluation files (`read_examples`: n-grams never span two examples)."""
        return cls(
            {name: distinct_hashes((e.text for e in read_examples(p)), n) for name, p in paths.items()}, n
        )

    def sizes(self) -> dict[str, int]:
        return {name: len(hashes) for name, hashes in self.sets.items()}

    def shared(self, text: str) -> tuple[str, int] | None:
        """(name, count) of the first set (by name) the text shares n-grams with, and how many of the text's
        n-grams (occurrences) it holds; None when the text shares none."""
        hashes, _ = self._hasher.hashes([text])
        for name, ref in self.sets.items():
            if len(ref) and len(hashes):
                index = np.searchsorted(ref, hashes).clip(max=len(ref) - 1)
                count = int(np.count_nonzero(ref[index] == hashes))
                if count:
                    return name, count
        return None


# --- Reports -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    name: str
    path: str
    examples: list[Example]
    kind: str = "eval"  # "eval", or "samples": a model's generations (memorization)


def report_json(
    n: int,
    indexes: dict[str, dict],
    evals: list[EvalSet],
    results: dict[str, dict[str, Overlap]],
    threshold: float,
) -> dict:
    """The whole report: each index (how it was made, its FPR check) and each set's overlap with each index.
    `results[index][set]` is the set's Overlap with that index."""
    out: dict = {"n": n, "dirty_threshold": threshold, "indexes": indexes, "evals": {}, "samples": {}}
    for ev in evals:
        per_index = {label: results[label][ev.name] for label in indexes}
        dirty = _dirty_any(per_index, threshold, len(ev.examples))
        first = next(iter(per_index.values()))
        out["samples" if ev.kind == "samples" else "evals"][ev.name] = {
            "path": ev.path,
            "examples": len(ev.examples),
            "short_examples": int(np.count_nonzero(first.ngrams == 0)),
            "ngrams": first.total,
            "overlap": {
                label: {
                    "found": o.total_found,
                    "percent": round(o.percent, 4),
                    "dirty_examples": int(o.dirty(threshold).sum()),
                    "mean_example_fraction": round(float(o.fractions().mean()), 6) if len(o.ngrams) else 0.0,
                }
                for label, o in per_index.items()
            },
            "dirty_examples": int(dirty.sum()),
            "clean_examples": int(len(dirty) - dirty.sum()),
        }
    return out


def _dirty_any(per_index: dict[str, Overlap], threshold: float, count: int) -> np.ndarray:
    dirty = np.zeros(count, dtype=bool)
    for overlap in per_index.values():
        dirty |= overlap.dirty(threshold)
    return dirty


def report_markdown(report: dict, own: dict[str, str]) -> str:
    """GPT-2 Table 6's shape: a row per training index, a column per evaluation set, the percentage of the
    set's n-grams found; `own` maps an evaluation set to the index built from its own train split, which
    gives the "own train split" row. Then the generated samples, the sets' sizes and the FPR checks."""
    n, indexes = report["n"], report["indexes"]
    lines = [
        f"{n}-gram overlap (GPT-2 normalization): % of each set's {n}-grams found in each training set",
        "",
    ]
    for section, title in (("evals", "training set"), ("samples", "generated samples found in")):
        sets = report[section]
        if not sets:
            continue
        lines += [f"| {title} | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
        for label, info in indexes.items():
            cells = [f"{s['overlap'][label]['percent']:.2f}%" for s in sets.values()]
            lines.append(f"| {info['description']} | " + " | ".join(cells) + " |")
        if section == "evals" and any(name in own for name in sets):
            cells = [
                f"{s['overlap'][own[name]]['percent']:.2f}%" if name in own else ""
                for name, s in sets.items()
            ]
            lines.append("| own train split | " + " | ".join(cells) + " |")
        lines.append("")
    threshold = report["dirty_threshold"]
    lines += [
        f"| set | examples | {n}-grams | shorter than {n} words | dirty (> {threshold:g} found) | clean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in {**report["evals"], **report["samples"]}.items():
        lines.append(
            f"| {name} | {s['examples']} | {s['ngrams']} | {s['short_examples']} | {s['dirty_examples']} "
            f"| {s['clean_examples']} |"
        )
    lines.append("")
    for info in indexes.values():
        check = info.get("fpr_check")
        if check:
            lines.append(
                f"- {info['description']}: {check['hits']} hits of {check['strings']:,} random strings "
                f"(FPR bound {check['bound']:g}, estimated from the filter's fill {check['estimated']:.2g})"
            )
        elif info.get("method") == "exact":
            lines.append(f"- {info['description']}: exact set of {info['items']:,} {n}-grams")
    return "\n".join(lines) + "\n"


def example_rows(ev: EvalSet, per_index: dict[str, Overlap], threshold: float) -> Iterator[dict]:
    """One row per example: its line, n-grams, n-grams found per index, and whether it is dirty."""
    dirty = _dirty_any(per_index, threshold, len(ev.examples))
    first = next(iter(per_index.values()))
    for i, example in enumerate(ev.examples):
        yield {
            "line": example.line,
            "ngrams": int(first.ngrams[i]),
            "found": {label: int(o.found[i]) for label, o in per_index.items()},
            "dirty": bool(dirty[i]),
        }
