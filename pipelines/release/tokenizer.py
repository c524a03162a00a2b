"""The release's tokenizer, made in the driver before the pipeline runs: GPT-2's own vocabulary, or a
byte-level BPE trained on the texts of the train split (never on val)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow.parquet as pq

from corpus.errors import InputError
from corpus.tokenizer import Tokenizer, gpt2_tokenizer, parse_spec, train_tokenizer
from pipelines.files import match_files, open_read
from pipelines.release.transform import split_of
from pipelines.stage import log


def make_tokenizer(spec: str, docs: str, val_fraction: float) -> Tokenizer:
    """The tokenizer `--tokenizer SPEC` names: "gpt2:DIR" reads GPT-2's encoder.json and vocab.bpe from DIR,
    "train:VOCAB" trains one of VOCAB tokens on the train split of the documents `docs` (a glob) that
    `val_fraction` leaves. Bad specs and unreadable files raise InputError."""
    try:
        kind, value = parse_spec(spec)
    except ValueError as err:
        raise InputError(f"--tokenizer: {err}") from None
    if kind == "gpt2":
        try:
            return gpt2_tokenizer(str(value))
        except OSError as err:
            raise InputError(f"{value}: cannot read GPT-2's encoder.json and vocab.bpe ({err})") from None
    log.info("release: training a byte-level BPE of %s tokens on the train split", value)
    return train_tokenizer(train_texts(docs, lambda i: split_of(i, val_fraction) == "train"), int(value))


def train_texts(docs: str, in_train: Callable[[str], bool]) -> Iterator[str]:
    """The texts of the train split, streamed from the docs files (for training the tokenizer)."""
    for path in match_files(docs):
        with open_read(path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(columns=["id", "text"], batch_size=1024):
                for doc_id, text in zip(
                    batch.column("id").to_pylist(), batch.column("text").to_pylist(), strict=True
                ):
                    if in_train(doc_id):
                        yield text
