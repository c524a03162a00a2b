"""Near-duplicate quality and MinHash speed, ours beside datasketch's `MinHash.bulk` (run by `make bench`).

Documents ($WEBTEXT_SHARED_DATA, default <repo>/../shared/data; skipped when absent): the 109 human-written
article texts of html_extraction/scrapinghub_aeb and the 10 full WebText train documents, each with its 13
planted variants (`tests/fixtures/near_duplicates.py`: edited words, boilerplate, reordered paragraphs,
truncations), among the 4,723 real WebText test documents (first 63 tokens) as unrelated background.
Ground truth: every pair whose exact Jaccard over the same word 5-shingles is >= the threshold.

Pairs found: LSH candidates (documents sharing a band key) verified by estimated Jaccard >= threshold, as
the dedup stage finds them. Precision and recall are averaged over BENCH_DEDUP_SEEDS permutation seeds
(default 20; the same seed gives ours and datasketch the same permutations, so only the shingle hash
differs: ours vs SHA-1). Also shown: "outside the gray zone", leaving out pairs within 0.05 of the threshold
(the estimator's standard deviation at 128 permutations is ~0.035 there).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from corpus.minhash import MinHashConfig, MinHasher, estimated_jaccard
from corpus.near_duplicates import reference_pairs
from corpus.ngrams import ngrams, words
from tests.fixtures.near_duplicates import RECIPES, load_gold, plant, shingle_sets, similar_pairs

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DATA", ROOT.parent / "shared" / "data"))
GOLD = SHARED / "html_extraction" / "scrapinghub_aeb" / "ground-truth.json"
WEBTEXT = SHARED / "webtext_samples"
SEEDS = range(1, 1 + int(os.environ.get("BENCH_DEDUP_SEEDS", "20")))
CONFIG = MinHashConfig(num_perm=128, shingle=5, threshold=0.8)
GRAY = 0.05

pytestmark = pytest.mark.skipif(not GOLD.is_file(), reason=f"shared data not found: {GOLD}")


@pytest.fixture(scope="module")
def collection():
    """(ids, texts, {pair: exact Jaccard} for every pair with J >= 0.5)."""
    sources = load_gold(GOLD)
    for path in sorted((WEBTEXT / "webtext_train_10").glob("*.txt")):
        sources[f"webtext-train-{path.stem}"] = path.read_text(encoding="utf-8")
    variants = {v.id: v.text for v in plant(sources, RECIPES, seed=0)}
    background = {}
    if (WEBTEXT / "webtext.test.first63tok.jsonl").is_file():
        with open(WEBTEXT / "webtext.test.first63tok.jsonl", encoding="utf-8") as lines:
            background = {f"webtext-test-{n:04d}": json.loads(line)["text"] for n, line in enumerate(lines)}
    docs = {**sources, **variants, **background}
    ids = sorted(docs)
    pairs = similar_pairs(shingle_sets(docs, CONFIG.shingle), 0.5)
    print(f"\n{len(sources)} real sources + {len(variants)} planted variants + {len(background)} background")
    return ids, [docs[i] for i in ids], pairs


def datasketch_shingles(text: str, k: int) -> list[bytes]:
    """The same shingles as `shingle_set`, as datasketch takes them: bytes, unsorted (sorting is ours)."""
    tokens = words(text)
    if len(tokens) < k:
        return [" ".join(tokens).encode()] if tokens else []
    return [s.encode() for s in set(ngrams(tokens, k))]


def datasketch_signatures(
    texts: list[str], config: MinHashConfig, shingles: list | None = None
) -> np.ndarray:
    if shingles is None:
        shingles = [datasketch_shingles(t, config.shingle) for t in texts]
    minhashes = MinHash.bulk(shingles, num_perm=config.num_perm, seed=config.seed)
    return np.array([m.hashvalues for m in minhashes])


def precision_recall(found: set, pairs: dict, threshold: float, gray: float = 0.0) -> tuple[float, float]:
    """P and R of found pairs against pairs with J >= threshold; pairs within `gray` of it are left out."""
    truth = {p for p, j in pairs.items() if j >= threshold + gray}
    judged = {p for p in found if not threshold - gray <= pairs.get(p, 0.0) < threshold + gray}
    precision = len(judged & truth) / len(judged) if judged else 1.0
    return precision, len(found & truth) / len(truth)


def scores(found: set, pairs: dict) -> tuple[float, float, float, float]:
    """P, R, and P, R outside the gray zone."""
    return (
        *precision_recall(found, pairs, CONFIG.threshold),
        *precision_recall(found, pairs, CONFIG.threshold, GRAY),
    )


BINS = [0.5, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001]


def recall_by_bin(found: set, pairs: dict) -> list[float]:
    return [
        np.mean([p in found for p, j in pairs.items() if lo <= j < hi])
        for lo, hi in zip(BINS, BINS[1:], strict=False)
    ]


def test_pair_precision_and_recall_ours_vs_datasketch(collection):
    ids, texts, pairs = collection
    truth = sum(j >= CONFIG.threshold for j in pairs.values())
    gray = sum(CONFIG.threshold <= j < CONFIG.threshold + GRAY for j in pairs.values())
    print(
        f"ground truth: {truth} pairs with J >= {CONFIG.threshold}, "
        f"{gray} of them in the gray zone (J < {CONFIG.threshold + GRAY:.2f})"
    )
    equal = MinHashConfig(weights=(0.5, 0.5))
    pipeline = f"{CONFIG.bands()[0]}x{CONFIG.bands()[1]}, the pipeline's weights {CONFIG.weights}"
    settings = {  # name -> (b, r) of the LSH, or None: every pair with J >= 0.5 verified, no LSH
        f"{equal.bands()[0]}x{equal.bands()[1]}, datasketch equal weights (0.5, 0.5)": equal.bands(),
        pipeline: CONFIG.bands(),
        "no LSH: verification alone": None,
    }
    spec = pipeline
    shingles = [datasketch_shingles(t, CONFIG.shingle) for t in texts]
    index = {doc_id: n for n, doc_id in enumerate(ids)}
    rows: dict[tuple[str, str], list] = defaultdict(list)
    bins: dict[str, list] = defaultdict(list)
    for seed in SEEDS:
        config = MinHashConfig(num_perm=CONFIG.num_perm, shingle=CONFIG.shingle, seed=seed)
        signatures = {
            "ours (MinHasher)": MinHasher(config).signatures(texts),
            "datasketch MinHash.bulk": datasketch_signatures(texts, config, shingles),
        }
        for method, sig in signatures.items():
            for setting, bands in settings.items():
                if bands is None:
                    found = {
                        p
                        for p in pairs
                        if estimated_jaccard(sig[index[p[0]]], sig[index[p[1]]]) >= CONFIG.threshold
                    }
                else:
                    found = reference_pairs(ids, sig, *bands, CONFIG.threshold)
                rows[(method, setting)].append(scores(found, pairs))
                if setting == spec:
                    bins[method].append(recall_by_bin(found, pairs))

    print(
        f"\npairs found at threshold {CONFIG.threshold}, num_perm {CONFIG.num_perm}, "
        f"shingle {CONFIG.shingle}, "
        f"mean over {len(SEEDS)} seeds [min..max]; gray zone: exact J within {GRAY} of the threshold"
    )
    print(f"{'signatures':<24} {'LSH bands':<46} {'P':>17} {'R':>17}   P, R outside gray zone")
    for (method, setting), values in rows.items():
        cols = np.array(values).T
        p, r = (f"{c.mean():.3f} [{c.min():.2f}..{c.max():.2f}]" for c in cols[:2])
        print(f"{method:<24} {setting:<46} {p:>17} {r:>17}   {cols[2].mean():.3f}, {cols[3].mean():.3f}")
    print(f"\nrecall by exact Jaccard ({spec}):")
    print(
        " " * 26
        + " ".join(f"{f'[{lo:.2f},{min(hi, 1):.2f})':>12}" for lo, hi in zip(BINS, BINS[1:], strict=False))
    )
    for method, values in bins.items():
        print(f"  {method:<24}" + " ".join(f"{x:>12.3f}" for x in np.mean(values, axis=0)))

    # Same seeds give both the same permutations: compare them pair by pair (seed by seed).
    ours, theirs = (
        np.array(rows[("ours (MinHasher)", spec)]),
        np.array(rows[("datasketch MinHash.bulk", spec)]),
    )
    difference = (ours - theirs)[:, :2]
    error = difference.std(axis=0) / np.sqrt(len(SEEDS))
    print(
        f"\nours - datasketch ({spec}): dP = {difference[:, 0].mean():+.4f} +- {error[0]:.4f}, "
        f"dR = {difference[:, 1].mean():+.4f} +- {error[1]:.4f} (standard errors over seeds)"
    )
    for setting in settings:
        p, r = np.array(rows[("ours (MinHasher)", setting)])[:, :2].mean(axis=0)
        print(f"target P >= 0.95 and R >= 0.95, ours, {setting}: {'met' if min(p, r) >= 0.95 else 'NOT met'}")
    # Equal quality: any difference is within the noise of the seeds.
    assert (np.abs(difference.mean(axis=0)) <= np.maximum(0.01, 3 * error)).all()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def test_signature_speed_vs_datasketch_bulk(collection):
    _, texts, _ = collection
    config = CONFIG
    shingles = [datasketch_shingles(t, config.shingle) for t in texts]
    count = sum(map(len, shingles))
    runs = 3
    # A fresh MinHasher each run, so its word-hash cache starts cold like datasketch; a worker that keeps
    # one across bundles (warm) is shown too.
    ours = min(timed(lambda: MinHasher(config).signatures(texts)) for _ in range(runs))
    warm_hasher = MinHasher(config)
    warm_hasher.signatures(texts)
    warm = min(timed(lambda: warm_hasher.signatures(texts)) for _ in range(runs))
    theirs = min(timed(lambda: datasketch_signatures(texts, config)) for _ in range(runs))
    theirs_bulk = min(
        timed(lambda: MinHash.bulk(shingles, num_perm=config.num_perm, seed=config.seed)) for _ in range(runs)
    )
    tokenize = min(timed(lambda: [words(t) for t in texts]) for _ in range(runs))
    print(f"\n{len(texts)} documents, {count} shingles (distinct per document), num_perm {config.num_perm}")
    print(f"{'best of ' + str(runs):<60} {'signatures/s':>12} {'shingles/s':>12} {'time/ours':>9}")
    rows = [
        ("ours: MinHasher.signatures, texts -> signatures", ours),
        ("ours, word-hash cache warm (a worker's later bundles)", warm),
        ("datasketch: shingling + MinHash.bulk, texts -> signatures", theirs),
        ("datasketch: MinHash.bulk alone, shingles given", theirs_bulk),
    ]
    for name, seconds in rows:
        print(f"{name:<60} {len(texts) / seconds:>12,.0f} {count / seconds:>12,.0f} {seconds / ours:>8.2f}x")
    print(f"corpus.ngrams.words alone (both sides tokenize): {tokenize:.3f} s, {tokenize / ours:.0%} of ours")
    ratio = theirs / ours
    print(
        f"speed-up over datasketch on the same documents: {ratio:.2f}x "
        f"(target >= 3x: {'met' if ratio >= 3 else 'NOT met'})"
    )


def test_dedup_stage_docs_per_second(collection, tmp_path):
    """The whole dedup stage (exact + MinHash + LSH + components + keep rule + writing) at 1 and 2 workers."""
    from corpus.docs import DOCS_SCHEMA
    from pipelines.dedup.stage import STAGE as DEDUP
    from pipelines.dedup.transform import DedupOptions
    from pipelines.outputs import write_table
    from tests.pipelines.test_dedup_filter import doc

    ids, texts, _ = collection
    rows = [
        doc(f"https://example.org/{i}", text, karma=len(i) % 7) for i, text in zip(ids, texts, strict=True)
    ]
    (tmp_path / "docs").mkdir()
    write_table(str(tmp_path / "docs" / "part-00000-of-00001.parquet"), rows, DOCS_SCHEMA)
    docs = str(tmp_path / "docs" / "part-*.parquet")
    multi = [
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
        "--default_sdk_harness_log_level=WARNING",
    ]
    one = timed(lambda: DEDUP.run(DedupOptions(docs, CONFIG), str(tmp_path / "one"), []))
    two = timed(lambda: DEDUP.run(DedupOptions(docs, CONFIG, num_shards=2), str(tmp_path / "two"), multi))
    print(f"\ndedup stage, {len(rows)} documents ({os.cpu_count()} cores)")
    print(f"  1 worker   {len(rows) / one:8.0f} docs/s")
    print(f"  2 workers  {len(rows) / two:8.0f} docs/s   speed-up {one / two:.2f}x")
    assert one > 0
