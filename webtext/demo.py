"""`webtext demo`: the whole chain on the sample embedded in the package, as the command lines a user would
type (webtext/cli.py runs them one after the other, in one process)."""

from __future__ import annotations

from importlib import resources

SAMPLE = resources.files("corpus") / "sample"


def demo_steps(out: str, train_steps: int, sample: object = SAMPLE) -> list[list[str]]:
    """build (links .. ngrams on the sample, its WARC instead of the network) -> verify -> overlap of the
    bundled evaluation samples -> train the tiny model on the release -> zero-shot evaluation of it ->
    GPT-1-style fine-tuning on an SST-2 sample."""
    return [
        [
            "build",
            "--dumps",
            f"{sample}/reddit/*",
            "--from-warc",
            f"{sample}/warc/*.warc.gz",
            "--out",
            out,
            "--stage-flags",
            "release=--val-fraction 0.2 --tokenizer train:2000",
            "--force",  # the demo shows every stage; `webtext build` alone skips complete ones
        ],
        ["verify", out],
        [
            "overlap",
            "--release",
            out,
            "--eval",
            f"lambada={sample}/eval/lambada_test.first200.jsonl",
            "--eval",
            f"webtext={sample}/eval/webtext.test.first200.jsonl",
            "--out",
            f"{out}/overlap",
        ],
        [
            "train",
            "--data",
            f"{out}/release",
            "--out",
            f"{out}/train",
            "--preset",
            "tiny",
            "--max-steps",
            str(train_steps),
            "--warmup-steps",
            "30",
            "--log-every",
            "50",
            "--eval-every",
            "100",
            "--save-every",
            "100",
        ],
        [
            "eval",
            "--checkpoint",
            f"{out}/train",
            "--task",
            f"lambada={sample}/zero_shot/lambada_test.first100.jsonl",
            "--task",
            f"wikitext2={sample}/zero_shot/wikitext-2_tokens.test.first116.txt",
            "--task",
            f"ptb={sample}/zero_shot/ptb.test.first200.txt",
            "--task",
            f"storycloze:cloze={sample}/zero_shot/storycloze_val.first50.jsonl",
            "--detokenize",
            "--out",
            f"{out}/eval",
        ],
        [
            "finetune",
            "--checkpoint",
            f"{out}/train",
            "--task",
            "classification",
            "--dev",
            f"{sample}/finetune/sst2_dev.first40.tsv",
            "--batch-size",
            "8",
            "--out",
            f"{out}/finetune",
        ],
    ]
