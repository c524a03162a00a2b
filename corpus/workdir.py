"""Where a stage's committed output lies, decided by what is on disk (no Beam here: the trainer uses it too).

Every stage publishes into a new generation folder of its own folder, and one small commit file, written
last and atomically, names the generation that is current:

    DIR/<folder>/committed.json    {"generation": "gen-2", "stage": "links"}: the commit point
    DIR/<folder>/gen-2/...         the stage's files: part-*.parquet, stats.json, ledger/<stage>-*.parquet;
                                   for the release: manifest.json, {train,val}-NNNNNN.tar, tokenizer/, ...

`<folder>` is the stage's name (the extract stage's was `docs/` before this layout). Readers follow the
commit file only, so files of any other generation (the previous one until the publish removes it, or what
a killed run left) are never read. `find_output` is how every reader finds a stage's output, given the work
directory, the stage's folder or the output folder itself (a generation folder, or a release copied
elsewhere).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from corpus.errors import InputError

COMMIT = "committed.json"
FOLDERS = {
    "links": "links",
    "fetch": "fetch",
    "extract": "extract",
    "dedup": "dedup",
    "filter": "filter",
    "release": "release",
}
RELEASE_MARKER = "manifest.json"  # what a release folder holds itself; any other output holds stats.json
GENERATION_PREFIX = "gen-"

# A file's bytes, or None when there is no such file (Beam's filesystems in pipelines/, fsspec in training/).
Reader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class Output:
    """The committed output of one stage."""

    stage: str
    path: str  # the folder holding its files
    work_dir: str  # the work directory; paths recorded relative to it (a fetch index's warc_file) start here

    def join(self, *parts: str) -> str:
        return "/".join([self.path, *parts])


def join(*parts: str) -> str:
    return "/".join(part.rstrip("/") for part in parts[:-1]) + "/" + parts[-1]


def parent(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) or "."


def generation(number: int) -> str:
    return f"{GENERATION_PREFIX}{number}"


def next_generation(commit: dict | None) -> str:
    """The generation after the committed one (gen-1 when none is): the same paths on every rerun."""
    if commit is None:
        return generation(1)
    return generation(int(commit["generation"].removeprefix(GENERATION_PREFIX)) + 1)


def commit_bytes(stage: str, generation_name: str) -> bytes:
    return (json.dumps({"generation": generation_name, "stage": stage}, sort_keys=True) + "\n").encode()


def parse_commit(data: bytes, path: str) -> dict:
    try:
        commit = json.loads(data)
        if not (isinstance(commit.get("generation"), str) and commit.get("stage") in FOLDERS):
            raise ValueError("expected {generation, stage}")
    except (ValueError, AttributeError) as err:
        raise InputError(f"{path}: unreadable commit file ({err})") from None
    return commit


def find_output(path: str, stages: Sequence[str], read: Reader) -> Output | None:
    """The committed output of the first of `stages` that `path` holds, or None. `path` may be:

    - a work directory: `path/<folder>/committed.json` exists (the stages are tried in order);
    - a stage's folder: `path/committed.json` names one of `stages`;
    - an output folder itself: it holds manifest.json (a release) or a stats.json naming one of `stages`.
    """
    root = path.rstrip("/") or "/"
    for stage in stages:
        folder = join(root, FOLDERS[stage])
        commit_path = join(folder, COMMIT)
        if (data := read(commit_path)) is not None:
            commit = parse_commit(data, commit_path)
            return Output(stage, join(folder, commit["generation"]), root)
    commit_path = join(root, COMMIT)
    if (data := read(commit_path)) is not None:
        commit = parse_commit(data, commit_path)
        if commit["stage"] in stages:
            return Output(commit["stage"], join(root, commit["generation"]), parent(root))
    for stage in stages:
        marker = read(join(root, RELEASE_MARKER if stage == "release" else "stats.json"))
        if marker is not None and (stage == "release" or _stats_stage(marker) == stage):
            return Output(stage, root, parent(parent(root)))
    return None


def require_output(path: str, stages: Sequence[str], read: Reader) -> Output:
    """As find_output, but one clear InputError naming `path` when it holds none of `stages`' outputs."""
    output = find_output(path, stages, read)
    if output is None:
        raise missing_output(path, stages)
    return output


def _stats_stage(data: bytes) -> str | None:
    try:
        return json.loads(data).get("stage")
    except (ValueError, AttributeError):
        return None


def missing_output(path: str, stages: Sequence[str]) -> InputError:
    """The one-line error of a path that holds none of `stages`' outputs."""
    names = " or ".join(FOLDERS[stage] for stage in stages)
    return InputError(
        f"{path}: no committed {names} output (not a work directory, a stage folder with {COMMIT}, nor an "
        f"output folder); run webtext {stages[-1]} first"
    )


def read_url(path: str) -> bytes | None:
    """A `Reader` through fsspec (local paths and any fsspec URL), for code that does not run Beam."""
    import fsspec

    try:
        with fsspec.open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as err:  # ValueError: a URL scheme fsspec does not know
        raise InputError(f"{path}: cannot read ({err})") from None
