"""`--config run.toml` for train and finetune: the documented example loads, flags the user typed override the
file (and only those), bad files and shapes stop with one line, the effective config is written where a
rerun can read it, and `--resume` refuses a changed model shape."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from corpus.errors import InputError
from tests.training.release_fixture import write_release
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.cli import train_config_of
from training.cli_finetune import finetune_config_of
from training.config import GPTConfig, TrainConfig, model_config, preset, shape_changes
from training.run_config import FINETUNE, TRAIN, read_config, train_config, train_toml
from webtext.cli import build_parser
from webtext.cli import main as webtext_main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "training" / "run.example.toml"
SST2 = ROOT / "tests" / "fixtures" / "finetune" / "sst2_dev.first40.tsv"
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d ")  # the trainer's progress lines on stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def parsed_train(*argv: str) -> TrainConfig:
    return train_config_of(build_parser().parse_args(["train", *argv]))


def webtext(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "webtext.cli", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


# --- the file and the flags -------------------------------------------------------------------------------


def test_the_documented_example_loads_every_section():
    config = parsed_train("--config", str(EXAMPLE))
    assert (config.data, config.out, config.preset) == ("build/demo/release", "build/runs/example", "tiny")
    assert config.overrides == {"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0}
    assert (config.seq_len, config.max_steps, config.warmup_steps, config.save_every) == (64, 300, 30, 100)
    assert config.betas == (0.9, 0.95) and isinstance(config.epochs, float)
    # Every section of the layout appears in the example, so the example documents them all.
    assert set(tomllib.loads(EXAMPLE.read_text())) == set(TRAIN.sections)


def test_typed_flags_override_the_file_and_untyped_ones_leave_it_alone(tmp_path):
    file = write(
        tmp_path / "run.toml",
        '[run]\ndata = "R"\nout = "O"\n[model]\npreset = "mini"\nn_layer = 3\n'
        "[data]\nmicro_batch = 2\n[optimizer]\nlr = 0.01\nwarmup_steps = 5\n[checkpoint]\nresume = true\n",
    )
    config = parsed_train("--config", str(file), "--lr", "0.002", "--n-layer", "5", "--out", "O2")
    assert (config.lr, config.overrides["n_layer"], config.out) == (0.002, 5, "O2")  # flags win
    assert (config.micro_batch, config.warmup_steps, config.resume) == (2, 5, True)  # file values kept
    assert (config.preset, config.data) == ("mini", "R")
    assert (config.weight_decay, config.keep) == (0.1, 3)  # neither: the defaults
    # A flag left at what would be its default still overrides the file when typed.
    assert parsed_train("--config", str(file), "--micro-batch", "8").micro_batch == 8


def test_precedence_defaults_then_preset_then_file_then_flags(tmp_path):
    # gpt1's dropout (0.1) beats the default; the file's n_embd beats the preset; the flag beats the file.
    file = write(
        tmp_path / "run.toml", '[run]\ndata = "R"\nout = "O"\n[model]\npreset = "gpt1"\nn_embd = 96\n'
    )
    model = model_config(parsed_train("--config", str(file), "--n-head", "4"), vocab_size=400)
    assert (model.dropout, model.n_embd, model.n_head, model.block_size) == (0.1, 96, 4, 512)
    assert model.vocab_size == 400  # the release tokenizer's, unless a larger one is asked for
    assert model_config(TrainConfig("R", "O", overrides={"vocab_size": 512}), 400).vocab_size == 512


def test_without_a_file_data_and_out_are_still_required():
    with pytest.raises(InputError, match=r"^--out DIR is required \(a flag, or \[run\] out in"):
        parsed_train("--data", "R")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[model]\nn_layers = 3\n", r"\[model\] n_layers: unknown key; \[model\] holds preset, vocab_size,"),
        ("[optimiser]\nlr = 0.1\n", r"unknown section \[optimiser\]; known: run, model, data"),
        ("lr = 0.1\n", r"lr: a key outside any section; it belongs under \[optimizer\]"),
        ('[optimizer]\nlr = "fast"\n', r"\[optimizer\] lr: expected a number, got \"fast\""),
        ("[training]\nmax_steps = 2.5\n", r"\[training\] max_steps: expected an integer, got 2.5"),
        ("[run]\ncompile = 1\n", r"\[run\] compile: expected true or false, got 1"),
        ("[optimizer]\nbetas = [0.9]\n", r"\[optimizer\] betas: expected a list of 2 numbers, got \[0.9\]"),
        ("[data]\nmicro_batch = 0\n", r"\[data\] micro_batch: must be >= 1, got 0"),
        ('[model]\npreset = "huge"\n', r"\[model\] preset: 'huge' is not one of gpt2-124m,"),
        ("[model\n", r"not valid TOML \("),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    file = write(tmp_path / "run.toml", text)
    with pytest.raises(InputError, match=re.escape(str(file)) + ": " + message) as caught:
        read_config(str(file), TRAIN)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(InputError, match=r"nope.toml: config file not found$"):
        read_config(str(tmp_path / "nope.toml"), TRAIN)


def test_impossible_shapes_and_a_too_small_vocabulary_are_refused():
    with pytest.raises(InputError, match=r"^model: n_embd \(64\) must be a multiple of n_head \(3\)$"):
        model_config(TrainConfig("R", "O", overrides={"n_head": 3}), vocab_size=400)
    with pytest.raises(
        InputError, match=r"^model: vocab_size 300 is smaller than the release tokenizer's 400"
    ):
        model_config(TrainConfig("R", "O", overrides={"vocab_size": 300}), vocab_size=400)


def test_shape_changes_name_the_fields_that_change_the_weights():
    old = preset("tiny", vocab_size=400)
    assert shape_changes(old, preset("tiny", vocab_size=400, dropout=0.2)) == []  # not a shape
    new = preset("tiny", vocab_size=400, n_layer=3, bias=False)
    assert shape_changes(old, new) == ["n_layer 2 -> 3", "bias True -> False"]


def test_the_written_config_reads_back_as_the_same_config(tmp_path):
    config = parsed_train("--config", str(EXAMPLE), "--global-batch-tokens", "4096", "--peak-flops", "1e12")
    file = write(tmp_path / "config.toml", train_toml(config))
    assert train_config(read_config(str(file), TRAIN)) == config


def test_finetune_flags_override_its_file_section(tmp_path):
    file = write(
        tmp_path / "ft.toml",
        '[finetune]\ncheckpoint = "RUN"\ntask = "classification"\ndev = "d.tsv"\nout = "O"\n'
        "lr = 0.001\nbatch_size = 4\nsave = true\nbetas = [0.8, 0.9]\n",
    )
    args = build_parser().parse_args(
        ["finetune", "--config", str(file), "--lr", "0.5", "--task", "entailment"]
    )
    config = finetune_config_of(args)
    assert (config.lr, config.task, config.batch_size, config.save) == (0.5, "entailment", 4, True)
    assert (config.betas, config.epochs, config.checkpoint) == ((0.8, 0.9), 3, "RUN")
    bad = write(tmp_path / "bad.toml", "[finetune]\nbatch = 4\n")
    with pytest.raises(InputError, match=r"bad.toml: \[finetune\] batch: unknown key"):
        read_config(str(bad), FINETUNE)


# --- real runs ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Two steps of a user-sized model (3 layers, width 48) from a TOML file, `--max-steps` from a flag."""
    root = tmp_path_factory.mktemp("config")
    release = write_release(root / "release")
    out = root / "run"
    file = write(
        root / "run.toml",
        f'[run]\ndata = "{release}"\nout = "{out}"\ndevice = "cpu"\n'
        '[model]\npreset = "tiny"\nn_layer = 3\nn_head = 3\nn_embd = 48\nblock_size = 32\n'
        "[data]\nmicro_batch = 4\nshuffle_buffer = 8\n[training]\nmax_steps = 50\n"
        "[optimizer]\nwarmup_steps = 1\n[metrics]\nlog_every = 1\neval_batches = 1\n",
    )
    done = webtext("train", "--config", str(file), "--max-steps", "2", "--sample-tokens", "0")
    assert done.returncode == 0, done.stderr
    return out


