"""GPT-1 fine-tuning tasks: reading the labelled files, and the input transformations (Radford et al. 2018,
section 3.3, figure 1).

Every task turns into token sequences that the pretrained model reads left to right, with three new tokens
added to the vocabulary: start `[s]`, delimiter `$` and extract `[e]`. An example becomes one sequence per
*candidate*:

- classification   `[s] text [e]`                                    1 candidate
- entailment       `[s] premise $ hypothesis [e]`                    1 candidate
- similarity       `[s] a $ b [e]` and `[s] b $ a [e]`               2 candidates (final states added)
- multiple-choice  `[s] context $ answer_k [e]` for every answer k   k candidates (softmax over k)

One file format per kind (the GLUE / SuperGLUE / Story Cloze distributions):

- classification:  TSV with a header holding `sentence` and `label` (GLUE SST-2)
- similarity:      TSV with `Quality`, `#1 String`, `#2 String` (GLUE MRPC, UTF-8 BOM allowed)
- entailment:      JSON lines with `premise`, `hypothesis`, `label` (SuperGLUE RTE)
- multiple-choice: CSV with `InputSentence1`..`4`, `RandomFifthSentenceQuiz1`/`2`, `AnswerRightEnding`
                   (Story Cloze; the four sentences joined by spaces are the context)

GLUE's TSV files are not quoted (a field may start with `"`), so they are read with quoting off.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from corpus.errors import InputError
from corpus.tokenizer import Tokenizer

KINDS = ("classification", "entailment", "similarity", "multiple-choice")


@dataclass(frozen=True)
class Example:
    """One labelled row: `texts` are the segments (text; premise + hypothesis; a + b; context), `choices`
    the answers of a multiple-choice row, `label` the raw label (a class name, or the answer index)."""

    texts: tuple[str, ...]
    label: str
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """What the train/test hash split hashes: the row's text, so duplicate rows land on one side."""
        return "\t".join(self.texts + self.choices)


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the added tokens; `after_vocab(V)` gives V, V + 1, V + 2 (the rows appended to wte)."""

    start: int
    delimiter: int
    extract: int

    @classmethod
    def after_vocab(cls, vocab_size: int) -> SpecialTokens:
        return cls(vocab_size, vocab_size + 1, vocab_size + 2)


# --- reading the task files -------------------------------------------------------------------------------


def read_examples(path: str, kind: str) -> list[Example]:
    """The labelled rows of a task file in the format of `kind` (see the module docstring)."""
    if kind not in KINDS:
        raise InputError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: not found")
    try:
        text = file.read_text(encoding="utf-8-sig")  # -sig: MRPC's dev.tsv starts with a UTF-8 BOM
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not readable as UTF-8 ({e})") from None
    if kind == "entailment":
        examples = _read_rte(text, path)
    else:
        delimiter = "," if kind == "multiple-choice" else "\t"
        examples = [_ROW_READERS[kind](row) for row in _read_table(text, path, delimiter, _COLUMNS[kind])]
    if not examples:
        raise InputError(f"{path}: no examples")
    return examples


_COLUMNS = {
    "classification": ("sentence", "label"),
    "similarity": ("Quality", "#1 String", "#2 String"),
    "multiple-choice": (
        *(f"InputSentence{i}" for i in range(1, 5)),
        "RandomFifthSentenceQuiz1",
        "RandomFifthSentenceQuiz2",
        "AnswerRightEnding",
    ),
}
_ROW_READERS = {
    "classification": lambda row: Example((row["sentence"].strip(),), row["label"].strip()),
    "similarity": lambda row: Example(
        (row["#1 String"].strip(), row["#2 String"].strip()), row["Quality"].strip()
    ),
    "multiple-choice": lambda row: Example(
        (" ".join(row[f"InputSentence{i}"].strip() for i in range(1, 5)),),
        row["AnswerRightEnding"].strip(),
        (row["RandomFifthSentenceQuiz1"].strip(), row["RandomFifthSentenceQuiz2"].strip()),
    ),
}


def _read_table(text: str, path: str, delimiter: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: empty file")
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"{path}: the header {header} lacks the column(s) {', '.join(missing)}")
        rows = []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise InputError(
                    f"{path}:{reader.line_num}: {len(fields)} fields where the header has {len(header)}"
                )
            rows.append(dict(zip(header, fields, strict=True)))
    except csv.Error as e:
        raise InputError(f"{path}:{reader.line_num}: {e}") from None
    return rows


def _read_rte(text: str, path: str) -> list[Example]:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{number}: not JSON ({e})") from None
        if not isinstance(row, dict) or not all(
            isinstance(row.get(k), str) for k in ("premise", "hypothesis")
        ):
            raise InputError(f"{path}:{number}: expected an object with string 'premise' and 'hypothesis'")
        if row.get("label") is None:
            raise InputError(f"{path}:{number}: no 'label' (an unlabelled test file?)")
        examples.append(Example((row["premise"].strip(), row["hypothesis"].strip()), str(row["label"])))
    return examples


def label_names(examples: list[Example], kind: str) -> list[str]:
    """The classes, sorted: the distinct labels of `examples`; the answer numbers for multiple-choice."""
    if kind == "multiple-choice":
        return [str(i + 1) for i in range(len(examples[0].choices))]
    return sorted({e.label for e in examples})


def label_ids(examples: list[Example], labels: list[str], path: str) -> list[int]:
    """Each example's class index in `labels` (for multiple-choice: the 0-based index of the right answer)."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise InputError(f"{path}: label(s) {', '.join(map(repr, unknown))} not among {labels}")
    return [index[e.label] for e in examples]


