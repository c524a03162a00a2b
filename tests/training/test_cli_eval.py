"""`webtext eval` end to end: a trained checkpoint and a Hugging Face directory on the bundled samples, the
JSON and Table 3 outputs, tokenizer files, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from corpus.tokenizer import gpt2_tokenizer, load_model_tokenizer
from tests.training.release_fixture import write_release
from training.cli_eval import nearest_paper_size
from training.eval_tasks import parse_task, run_task
from training.hf_format import export_hf, import_hf
from training.model import GPT, GPTConfig
from webtext.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "corpus" / "sample" / "zero_shot"
GPT2_BPE = ROOT / "tests" / "fixtures" / "gpt2_bpe"
CBT = ROOT / "tests" / "fixtures" / "zero_shot" / "cbt_constructed.txt"
TASKS = [
    f"lambada={SAMPLE / 'lambada_test.first100.jsonl'}",
    f"wikitext2={SAMPLE / 'wikitext-2_tokens.test.first116.txt'}",
    f"ptb={SAMPLE / 'ptb.test.first200.txt'}",
    f"storycloze:cloze={SAMPLE / 'storycloze_val.first50.jsonl'}",
    f"cbt-cn={CBT}",
]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """A tiny random GPT-2 exported for Hugging Face, with OpenAI's GPT-2 vocabulary files beside it."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    export_hf(GPT(GPTConfig(vocab_size=50257, block_size=64, n_layer=1, n_head=2, n_embd=32)), str(directory))
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copyfile(GPT2_BPE / name, directory / name)
    return directory