def test_a_run_from_a_file_and_a_flag_trains_the_model_it_describes(run):
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert state["step"] == 2  # the flag, not the file's 50
    model = GPTConfig(**state["model_config"])
    assert (model.n_layer, model.n_head, model.n_embd, model.block_size, model.vocab_size) == (
        3,
        3,
        48,
        32,
        400,
    )
    assert state["tokens"] == 2 * 4 * 32  # seq_len: the model's context
    saved = state["train_config"]
    assert saved["max_steps"] == 2 and saved["overrides"] == json.loads(json.dumps(state["model_config"]))
    written = read_config(str(run / "config.toml"), TRAIN)
    assert written["n_layer"] == 3 and written["vocab_size"] == 400 and written["max_steps"] == 2


def test_resume_with_a_changed_shape_is_refused_in_one_line(run):
    before = (run / "config.toml").read_text()
    done = webtext("train", "--config", str(run / "config.toml"), "--resume", "--n-layer", "4")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if not LOG_LINE.match(line)]
    newest = latest_checkpoint(run / "checkpoints")
    assert lines == [
        f"webtext train: error: {newest}: --resume refused: the model's shape changed (n_layer 3 -> 4); "
        f"resume with the checkpoint's shape (--config {run / 'config.toml'}) or start a new run in another "
        "--out"
    ]
    assert (run / "config.toml").read_text() == before  # the refused run wrote nothing


def test_the_written_config_resumes_the_run_with_a_new_schedule(run, tmp_path):
    # lr and max_steps may change on a resume; the shape comes back from config.toml.
    args = ["train", "--config", str(run / "config.toml"), "--resume", "--max-steps", "3", "--lr", "1e-3"]
    assert webtext_main([*args, "--sample-tokens", "0"]) == 0
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert state["step"] == 3 and state["train_config"]["lr"] == 1e-3
    assert read_config(str(run / "config.toml"), TRAIN)["resume"] is True


def test_finetune_from_a_file_writes_its_effective_config(run, tmp_path):
    out = tmp_path / "ft"
    file = write(
        tmp_path / "ft.toml",
        f'[finetune]\ncheckpoint = "{run}"\ntask = "classification"\ndev = "{SST2}"\nout = "{out}"\n'
        'batch_size = 4\nmax_examples = 8\nmax_steps = 5\nseed = 1\ndevice = "cpu"\n',
    )
    assert webtext_main(["finetune", "--config", str(file), "--max-steps", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 2 and results["hyperparameters"]["batch_size"] == 4
    written = read_config(str(out / "config.toml"), FINETUNE)
    assert written["max_steps"] == 2 and written["checkpoint"] == str(run) and written["seed"] == 1
