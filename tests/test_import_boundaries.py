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
from webtext.cli import main
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


# The layers (docs/design.md): corpus/ is plain Python, pipelines/ adds Beam, training/ adds torch, webtext/
# only parses and dispatches. Checked on every module-level import of our own code, from the source.
PACKAGES = ("corpus", "pipelines", "training", "webtext")
NEVER = {  # not even inside a function
    "corpus": {"pipelines", "training", "webtext", "apache_beam", "torch"},
    "pipelines": {"training", "webtext", "torch"},
    "training": {"pipelines", "webtext", "apache_beam"},
    "webtext": set(),
}
NOT_AT_MODULE_LEVEL = {  # the dispatcher loads a framework only when a verb runs (Beam: to check its options)
    "corpus": set(),
    "pipelines": set(),
    "training": set(),
    "webtext": {"apache_beam", "torch"},
}


def module_imports(inside_functions: bool = True) -> dict[str, set[str]]:
    """Module name -> the modules it imports; with `inside_functions` False, at module level only (imports
    inside functions run when a verb runs: that is how a verb loads its framework)."""
    import ast

    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(path.read_text(encoding="utf-8"))
            found = set()
            for node in ast.walk(tree) if inside_functions else tree.body:
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module)
                    found |= {f"{node.module}.{alias.name}" for alias in node.names}
            graph[module] = found
    return graph


def test_each_layer_imports_only_what_it_may():
    rules = ((module_imports(), NEVER), (module_imports(inside_functions=False), NOT_AT_MODULE_LEVEL))
    wrong = [
        f"{module} imports {name}"
        for graph, rule in rules
        for module, names in graph.items()
        for name in names
        if name.split(".")[0] in rule[module.split(".")[0]]
    ]
    assert not wrong


def test_no_import_cycles_among_our_modules():
    graph = module_imports()
    edges = {
        module: {name for name in names if name in graph and name != module}
        for module, names in graph.items()
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for name in sorted(edges[module]):
            if state.get(name) == 1:
                cycles.append(" -> ".join([*path[path.index(name) :], name]))
            elif name not in state:
                visit(name, [*path, name])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles
