"""Tests for corpus.datasheet and corpus.signal_histograms: datasheet.md sections, numbers, PNG plots, the
quality-signal summary and determinism."""

from __future__ import annotations

import math
from collections import Counter

import matplotlib.image
import pytest

from corpus.datasheet import PLOTS, write_datasheet
from corpus.docs import annotations
from corpus.language import LanguageIdentifier
from corpus.rules import PRESETS as RULE_PRESETS
from corpus.rules import drop_reason
from corpus.signal_histograms import BINS, PRESETS, SHOWN, merge, quantile, summarize
from corpus.signals import SIGNALS
from tests.fixtures.near_duplicates import load_gold

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = [
    "## Motivation",
    "## Composition",
    "## Collection process",
    "## Preprocessing, cleaning, labeling",
    "## Quality signals",
    "### Documents each preset would drop",
    "## Uses",
    "## Distribution",
    "## Maintenance",
]


# Texts beside the real articles that some preset drops for a reason the articles do not give.
EXTRA_TEXTS = [
    "Menu\nHome\nMenu\nHome\nMenu\nHome\nContact us\n" * 3,
    "Ceci est un article en français. " * 40 + "\nIl parle de la ville et de ses habitants.",
    "function x() { return 1; }\n" * 10,
]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    """Annotated rows of the eight real articles of the near-duplicates fixture and EXTRA_TEXTS, as the
    extract stage annotates them, and one row from before annotations."""
    identifier = LanguageIdentifier()
    texts = [*sorted(load_gold().values()), *EXTRA_TEXTS]
    return [{"text": t, **annotations(t, identifier)} for t in texts] + [{"text": "old row"}]


def _inputs(signal_rows: list[dict] | None = None) -> tuple[dict, dict, dict]:
    stats = {
        "links": {
            "stage": "links",
            "in": 5000,
            "out": 1200,
            "dropped": {"low_karma": 3700, "self_post": 100},
        },
        "dedup": {"stage": "dedup", "in": 1100, "out": 1010, "dropped": {"exact": 60, "near": 30}},
        "filter": {"stage": "filter", "in": 1010, "out": 987, "dropped": {"wikipedia": 23}},
    }
    manifest = {
        "format_version": 1,
        "created_by": "webtext 0.1.0",
        "config": {"links": {"min_karma": 3}, "release": {"val_fraction": 0.005, "shard_docs": 500}},
        "tokenizer": {
            "path": "tokenizer/tokenizer.json",
            "sha256": "ab" * 32,
            "vocab_size": 50257,
            "eot_id": 50256,
        },
        "splits": {
            "train": [
                {
                    "path": "train-000000.tar",
                    "sha256": "0" * 64,
                    "bytes": 81920,
                    "docs": 500,
                    "tokens": 123456,
                },
                {
                    "path": "train-000001.tar",
                    "sha256": "1" * 64,
                    "bytes": 71680,
                    "docs": 482,
                    "tokens": 111111,
                },
            ],
            "val": [
                {"path": "val-000000.tar", "sha256": "2" * 64, "bytes": 10240, "docs": 5, "tokens": 4321}
            ],
        },
        "stages": stats,
    }
    summary = {
        "lengths": [(i * 37) % 900 + 10 for i in range(987)],
        "domains": {"example.com": 300, "news.example": 120, "blog.example": 120, "z.example": 1},
        "subreddits": {"science": 400, "worldnews": 250, "programming": 90},
        "karma": [3 + (i * 13) % 500 for i in range(987)],
    }
    if signal_rows is not None:
        summary["signals"] = summarize(signal_rows)
    return manifest, stats, summary


def test_datasheet_sections_numbers_and_plots(tmp_path) -> None:
    manifest, stats, summary = _inputs()
    names = write_datasheet(str(tmp_path), manifest, stats, summary)
    assert names == ["datasheet.md", *PLOTS.values()]
    text = (tmp_path / "datasheet.md").read_text(encoding="utf-8")
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    for needle in [
        "| train | 2 | 982 | 234,567 | 153,600 |",
        "| val | 1 | 5 | 4,321 | 10,240 |",
        "987 documents",
        "238,888 tokens",
        "vocab size 50,257",
        "end-of-text id 50,256",
        "ab" * 32,
        "| links | 5,000 | 1,200 | 3,800 | low_karma: 3,700, self_post: 100 |",
        "| filter | 1,010 | 987 | 23 | wikipedia: 23 |",
        '"min_karma": 3',
        '"val_fraction": 0.005',
        "example.com (300), blog.example (120), news.example (120)",
        "science (400)",
        "webtext 0.1.0",
    ]:
        assert needle in text, needle
    for name in PLOTS.values():
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
        assert b"IEND" in data[-12:]
        assert name in text


def test_datasheet_is_deterministic(tmp_path, rows) -> None:
    manifest, stats, summary = _inputs(rows)
    a, b = tmp_path / "a", tmp_path / "b"
    write_datasheet(str(a), manifest, stats, summary)
    write_datasheet(str(b), manifest, stats, summary)
    assert (a / "datasheet.md").read_bytes() == (b / "datasheet.md").read_bytes()
    for name in PLOTS.values():
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_datasheet_empty_inputs(tmp_path) -> None:
    names = write_datasheet(str(tmp_path), {"splits": {}}, {}, {})
    text = (tmp_path / "datasheet.md").read_text(encoding="utf-8")
    assert all(s in text for s in SECTIONS)
    assert all((tmp_path / n).read_bytes().startswith(PNG_MAGIC) for n in names[1:])


