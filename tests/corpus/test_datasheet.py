"""Tests for corpus.datasheet: datasheet.md sections, numbers, PNG plots and determinism."""

from __future__ import annotations

from corpus.datasheet import PLOTS, write_datasheet

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = [
    "## Motivation",
    "## Composition",
    "## Collection process",
    "## Preprocessing, cleaning, labeling",
    "## Uses",
    "## Distribution",
    "## Maintenance",
]


def _inputs() -> tuple[dict, dict, dict]:
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


def test_datasheet_is_deterministic(tmp_path) -> None:
    manifest, stats, summary = _inputs()
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
