"""The release stage's transform: documents -> WebDataset tar shards, manifest.json and datasheet.md.

    docs -> BatchElements -> tokenize (workers) -> split (stable hash of the id: val never leaks into train)
      -> per split: shard count from the split's total bytes (a side input), shard = stable hash of the id
      -> GroupByKey (split, shard) -> numbered: the shards that got documents, in order, 000000 on
      -> write_shard (samples sorted by id, fixed tar headers, tmp + rename; the shard's index beside it)
      -> manifest.json (every shard's sha256/bytes/docs/tokens/index, the tokenizer, every stage's config
         and stats) -> datasheet.md + plots

Documents travel in batches (a list per element) from BatchElements to the GroupByKey, and the counts are
per batch: Beam's cost per element (a DoFn call, encoding between fused stages, a Metrics counter per
Counter) was paid several times per document and cost the stage more than tokenizing did.

The tokenizer (tokenizer.py) is made in the driver and written into the generation before the pipeline runs
(`ReleaseStage.prepare`); the workers read it from there.

Shards are filled by a hash of the document id, so their sizes vary around the target (`--shard-bytes` or
`--shard-docs`) and the same inputs give byte-identical shards and manifest whatever the worker count.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from corpus import signal_histograms
from corpus.chain import CHAIN
from corpus.datasheet import write_datasheet
from corpus.shards import Sample, shard_name, write_shard
from corpus.tokenizer import Tokenizer
from pipelines.accounting import WriteStats
from pipelines.files import open_read, open_write, read_bytes, write_manifest
from pipelines.outputs import StageOutput, find_stage_output, read_parquet, stable_shard

STAGE = "release"
FORMAT_VERSION = 1
# The sample's `json`; the dedup cluster (corpus.docs.DEDUP_COLUMNS) is null when dedup did not run.
META_FIELDS = (
    "url", "domain", "title", "karma", "submission_ids", "subreddits", "first_created_utc", "date",
    "dup_cluster_size", "dup_cluster_id",
)  # fmt: skip
TOKENIZER_PATH = ("tokenizer", "tokenizer.json")  # inside the release
# Characters of text per tokenizer batch (~1M tokens): `encode_batch` holds ~100 bytes per token of its own
# until the ids are copied out, so a batch of 2,048 long documents cost hundreds of MB.
BATCH_CHARS = 4_000_000


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
    documents: int = 0  # how many the docs hold (for the log line only)


def split_of(doc_id: str, val_fraction: float) -> str:
    """train or val, from a stable hash of the id: the same document is in the same split in every release."""
    bucket = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) / 2**32
    return "val" if bucket < val_fraction else "train"


def _one_process(options: PipelineOptions) -> bool:
    """Whether the pipeline runs on the DirectRunner in this one process, where spreading work is no use."""
    runner = options.view_as(StandardOptions).runner
    direct = options.view_as(DirectOptions)
    in_process = direct.direct_running_mode == "in_memory" or direct.direct_num_workers == 1
    return (runner is None or "Direct" in str(runner)) and in_process


def tokenizer_threads(options: PipelineOptions) -> int:
    """Threads each worker process's `tokenizers` may use: the cores shared out among the DirectRunner's
    worker processes (0: its default, every core, right for one process and for runners whose workers are
    sized by the runner).

    `encode_batch` already runs on every core of a single worker; N processes each doing so would run N
    threads per core.
    """
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing":
        return 0
    cores = os.cpu_count() or 1
    workers = direct.direct_num_workers or cores  # 0: one per core
    return max(1, cores // workers) if workers > 1 else 0


class Tokenize(beam.DoFn):
    """Batches of docs -> batches of samples. The tokenizer is read from the release's own tokenizer.json in
    setup(): carried inside the DoFn it would be pickled (and bz2-compressed) with every bundle.

    A batch is encoded in a background thread while the documents of the one before flow on: `encode_batch`
    runs outside the GIL, so what the fused steps after it do in Python (splits, counts, encoding for the
    next stage) overlaps the tokenizer instead of following it.
    """

    def __init__(self, tokenizer_path: str, threads: int = 0) -> None:
        self.tokenizer_path, self.threads = tokenizer_path, threads

    def setup(self) -> None:
        if self.threads:  # read when the pool starts: at this (worker) process's first encode_batch
            os.environ.setdefault("RAYON_NUM_THREADS", str(self.threads))
        with open_read(self.tokenizer_path) as handle:
            self.tokenizer = Tokenizer.from_json(handle.read().decode("utf-8"))
        self.dtype = self.tokenizer.token_dtype()
        self.ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")

    def start_bundle(self) -> None:
        self.pending: Future | None = None

    def process(self, rows: list[dict]):
        encoding = self.ahead.submit(self._samples, rows)
        if self.pending is not None:
            yield self.pending.result()
        self.pending = encoding

    def finish_bundle(self):
        if self.pending is not None:
            samples, self.pending = self.pending.result(), None
            yield WindowedValue(samples, GlobalWindow().max_timestamp(), [GlobalWindow()])

    def teardown(self) -> None:
        if hasattr(self, "ahead"):
            self.ahead.shutdown(cancel_futures=True)

    def _samples(self, rows: list[dict]) -> list[tuple]:
        # Plain tuples of str/dict/bytes in a list: Beam's coder encodes them natively (a Sample would be
        # pickled).
        encoded = self.tokenizer.encode_batch([r["text"] for r in rows])
        return [
            (
                row["id"],
                row["text"],
                {name: row.get(name) for name in META_FIELDS},
                _token_bytes(ids, self.dtype),
            )
            for row, ids in zip(rows, encoded, strict=True)
        ]


def _token_bytes(ids: list[int], dtype: np.dtype) -> bytes:
    return np.asarray(ids, dtype=dtype).tobytes()


def _text_size(row: dict) -> int:
    return len(row["text"])


def sample_bytes(doc: tuple) -> int:
    return len(doc[1].encode("utf-8")) + len(doc[3]) + 256


class WriteShards(beam.DoFn):
    """((split, shard), docs) -> the shard's tar file, named by its number (`shard_numbers`)."""

    def __init__(self, output: StageOutput, dtype: str) -> None:
        self.output, self.dtype = output, dtype

    def process(self, element, numbers: dict[tuple[str, int], int]):
        (split, index), batches = element
        samples = [
            Sample(key, text, meta, np.frombuffer(tokens, dtype=self.dtype))
            for docs in batches
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
    return open_write(path) if "w" in mode else open_read(path)


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
    """All shard infos + summaries -> manifest.json in the run's generation."""

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
        write_manifest(self.output.root, manifest)
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
        "path": "/".join(TOKENIZER_PATH),
        "sha256": hashlib.sha256(opts.tokenizer_json.encode()).hexdigest(),
        "vocab_size": tokenizer.vocab_size,
        "eot_id": tokenizer.eot_id,
    }


