"""The task files of `webtext eval`: a task's kind, how its file is read, and the token ids it is scored on.

A task is given as ``NAME=PATH`` or ``NAME:KIND=PATH``. Without a KIND, a NAME that is a kind is that kind
and any other name is plain text. Kinds and the files they read (``.gz`` files are decompressed):

- ``lambada``: OpenAI's ``lambada_test.jsonl`` (``{"text": passage}`` per line), or plain text with one
  passage per line. Trailing whitespace is dropped; the last word follows the last space.
- ``wikitext2``, ``wikitext103``, ``ptb``, ``1bw``, ``enwik8``, ``text8``, ``text``: perplexity of a text
  file scored as one stream (WikiText's ``wiki.test.tokens``, ``ptb.test.txt``, ...), or of a ``.jsonl``
  file of ``{"text": document}`` lines scored document by document.
- ``cbt-cn``, ``cbt-ne``: the Children's Book Test files (``cbtest_CN_test_2500ex.txt``): 20 numbered
  context sentences, then ``21 query with XXXXX<TAB>answer<TAB><TAB>cand1|cand2|...``, a blank line between
  questions. A ``.jsonl`` file is read as ``cloze`` (and never detokenized).
- ``cloze``: multiple choice, one JSON object per line: ``{"context": str, "candidates": [str, ...],
  "answer": index or candidate, "continuation": str (optional)}``. A candidate is appended to the context
  as is (so it carries its leading space, as GPT-2's BPE expects); ``continuation`` follows every candidate
  and is scored with it, as GPT-2 scored the rest of the CBT query sentence after the filled-in word.

With ``detokenize``, WikiText, PTB, 1BW and CBT text goes through training.detokenize first; words are
always counted in the original text (whitespace-separated, plus one per line end: the <eos> convention
behind PTB's 82,430 and WikiText-2's 245,569 test words).
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

from corpus.errors import InputError
from corpus.tokenizer import Tokenizer
from training import zero_shot
from training.config import CHOICE_KINDS, KINDS, PERPLEXITY_KINDS  # noqa: F401 - re-exported
from training.detokenize import detokenize as detokenize_text
from training.model import GPT
from training.zero_shot import ChoiceExample, Document, LambadaExample

DETOKENIZER = {
    "wikitext2": "wikitext",
    "wikitext103": "wikitext",
    "ptb": "ptb",
    "1bw": "1bw",
    "cbt-cn": "cbt",
    "cbt-ne": "cbt",
}
BLANK = "XXXXX"  # CBT's placeholder for the missing word


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    path: str


@dataclass
class Cloze:
    context: str
    candidates: list[str]
    answer: int
    continuation: str = ""


def parse_task(spec: str) -> Task:
    """A task from ``NAME=PATH`` or ``NAME:KIND=PATH``."""
    label, sep, path = spec.partition("=")
    name, _, kind = label.partition(":")
    if not sep or not name or not path:
        raise InputError(f"--task {spec!r}: expected NAME=PATH or NAME:KIND=PATH")
    kind = kind or (name if name in KINDS else "text")
    if kind not in KINDS:
        raise InputError(f"--task {spec!r}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    return Task(name, kind, path)


def read_text(path: str) -> str:
    """A UTF-8 text file, gzip-compressed when its name ends in .gz."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
                return f.read()
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: not found") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable UTF-8 text file ({e})") from None


def _is_jsonl(path: str) -> bool:
    return path.removesuffix(".gz").endswith(".jsonl")


def _jsonl(path: str) -> Iterator[tuple[str, dict]]:
    """("PATH:LINE", object) for every non-blank line of a JSON-lines file."""
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not JSON ({e})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object")
        yield where, record


def _text_field(where: str, record: dict, field: str = "text") -> str:
    value = record.get(field)
    if not isinstance(value, str):
        raise InputError(f"{where}: field {field!r} must be a string, got {value!r}")
    return value


def _first(items: list, max_examples: int | None, path: str) -> list:
    if not items:
        raise InputError(f"{path}: no examples")
    return items[:max_examples] if max_examples else items


def read_lambada(path: str, max_examples: int | None = None) -> list[str]:
    """LAMBADA passages (trailing whitespace dropped)."""
    if _is_jsonl(path):
        passages = [(where, _text_field(where, record)) for where, record in _jsonl(path)]
    else:
        lines = read_text(path).splitlines()
        passages = [(f"{path}:{n}", line) for n, line in enumerate(lines, 1) if line.strip()]
    for where, passage in passages:
        if " " not in passage.strip():
            raise InputError(f"{where}: a LAMBADA passage needs a context and a last word")
    return _first([passage.rstrip() for _, passage in passages], max_examples, path)


def read_cloze(path: str, max_examples: int | None = None) -> list[Cloze]:
    """Multiple-choice questions from a cloze JSON-lines file."""
    questions = []
    for where, record in _jsonl(path):
        context = _text_field(where, record, "context")
        continuation = record.get("continuation", "")
        candidates = record.get("candidates")
        answer = record.get("answer")
        if not isinstance(continuation, str):
            raise InputError(f"{where}: field 'continuation' must be a string")
        if not isinstance(candidates, list) or len(candidates) < 2:
            raise InputError(f"{where}: field 'candidates' must be a list of at least 2 strings")
        if not all(isinstance(c, str) and c for c in candidates):
            raise InputError(f"{where}: every candidate must be a non-empty string")
        if isinstance(answer, str) and answer in candidates:
            answer = candidates.index(answer)
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(candidates):
            raise InputError(f"{where}: 'answer' must be a candidate or its index, got {answer!r}")
        questions.append(Cloze(context, candidates, answer, continuation))
    return _first(questions, max_examples, path)