def webtext(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "webtext.cli", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def task_args(*specs: str) -> list[str]:
    return [arg for spec in specs for arg in ("--task", spec)]


def test_eval_of_a_hugging_face_directory_writes_json_and_table3(hf_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "--hf", str(hf_dir), *task_args(*TASKS), "--detokenize", "--max-examples", "20"]
    assert main([*argv, "--stride", "64", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    table = (out / "table3.md").read_text()
    assert capsys.readouterr().out.startswith(table)

    assert results["model"]["source"] == str(hf_dir) and results["model"]["n_layer"] == 1
    assert list(results["tasks"]) == ["lambada", "wikitext2", "ptb", "storycloze", "cbt-cn"]
    lambada, wiki = results["tasks"]["lambada"], results["tasks"]["wikitext2"]
    assert lambada["examples"] == 20 and {"acc", "ppl", "definition"} <= set(lambada["harness"])
    assert wiki["detokenized"] and wiki["stride"] == 64 and wiki["context"] == 64
    assert results["tasks"]["storycloze"]["examples"] == 20 and results["tasks"]["cbt-cn"]["examples"] == 2

    # The command's numbers are the library's on the same weights and tokenizer.
    again = run_task(parse_task(TASKS[2]), import_hf(str(hf_dir)).eval(), gpt2_tokenizer(str(GPT2_BPE)),
                     max_examples=20, stride=64, detokenize=True)  # fmt: skip
    assert again["nll"] == pytest.approx(results["tasks"]["ptb"]["nll"], rel=1e-9)

    header, rule, ours, paper = table.splitlines()[2:6]
    assert header.startswith("| model | LAMBADA (PPL) | LAMBADA (ACC) | CBT-CN (ACC) | CBT-NE (ACC) |")
    assert ours.startswith(f"| ours: tiny-gpt2, {results['model']['params_label']} |")
    assert results["model"]["params_label"].endswith("M non-embedding)")
    assert ours.count("| – ") == 5  # CBT-NE, enwik8, ... empty
    assert f"| {lambada['openai']['ppl']:.2f} |" in ours and f"| {wiki['ppl_word']:.2f} |" in ours
    numbers = (
        "35.13 | 45.99 | 87.65 | 83.4 | 29.41 | 65.85 | 1.16 | 1.17 | 37.50 | 75.20"  # the paper's 117M row
    )
    assert paper == f"| GPT-2 paper, Table 3: 117M | {numbers} |"
    assert results["paper"]["size"] == "117M" and results["paper"]["LAMBADA (ACC)"] == 45.99
    assert "harness lambada_openai (whole word)" in table and "chance 50.00%" in table


def test_eval_of_a_trained_checkpoint_uses_the_runs_tokenizer(tmp_path):
    release = write_release(tmp_path / "release")
    run = tmp_path / "run"
    tiny = [
        "--preset",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "4",
        "--max-steps",
        "2",
        "--save-every",
        "2",
    ]
    train = webtext("train", "--data", str(release), "--out", str(run), *tiny, "--sample-tokens", "0")
    assert train.returncode == 0, train.stderr
    done = webtext("eval", "--checkpoint", str(run), *task_args(*TASKS), "--max-examples", "5",
                   "--paper-size", "1542M", "--out", str(tmp_path / "eval"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["model"]["source"].endswith("step-00000002") and results["model"]["vocab_size"] == 400
    assert results["settings"]["device"] == "cpu" and results["paper"]["chosen_by"] == "--paper-size"
    assert all(results["tasks"][name]["examples"] == 5 for name in ("lambada", "storycloze"))
    assert (
        "| ours: run/step-00000002, " in done.stdout
        and "| GPT-2 paper, Table 3: 1542M | 8.63 | 63.24 |" in done.stdout
    )


@pytest.mark.parametrize("layout", ["tokenizer.json", "vocab.json", "encoder.json"])
def test_model_directory_tokenizer_layouts_agree(tmp_path, layout):
    reference = gpt2_tokenizer(str(GPT2_BPE))
    if layout == "tokenizer.json":
        reference.save(str(tmp_path))
    elif layout == "vocab.json":  # Hugging Face's names; merges.txt without the "#version" header
        shutil.copyfile(GPT2_BPE / "encoder.json", tmp_path / "vocab.json")
        merges = (GPT2_BPE / "vocab.bpe").read_text(encoding="utf-8").split("\n", 1)[1]
        (tmp_path / "merges.txt").write_text(merges, encoding="utf-8")
    else:
        for name in ("encoder.json", "vocab.bpe"):
            shutil.copyfile(GPT2_BPE / name, tmp_path / name)
    text = "Hello world, it wasn't 2,000 <|endoftext|> ünïcode"
    loaded = load_model_tokenizer(str(tmp_path))
    assert loaded.encode(text) == reference.encode(text) and loaded.eot_id == 50256
    assert reference.encode("Hello world") == [15496, 995]


def test_paper_size_is_the_nearest_on_a_log_scale():
    sizes = {124e6: "117M", 355e6: "345M", 774e6: "762M", 1558e6: "1542M", 0.2e6: "117M", 3e9: "1542M"}
    assert {params: nearest_paper_size(int(params)) for params in sizes} == sizes


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "x:nope=f.txt"], "unknown kind 'nope'"),
        (["--task", "ptb=/no/such/ptb.txt"], "/no/such/ptb.txt: not found"),
        (["--task", f"ptb={CBT}", "--task", f"ptb={CBT}"], "names must be unique"),
        (["--task", f"cbt-ne={SAMPLE / 'ptb.test.first200.txt'}"], "ptb.test.first200.txt:1: a CBT line"),
        (
            ["--task", f"ptb={CBT}", "--context", "65"],
            "--context 65 is longer than the model's block_size 64",
        ),
        (
            ["--task", f"ptb={CBT}", "--context", "8", "--stride", "9"],
            "--stride 9 is longer than the context",
        ),
        (["--task", f"ptb={CBT}", "--device", "cuda:0"] if not torch.cuda.is_available() else [], "CUDA"),
    ],
)
def test_bad_input_is_one_line_exit_2(hf_dir, capsys, args, message):
    if not args:
        pytest.skip("CUDA is available here")
    assert main(["eval", "--hf", str(hf_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("webtext eval: error: ") and message in err and "\n" not in err


def test_missing_model_files_are_named(tmp_path, hf_dir, capsys):
    assert main(["eval", "--hf", str(tmp_path), "--task", f"ptb={CBT}"]) == 2
    assert f"{tmp_path}: not a Hugging Face model directory" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(hf_dir, bare, ignore=shutil.ignore_patterns("*.json", "*.bpe"))
    shutil.copyfile(hf_dir / "config.json", bare / "config.json")
    assert main(["eval", "--hf", str(bare), "--task", f"ptb={CBT}"]) == 2
    assert "no tokenizer (expected tokenizer.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: exactly one model source
        main(["eval", "--hf", str(hf_dir), "--checkpoint", str(tmp_path), "--task", f"ptb={CBT}"])