def _datasheet(manifest: dict, directory: str, summary: dict, signals: dict) -> list[str]:
    return write_datasheet(directory, manifest, manifest["stages"], summary | {"signals": signals})


def _facts(docs: list[tuple], itemsize: int) -> list[tuple]:
    """What the datasheet's plots need of a batch of documents (small: the text stays on the workers)."""
    return [
        (len(tokens) // itemsize, meta["domain"], tuple(meta["subreddits"] or ()), meta["karma"])
        for _, _, meta, tokens in docs
    ]


def _summary_of(batches: list[list[tuple]]) -> dict:
    lengths, domains, subreddits, karma = [], Counter(), Counter(), []
    for length, domain, subs, points in (fact for facts in batches for fact in facts):
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


def _out_counts(batch: list[tuple], itemsize: int):  # no return hint: as _split_counts
    return Counter({"out": len(batch), "tokens": sum(len(doc[3]) for doc in batch) // itemsize})


def _with_splits(docs: list[tuple], val_fraction: float) -> list[tuple[str, tuple]]:
    return [(split_of(doc[0], val_fraction), doc) for doc in docs]


def _shard_groups(keyed: list[tuple[str, tuple]], totals: dict, shard_bytes: int, shard_docs: int | None):
    """A batch's documents by (split, shard): one (key, [docs]) per shard the batch touches."""
    shards = {split: num_shards(totals, split, shard_bytes, shard_docs) for split in {s for s, _ in keyed}}
    groups: dict[tuple[str, int], list[tuple]] = {}
    for split, doc in keyed:
        groups.setdefault((split, stable_shard(doc[0], shards[split])), []).append(doc)
    return list(groups.items())


def _split_counts(keyed: list[tuple[str, tuple]]):  # no return hint: Beam would infer a dict coder
    counts: Counter = Counter()
    for split, doc in keyed:
        counts[f"{split}_docs"] += 1
        counts[f"{split}_bytes"] += sample_bytes(doc)
    return counts


class Release(beam.PTransform):
    """The documents of `options.docs` -> the release's shards, manifest.json, datasheet.md and stats.json
    in `output`'s generation (which already holds tokenizer/tokenizer.json)."""

    def __init__(self, options: ReleaseOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output
        self.info = tokenizer_info(options)
        self.dtype = "uint16" if self.info["vocab_size"] <= 65536 else "uint32"
        self.itemsize = np.dtype(self.dtype).itemsize

    def expand(self, pbegin):
        docs = (
            pbegin
            | "ReadDocs" >> read_parquet(self.options.docs)
            | "Batch"
            >> beam.BatchElements(
                min_batch_size=256,
                max_batch_size=2048,
                element_size_fn=_text_size,
                max_batch_weight=BATCH_CHARS,
            )
        )
        if not _one_process(pbegin.pipeline.options):  # a docs file is read by one worker: spread its batches
            docs = docs | "Spread" >> beam.Reshuffle()
        threads = tokenizer_threads(pbegin.pipeline.options)
        samples = docs | "Tokenize" >> beam.ParDo(Tokenize(self.output.path(*TOKENIZER_PATH), threads))
        infos = self._write_shards(samples)
        self._write_manifest(infos, samples, docs)
        return self._write_stats(pbegin, docs, samples)

    def _write_shards(self, samples):
        """Batches of samples -> their split's shards, written; one (split, shard info) per shard."""
        opts = self.options
        keyed = samples | "Split" >> beam.Map(_with_splits, opts.val_fraction)
        totals = (
            keyed
            | "Sizes" >> beam.Map(_split_counts)
            | "Totals" >> beam.CombineGlobally(lambda cs: sum(cs, Counter()))
        )
        shards = (
            keyed
            | "Shard"
            >> beam.FlatMap(_shard_groups, beam.pvalue.AsSingleton(totals), opts.shard_bytes, opts.shard_docs)
            | "Group" >> beam.GroupByKey()
        )
        numbers = (
            shards
            | "Filled" >> beam.Keys()
            | "AllFilled" >> beam.combiners.ToList()
            | "Number" >> beam.Map(shard_numbers)
        )
        return shards | "Write" >> beam.ParDo(
            WriteShards(self.output, self.dtype), beam.pvalue.AsSingleton(numbers)
        )

    def _write_manifest(self, infos, samples, docs) -> None:
        """Every shard's info -> manifest.json, then datasheet.md from it, the documents' facts and the
        summary of their annotations (corpus/signal_histograms.py: one per batch, added up)."""
        opts = self.options
        summary = (
            samples
            | "Facts" >> beam.Map(_facts, self.itemsize)
            | "AllFacts" >> beam.combiners.ToList()
            | "Summarize" >> beam.Map(_summary_of)
        )
        signals = (
            docs
            | "Signals" >> beam.Map(signal_histograms.summarize)
            | "AllSignals" >> beam.CombineGlobally(signal_histograms.merge)
        )
        manifest = (
            infos
            | "AllShards" >> beam.combiners.ToList()
            | "Manifest"
            >> beam.ParDo(WriteManifest(release_config(opts), self.info, opts.stages, self.output))
        )
        _ = manifest | "Datasheet" >> beam.Map(
            _datasheet,
            self.output.root,
            beam.pvalue.AsSingleton(summary),
            beam.pvalue.AsSingleton(signals),
        )

    def _write_stats(self, pbegin, docs, samples):
        """stats.json: documents in and out and the tokens released (the counters release:in, :out, :tokens),
        one Counter per batch; the release drops nothing."""
        counts = (
            docs | "In" >> beam.Map(lambda rows: Counter({"in": len(rows)})),
            samples | "Out" >> beam.Map(_out_counts, self.itemsize),
        ) | "AllCounts" >> beam.Flatten()
        dropped = pbegin | "NoDrops" >> beam.Create([Counter()])
        return (counts, dropped) | "Stats" >> WriteStats(
            self.output, {STAGE: {"tokenizer": self.options.tokenizer_spec}}
        )


def stage_stats(work_dir: str) -> dict[str, dict]:
    """The stats.json of every earlier stage of the chain committed in the work directory, keyed by stage."""
    stats = {}
    for stage in CHAIN[: CHAIN.index(STAGE)]:
        output = find_stage_output(work_dir, stage)
        if output is not None and (data := read_bytes(output.join("stats.json"))) is not None:
            raw = json.loads(data.decode("utf-8"))
            stats[raw["stage"]] = raw
    return stats
