"""Zero-shot metrics: hand computations on a tiny GPT, the task files and detokenizers, and equality with a
straightforward transformers computation on the same exported weights (the GPT-2 vocabulary, real samples)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel

from corpus.errors import InputError
from corpus.tokenizer import gpt2_tokenizer
from training.detokenize import detokenize
from training.eval_tasks import (
    choice_examples,
    count_words,
    lambada_examples,
    parse_task,
    read_cbt,
    read_cloze,
    read_documents,
    read_lambada,
    text_documents,
)
from training.hf_format import export_hf
from training.model import GPT, GPTConfig
from training.zero_shot import (
    ChoiceExample,
    Document,
    LambadaExample,
    continuation_logprobs,
    lambada,
    multiple_choice,
    perplexity,
    rolling_windows,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "corpus" / "sample" / "zero_shot"
CBT = ROOT / "tests" / "fixtures" / "zero_shot" / "cbt_constructed.txt"
BLOCK = 64
REL = 1e-4


def tiny_gpt(vocab_size: int = 300, seed: int = 0) -> GPT:
    """A random GPT with non-trivial weights everywhere (so that predictions are far from uniform)."""
    torch.manual_seed(seed)
    gpt = GPT(GPTConfig(vocab_size=vocab_size, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    return gpt.eval()


@pytest.fixture(scope="module")
def small() -> GPT:
    return tiny_gpt()


def random_ids(n: int, seed: int, vocab_size: int = 300) -> list[int]:
    return torch.randint(0, vocab_size, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def greedy_after(model: GPT, context: list[int], n: int) -> list[int]:
    out = model.generate(torch.tensor([context]), n, temperature=0)
    return out[0, len(context) :].tolist()


def logprobs_by_hand(model: GPT, tokens: list[int]) -> torch.Tensor:
    """log p(tokens[j] | tokens[:j]) for j >= 1, from one forward pass."""
    with torch.no_grad():
        logits, _ = model(torch.tensor([tokens[:-1]]))
    return F.log_softmax(logits[0].double(), dim=-1).gather(-1, torch.tensor(tokens[1:])[:, None])[:, 0]


# --- rolling windows ------------------------------------------------------------------------------------


def test_rolling_windows_by_hand():
    assert rolling_windows(11, context=4, stride=2) == [(0, 5, 4), (2, 7, 2), (4, 9, 2), (6, 11, 2)]
    assert rolling_windows(9, context=4, stride=4) == [(0, 5, 4), (4, 9, 4)]
    assert rolling_windows(3, context=4, stride=2) == [(0, 3, 2)]
    assert rolling_windows(1, context=4, stride=2) == []
    with pytest.raises(ValueError, match="stride"):
        rolling_windows(10, context=4, stride=5)


@pytest.mark.parametrize("length, context, stride", [(2, 1, 1), (50, 8, 3), (64, 16, 16), (100, 32, 1)])
def test_rolling_windows_score_every_token_once_with_full_windows(length, context, stride):
    windows = rolling_windows(length, context, stride)
    scored = [p for begin, end, n in windows for p in range(end - n, end)]
    assert scored == list(range(1, length))
    assert all(end - begin == context + 1 for begin, end, _ in windows[1:])  # full context after the first
    assert all(n <= stride for _, _, n in windows[1:])


# --- the scoring primitive --------------------------------------------------------------------------------


def test_continuation_logprobs_equal_one_forward_pass_whatever_the_batch(small):
    sequences = [random_ids(length, seed) for seed, length in enumerate([5, 40, 17, 65, 2])]
    requests = [(seq, n) for seq, n in zip(sequences, [4, 10, 1, 64, 1], strict=True)]
    for batch_size in (1, 3, 8):
        for (seq, n), scored in zip(
            requests, continuation_logprobs(small, requests, batch_size), strict=True
        ):
            expected = logprobs_by_hand(small, seq)[-n:]
            assert torch.allclose(scored.logprobs, expected, rtol=0, atol=1e-5)


def test_greedy_flags_follow_the_argmax(small):
    context = random_ids(10, seed=1)
    greedy = greedy_after(small, context, 5)
    wrong = [(greedy[0] + 1) % 300, *greedy[1:]]  # the first token is not the argmax any more
    first, second = continuation_logprobs(small, [(context + greedy, 5), (context + wrong, 5)])
    assert first.greedy.tolist() == [True] * 5
    assert second.greedy[0].item() is False


def test_a_long_context_loses_its_left_end(small):
    tokens = random_ids(100, seed=2)
    (scored,) = continuation_logprobs(small, [(tokens, 3)])
    assert torch.allclose(scored.logprobs, logprobs_by_hand(small, tokens[-(BLOCK + 1) :])[-3:], atol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        continuation_logprobs(small, [(tokens, BLOCK + 1)])
    with pytest.raises(ValueError, match="context only"):
        continuation_logprobs(small, [(tokens[:3], 3)])


def test_a_model_in_training_mode_is_refused():
    model = tiny_gpt().train()
    with pytest.raises(ValueError, match="eval"):
        continuation_logprobs(model, [([1, 2, 3], 1)])


# --- the metrics, by hand ---------------------------------------------------------------------------------


def test_lambada_metrics_by_hand(small):
    examples = []
    for seed in range(6):
        context = random_ids(12, seed=10 + seed)
        word = greedy_after(small, context, 2)  # the whole word is the greedy prediction...
        if seed % 2:
            word = [word[0], (word[1] + 7) % 300]  # ...except its last token in every other example
        examples.append(LambadaExample(passage=context + word, context=context, word=word))
    examples.append(LambadaExample(passage=[5, 6, 7, 8], context=[5, 6], word=[9]))  # passage != context+word
    result = lambada(small, examples, batch_size=4)

    last = [logprobs_by_hand(small, e.passage)[-1].item() for e in examples]
    words = [logprobs_by_hand(small, e.context + e.word)[-len(e.word) :].sum().item() for e in examples]
    assert result["examples"] == 7
    assert result["openai"]["ppl"] == pytest.approx(math.exp(-sum(last) / 7), rel=1e-6)
    assert result["harness"]["ppl"] == pytest.approx(math.exp(-sum(words) / 7), rel=1e-6)
    greedy_last = greedy_after(small, [5, 6, 7], 1) == [8]
    assert result["openai"]["acc"] == pytest.approx((3 + greedy_last) / 7)  # the even examples end greedy
    greedy_word = greedy_after(small, [5, 6], 1) == [9]
    assert result["harness"]["acc"] == pytest.approx((3 + greedy_word) / 7)


def test_multiple_choice_picks_the_highest_total_logprob(small):
    context = random_ids(8, seed=3)
    best = greedy_after(small, context, 2)
    worse = [best[0], (best[1] + 1) % 300]  # the same first token, a less likely second one
    examples = [
        ChoiceExample(context, [worse, best], answer=1),
        ChoiceExample(context, [best, worse], answer=1),  # labelled wrong on purpose
        ChoiceExample(context, [best, best], answer=0),  # a tie goes to the first candidate
    ]
    totals = [logprobs_by_hand(small, context + c)[-2:].sum().item() for c in (best, worse)]
    assert totals[0] > totals[1]
    result = multiple_choice(small, examples, batch_size=2)
    assert result == {"examples": 3, "acc": pytest.approx(2 / 3), "chance": pytest.approx(0.5)}


def test_perplexity_of_a_document_inside_one_window_is_the_model_loss(small):
    tokens = random_ids(40, seed=4)
    doc = Document(tokens, words=10, bytes=100)
    result = perplexity(small, [doc], bos_id=299)
    with torch.no_grad():
        _, loss = small(torch.tensor([[299, *tokens[:-1]]]), torch.tensor([tokens]))
    nll = loss.item() * 40
    assert result["tokens"] == 40 and result["context"] == BLOCK and result["stride"] == BLOCK // 2
    assert result["nll"] == pytest.approx(nll, rel=1e-5)
    assert result["ppl_token"] == pytest.approx(math.exp(loss.item()), rel=1e-5)
    assert result["ppl_word"] == pytest.approx(math.exp(nll / 10), rel=1e-5)
    assert result["bpb"] == pytest.approx(nll / math.log(2) / 100, rel=1e-5)


def test_perplexity_sums_documents_and_rejects_a_window_beyond_the_model(small):
    docs = [Document(random_ids(30, seed=5), 6, 50), Document(random_ids(90, seed=6), 20, 150)]
    both = perplexity(small, docs, bos_id=299, context=32, stride=8)
    alone = [perplexity(small, [d], bos_id=299, context=32, stride=8)["nll"] for d in docs]
    assert both["nll"] == pytest.approx(sum(alone), rel=1e-6)  # float32 batches differ in the last bits
    assert (both["tokens"], both["words"], both["bytes"], both["documents"]) == (120, 26, 200, 2)
    with pytest.raises(ValueError, match="block_size"):
        perplexity(small, docs, bos_id=299, context=BLOCK + 1)


# --- task files -------------------------------------------------------------------------------------------


def test_parse_task():
    assert parse_task("lambada=a/b.jsonl") == parse_task("lambada:lambada=a/b.jsonl")
    assert parse_task("webtext=x.txt").kind == "text"
    assert parse_task("valid:wikitext2=wiki.valid.tokens").kind == "wikitext2"
    assert parse_task("s:cloze=q=1.jsonl").path == "q=1.jsonl"
    for bad in ("lambada", "=x", "a:nope=x", "lambada="):
        with pytest.raises(InputError, match="--task"):
            parse_task(bad)


def test_bundled_samples_read():
    assert len(read_lambada(str(SAMPLE / "lambada_test.first100.jsonl"))) == 100
    assert len(read_lambada(str(SAMPLE / "lambada_test.first100.jsonl"), max_examples=7)) == 7
    questions = read_cloze(str(SAMPLE / "storycloze_val.first50.jsonl"))
    assert len(questions) == 50 and all(len(q.candidates) == 2 for q in questions)
    (ptb,) = read_documents(str(SAMPLE / "ptb.test.first200.txt"))
    assert count_words(ptb) == len(ptb.split()) + 200  # one <eos> per line, as PTB's 82,430 test words


def test_cbt_questions(tmp_path):
    first, second = read_cbt(str(CBT))
    assert first.context.endswith("said the king , `` my") and first.context.startswith("The king lived")
    assert first.candidates == [" castle", " dog", " ring", " sea"] and first.answer == 1
    assert first.continuation == " has found a treasure . ''"
    assert (second.candidates[second.answer], second.continuation) == (" brother", " was not angry .")
    clean = read_cbt(str(CBT), detokenize=True)[0]
    assert clean.context.endswith('said the king, "my') and clean.continuation == ' has found a treasure."'
    bad = tmp_path / "cbt.txt"
    bad.write_text("1 A line .\n21 no blank here\tx\t\tx|y\n")
    with pytest.raises(InputError, match=rf"{bad}:2: expected"):
        read_cbt(str(bad))


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"context": "a", "candidates": [" b"], "answer": 0}', "at least 2"),
        ('{"context": "a", "candidates": [" b", " c"], "answer": 2}', "'answer'"),
        ('{"context": "a", "candidates": [" b", ""], "answer": 0}', "non-empty"),
        ('{"candidates": [" b", " c"], "answer": 0}', "'context'"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_bad_cloze_lines_name_file_and_line(tmp_path, line, problem):
    path = tmp_path / "q.jsonl"
    path.write_text('{"context": "x", "candidates": [" y", " z"], "answer": " z"}\n\n' + line + "\n")
    with pytest.raises(InputError, match=rf"{path}:3: .*{problem}"):
        read_cloze(str(path))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="nope.txt: not found"):
        read_documents(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no examples"):
        read_lambada(str(tmp_path / "empty.jsonl"))


# --- detokenizers -----------------------------------------------------------------------------------------


def test_detokenizers_by_hand():
    wiki = (
        ' = = Career = = \n He had a guest @-@ starring role in " Teddy \'s Story " ( 2004 ) , 2 @,@ 000 . \n'
    )
    assert detokenize(wiki, "wikitext") == (
        '== Career ==\nHe had a guest-starring role in "Teddy\'s Story" (2004), 2,000.\n'
    )
    assert detokenize(" it was n't black monday \n cities\\/abc 's N \n", "ptb") == (
        "it wasn't black monday\ncities/abc's N\n"
    )
    assert (
        detokenize("`` Oh , no ! '' said the players ' king .", "cbt") == '"Oh, no!" said the players\' king.'
    )
    with pytest.raises(ValueError, match="unknown detokenizer"):
        detokenize("x", "nope")


def squeeze(text: str) -> str:
    """The text without whitespace and the escape characters the detokenizers drop."""
    return re.sub(r"\s|@|\\", "", text)


@pytest.mark.parametrize(
    "name, style", [("wikitext-2_tokens.test.first116.txt", "wikitext"), ("ptb.test.first200.txt", "ptb")]
)
def test_detokenizers_only_move_whitespace_and_escapes(name, style):
    text = (SAMPLE / name).read_text(encoding="utf-8")
    clean = detokenize(text, style)
    assert clean.count("\n") == text.count("\n") and len(clean) < len(text)
    assert squeeze(clean) == squeeze(text)


# --- equality with transformers on the same weights ---------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_pair(tmp_path_factory):
    """Our tiny GPT with GPT-2's vocabulary, and transformers' GPT2LMHeadModel loaded from its export."""
    ours = tiny_gpt(vocab_size=50257, seed=7)
    directory = tmp_path_factory.mktemp("hf") / "model"
    export_hf(ours, str(directory))
    theirs = GPT2LMHeadModel.from_pretrained(directory).eval()
    return ours, theirs, gpt2_tokenizer(str(ROOT / "tests" / "fixtures" / "gpt2_bpe"))


def hf_logprobs(model: GPT2LMHeadModel, tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: log p(tokens[j] | tokens[:j]) for j >= 1 from transformers (the context cut to fit the
    window), and the most likely token at each position."""
    tokens = tokens[-(BLOCK + 1) :]
    with torch.no_grad():
        logits = model(torch.tensor([tokens[:-1]])).logits[0].double()
    return logits.log_softmax(-1).gather(-1, torch.tensor(tokens[1:])[:, None])[:, 0], logits.argmax(-1)


