"""The trainer end to end, in real processes: checkpoints, exact resume after a kill, export, torchrun DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.training.release_fixture import write_release
from tests.training.traces import latest_step, losses
from training.checkpoint import MARKER, complete_checkpoints, load_checkpoint
from training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[2]
COMMON = [
    "--preset", "tiny", "--seq-len", "32", "--micro-batch", "4", "--log-every", "1", "--eval-every", "6",
    "--eval-batches", "2", "--warmup-steps", "2", "--dropout", "0.1", "--shuffle-buffer", "8",
    "--sample-tokens", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("release")
    write_release(root)
    return root


def webtext(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "webtext.cli", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if check and done.returncode:
        raise AssertionError(f"{' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def torchrun(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*launcher, "-m", "webtext.cli", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if check and done.returncode:
        raise AssertionError(f"torchrun {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def train_args(release: Path, out: Path, steps: int, save_every: int, *extra: str) -> list[str]:
    return ["train", "--data", str(release), "--out", str(out), "--max-steps", str(steps),
            "--save-every", str(save_every), *COMMON, *extra]  # fmt: skip


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_checkpoint(a), load_checkpoint(b)
    for name, tensor in left["model"].items():
        assert torch.equal(tensor, right["model"][name]), name


def test_a_run_writes_checkpoints_metrics_and_the_loss_curve(release, tmp_path):
    out = tmp_path / "run"
    done = webtext(*train_args(release, out, 6, 2), "--keep", "2")
    assert [p.name for p in complete_checkpoints(out / "checkpoints")] == ["step-00000004", "step-00000006"]
    records = read_metrics(out / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert all(r["tokens_per_s"] > 0 and 0 <= r["data_wait"] <= 1 and r["mfu"] is None for r in train)
    assert train[0]["lr"] < train[1]["lr"]  # warmup
    assert any(r["kind"] == "val" for r in records)
    assert (out / "loss.png").stat().st_size > 1000
    assert list((out / "tb").iterdir())
    state = load_checkpoint(out / "checkpoints" / "step-00000006")
    assert state["step"] == 6 and state["tokens"] == 6 * 4 * 32
    assert "val loss" in done.stdout


def test_a_kill_during_a_save_resumes_bitwise_identical(release, tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    webtext(*train_args(release, straight, 12, 4))
    env = dict(os.environ, WEBTEXT_CRASH_IN_SAVE="8")
    crashed = webtext(*train_args(release, broken, 12, 4), env=env, check=False)
    assert crashed.returncode == 137
    # The half-written step 8 is not a checkpoint; the resume starts from step 4.
    assert [p.name for p in complete_checkpoints(broken / "checkpoints")] == ["step-00000004"]
    assert any(p.name.startswith(".tmp-step-00000008") for p in (broken / "checkpoints").iterdir())
    webtext(*train_args(release, broken, 12, 4), "--resume")
    assert losses(broken) == losses(straight)
    assert_same_weights(straight / "checkpoints" / "step-00000012", broken / "checkpoints" / "step-00000012")


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_sigkill_between_checkpoints_resumes_bitwise_identical(release, tmp_path, workers):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    extra = ("--num-workers", workers)
    webtext(*train_args(release, straight, 14, 5, *extra))
    command = [sys.executable, "-m", "webtext.cli", *train_args(release, killed, 14, 5, *extra)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file() and max(losses(killed), default=0) >= 7:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert latest_step(killed) < 14, "the run finished before it could be killed"
    webtext(*train_args(release, killed, 14, 5, *extra), "--resume")
    assert losses(killed) == losses(straight)


def test_export_loads_in_transformers_with_the_same_logits(release, tmp_path):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from training.checkpoint import load_model, load_tokenizer

    run = tmp_path / "run"
    webtext(*train_args(release, run, 2, 2))
    hf = tmp_path / "hf"
    done = webtext("export", "--checkpoint", str(run), "--out", str(hf))
    assert "export:" in done.stdout and (hf / "tokenizer.json").is_file()
    text = "the city <|endoftext|> of the new school"
    assert AutoTokenizer.from_pretrained(hf).encode(text) == load_tokenizer(str(run)).encode(text)
    ours = load_model(str(run))
    theirs = GPT2LMHeadModel.from_pretrained(str(hf)).eval()
    idx = torch.randint(0, ours.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], theirs(idx).logits, atol=1e-4)
    assert json.loads((hf / "config.json").read_text())["model_type"] == "gpt2"


def test_bad_runs_fail_with_one_line(release, tmp_path):
    done = webtext("train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), check=False)
    assert done.returncode == 2 and "nowhere" in done.stderr and "Traceback" not in done.stderr
    done = webtext(*train_args(release, tmp_path / "o", 2, 2), "--global-batch-tokens", "100", check=False)
    assert done.returncode == 2 and "not a multiple" in done.stderr
    broken = tmp_path / "run" / "checkpoints" / "step-00000002"
    broken.mkdir(parents=True)
    (broken / MARKER).write_text("ok\n")
    (broken / "state.pt").write_bytes(b"not a checkpoint")
    done = webtext("export", "--checkpoint", str(broken), "--out", str(tmp_path / "hf"), check=False)
    assert done.returncode == 2 and "state.pt" in done.stderr


def test_torchrun_ddp_resume_after_a_crash_matches_an_uninterrupted_run(release, tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    torchrun(*train_args(release, straight, 6, 2))
    crashed = torchrun(
        *train_args(release, broken, 6, 2), env=dict(os.environ, WEBTEXT_CRASH_IN_SAVE="4"), check=False
    )
    assert crashed.returncode != 0
    assert latest_step(broken) == 2
    torchrun(*train_args(release, broken, 6, 2), "--resume")
    assert losses(broken) == losses(straight)
    state = load_checkpoint(straight / "checkpoints" / "step-00000006")
    assert state["world_size"] == 2 and len(state["loaders"]) == 2
    assert state["tokens"] == 6 * 2 * 4 * 32
    assert_same_weights(straight / "checkpoints" / "step-00000006", broken / "checkpoints" / "step-00000006")


def test_torchrun_fsdp_trains_resumes_and_exports(release, tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    torchrun(*train_args(release, straight, 4, 2), "--fsdp")
    env = dict(os.environ, WEBTEXT_CRASH_IN_SAVE="4")
    assert torchrun(*train_args(release, broken, 4, 2), "--fsdp", env=env, check=False).returncode != 0
    torchrun(*train_args(release, broken, 4, 2), "--fsdp", "--resume")
    assert losses(broken) == losses(straight)
    # The checkpoint holds full (unsharded) weights: it loads in one process.
    assert_same_weights(straight / "checkpoints" / "step-00000004", broken / "checkpoints" / "step-00000004")
    webtext("export", "--checkpoint", str(straight), "--out", str(tmp_path / "hf"))


def test_torchrun_ranks_read_disjoint_documents_covering_the_epoch_once(release, tmp_path):
    from corpus.shards import read_shard

    out = tmp_path / "keys.json"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    script = str(ROOT / "tests" / "training" / "rank_documents.py")
    subprocess.run([*launcher, script, str(release), str(out)], cwd=ROOT, check=True, timeout=300)
    first, second = json.loads(out.read_text())
    everything = sorted(s.key for shard in release.glob("train-*.tar") for s in read_shard(str(shard)))
    assert first and second and not set(first) & set(second)
    assert sorted(first + second) == everything
