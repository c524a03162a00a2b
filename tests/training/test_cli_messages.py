"""What a new user sees: one line on Ctrl-C (exit 130), a note when --resume finds no checkpoint or warmup is
longer than the run, and the same parameter count from train, export and eval."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.command_line import EXIT_INTERRUPTED
from tests.training.release_fixture import write_release
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.cli import resume_hint
from training.metrics import read_metrics
from training.model import GPT, GPTConfig
from training.optim import lr_at
from webtext.cli import main

ROOT = Path(__file__).resolve().parents[2]
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d ")  # configure_logging's format: the trainer's progress lines
SMALL = [
    "--preset",
    "tiny",
    "--seq-len",
    "32",
    "--micro-batch",
    "4",
    "--log-every",
    "1",
    "--sample-tokens",
    "0",
]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("release")
    write_release(root)
    return root


def train(release: Path, out: Path, *extra: str) -> list[str]:
    """Run `webtext train` in this process; returns the messages it logged."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("webtext")
    logger.addHandler(handler)
    try:
        assert main(["train", "--data", str(release), "--out", str(out), *SMALL, *extra]) == 0
    finally:
        logger.removeHandler(handler)
    return messages


def lrs(run: Path) -> dict[int, float]:
    return {r["step"]: r["lr"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"}


@pytest.fixture(scope="module")
def short_run(release, tmp_path_factory) -> tuple[Path, list[str]]:
    """4 steps with the default 100 warmup steps."""
    out = tmp_path_factory.mktemp("short") / "run"
    return out, train(release, out, "--max-steps", "4", "--save-every", "4")


def test_a_warmup_not_shorter_than_the_run_is_capped_to_a_tenth_with_a_note(short_run):
    run, messages = short_run
    note = (
        "--warmup-steps 100 is not shorter than the run (4 steps): warming up for 1 step(s) (10% of the run)"
    )
    assert sum(m.startswith(note) for m in messages) == 1
    assert lrs(run) == {step: lr_at(step - 1, 6e-4, 6e-4 * 0.1, 1, 4) for step in range(1, 5)}
    assert lrs(run)[1] == 6e-4 and lrs(run)[2] > lrs(run)[3] > lrs(run)[4]  # the peak, then the decay


def test_resume_without_a_checkpoint_says_so_and_starts_from_scratch(release, tmp_path):
    run = tmp_path / "run"
    messages = train(release, run, "--max-steps", "3", "--warmup-steps", "2", "--save-every", "3", "--resume")
    assert f"--resume: no complete checkpoint in {run / 'checkpoints'}; starting from scratch" in messages
    assert load_checkpoint(latest_checkpoint(run / "checkpoints"))["step"] == 3
    # A warmup shorter than the run is left alone (exact-resume runs keep their losses).
    assert not any("--warmup-steps" in m for m in messages)
    assert lrs(run) == {step: lr_at(step - 1, 6e-4, 6e-4 * 0.1, 2, 3) for step in range(1, 4)}


def test_train_export_and_eval_state_the_same_parameter_count(short_run, tmp_path, capsys):
    run, messages = short_run
    config = GPTConfig(**load_checkpoint(latest_checkpoint(run / "checkpoints"))["model_config"])
    label = GPT(config).params_label()
    assert re.fullmatch(r"0\.\d\dM parameters \(0\.\d\dM non-embedding\)", label)
    assert any(f"training tiny, {label}, on cpu" in m for m in messages)

    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "hf")]) == 0
    assert f"gpt2, {label}" in capsys.readouterr().out

    text = tmp_path / "sample.txt"
    text.write_text("the city was known for its school and the new state national world\n" * 8)
    assert main(["eval", "--checkpoint", str(run), "--task", f"sample={text}", "--device", "cpu"]) == 0
    assert f"ours: run/step-00000004, {label} |" in capsys.readouterr().out


def test_ctrl_c_in_train_prints_one_line_and_exits_130(release, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", str(release), "--out", str(run), *SMALL, "--max-steps", "100000"]
    command = [sys.executable, "-m", "webtext.cli", *args, "--save-every", "1"]
    # A shell without job control starts background jobs with SIGINT ignored, and the child would inherit
    # that (a test run as `make test &` then hung here): give it the default, as a terminal would.
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in process.stderr:
            if " step 2/" in line:  # step 1 is saved by now
                break
        process.send_signal(signal.SIGINT)
        rest = process.stderr.read()
        assert process.wait(timeout=60) == EXIT_INTERRUPTED
    finally:
        process.kill()
    assert "Traceback" not in rest
    last = [line for line in rest.splitlines() if not LOG_LINE.match(line)]
    newest = latest_checkpoint(run / "checkpoints")
    assert last == [f"webtext train: interrupted; the same command with --resume continues from {newest}"]


def test_the_resume_hint_of_a_run_without_checkpoints(tmp_path):
    assert resume_hint(tmp_path) == "no checkpoint was saved yet, so the same command starts over"


@pytest.mark.parametrize(
    "argv, patched",
    [
        (["eval", "--hf", "m", "--task", "t=x"], "training.cli_eval.run_eval"),
        (["finetune", "--checkpoint", "m", "--task", "classification", "--dev", "d", "--out", "o"],
         "training.cli_finetune.run_finetune"),
    ],
)  # fmt: skip
def test_ctrl_c_in_eval_and_finetune_prints_one_line_and_exits_130(argv, patched, monkeypatch, capsys):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(patched, interrupt)
    assert main(argv) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err == f"webtext {argv[0]}: interrupted; no results were written; the same command starts over\n"


def test_fsdp_without_torchrun_is_one_line(release, tmp_path, monkeypatch, capsys):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    code = main(["train", "--data", str(release), "--out", str(tmp_path / "run"), *SMALL, "--fsdp"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "torchrun --nproc_per_node=N" in err[0], err