def test_lambada_equals_transformers(gpt2_pair):
    ours, theirs, tokenizer = gpt2_pair
    passages = read_lambada(str(SAMPLE / "lambada_test.first100.jsonl"), max_examples=12)
    result = lambada(ours, lambada_examples(passages, tokenizer), batch_size=5)
    last, last_hits, word, word_hits = [], 0, [], 0
    for passage in passages:  # one passage at a time, each convention spelt out
        ids = tokenizer.encode(passage)
        logprobs, argmax = hf_logprobs(theirs, ids)
        last.append(logprobs[-1].item())
        last_hits += argmax[-1].item() == ids[-1]
        context, final = passage.rsplit(" ", 1)
        target = tokenizer.encode(" " + final)
        ids = tokenizer.encode(context) + target
        logprobs, argmax = hf_logprobs(theirs, ids)
        word.append(logprobs[-len(target) :].sum().item())
        word_hits += argmax[-len(target) :].tolist() == ids[-len(target) :]
    assert result["openai"]["ppl"] == pytest.approx(math.exp(-sum(last) / 12), rel=REL)
    assert result["harness"]["ppl"] == pytest.approx(math.exp(-sum(word) / 12), rel=REL)
    assert result["openai"]["acc"] == last_hits / 12 and result["harness"]["acc"] == word_hits / 12


