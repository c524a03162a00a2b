"""`webtext release`: documents -> WebDataset shards + manifest (the transform: transform.py)."""

from __future__ import annotations

import argparse

from corpus.command_line import positive_int
from corpus.errors import InputError
from pipelines.stage import Stage, StageResult, docs_table


class ReleaseStage(Stage):
    name = "release"
    help = "documents -> WebDataset shards + manifest (Beam)"
    transform_name = "Release"
    reads = ("filter", "dedup", "extract")

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--docs",
            required=True,
            metavar="DIR",
            help="work directory: its filter/ output when present, else dedup/, else extract/",
        )
        parser.add_argument(
            "--tokenizer",
            default="train:50257",
            metavar="SPEC",
            help=(
                "train:VOCAB (byte-level BPE trained on the train split) "
                "or gpt2:DIR (encoder.json + vocab.bpe)"
            ),
        )
        parser.add_argument(
            "--val-fraction", type=float, default=0.005, help="share of documents in the val split"
        )
        parser.add_argument("--shard-bytes", type=positive_int, default=256 * 10**6, help="target shard size")
        parser.add_argument(
            "--shard-docs", type=positive_int, help="documents per shard (instead of --shard-bytes)"
        )
        parser.add_argument(
            "--allow-empty", action="store_true", help="make a release of no documents instead of refusing to"
        )

    def options(self, args: argparse.Namespace):
        from pipelines.release.tokenizer import make_tokenizer
        from pipelines.release.transform import ReleaseOptions, stage_stats

        source, docs, count = docs_table(args.docs, self.reads)
        if not count and not args.allow_empty:
            raise InputError(
                f"{source.path}: no documents to release; an empty release needs --allow-empty "
                '(webtext build: --stage-flags release="--allow-empty")'
            )
        if not 0 <= args.val_fraction < 1:
            raise InputError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
        tokenizer = make_tokenizer(args.tokenizer, docs, args.val_fraction)
        return ReleaseOptions(
            docs,
            tokenizer.to_json(),
            args.tokenizer,
            args.val_fraction,
            args.shard_bytes,
            args.shard_docs,
            stage_stats(source.work_dir),
            args.allow_empty,
            count,
        )

    def describe(self, options, out_dir: str) -> str:
        return f"release: {options.documents} documents from {options.docs} -> {out_dir}"

    def prepare(self, options, output) -> None:
        """The tokenizer goes into the generation first: the workers read it from there."""
        from pipelines.files import write_bytes
        from pipelines.release.transform import TOKENIZER_PATH

        write_bytes(output.path(*TOKENIZER_PATH), options.tokenizer_json.encode("utf-8"))

    def summary(self, result: StageResult) -> str:
        from pipelines.files import read_manifest

        output = result.output
        manifest = read_manifest(output.path)
        tokenizer = manifest.tokenizer
        lines = [f"release: tokenizer of {tokenizer.vocab_size} tokens (end of text: {tokenizer.eot_id})"]
        for split, shards in sorted(manifest.splits.items()):
            docs, tokens = manifest.documents(split), manifest.tokens(split)
            lines.append(f"    {split:5s} {len(shards):3d} shards {docs:8d} documents {tokens:10d} tokens")
        lines += [
            f"  manifest: {output.join('manifest.json')}",
            f"  datasheet: {output.join('datasheet.md')}",
        ]
        return "\n".join(lines)


STAGE = ReleaseStage()
