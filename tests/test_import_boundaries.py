"""The two halves stay apart: the training verbs run where apache_beam is not installed (a trainer image), and
the Beam verbs never import torch. Each runs `webtext` in a fresh interpreter whose import system refuses the
other half's framework, as a missing package would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import SAMPLE
from tests.training.release_fixture import write_release

ROOT = Path(__file__).resolve().parent.parent
# Raises ModuleNotFoundError for the blocked top-level packages, then runs the console script's entry point.
RUNNER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
sys.meta_path.insert(0, Block())
sys.argv = ["webtext", *sys.argv[2:]]
from pipelines.cli import main
code = main()
leaked = sorted(BLOCKED & {m.split(".")[0] for m in sys.modules})
assert not leaked, leaked
sys.exit(code)
"""


def webtext_without(blocked: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", RUNNER, blocked, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_training_verbs_run_without_apache_beam(tmp_path):
    release = write_release(tmp_path / "release")
    run = webtext_without(
        "apache_beam",
        "train", "--data", str(release), "--out", "run", "--max-steps", "4", "--save-every", "4",
        "--eval-every", "4", "--micro-batch", "2", "--seq-len", "32",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    run = webtext_without("apache_beam", "export", "--checkpoint", "run", "--out", "hf", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def test_beam_verbs_never_import_torch(tmp_path):
    run = webtext_without("torch", "links", "--dumps", f"{SAMPLE}/*", "--out", "work", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]


def test_help_answers_without_importing_either_framework(tmp_path):
    for verb in ([], ["links"], ["train"], ["eval"], ["build"]):
        started = time.monotonic()
        run = webtext_without("torch,apache_beam", *verb, "--help", cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "usage: webtext" in run.stdout
        assert time.monotonic() - started < 30  # a bound against hangs, not a speed target