def hash_split(examples: list[Example], train_fraction: float) -> tuple[list[Example], list[Example]]:
    """Split rows into train and test portions by a stable hash (SHA-256) of their text: a row goes to
    train when its hash, read as a number in [0, 1), is below `train_fraction`. The order of the rows and
    the other rows do not matter; the same text always lands on the same side."""
    if not 0.0 < train_fraction < 1.0:
        raise InputError(f"the train fraction must be in (0, 1), got {train_fraction}")
    train, test = [], []
    for example in examples:
        digest = hashlib.sha256(example.key.encode("utf-8")).digest()
        (train if int.from_bytes(digest[:8], "big") / 2**64 < train_fraction else test).append(example)
    return train, test


# --- input transformations --------------------------------------------------------------------------------


def candidates(example: Example, kind: str) -> list[tuple[str, ...]]:
    """The text segments of each sequence an example becomes: one per ordering (similarity) or answer."""
    if kind == "similarity":
        a, b = example.texts
        return [(a, b), (b, a)]
    if kind == "multiple-choice":
        return [(example.texts[0], answer) for answer in example.choices]
    return [example.texts]


def layout(segments: list[list[int]], special: SpecialTokens, max_len: int) -> list[int]:
    """`[s] seg_1 $ seg_2 ... [e]`, at most `max_len` tokens.

    Too long an input is cut from the left of its longest segment, a token at a time (ties: the first), so
    the special tokens and the end of every segment (the words next to `$` and `[e]`) are kept.
    """
    budget = max_len - len(segments) - 1  # [s], a $ between segments, [e]
    if budget < len(segments):
        raise ValueError(f"max_len {max_len} leaves no room for {len(segments)} segment(s)")
    lengths = [len(s) for s in segments]
    while sum(lengths) > budget:
        longest = lengths.index(max(lengths))
        lengths[longest] -= 1
    tokens = [special.start]
    for i, (segment, length) in enumerate(zip(segments, lengths, strict=True)):
        if i:
            tokens.append(special.delimiter)
        tokens.extend(segment[len(segment) - length :])
    tokens.append(special.extract)
    return tokens


def encode_examples(
    examples: list[Example], kind: str, tokenizer: Tokenizer, special: SpecialTokens, max_len: int
) -> list[list[list[int]]]:
    """Every example's candidate sequences, token ids laid out as in `layout` (segments encoded alone)."""
    texts = sorted({t for e in examples for c in candidates(e, kind) for t in c})
    ids = dict(zip(texts, tokenizer.encode_batch(texts), strict=True))
    return [
        [layout([ids[t] for t in segments], special, max_len) for segments in candidates(e, kind)]
        for e in examples
    ]
