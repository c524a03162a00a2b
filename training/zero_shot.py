"""GPT-2's zero-shot metrics (Radford et al. 2019, section 3) as pure functions over a GPT and token ids.

Every metric reduces to one primitive, `continuation_logprobs`: for a token sequence, the log-probability of
each of its last n tokens given everything before it. Sequences are scored in batches, longest first and
right-padded (with causal attention a padding position never influences a real one); a context longer than
the model's window loses its left end, as the evaluation harness does.

- `lambada` (section 3.3): predict the last word of a passage, reported in two conventions, the GPT-2 paper's
  (the last BPE token of the detokenized passage) and the evaluation harness's ``lambada_openai`` (every token
  of " " + last word, the word encoded on its own).
- `multiple_choice` (section 3.2, the Children's Book Test; any cloze file): the candidate whose tokens have
  the highest total log-probability after the context.
- `perplexity` (section 3.1): rolling evaluation of a token stream with a context window and a stride,
  reported per token, per word of the original text, and in bits per byte.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from training.model import GPT

log = logging.getLogger("webtext")

Request = tuple[Sequence[int], int]  # (tokens, n): score the last n tokens, each given the ones before it


@dataclass
class Scored:
    logprobs: torch.Tensor  # (n,) float64: log p(token | everything before it)
    greedy: torch.Tensor  # (n,) bool: the token was the model's most likely next token


@dataclass
class LambadaExample:
    passage: list[int]  # the whole passage; the GPT-2 paper's convention predicts its last token
    context: list[int]  # the passage without " " + its last word
    word: list[int]  # " " + the last word, encoded on its own (the harness's convention)


@dataclass
class ChoiceExample:
    context: list[int]
    choices: list[list[int]]  # each candidate (with whatever follows it), scored after the context
    answer: int  # index into choices


@dataclass
class Document:
    tokens: list[int]  # the scored text's token ids, without <|endoftext|>
    words: int  # words of the original text, each line end counted as one (<eos>)
    bytes: int  # UTF-8 bytes of the scored text


@torch.no_grad()
def continuation_logprobs(model: GPT, requests: Sequence[Request], batch_size: int = 8) -> list[Scored]:
    """For each (tokens, n): the log-probabilities of the last n tokens and whether each was the greedy
    choice. A request longer than block_size + 1 tokens keeps its last block_size + 1."""
    if model.training:
        raise ValueError("call model.eval() first: dropout would make the metrics random")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    block = model.config.block_size
    device = model.lm_head.weight.device
    sequences = []
    for tokens, n in requests:
        if not 1 <= n < len(tokens):
            raise ValueError(f"cannot score the last {n} of {len(tokens)} tokens (the first is context only)")
        if n > block:
            raise ValueError(f"a continuation of {n} tokens does not fit the model's context ({block})")
        sequences.append(list(tokens[-(block + 1) :]))

    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    results: list[Scored | None] = [None] * len(sequences)
    started = last_report = time.monotonic()
    for first in range(0, len(order), batch_size):
        rows = order[first : first + batch_size]
        inputs = torch.zeros((len(rows), len(sequences[rows[0]]) - 1), dtype=torch.long)
        for row, i in enumerate(rows):
            inputs[row, : len(sequences[i]) - 1] = torch.tensor(sequences[i][:-1])
        logits, _ = model(inputs.to(device))
        for row, i in enumerate(rows):
            n, end = requests[i][1], len(sequences[i]) - 1
            predicted = logits[row, end - n : end].float().log_softmax(dim=-1)
            target = torch.tensor(sequences[i][-n:], device=device)
            logprobs = predicted.gather(-1, target[:, None]).squeeze(-1)
            results[i] = Scored(logprobs.double().cpu(), (predicted.argmax(dim=-1) == target).cpu())
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            done = min(first + batch_size, len(order))
            log.info("eval: %d/%d sequences (%.0f s)", done, len(order), last_report - started)
    return results


def lambada(model: GPT, examples: Sequence[LambadaExample], batch_size: int = 8) -> dict:
    """LAMBADA accuracy and perplexity of the final word in both conventions (fractions, not percent)."""
    if not examples:
        raise ValueError("no LAMBADA examples")
    words = continuation_logprobs(model, [(e.context + e.word, len(e.word)) for e in examples], batch_size)
    # When the whole passage encodes as context + word (nearly always), its last token is already scored.
    last = [s.logprobs[-1].item() for s in words]
    last_greedy = [bool(s.greedy[-1]) for s in words]
    differ = [i for i, e in enumerate(examples) if e.passage != e.context + e.word]
    passages = continuation_logprobs(model, [(examples[i].passage, 1) for i in differ], batch_size)
    for i, s in zip(differ, passages, strict=True):
        last[i], last_greedy[i] = s.logprobs[-1].item(), bool(s.greedy[-1])
    n = len(examples)
    return {
        "examples": n,
        "openai": {
            "acc": sum(last_greedy) / n,
            "ppl": _exp(-math.fsum(last) / n),
            "definition": "GPT-2 paper: the last BPE token of the detokenized passage is the greedy "
            "prediction; ppl = exp(-mean log p(last token))",
        },
        "harness": {
            "acc": sum(bool(s.greedy.all()) for s in words) / n,
            "ppl": _exp(-math.fsum(s.logprobs.sum().item() for s in words) / n),
            "definition": "lm-evaluation-harness lambada_openai: every token of ' ' + last word is the "
            "greedy prediction; ppl = exp(-mean log p(word))",
        },
    }


def multiple_choice(model: GPT, examples: Sequence[ChoiceExample], batch_size: int = 8) -> dict:
    """Accuracy of picking the candidate with the highest total log-probability (ties: the first)."""
    if not examples:
        raise ValueError("no multiple-choice examples")
    requests = [(e.context + choice, len(choice)) for e in examples for choice in e.choices]
    scores = iter(continuation_logprobs(model, requests, batch_size))
    correct = 0
    for e in examples:
        totals = [next(scores).logprobs.sum().item() for _ in e.choices]
        correct += max(range(len(totals)), key=totals.__getitem__) == e.answer
    n = len(examples)
    return {"examples": n, "acc": correct / n, "chance": sum(1 / len(e.choices) for e in examples) / n}


def rolling_windows(length: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows (begin, end, n) over a sequence of `length` tokens whose first token is context only: score
    the last n tokens of tokens[begin:end]. Every other token is scored exactly once. The first window
    scores up to `context` tokens; each next one scores the following `stride` tokens with the `context`
    tokens before them (at least context - stride + 1 of them already scored), the last one fewer."""
    if not 1 <= stride <= context:
        raise ValueError(f"need 1 <= stride <= context, got stride {stride} and context {context}")
    windows: list[tuple[int, int, int]] = []
    scored_to = 1
    while scored_to < length:
        end = min(scored_to + (stride if windows else context), length)
        windows.append((max(0, end - 1 - context), end, end - scored_to))
        scored_to = end
    return windows


