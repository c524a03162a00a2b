"""Training loader tokens/s beside its peers, as (batch, seq) tensors at 0 and 2 workers (make bench).

The release: BENCH_LOADER_TOKENS (default 32M) random GPT-2-vocabulary tokens in 8 shards, documents of ~1000
tokens on average (log-normal, like web pages) with text of a realistic size beside them, written by
corpus.shards.write_shard (so with the byte-offset index). The same documents go to every peer in the form it
is meant to be read in for LM pretraining:

- ours: `build_loader` over the release (the index), and over the same shards without the index (an old
  release: every tar header parsed in Python), shuffle blocks of 1000 documents, packed on the fly;
- litdata: `optimize` of each document's tokens + EOT into 64 MB chunks, read by `TokensLoader` blocks of
  seq_len + 1 with shuffle, `StreamingDataLoader`;
- mosaicml-streaming (MDS): the token stream packed into seq_len + 1 samples (llm-foundry's concat_tokens
  layout, an `ndarray:uint16` column), `StreamingDataset` with shuffle under a torch DataLoader;
- webdataset: plain `wds.WebDataset` over the same tar shards, `.shuffle(1000)`, decoded and packed.

Every figure is tokens/s delivered to the training process as int64 tensors of micro_batch x (seq_len + 1)
tokens (ours: the x, y pair), after the first batch (workers started, first shard read), over
BENCH_LOADER_FRACTION (0.8) of one pass. Each (loader, workers) runs BENCH_LOADER_REPEATS (3) times in a fresh
process, rounds interleaved, median reported. A peer that is not installed is skipped with the reason.
BENCH_LOADER_WORKERS ("0,2") picks the worker counts; BENCH_RESULTS, when set, gets every figure as a JSON
line.
Target: ours >= 20M tokens/s per process and >= every peer. Only sanity is asserted.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = 20e6
SEQ_LEN, MICRO_BATCH = 1024, 8
BATCH_TOKENS = MICRO_BATCH * (SEQ_LEN + 1)
EOT = 50256
PEERS = {"litdata": "litdata", "mds": "streaming", "webdataset": "webdataset"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# ---- runs in a fresh process: `python test_loader_speed.py run NAME DIR WORKERS STEPS` -------------------


def batches_ours(root: Path, workers: int) -> Iterator[int]:
    from training.config import LoaderConfig
    from training.data import build_loader
    from training.release import open_release

    loader = build_loader(
        open_release(str(root)), LoaderConfig("train", SEQ_LEN, MICRO_BATCH, seed=0, num_workers=workers)
    )
    for x, _ in loader:  # x and y are seq_len-token windows of the same micro_batch x (seq_len + 1) tokens
        yield x.numel() + x.shape[0]


def _int64(rows: list[np.ndarray]):
    import torch

    return torch.from_numpy(np.stack(rows).astype(np.int64))


def batches_litdata(root: Path, workers: int) -> Iterator[int]:
    from litdata import StreamingDataLoader, StreamingDataset, TokensLoader

    dataset = StreamingDataset(
        str(root / "litdata"), item_loader=TokensLoader(block_size=SEQ_LEN + 1), shuffle=True, seed=0
    )
    for batch in StreamingDataLoader(dataset, batch_size=MICRO_BATCH, num_workers=workers, drop_last=True):
        yield batch.to(dtype=__import__("torch").int64).numel()


def _stub_torchvision() -> str:
    """streaming's package __init__ imports streaming.vision, which needs torchvision; the MDS text reader
    does not. Where torchvision is missing (or does not match the CPU torch), a stub lets MDS load here."""
    import types

    if importlib.util.find_spec("torchvision") is not None:
        return ""
    for name in (
        "torchvision",
        "torchvision.datasets",
        "torchvision.transforms",
        "torchvision.transforms.functional",
    ):
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].__spec__ = importlib.machinery.ModuleSpec(name, None)
    sys.modules["torchvision.datasets"].VisionDataset = object  # type: ignore[attr-defined]
    sys.modules["torchvision.datasets"].CIFAR10 = object  # type: ignore[attr-defined]
    sys.modules["torchvision.transforms.functional"].to_tensor = None  # type: ignore[attr-defined]
    return "torchvision stubbed"


def _collate_mds(rows: list[dict]):
    return _int64([row["tokens"] for row in rows])


def batches_mds(root: Path, workers: int) -> Iterator[int]:
    import torch

    _stub_torchvision()
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    dataset = StreamingDataset(local=str(root / "mds"), shuffle=True, shuffle_seed=0, batch_size=MICRO_BATCH)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=MICRO_BATCH, num_workers=workers, collate_fn=_collate_mds
    )
    for batch in loader:
        yield batch.numel()


def _packed(samples) -> Iterator:
    """Documents' tokens -> micro_batch x (seq_len + 1) int64 tensors (EOT after each document)."""
    need, pieces, have = BATCH_TOKENS, [], 0
    eot = np.array([EOT], np.uint16)
    for (tokens,) in samples:
        pieces += [tokens, eot]
        have += len(tokens) + 1
        if have >= need:
            flat = np.concatenate(pieces)
            full = len(flat) // need
            for k in range(full):
                yield _int64(list(flat[k * need : (k + 1) * need].reshape(MICRO_BATCH, SEQ_LEN + 1)))
            pieces, have = [flat[full * need :]], len(flat) - full * need


