"""The release stage: documents -> WebDataset tar shards, tokenizer, manifest.json and datasheet.md.

    docs -> split (stable hash of the id: val never leaks into train) -> BatchElements -> tokenize (workers)
      -> per split: shard count from the split's total bytes (a side input), shard = stable hash of the id
      -> GroupByKey (split, shard) -> numbered: the shards that got documents, in order, 000000 on
      -> write_shard (samples sorted by id, fixed tar headers, tmp + rename)
      -> manifest.json (every shard's sha256/bytes/docs/tokens, the tokenizer, every stage's config and stats)
      -> datasheet.md + plots

Shards are filled by a hash of the document id, so their sizes vary around the target (`--shard-bytes` or
`--shard-docs`) and the same inputs give byte-identical shards and manifest whatever the worker count.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.datasheet import write_datasheet
from corpus.shards import Sample, shard_name, write_shard
from corpus.tokenizer import Tokenizer
from pipelines.accounting import WriteStats
from pipelines.outputs import (
    StageOutput,
    find_stage_output,
    read_bytes,
    read_parquet,
    run_stage,
    stable_shard,
)

STAGE = "release"
FORMAT_VERSION = 1
META_FIELDS = ("url", "domain", "title", "karma", "submission_ids", "subreddits", "first_created_utc", "date")


@dataclass(frozen=True)
class ReleaseOptions:
    docs: str  # glob of the documents to release
    tokenizer_json: str  # the tokenizer, as its tokenizer.json text (stays in the driver)
    tokenizer_spec: str  # how it was made ("gpt2:DIR" or "train:VOCAB")
    val_fraction: float = 0.005
    shard_bytes: int = 256 * 10**6
    shard_docs: int | None = None
    stages: dict = field(default_factory=dict)  # {stage: stats.json} of the earlier stages
    allow_empty: bool = False  # recorded only when set, so earlier manifests keep their bytes


def split_of(doc_id: str, val_fraction: float) -> str:
    """train or val, from a stable hash of the id: the same document is in the same split in every release."""
    bucket = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) / 2**32
    return "val" if bucket < val_fraction else "train"


class Tokenize(beam.DoFn):
    """Batches of docs -> Samples. The tokenizer is read from the release's own tokenizer.json in setup():
    carried inside the DoFn it would be pickled (and bz2-compressed) with every bundle."""

    def __init__(self, tokenizer_path: str) -> None:
        self.tokenizer_path = tokenizer_path

    def setup(self) -> None:
        with FileSystems.open(self.tokenizer_path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            self.tokenizer = Tokenizer.from_json(handle.read().decode("utf-8"))
        self.dtype = self.tokenizer.token_dtype()

    def process(self, rows: list[dict]):
        for row, ids in zip(rows, self.tokenizer.encode_batch([r["text"] for r in rows]), strict=True):
            meta = {name: row.get(name) for name in META_FIELDS}
            # A plain tuple of str/dict/bytes: Beam's coder encodes it natively (a Sample would be pickled).
            yield row["id"], row["text"], meta, np.asarray(ids, dtype=self.dtype).tobytes()


def sample_bytes(doc: tuple) -> int:
    return len(doc[1].encode("utf-8")) + len(doc[3]) + 256


class WriteShards(beam.DoFn):
    """((split, shard), docs) -> the shard's tar file, named by its number (`shard_numbers`)."""

    def __init__(self, output: StageOutput, dtype: str) -> None:
        self.output, self.dtype = output, dtype

    def process(self, element, numbers: dict[tuple[str, int], int]):
        (split, index), docs = element
        samples = [
            Sample(key, text, meta, np.frombuffer(tokens, dtype=self.dtype))
            for key, text, meta, tokens in docs
        ]
        info = write_shard(
            self.output.path(shard_name(split, numbers[split, index])),
            sorted(samples, key=lambda s: s.key),
            open_fn=_open,
            rename_fn=lambda src, dst: FileSystems.rename([src], [dst]),
        )
        yield split, info