def test_datasheet_shows_the_signals_quantiles_and_what_each_preset_would_drop(tmp_path, rows) -> None:
    manifest, stats, summary = _inputs(rows)
    stats["filter"]["config"] = {"filter": {"rules": [{"name": "webtext", "rules": []}]}}
    write_datasheet(str(tmp_path), manifest, stats, summary)
    text = (tmp_path / "datasheet.md").read_text(encoding="utf-8")
    annotated = [row for row in rows if "word_count" in row]
    assert f"All {len(annotated)} documents counted here are in the release" in text
    assert "1 of 12 documents carry no signals" in text
    assert "its rules (`--rules webtext`)" in text
    for preset in PRESETS:  # an independent count: the first rule of the preset that holds, per document
        reasons = [drop_reason(row, RULE_PRESETS[preset]) for row in annotated]
        dropped = sum(reason is not None for reason in reasons)
        assert dropped, preset  # every preset drops one of these documents: the count is tested, not 0 = 0
        share = f"{100 * dropped / len(annotated):.1f}%"
        assert f"| {preset} | {dropped} | {share} | " in text, preset
        first = max(sorted({r[0] for r in reasons if r}), key=[r and r[0] for r in reasons].count)
        assert f"`{first}` " in text
    assert "| `word_count` |" in text and "webtext < 100; gopher < 50; gopher > 100000 |" in text
    assert "| webtext, gopher > 0.1 |" in text  # the same rule in two presets
    languages = Counter(row.get("language", "unknown") for row in rows)
    assert {"en", "fr", "unknown"} <= set(languages)
    for code, n in languages.items():
        assert f"{code} {n} ({100 * n / len(rows):.1f}%)" in text, code


def test_signals_plot_is_a_png_with_a_panel_per_signal(tmp_path, rows) -> None:
    manifest, stats, summary = _inputs(rows)
    write_datasheet(str(tmp_path), manifest, stats, summary)
    image = matplotlib.image.imread(tmp_path / PLOTS["signals"])
    height, width = image.shape[:2]
    assert width == 1400 and height >= 900  # 4 columns of 14 inches at 100 dpi, 5 rows
    assert image[..., :3].std() > 0.05  # drawn on, not a blank page


def test_summaries_add_up_whatever_the_batches(rows) -> None:
    whole = summarize(rows)
    assert merge([summarize(rows[:3]), summarize(rows[3:7]), summarize(rows[7:])]) == whole
    assert merge([summarize(rows[7:]), summarize([]), summarize(rows[:7])]) == whole
    assert merge([]) == summarize([])
    assert whole["documents"] == len(rows) and whole["unannotated"] == 1
    assert all(sum(whole["histograms"][name]) == len(rows) - 1 for name in SHOWN)


@pytest.mark.parametrize("name", SHOWN)
def test_quantiles_are_within_a_bin_below_the_exact_ones(rows, name) -> None:
    values = sorted(row[name] for row in rows if name in row)
    counts = summarize(rows)["histograms"][name]
    edges = BINS[name]
    for q in (0.1, 0.5, 0.9):
        exact = values[max(1, math.ceil(q * len(values))) - 1]  # nearest rank
        found = quantile(counts, edges, q)
        if exact >= edges[-1]:  # the Japanese article's "words" are whole sentences
            assert found is None
            continue
        assert found is not None and found <= exact, (q, found, exact)
        assert exact < edges[edges.index(found) + 1], (q, found, exact)
        if edges is BINS["word_count"] and exact <= 10:
            assert found == exact  # counts are exact up to 10


def test_a_value_above_the_top_edge_is_counted_and_shown_as_above_it(tmp_path) -> None:
    row = {"language": "en", **dict.fromkeys(SIGNALS, 0), "gopher_hash_word_ratio": 2.5}
    row |= {"gopher_alpha_word_frac": 1.0, "word_count": 10**8}
    summary = summarize([row])
    assert summary["histograms"]["gopher_hash_word_ratio"][-1] == 1  # the overflow count
    assert summary["histograms"]["gopher_alpha_word_frac"][-2] == 1  # 1.0: in [1, 1.01)
    assert quantile(summary["histograms"]["word_count"], BINS["word_count"], 0.5) is None
    assert quantile([0] * len(BINS["word_count"]), BINS["word_count"], 0.5) is None
    manifest, stats, docs_summary = _inputs()
    write_datasheet(str(tmp_path), manifest, stats, docs_summary | {"signals": summary})
    text = (tmp_path / "datasheet.md").read_text(encoding="utf-8")
    assert "| `gopher_hash_word_ratio` | ≥ 2 | ≥ 2 | ≥ 2 |" in text
    assert "| `word_count` | ≥ 1e+07 |" in text
    assert "| `gopher_alpha_word_frac` | 1 | 1 | 1 |" in text


def test_datasheet_says_whether_personal_information_was_scrubbed(tmp_path) -> None:
    manifest, stats, summary = _inputs()
    write_datasheet(str(tmp_path / "off"), manifest, stats, summary)
    off = (tmp_path / "off" / "datasheet.md").read_text(encoding="utf-8")
    assert "addresses were left in the text" in off
    stats["filter"] |= {"pii_email": 1234, "pii_ip": 7, "config": {"filter": {"scrub_pii": True}}}
    write_datasheet(str(tmp_path / "on"), manifest, stats, summary)
    on = (tmp_path / "on" / "datasheet.md").read_text(encoding="utf-8")
    assert "1,234 e-mail and 7 public IP addresses were replaced" in on