def batches_webdataset(root: Path, workers: int) -> Iterator[int]:
    import torch
    import webdataset as wds

    urls = sorted(str(p) for p in root.glob("train-*.tar"))
    dataset = (
        wds.WebDataset(urls, shardshuffle=False, empty_check=False)
        .shuffle(1000)
        .decode()
        .to_tuple("tokens.npy")
        .compose(_packed)
    )
    for batch in torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers):
        yield batch.numel()


LOADERS = {
    "ours": batches_ours,
    "ours-no-index": batches_ours,
    "litdata": batches_litdata,
    "mds": batches_mds,
    "webdataset": batches_webdataset,
}


def run_one(name: str, root: Path, workers: int, steps: int) -> dict:
    """Tokens/s of `steps` batches after the first one."""
    batches = LOADERS[name](root / "no-index" if name == "ours-no-index" else root, workers)
    started = time.perf_counter()
    next(batches)
    first = time.perf_counter() - started
    started = time.perf_counter()
    tokens = sum(islice(batches, steps))
    seconds = time.perf_counter() - started
    assert tokens == steps * BATCH_TOKENS, (tokens, steps)
    return {"tokens_per_s": tokens / seconds, "first_batch_s": first}


# ---- writing the peers' copies of the documents (also in fresh processes) ------------------------------


def documents(root: Path) -> Iterator[np.ndarray]:
    """Every train document's tokens, in manifest and file order."""
    from training.release import open_release, read_shard_tokens

    release = open_release(str(root))
    for entry in release.shards("train"):
        for _, _, tokens in read_shard_tokens(entry, release.vocab_size):
            yield tokens


def _litdata_shard(url: str):
    import torch

    from training.release import open_release, read_shard_tokens

    root = str(Path(url).parent)
    entry = next(e for e in open_release(root).shards("train") if e["url"] == url)
    for _, _, tokens in read_shard_tokens(entry, EOT + 1):
        yield torch.from_numpy(np.append(tokens, np.uint16(EOT)).astype(np.int32))


def prepare(name: str, root: Path) -> None:
    if name == "litdata":
        from litdata import TokensLoader, optimize

        urls = [f"{root}/{p.name}" for p in sorted(root.glob("train-*.tar"))]
        optimize(
            fn=_litdata_shard,
            inputs=urls,
            output_dir=str(root / "litdata"),
            chunk_bytes="64MB",
            item_loader=TokensLoader(),
            num_workers=1,
            verbose=False,
        )
    elif name == "mds":
        _stub_torchvision()
        from streaming import MDSWriter

        need, carry = SEQ_LEN + 1, np.zeros(0, np.uint16)
        with MDSWriter(
            out=str(root / "mds"), columns={"tokens": "ndarray:uint16"}, size_limit=1 << 26
        ) as out:
            for tokens in documents(root):
                carry = np.concatenate([carry, tokens, [EOT]]).astype(np.uint16)
                while len(carry) >= need:
                    out.write({"tokens": carry[:need].copy()})
                    carry = carry[need:]


def child(argv: list[str]) -> None:
    if argv[0] == "prepare":
        prepare(argv[1], Path(argv[2]))
    else:
        print("RESULT " + json.dumps(run_one(argv[1], Path(argv[2]), int(argv[3]), int(argv[4]))), flush=True)


# ---- the benchmark ------------------------------------------------------------------------------------


def in_fresh_process(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )


def unavailable(name: str) -> str | None:
    """Why peer `name` cannot run here, or None."""
    module = PEERS.get(name)
    if module and importlib.util.find_spec(module) is None:
        return "not installed (pip install '.[bench]')"
    return None


