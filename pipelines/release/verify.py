"""`webtext verify DIR`: check a release against its manifest (every shard's hash, size, counts and tar
safety, every shard index's hash and agreement with its tar, the shards' numbering), without running Beam."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from corpus.errors import InputError

if TYPE_CHECKING:
    from corpus.manifest import Manifest


def add_verify_parser(sub) -> None:
    p = sub.add_parser("verify", allow_abbrev=False, help="check a release: hashes, counts, tar safety")
    p.add_argument(
        "release", metavar="DIR", help="a release directory (or the work directory holding release/)"
    )
    p.set_defaults(handler=run_verify_command)


def run_verify_command(args: argparse.Namespace, _beam_args: list[str]) -> int:
    from corpus.shards import numbering_problems, verify_release
    from pipelines.outputs import stage_output

    directory = Path(stage_output(args.release, "release").path)
    manifest = read_manifest(directory / "manifest.json")
    problems = verify_release(str(directory), manifest) or numbering_problems(manifest) or _empty(manifest)
    for problem in problems:
        print(f"verify: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"verify: ok: {len(manifest.all_shards())} shards, {manifest.documents()} documents, "
        f"{manifest.tokens()} tokens match {directory / 'manifest.json'}"
    )
    return 0


def read_manifest(path: Path) -> Manifest:
    """The checked manifest (corpus/manifest.py); one InputError naming the file when it cannot be read or
    is not a manifest."""
    from corpus.manifest import parse_manifest

    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read the manifest ({err})") from None
    return parse_manifest(data, str(path))


def _empty(manifest: Manifest) -> list[str]:
    """A release without documents is a mistake unless it was made with --allow-empty."""
    if manifest.documents() or manifest.allow_empty:
        return []
    return ["manifest: the release holds no documents (webtext release --allow-empty makes one on purpose)"]
