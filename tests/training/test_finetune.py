"""GPT-1 fine-tuning: the task readers on real rows, the exact input layouts, the model wrapper and its
L3 = L2 + lambda * L1 objective, and `webtext finetune` end to end on a tiny exported model."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from corpus.errors import InputError
from corpus.tokenizer import Tokenizer, gpt2_tokenizer, train_tokenizer
from training.checkpoint import save_checkpoint
from training.finetune import (
    FinetuneGPT,
    collate,
    load_finetuned,
    losses,
    lr_at,
    majority_baseline,
    predict,
)
from training.finetune_tasks import (
    Example,
    SpecialTokens,
    encode_examples,
    hash_split,
    label_ids,
    label_names,
    layout,
    read_examples,
)
from training.hf_format import export_hf
from training.model import GPT, preset
from webtext.cli import main as webtext_main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "finetune"
SST2 = FIXTURES / "sst2_dev.first40.tsv"
MRPC = FIXTURES / "mrpc_dev.first40.tsv"
RTE = FIXTURES / "rte_val_superglue.first40.jsonl"
CLOZE_VAL = FIXTURES / "storycloze_spring2016_val.first30.csv"
CLOZE_TEST = FIXTURES / "storycloze_spring2016_test.first30.csv"
FILES = {"classification": SST2, "similarity": MRPC, "entailment": RTE, "multiple-choice": CLOZE_VAL}

S, D, E = 50257, 50258, 50259  # [s], $, [e] after GPT-2's 50,257 tokens
GPT2 = SpecialTokens.after_vocab(50257)


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer(str(ROOT / "tests" / "fixtures" / "gpt2_bpe"))


@pytest.fixture(scope="module")
def small_tokenizer():
    texts = [t for kind, path in FILES.items() for e in read_examples(str(path), kind) for t in e.texts]
    return train_tokenizer(texts, vocab_size=500)


def tiny_gpt(vocab_size: int, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(preset("tiny", vocab_size=vocab_size, block_size=64, n_embd=32)).eval()


def wrapped(kind: str, num_classes: int = 2, vocab_size: int = 100, dropout: float = 0.0) -> FinetuneGPT:
    torch.manual_seed(1)
    return FinetuneGPT.from_pretrained(tiny_gpt(vocab_size), kind, num_classes, dropout, clf_dropout=0.0)


# --- reading the real files -------------------------------------------------------------------------------


def test_the_readers_parse_each_real_format():
    sst2 = read_examples(str(SST2), "classification")
    assert len(sst2) == 40 and sst2[0] == Example(("it 's a charming and often affecting journey .",), "1")
    mrpc = read_examples(str(MRPC), "similarity")  # UTF-8 BOM before the header; unquoted TSV
    assert len(mrpc) == 40 and mrpc[0].label == "1"
    assert mrpc[0].texts[1] == '"The foodservice pie business does not fit our long-term growth strategy.'
    rte = read_examples(str(RTE), "entailment")
    assert (
        rte[1].texts[1] == "Bacteria is winning the war against antibiotics." and rte[1].label == "entailment"
    )
    cloze = read_examples(str(CLOZE_VAL), "multiple-choice")
    assert cloze[0].texts[0].startswith("Rick grew up in a troubled household. He never found good support")
    assert cloze[0].choices == ("He is happy now.", "He joined a gang.") and cloze[0].label == "1"
    assert label_names(cloze, "multiple-choice") == ["1", "2"]
    assert label_ids(cloze[:1], ["1", "2"], "x") == [0]
    assert label_names(rte, "entailment") == ["entailment", "not_entailment"]
    assert Counter(label_ids(mrpc, ["0", "1"], "x")) == {1: 25, 0: 15}


def test_bad_task_files_raise_one_error_naming_the_file_and_the_problem(tmp_path):
    bad_header = tmp_path / "sst.tsv"
    bad_header.write_text("text\tlabel\nfine\t1\n")
    with pytest.raises(InputError, match=r"sst\.tsv: the header .* lacks the column\(s\) sentence"):
        read_examples(str(bad_header), "classification")
    short_row = tmp_path / "short.tsv"
    short_row.write_text("sentence\tlabel\nfine\t1\nno label here\n")
    with pytest.raises(InputError, match=r"short\.tsv:3: 1 fields where the header has 2"):
        read_examples(str(short_row), "classification")
    bad_json = tmp_path / "rte.jsonl"
    bad_json.write_text('{"premise": "a", "hypothesis": "b", "label": "entailment"}\n{"premise": \n')
    with pytest.raises(InputError, match=r"rte\.jsonl:2: not JSON"):
        read_examples(str(bad_json), "entailment")
    unlabelled = tmp_path / "test.jsonl"
    unlabelled.write_text('{"premise": "a", "hypothesis": "b", "idx": 0}\n')
    with pytest.raises(InputError, match=r"test\.jsonl:1: no 'label'"):
        read_examples(str(unlabelled), "entailment")
    with pytest.raises(InputError, match=r"missing\.csv: not found"):
        read_examples(str(tmp_path / "missing.csv"), "multiple-choice")
    with pytest.raises(InputError, match=r"dev\.tsv: label\(s\) '7' not among \['0', '1'\]"):
        label_ids([Example(("x",), "7")], ["0", "1"], "dev.tsv")


def test_the_hash_split_is_stable_disjoint_and_independent_of_row_order():
    rows = read_examples(str(SST2), "classification")
    train, test = hash_split(rows, 0.5)
    assert len(train) + len(test) == 40 and not {r.key for r in train} & {r.key for r in test}
    assert 10 <= len(train) <= 30
    train_reversed, _ = hash_split(rows[::-1], 0.5)
    assert {r.key for r in train_reversed} == {r.key for r in train}
    assert {r.key for r in hash_split(rows[:10], 0.5)[0]} == {r.key for r in train if r in rows[:10]}
    assert len(hash_split(rows, 0.9)[0]) > len(train)
    with pytest.raises(InputError, match="train fraction"):
        hash_split(rows, 1.0)


# --- input transformations --------------------------------------------------------------------------------


def test_classification_layout_is_start_text_extract(gpt2):
    [[sequence]] = encode_examples([Example(("a fine film .",), "1")], "classification", gpt2, GPT2, 512)
    assert sequence == [S, 64, 3734, 2646, 764, E]
    rows = read_examples(str(SST2), "classification")
    encoded = encode_examples(rows, "classification", gpt2, GPT2, 512)
    assert all(seqs == [[S, *gpt2.encode(r.texts[0]), E]] for r, seqs in zip(rows, encoded, strict=True))


def test_entailment_layout_is_start_premise_delimiter_hypothesis_extract(gpt2):
    example = Example(("A man sleeps.", "A man is asleep."), "entailment")
    [[sequence]] = encode_examples([example], "entailment", gpt2, GPT2, 512)
    assert sequence == [S, 32, 582, 44263, 13, D, 32, 582, 318, 16039, 13, E]
    row = read_examples(str(RTE), "entailment")[0]
    [[sequence]] = encode_examples([row], "entailment", gpt2, GPT2, 512)
    assert sequence == [S, *gpt2.encode(row.texts[0]), D, *gpt2.encode(row.texts[1]), E]


def test_similarity_gives_both_orderings(gpt2):
    example = Example(("It rained.", "He got wet."), "1")
    [sequences] = encode_examples([example], "similarity", gpt2, GPT2, 512)
    assert sequences == [
        [S, 1026, 374, 1328, 13, D, 1544, 1392, 9583, 13, E],
        [S, 1544, 1392, 9583, 13, D, 1026, 374, 1328, 13, E],
    ]


def test_multiple_choice_gives_one_sequence_per_answer(gpt2):
    example = Example(("It rained.",), "1", ("He got wet.", "He stayed dry."))
    [sequences] = encode_examples([example], "multiple-choice", gpt2, GPT2, 512)
    assert sequences == [
        [S, 1026, 374, 1328, 13, D, 1544, 1392, 9583, 13, E],
        [S, 1026, 374, 1328, 13, D, 1544, 9658, 5894, 13, E],
    ]
    row = read_examples(str(CLOZE_TEST), "multiple-choice")[0]
    [sequences] = encode_examples([row], "multiple-choice", gpt2, GPT2, 512)
    context = gpt2.encode(row.texts[0])
    assert sequences == [[S, *context, D, *gpt2.encode(answer), E] for answer in row.choices]


def test_long_inputs_are_cut_from_the_left_of_the_longest_segment_keeping_the_special_tokens():
    special = SpecialTokens(100, 101, 102)
    premise, hypothesis = list(range(30)), list(range(50, 60))
    assert layout([premise, hypothesis], special, 16) == [100, *range(24, 30), 101, *range(53, 60), 102]
    assert layout([premise, hypothesis], special, 30) == [100, *range(13, 30), 101, *range(50, 60), 102]
    assert layout([list(range(10))], special, 8) == [100, *range(4, 10), 102]
    assert layout([list(range(3))], special, 8) == [100, 0, 1, 2, 102]
    with pytest.raises(ValueError, match="no room"):
        layout([premise, hypothesis], special, 4)


# --- the model and its objective --------------------------------------------------------------------------


def test_three_token_embeddings_are_added_and_tied_to_the_output_layer():
    torch.manual_seed(3)
    pretrained = GPT(preset("tiny", vocab_size=300, n_embd=256, n_head=4))
    model = FinetuneGPT.from_pretrained(pretrained, "classification", 2)
    wte = model.gpt.transformer.wte.weight
    assert wte.shape == (303, 256) and model.gpt.lm_head.weight is wte
    assert torch.equal(wte[:300], pretrained.transformer.wte.weight)
    assert 0.015 < wte[300:].std().item() < 0.025 and abs(wte[300:].mean().item()) < 0.005
    assert model.special == SpecialTokens(300, 301, 302)
    for name, tensor in pretrained.state_dict().items():
        if "wte" not in name and "lm_head" not in name:
            assert torch.equal(model.gpt.state_dict()[name], tensor), name


def test_the_head_reads_the_extract_state_whatever_the_padding():
    model = wrapped("classification").eval()
    short = [[[100, 5, 6, 102]]]
    long = [[[100, 7, 8, 9, 10, 11, 12, 102]]]
    batch = collate(short + long, [0, 1])
    assert batch.extract.tolist() == [[3], [7]] and batch.idx[0, 0, 4:].eq(0).all()
    assert batch.lm_targets[0, 0].tolist() == [5, 6, 102, -1, -1, -1, -1, -1]
    with torch.no_grad():
        together, _ = model(batch.idx, batch.extract)
        alone, _ = model(collate(short, [0]).idx, collate(short, [0]).extract)
        h = model.hidden_states(collate(short, [0]).idx[:, 0])
    torch.testing.assert_close(together[0], alone[0])
    torch.testing.assert_close(alone[0], model.clf_head(h[0, 3]))


def test_similarity_adds_the_final_states_of_both_orderings():
    model = wrapped("similarity").eval()
    a, b = [5, 6, 7], [8, 9]
    forward = [[[100, *a, 101, *b, 102], [100, *b, 101, *a, 102]]]
    swapped = [[[100, *b, 101, *a, 102], [100, *a, 101, *b, 102]]]
    with torch.no_grad():
        logits, _ = model(collate(forward, [0]).idx, collate(forward, [0]).extract)
        logits_swapped, _ = model(collate(swapped, [0]).idx, collate(swapped, [0]).extract)
        h1 = model.hidden_states(torch.tensor([forward[0][0]]))[0, -1]
        h2 = model.hidden_states(torch.tensor([forward[0][1]]))[0, -1]
    assert logits.shape == (1, 2)
    torch.testing.assert_close(logits, logits_swapped)
    torch.testing.assert_close(logits[0], model.clf_head(h1 + h2))


def test_multiple_choice_scores_each_answer_and_softmaxes_over_them():
    model = wrapped("multiple-choice", num_classes=3).eval()
    assert model.clf_head.out_features == 1
    example = [[[100, 5, 101, 6, 102], [100, 5, 101, 7, 8, 102], [100, 5, 101, 9, 102]]]
    batch = collate(example, [2])
    with torch.no_grad():
        logits, _ = model(batch.idx, batch.extract)
        third = model.hidden_states(torch.tensor([example[0][2]]))[0, -1]
    assert logits.shape == (1, 3)
    torch.testing.assert_close(logits[0, 2], model.clf_head(third)[0])


def gradients(model: FinetuneGPT, batch, lambda_lm: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    model.zero_grad()
    total, clf_loss, lm_loss = losses(model, batch, lambda_lm)
    total.backward()
    return total.detach(), model.gpt.transformer.wte.weight.grad.clone(), lm_loss


def test_the_auxiliary_lm_loss_is_on_or_off_as_configured():
    model = wrapped("entailment", dropout=0.0)
    batch = collate([[[100, 5, 6, 101, 7, 102]], [[100, 8, 101, 9, 10, 11, 102]]], [0, 1])
    logits, lm_loss = model(batch.idx, batch.extract, batch.lm_targets)
    l2 = torch.nn.functional.cross_entropy(logits, batch.labels)

    off, grad_off, lm_off = gradients(model, batch, 0.0)
    assert lm_off != lm_off  # nan: L1 is not even computed
    torch.testing.assert_close(off, l2.detach())
    model.zero_grad()
    l2_again, _ = model(batch.idx, batch.extract)
    torch.nn.functional.cross_entropy(l2_again, batch.labels).backward()
    torch.testing.assert_close(grad_off, model.gpt.transformer.wte.weight.grad)

    on, grad_on, lm_on = gradients(model, batch, 0.5)
    torch.testing.assert_close(on, (l2 + 0.5 * lm_loss).detach())
    assert lm_on == pytest.approx(lm_loss.item())
    assert not torch.allclose(grad_on, grad_off)
    # Only L1 reaches the output-layer rows of tokens that are never inputs: their gradient is 0 without it.
    assert grad_off[50:100].abs().sum() == 0 and grad_on[50:100].abs().sum() > 0


def test_learning_rate_warms_up_then_decays_linearly_to_zero():
    rates = [lr_at(step, 1.0, 2, 10) for step in range(10)]
    assert rates[:3] == [0.5, 1.0, 1.0] and rates[-1] == pytest.approx(0.125)
    assert all(a > b for a, b in zip(rates[2:], rates[3:], strict=False))
    assert lr_at(10, 1.0, 2, 10) == 0.0


def test_majority_baseline_predicts_the_most_frequent_training_label():
    assert majority_baseline([1, 1, 0], [0, 0, 1, 1, 1]) == (1, 0.6)
    assert majority_baseline([0, 1], [1, 1, 1, 0]) == (0, 0.25)  # a tie goes to the smaller label


# --- `webtext finetune` end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory, small_tokenizer) -> Path:
    directory = tmp_path_factory.mktemp("hf") / "model"
    export_hf(tiny_gpt(small_tokenizer.vocab_size), str(directory), eot_id=small_tokenizer.eot_id)
    small_tokenizer.save(str(directory))
    return directory


def finetune_args(checkpoint: Path, out: Path, kind: str, dev: Path, *extra: str) -> list[str]:
    return ["finetune", "--checkpoint", str(checkpoint), "--task", kind, "--dev", str(dev), "--out", str(out),
            "--batch-size", "8", "--epochs", "2", "--seed", "3", *extra]  # fmt: skip


def test_finetune_command_on_a_hash_split_writes_results_and_weights(hf_model, tmp_path):
    out = tmp_path / "out"
    args = finetune_args(hf_model, out, "similarity", MRPC, "--save", "--lambda", "0.5")
    done = subprocess.run(
        [sys.executable, "-m", "webtext.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    train, test = hash_split(read_examples(str(MRPC), "similarity"), 0.5)
    train_y, test_y = label_ids(train, ["0", "1"], ""), label_ids(test, ["0", "1"], "")
    assert (results["train_examples"], results["test_examples"]) == (len(train), len(test))
    assert results["steps"] == 2 * -(-len(train) // 8) and results["lambda"] == 0.5
    majority = Counter(train_y).most_common(1)[0][0]
    assert results["majority_label"] == str(majority)
    assert results["majority_baseline"] == pytest.approx(test_y.count(majority) / len(test_y))
    assert "hash split" in results["split"] and 0.0 <= results["accuracy"] <= 1.0
    assert f"accuracy {results['accuracy']:.4f}" in done.stdout

    model, labels = load_finetuned(str(out / "model.safetensors"))
    assert labels == ["0", "1"] and model.gpt.config.vocab_size == 503
    encoded = encode_examples(
        test, "similarity", Tokenizer.load(str(hf_model / "tokenizer.json")), model.special, 64
    )
    predictions = predict(model, encoded)
    assert sum(p == y for p, y in zip(predictions, test_y, strict=True)) / len(test_y) == results["accuracy"]


def test_finetune_from_a_run_directory_is_deterministic_and_lambda_changes_the_run(small_tokenizer, tmp_path):
    run = tmp_path / "run"
    gpt = tiny_gpt(small_tokenizer.vocab_size)
    state = {"model": gpt.state_dict(), "model_config": dataclasses.asdict(gpt.config)}
    save_checkpoint(run / "checkpoints", 2, state, keep=1)
    small_tokenizer.save(str(run / "tokenizer.json"))
    (run / "config.toml").write_text("")  # the trainer writes its run config there too
    common = ["--train", str(CLOZE_VAL), "--max-examples", "16", "--max-len", "48"]

    def results(name: str, *extra: str) -> dict:
        args = finetune_args(run, tmp_path / name, "multiple-choice", CLOZE_TEST, *common, *extra)
        assert webtext_main(args) == 0
        return json.loads((tmp_path / name / "results.json").read_text())

    first, again, no_aux = results("a"), results("b"), results("c", "--lambda", "0")
    assert first == again
    assert (first["train_examples"], first["test_examples"], first["max_len"]) == (16, 16, 48)
    assert no_aux["lambda"] == 0.0 and no_aux["final_loss"] < first["final_loss"]  # L3 without 0.5 * L1
    assert "train file" in first["split"]


def test_finetune_command_reports_bad_input_in_one_line(hf_model, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"premise": "a", "hypothesis": "b"}\n')
    args = finetune_args(hf_model, tmp_path / "out", "entailment", bad)
    done = subprocess.run(
        [sys.executable, "-m", "webtext.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    message = f"webtext finetune: error: {bad}:1: no 'label' (an unlabelled test file?)"
    assert done.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "out" / "results.json").exists()
    assert webtext_main(finetune_args(hf_model, tmp_path / "out", "entailment", RTE, "--max-len", "3")) == 2
    assert (
        capsys.readouterr().err.strip()
        == "webtext finetune: error: --max-len 3: max_len 3 leaves no room for 2 segment(s)"
    )
