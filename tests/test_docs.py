"""The documentation: the mkdocs site builds in strict mode (no broken link or anchor, every page in the nav),
and README.md stays a front page that stands alone (short, no pointers outside the repository)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 220


def test_mkdocs_builds_strict(tmp_path: Path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    command += ["-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path)]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").is_file()


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the reference belongs in docs/"
    assert "../shared" not in text, "README.md points outside the repository"


def test_every_file_the_readme_and_layout_pages_name_exists():
    """The layout sections are how a newcomer finds a stage: every `folder/file.py` they name is there, and
    every corpus stage's row names its stage.py and transform."""
    import re

    from corpus.chain import CHAIN

    for page in (ROOT / "README.md", ROOT / "docs" / "index.md", ROOT / "docs" / "design.md"):
        text = page.read_text(encoding="utf-8")
        named = set(re.findall(r"`((?:corpus|pipelines|training|webtext)/[a-z0-9_/]+\.py)`", text))
        missing = [path for path in named if not (ROOT / path).is_file()]
        assert not missing, f"{page.name} names files that do not exist: {missing}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for stage in CHAIN:
        assert f"`pipelines/{stage}/stage.py`" in readme and f"`pipelines/{stage}/transform.py`" in readme