def test_rolling_perplexity_equals_transformers_token_by_token(gpt2_pair):
    ours, theirs, tokenizer = gpt2_pair
    text = "".join((SAMPLE / "ptb.test.first200.txt").read_text().splitlines(keepends=True)[:14])
    context, stride = 48, 16
    result = perplexity(ours, text_documents([text], tokenizer, "ptb"), tokenizer.eot_id, context, stride)
    stream = [tokenizer.eot_id, *tokenizer.encode(detokenize(text, "ptb"))]
    nll = 0.0
    for p in range(1, len(stream)):  # every token, predicted from its window's context (closed form)
        if p <= context:
            begin = 0
        else:
            window_end = min(context + 1 + math.ceil((p - context) / stride) * stride, len(stream))
            begin = window_end - 1 - context
        with torch.no_grad():
            logits = theirs(torch.tensor([stream[begin:p]]), logits_to_keep=1).logits[0, -1].double()
        nll -= logits.log_softmax(-1)[stream[p]].item()
    words = len(text.split()) + text.count("\n")
    assert result["tokens"] == len(stream) - 1 > 4 * context and result["words"] == words
    assert result["ppl_token"] == pytest.approx(math.exp(nll / (len(stream) - 1)), rel=REL)
    assert result["ppl_word"] == pytest.approx(math.exp(nll / words), rel=REL)
    size = len(detokenize(text, "ptb").encode())
    assert result["bpb"] == pytest.approx(nll / math.log(2) / size, rel=REL)


def test_multiple_choice_equals_transformers(gpt2_pair):
    ours, theirs, tokenizer = gpt2_pair
    questions = read_cloze(str(SAMPLE / "storycloze_val.first50.jsonl"), max_examples=10) + read_cbt(str(CBT))
    result = multiple_choice(ours, choice_examples(questions, tokenizer), batch_size=4)
    hits = 0
    for q in questions:
        context = tokenizer.encode(q.context)
        totals = []
        for candidate in q.candidates:
            target = tokenizer.encode(candidate + q.continuation)
            totals.append(hf_logprobs(theirs, context + target)[0][-len(target) :].sum().item())
        hits += totals.index(max(totals)) == q.answer
    assert result["acc"] == hits / len(questions) and 0 < hits < len(questions)