def _open(path: str, mode: str = "rb"):
    if "w" in mode:
        return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def shard_numbers(keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """(split, shard) of the shards that got documents -> the shard's number: contiguous from 0 in each
    split, in shard order, so an empty shard leaves no gap (a brace pattern `train-{000000..N}.tar` built
    from the manifest's count then names every shard)."""
    numbers = {}
    for split in sorted({split for split, _ in keys}):
        for number, index in enumerate(sorted(i for s, i in keys if s == split)):
            numbers[split, index] = number
    return numbers


def num_shards(totals: dict, split: str, shard_bytes: int, shard_docs: int | None) -> int:
    docs, size = totals.get(f"{split}_docs", 0), totals.get(f"{split}_bytes", 0)
    wanted = -(-docs // shard_docs) if shard_docs else -(-size // shard_bytes)
    return max(1, wanted)


class WriteManifest(beam.DoFn):
    """All shard infos + summaries -> manifest.json and datasheet.md in the run's generation."""

    def __init__(self, config: dict, tokenizer: dict, stages: dict, output: StageOutput) -> None:
        self.config, self.tokenizer, self.stages, self.output = config, tokenizer, stages, output

    def process(self, infos: list):
        splits = {
            split: sorted((i for s, i in infos if s == split), key=lambda i: i["path"])
            for split in ("train", "val")
        }
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_by": f"webtext {version('webtext')}",
            "config": {stage: stats.get("config", {}) for stage, stats in sorted(self.stages.items())}
            | {STAGE: self.config},
            "tokenizer": self.tokenizer,
            "splits": splits,
            "stages": dict(sorted(self.stages.items())),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        with FileSystems.create(
            self.output.path("manifest.json"), compression_type=CompressionTypes.UNCOMPRESSED
        ) as handle:
            handle.write(text.encode("utf-8"))
        yield manifest


def release_config(opts: ReleaseOptions) -> dict:
    return {
        "tokenizer": opts.tokenizer_spec,
        "val_fraction": opts.val_fraction,
        "shard_bytes": opts.shard_bytes,
        "shard_docs": opts.shard_docs,
    } | ({"allow_empty": True} if opts.allow_empty else {})


def tokenizer_info(opts: ReleaseOptions) -> dict:
    tokenizer = Tokenizer.from_json(opts.tokenizer_json)
    return {
        "path": "tokenizer/tokenizer.json",
        "sha256": hashlib.sha256(opts.tokenizer_json.encode()).hexdigest(),
        "vocab_size": tokenizer.vocab_size,
        "eot_id": tokenizer.eot_id,
    }


def _datasheet(manifest: dict, directory: str, summary: dict) -> list[str]:
    return write_datasheet(directory, manifest, manifest["stages"], summary)


def _facts(doc: tuple, itemsize: int) -> tuple:
    """What the datasheet's plots need of one document (small: the text stays on the workers)."""
    _, _, meta, tokens = doc
    return len(tokens) // itemsize, meta["domain"], tuple(meta["subreddits"] or ()), meta["karma"]


def _summary_of(facts: list[tuple]) -> dict:
    lengths, domains, subreddits, karma = [], Counter(), Counter(), []
    for length, domain, subs, points in facts:
        lengths.append(length)
        domains[domain] += 1
        subreddits.update(subs)
        karma.append(points)
    return {
        "lengths": sorted(lengths),
        "domains": dict(domains),
        "subreddits": dict(subreddits),
        "karma": sorted(karma),
    }


def _shard_key(element: tuple[str, tuple], totals: dict, shard_bytes: int, shard_docs: int | None):
    split, doc = element
    return (split, stable_shard(doc[0], num_shards(totals, split, shard_bytes, shard_docs))), doc


class ReleaseDocs(beam.PTransform):
    def __init__(self, options: ReleaseOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts = self.options
        info = tokenizer_info(opts)
        dtype = "uint16" if info["vocab_size"] <= 65536 else "uint32"
        itemsize = np.dtype(dtype).itemsize
        docs = pbegin | "ReadDocs" >> read_parquet(opts.docs)
        samples = (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=2048)
            | "Tokenize" >> beam.ParDo(Tokenize(self.output.path("tokenizer", "tokenizer.json")))
        )
        val_fraction = opts.val_fraction  # lambdas capture only small values: a closure is pickled whole
        keyed = samples | "Split" >> beam.Map(lambda doc: (split_of(doc[0], val_fraction), doc))
        totals = (
            keyed
            | "Sizes"
            >> beam.MapTuple(
                lambda split, s: Counter({f"{split}_docs": 1, f"{split}_bytes": sample_bytes(s)})
            )
            | "Totals" >> beam.CombineGlobally(lambda cs: sum(cs, Counter()))
        )
        shards = (
            keyed
            | "Shard"
            >> beam.Map(_shard_key, beam.pvalue.AsSingleton(totals), opts.shard_bytes, opts.shard_docs)
            | "Group" >> beam.GroupByKey()
        )
        numbers = (
            shards
            | "Filled" >> beam.Keys()
            | "AllFilled" >> beam.combiners.ToList()
            | "Number" >> beam.Map(shard_numbers)
        )
        infos = shards | "Write" >> beam.ParDo(
            WriteShards(self.output, dtype), beam.pvalue.AsSingleton(numbers)
        )
        summary = (
            samples
            | "Facts" >> beam.Map(_facts, itemsize)
            | "AllFacts" >> beam.combiners.ToList()
            | "Summarize" >> beam.Map(_summary_of)
        )
        manifest = (
            infos
            | "AllShards" >> beam.combiners.ToList()
            | "Manifest" >> beam.ParDo(WriteManifest(release_config(opts), info, opts.stages, self.output))
        )
        _ = manifest | "Datasheet" >> beam.Map(_datasheet, self.output.root, beam.pvalue.AsSingleton(summary))
        counts = (
            docs | "In" >> beam.Map(lambda _: Counter({"in": 1})),
            samples | "Out" >> beam.Map(lambda doc: Counter({"out": 1, "tokens": len(doc[3]) // itemsize})),
        ) | "AllCounts" >> beam.Flatten()
        dropped = pbegin | "NoDrops" >> beam.Create([Counter()])
        return (counts, dropped) | "Stats" >> WriteStats(
            self.output, {"release": {"tokenizer": opts.tokenizer_spec}}
        )


def stage_stats(work_dir: str) -> dict[str, dict]:
    """The stats.json of every earlier stage committed in the work directory, keyed by stage name."""
    stats = {}
    for stage in ("links", "fetch", "extract", "dedup", "filter"):
        output = find_stage_output(work_dir, stage)
        if output is not None and (data := read_bytes(output.join("stats.json"))) is not None:
            raw = json.loads(data.decode("utf-8"))
            stats[raw["stage"]] = raw
    return stats


def train_texts(docs: str, in_train) -> Iterator[str]:
    """The texts of the train split, streamed from the docs files (for training the tokenizer)."""
    for metadata in sorted(FileSystems.match([docs])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(metadata.path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(columns=["id", "text"], batch_size=1024):
                for doc_id, text in zip(
                    batch.column("id").to_pylist(), batch.column("text").to_pylist(), strict=True
                ):
                    if in_train(doc_id):
                        yield text


def run_release(options: ReleaseOptions, out_dir: str, beam_args: list[str]) -> None:
    output = StageOutput(out_dir, STAGE)
    with FileSystems.create(
        output.path("tokenizer", "tokenizer.json"), compression_type=CompressionTypes.UNCOMPRESSED
    ) as handle:
        handle.write(options.tokenizer_json.encode("utf-8"))
    run_stage(output, ReleaseDocs(options, output), beam_args)