def read_cbt(path: str, max_examples: int | None = None, detokenize: bool = False) -> list[Cloze]:
    """Children's Book Test questions: the 20 sentences and the query up to the blank are the context; each
    candidate is scored together with the rest of the query sentence."""
    if _is_jsonl(path):
        return read_cloze(path, max_examples)
    clean = (lambda s: detokenize_text(s, "cbt")) if detokenize else (lambda s: s)
    questions: list[Cloze] = []
    sentences: list[str] = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        index, _, text = line.partition(" ")
        if not index.isdigit():
            raise InputError(f"{where}: a CBT line starts with its sentence number")
        if index != "21":
            sentences.append(clean(text.strip()))
            continue
        fields = text.split("\t")
        if len(fields) < 3 or fields[0].count(BLANK) != 1:
            raise InputError(f"{where}: expected 'query with {BLANK}<TAB>answer<TAB><TAB>cand|cand|...'")
        candidates, answer = fields[-1].strip().split("|"), fields[1].strip()
        if answer not in candidates:
            raise InputError(f"{where}: the answer {answer!r} is not among the candidates")
        before, after = clean(fields[0].strip()).split(BLANK)
        context = " ".join([*sentences, before.strip()]).strip()
        questions.append(
            Cloze(context, [f" {c}" for c in candidates], candidates.index(answer), after.rstrip())
        )
        sentences = []
    return _first(questions, max_examples, path)


def read_documents(path: str, max_examples: int | None = None) -> list[str]:
    """The documents of a perplexity task: the whole file, or the "text" of each line of a .jsonl file."""
    if _is_jsonl(path):
        return _first([_text_field(where, record) for where, record in _jsonl(path)], max_examples, path)
    text = read_text(path)
    if not text.strip():
        raise InputError(f"{path}: no text")
    return [text]


def count_words(text: str) -> int:
    """Whitespace-separated words plus one per line end (<eos>), as PTB and WikiText count them."""
    return len(text.split()) + text.count("\n")


def lambada_examples(passages: list[str], tokenizer: Tokenizer) -> list[LambadaExample]:
    examples = []
    for passage in passages:
        context, word = passage.rsplit(" ", 1)
        ids = tokenizer.encode_batch([passage, context, f" {word}"])
        examples.append(LambadaExample(passage=ids[0], context=ids[1], word=ids[2]))
    return examples


def choice_examples(questions: list[Cloze], tokenizer: Tokenizer) -> list[ChoiceExample]:
    """Token ids of cloze questions; an empty context becomes <|endoftext|> (a first token is not scored)."""
    examples = []
    for q in questions:
        ids = tokenizer.encode_batch([q.context, *(c + q.continuation for c in q.candidates)])
        examples.append(ChoiceExample(ids[0] or [tokenizer.eot_id], ids[1:], q.answer))
    return examples


def text_documents(texts: list[str], tokenizer: Tokenizer, style: str | None = None) -> list[Document]:
    """Documents to score: each text detokenized in `style` (None: as is); words counted before that."""
    scored = [detokenize_text(text, style) if style else text for text in texts]
    ids = tokenizer.encode_batch(scored)
    return [
        Document(tokens, count_words(text), len(clean.encode("utf-8")))
        for text, clean, tokens in zip(texts, scored, ids, strict=True)
    ]


def run_task(
    task: Task,
    model: GPT,
    tokenizer: Tokenizer,
    batch_size: int = 8,
    max_examples: int | None = None,
    context: int | None = None,
    stride: int | None = None,
    detokenize: bool = False,
) -> dict:
    """Read, encode and score one task: its metrics (training.zero_shot) with kind, path and seconds."""
    started = time.monotonic()
    cloze_file = task.kind == "cloze" or (task.kind in CHOICE_KINDS and _is_jsonl(task.path))
    style = DETOKENIZER.get(task.kind) if detokenize and not cloze_file else None
    if task.kind == "lambada":
        metrics = zero_shot.lambada(
            model, lambada_examples(read_lambada(task.path, max_examples), tokenizer), batch_size
        )
    elif task.kind in CHOICE_KINDS:
        if task.kind == "cloze":
            questions = read_cloze(task.path, max_examples)
        else:
            questions = read_cbt(task.path, max_examples, style is not None)
        metrics = zero_shot.multiple_choice(model, choice_examples(questions, tokenizer), batch_size)
    else:
        documents = text_documents(read_documents(task.path, max_examples), tokenizer, style)
        metrics = zero_shot.perplexity(model, documents, tokenizer.eot_id, context, stride, batch_size)
    header = {"kind": task.kind, "path": task.path, "detokenized": style is not None}
    return {**header, **metrics, "seconds": round(time.monotonic() - started, 2)}
