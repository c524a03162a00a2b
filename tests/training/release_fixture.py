"""Small real releases for the training tests: shards written by corpus.shards.write_shard + manifest.json.

`write_release` makes a tiny but complete release: seeded random word documents, a byte-level BPE trained on
them with corpus.tokenizer (so `tokenizer/tokenizer.json` decodes the shards), shards of chosen sizes.
`write_synthetic_release` makes a large one fast for benchmarks: random uint16 token ids and filler text of a
realistic size (about 4.5 bytes of text per token, as for English web text under GPT-2's vocabulary).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from corpus.shards import Sample, shard_name, write_shard
from corpus.tokenizer import train_tokenizer

WORDS = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "his",
    "her", "it", "an", "were", "are", "which", "this", "be", "or", "has", "had", "not", "but", "first", "one",
    "new", "after", "who", "they", "two", "she", "been", "other", "when", "there", "all", "during", "into",
    "school", "time", "may", "years", "more", "most", "only", "over", "city", "some", "world", "would",
    "where", "later", "up", "such", "used", "many", "can", "state", "about", "national", "out", "known",
]  # fmt: skip
TEXT_BYTES_PER_TOKEN = 4.5


def write_manifest(root: Path, splits: dict[str, list[dict]], tokenizer_json: str, vocab_size: int) -> Path:
    """Write tokenizer/tokenizer.json and manifest.json (the keys the loader and `webtext verify` read)."""
    (root / "tokenizer").mkdir(parents=True, exist_ok=True)
    (root / "tokenizer" / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    manifest = {
        "format_version": 1,
        "created_by": "tests.training.release_fixture",
        "config": {},
        "tokenizer": {
            "path": "tokenizer/tokenizer.json",
            "sha256": hashlib.sha256(tokenizer_json.encode()).hexdigest(),
            "vocab_size": vocab_size,
            "eot_id": vocab_size - 1,
        },
        "splits": splits,
        "stages": {},
    }
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def write_release(
    root: Path,
    shards: dict[str, list[int]] | None = None,
    max_words: int = 120,
    vocab_size: int = 400,
    seed: int = 0,
) -> Path:
    """A release under `root`: `shards[split]` lists the number of documents of each shard of the split.

    Defaults to four uneven train shards and one val shard. Documents have 1..`max_words` words, so some are
    shorter and some longer than a small seq_len; doc ids are `{split}{shard:03d}x{doc:05d}`.
    """
    shards = {"train": [9, 14, 11, 7], "val": [6]} if shards is None else shards
    rng = np.random.default_rng(seed)
    texts = {
        split: [
            [" ".join(rng.choice(WORDS, size=int(rng.integers(1, max_words + 1)))) for _ in range(n)]
            for n in counts
        ]
        for split, counts in shards.items()
    }
    tokenizer = train_tokenizer((t for split in texts.values() for shard in split for t in shard), vocab_size)
    dtype = tokenizer.token_dtype()
    root.mkdir(parents=True, exist_ok=True)
    entries: dict[str, list[dict]] = {}
    for split, shard_texts in texts.items():
        entries[split] = []
        for index, docs in enumerate(shard_texts):
            ids = tokenizer.encode_batch(docs)
            samples = [
                Sample(f"{split}{index:03d}x{i:05d}", text, {"i": i}, np.asarray(tok, dtype=dtype))
                for i, (text, tok) in enumerate(zip(docs, ids, strict=True))
            ]
            entries[split].append(write_shard(str(root / shard_name(split, index)), samples))
    write_manifest(root, entries, tokenizer.to_json(), tokenizer.vocab_size)
    return root


def write_synthetic_release(
    root: Path, tokens: int, shards: int = 8, mean_doc_tokens: int = 1000, seed: int = 0
) -> Path:
    """A train-only release of about `tokens` random GPT-2-vocabulary ids in `shards` shards.

    Document lengths are log-normal around `mean_doc_tokens` (web pages: many short, a few long).
    """
    vocab_size = 50257
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    sigma = 0.8
    lengths = rng.lognormal(np.log(mean_doc_tokens) - sigma**2 / 2, sigma, size=int(tokens / mean_doc_tokens))
    lengths = np.maximum(lengths.astype(np.int64), 1)
    filler = "lorem ipsum " * int(lengths.max() * TEXT_BYTES_PER_TOKEN / 12 + 1)
    entries = []
    for index, part in enumerate(np.array_split(np.arange(len(lengths)), shards)):
        samples = [
            Sample(
                f"doc{i:09d}",
                filler[: int(lengths[i] * TEXT_BYTES_PER_TOKEN)],
                {"i": int(i)},
                rng.integers(0, vocab_size - 1, size=int(lengths[i]), dtype=np.uint16),
            )
            for i in part
        ]
        entries.append(write_shard(str(root / shard_name("train", index)), samples))
    write_manifest(root, {"train": entries, "val": []}, "{}", vocab_size)
    return root