def report(results_file: str | None, name: str, value: float | str) -> None:
    shown = f"{value / 1e6:.1f}M tokens/s" if isinstance(value, float) and value > 1000 else value
    print(f"{name}: {shown}")
    if results_file:
        with open(results_file, "a", encoding="utf-8") as out:
            out.write(json.dumps({"bench": "loader", "name": name, "value": value}) + "\n")


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    from corpus.shard_index import INDEX_SUFFIX
    from tests.training.release_fixture import write_synthetic_release

    tokens = env_int("BENCH_LOADER_TOKENS", 32_000_000)
    started = time.perf_counter()
    root = write_synthetic_release(tmp_path_factory.mktemp("bench-release"), tokens)
    old = root / "no-index"  # the same shards as a release made before indexes
    old.mkdir()
    for shard in root.glob("train-*.tar"):
        (old / shard.name).symlink_to(shard)
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["splits"]["train"]:
        del entry["index"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    (old / "tokenizer").symlink_to(root / "tokenizer")
    assert len(list(root.glob(f"*{INDEX_SUFFIX}"))) == len(manifest["splits"]["train"])
    print(f"\nwrote a {tokens / 1e6:.0f}M-token release in {time.perf_counter() - started:.1f} s")
    return root


def test_loader_tokens_per_second_beside_litdata_mds_and_webdataset(release_dir):
    results_file = os.environ.get("BENCH_RESULTS")
    workers = [int(w) for w in os.environ.get("BENCH_LOADER_WORKERS", "0,2").split(",")]
    repeats = env_int("BENCH_LOADER_REPEATS", 3)
    manifest = json.loads((release_dir / "manifest.json").read_text())
    total = sum(e["tokens"] + e["docs"] for e in manifest["splits"]["train"])
    steps = int(total * float(os.environ.get("BENCH_LOADER_FRACTION", "0.8")) // BATCH_TOKENS)
    load = os.getloadavg()
    print(
        f"{total / 1e6:.1f}M tokens, {steps} batches of {MICRO_BATCH} x {SEQ_LEN + 1} timed; "
        f"{os.cpu_count()} CPUs, load {load[0]:.2f} at start"
    )
    names = []
    for name in LOADERS:
        why = unavailable(name)
        if why is None and name in ("litdata", "mds"):
            started = time.perf_counter()
            done = in_fresh_process("prepare", name, str(release_dir))
            why = None if done.returncode == 0 else "cannot write its format: " + _last_line(done)
            print(f"{name}: wrote its copy in {time.perf_counter() - started:.1f} s" if why is None else "")
        if why:
            report(results_file, f"peer {name}", why)
            continue
        if name == "mds" and importlib.util.find_spec("torchvision") is None:
            print("peer mds: torchvision missing, stubbed in its processes (its text reader never uses it)")
        names.append(name)
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):  # rounds interleaved: load from elsewhere on the machine hits every loader alike
        for w in workers:
            for name in names:
                done = in_fresh_process("run", name, str(release_dir), str(w), str(steps))
                line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                if done.returncode or not line:
                    rates.setdefault((name, w), [])
                    print(f"{name} workers={w}: failed: {_last_line(done)}")
                    continue
                rates.setdefault((name, w), []).append(json.loads(line[0][7:])["tokens_per_s"])
    for w in workers:
        median = {n: statistics.median(r) for (n, wk), r in rates.items() if wk == w and r}
        for name, rate in median.items():
            report(results_file, f"loader {name} workers={w} tokens/s", rate)
        ours = median.get("ours", 0.0)
        for name, rate in median.items():
            if name != "ours":
                report(results_file, f"ratio ours/{name} workers={w}", round(ours / rate, 2))
        met = ours >= TARGET and all(ours >= r for n, r in median.items() if n != "ours-no-index")
        report(
            results_file,
            f"target >= 20M tokens/s and >= every peer, workers={w}",
            "met" if met else "NOT met",
        )
        assert ours > 1e5
    print(f"load {os.getloadavg()[0]:.2f} at end")


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


def first_batch_seconds(loader) -> float:
    started = time.perf_counter()
    next(iter(loader))
    return time.perf_counter() - started


def test_resume_cost_mid_shard(release_dir):
    from training.config import LoaderConfig
    from training.data import build_loader
    from training.release import open_release

    release = open_release(str(release_dir))
    config = LoaderConfig("train", SEQ_LEN, MICRO_BATCH, seed=0, shuffle_buffer=100)
    loader = build_loader(release, config)
    steps = release.shards("train")[0]["tokens"] // BATCH_TOKENS // 2
    for _ in islice(loader, steps):  # about half way through the first shard read
        pass
    state = loader.state_dict()
    resumed = build_loader(release, config)
    resumed.load_state_dict(state)
    fresh = first_batch_seconds(build_loader(release, config))
    restored = first_batch_seconds(resumed)
    sample = state["dataset_state"]["sample"]
    report(os.environ.get("BENCH_RESULTS"), "loader first batch, fresh start ms", round(fresh * 1e3, 1))
    report(
        os.environ.get("BENCH_RESULTS"),
        f"loader first batch, resumed at sample {sample} ms",
        round(restored * 1e3, 1),
    )
    assert sample > 0


if __name__ == "__main__":
    child(sys.argv[1:])