def perplexity(
    model: GPT,
    documents: Sequence[Document],
    bos_id: int,
    context: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
) -> dict:
    """Rolling perplexity of each document, prefixed with `bos_id` (<|endoftext|>) so that its first token
    is predicted too. `context` defaults to the model's block_size and `stride` to half of it. Reports the
    total negative log-likelihood `nll` (nats) and perplexity per token, per original word, bits per byte."""
    context = context or model.config.block_size
    stride = stride or max(1, context // 2)
    if context > model.config.block_size:
        raise ValueError(f"context {context} is longer than the model's block_size {model.config.block_size}")
    requests = []
    for doc in documents:
        stream = [bos_id, *doc.tokens]
        for begin, end, n in rolling_windows(len(stream), context, stride):
            requests.append((stream[begin:end], n))
    tokens = sum(len(doc.tokens) for doc in documents)
    if not tokens:
        raise ValueError("no tokens to score")
    nll = -math.fsum(s.logprobs.sum().item() for s in continuation_logprobs(model, requests, batch_size))
    words, size = sum(doc.words for doc in documents), sum(doc.bytes for doc in documents)
    return {
        "documents": len(documents),
        "tokens": tokens,
        "words": words,
        "bytes": size,
        "context": context,
        "stride": stride,
        "nll": nll,
        "ppl_token": _exp(nll / tokens),
        "ppl_word": _exp(nll / words) if words else None,
        "bpb": nll / (math.log(2) * size) if size else None,
    }


def _exp(x: float) -> float:
    """exp, capped at float max: an untrained model's perplexity per word can overflow (JSON has no inf)."""
    return math.exp(min(x, math.log(sys.float_info.max)))
