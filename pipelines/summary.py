"""Human summaries of a stage's published outputs, printed at the end of a command and by the demo."""

from __future__ import annotations

from collections import Counter

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.accounting import StageStats, load_stats
from pipelines.outputs import read_table


def read_stats(out_dir: str, directory: str) -> StageStats:
    path = FileSystems.join(out_dir, directory, "stats.json")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return load_stats(handle.read().decode("utf-8"))


def by_count(counts: Counter | dict, top: int | None = None) -> list[str]:
    """Indented `count  name` lines, largest first."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [f"    {n:6d}  {name}" for name, n in ranked] or ["    (none)"]


def column_counts(table, name: str) -> Counter:
    return Counter(table.column(name).to_pylist()) if table.num_rows else Counter()


def links_summary(out_dir: str, top: int = 10) -> str:
    stats = read_stats(out_dir, "links")
    links = read_table(FileSystems.join(out_dir, "links", "part-*.parquet"), ["domain"])
    domains = column_counts(links, "domain")
    return "\n".join(
        [
            f"links: {stats.items_in} submissions read, {stats.items_out} contributed to "
            f"{links.num_rows} links, {sum(stats.dropped.values())} dropped",
            f"  top domains ({len(domains)} in all):",
            *by_count(domains, top),
            "  dropped by reason:",
            *by_count(stats.dropped),
            f"  outputs: {out_dir}/links/part-*.parquet, {out_dir}/ledger/links-*.parquet, stats.json",
        ]
    )


def fetch_summary(out_dir: str) -> str:
    stats = read_stats(out_dir, "fetch")
    index = read_table(FileSystems.join(out_dir, "fetch", "index-*.parquet"), ["outcome"])
    return "\n".join(
        [
            f"fetch: {stats.items_in} links, {stats.items_out} pages ok",
            "  outcomes:",
            *by_count(column_counts(index, "outcome")),
            f"  outputs: {out_dir}/fetch/index-*.parquet and *.warc.gz, {out_dir}/ledger/fetch-*.parquet",
        ]
    )


def extract_summary(out_dir: str, top: int = 5) -> str:
    stats = read_stats(out_dir, "docs")
    docs = read_table(FileSystems.join(out_dir, "docs", "part-*.parquet"), ["words", "title", "domain"])
    rows = docs.to_pylist()
    longest = sorted(rows, key=lambda r: -r["words"])[:top]
    words = sum(r["words"] for r in rows)
    return "\n".join(
        [
            f"extract: {stats.items_in} pages, {stats.items_out} documents, {words} words; the longest:",
            *(f"    {r['words']:6d} words  {r['domain']}: {(r['title'] or '')[:60]}" for r in longest),
            "  dropped by reason:",
            *by_count(stats.dropped),
            f"  outputs: {out_dir}/docs/part-*.parquet, {out_dir}/ledger/extract-*.parquet, stats.json",
        ]
    )


def dedup_summary(out_dir: str, top: int = 5) -> str:
    stats = read_stats(out_dir, "dedup")
    clusters = read_table(FileSystems.join(out_dir, "dedup", "clusters-*.parquet"))
    docs = read_table(FileSystems.join(out_dir, "docs", "part-*.parquet"), ["id", "url"])
    url = (
        dict(zip(docs.column("id").to_pylist(), docs.column("url").to_pylist(), strict=True)) if docs else {}
    )
    groups: dict[tuple[str, str], list[str]] = {}
    for row in clusters.to_pylist() if clusters.num_rows else []:
        if not row["reason"].endswith("_kept"):
            groups.setdefault((row["reason"], row["kept_id"]), []).append(row["id"])
    lines = [f"dedup: {stats.items_in} documents, {stats.items_out} kept; {len(groups)} duplicate clusters:"]
    for (reason, kept), dropped in sorted(groups.items())[:top]:
        lines.append(f"    {reason}: kept {url.get(kept, kept)}")
        lines += [f"        dropped {url.get(d, d)}" for d in sorted(dropped)]
    return "\n".join(
        [
            *lines,
            "  dropped by reason:",
            *by_count(stats.dropped),
            f"  outputs: {out_dir}/dedup/part-*.parquet and clusters-*.parquet, ledger/dedup-*.parquet",
        ]
    )


def filter_summary(out_dir: str) -> str:
    stats = read_stats(out_dir, "filter")
    return "\n".join(
        [
            f"filter: {stats.items_in} documents, {stats.items_out} kept",
            "  dropped by reason:",
            *by_count(stats.dropped),
            f"  outputs: {out_dir}/filter/part-*.parquet, {out_dir}/ledger/filter-*.parquet, stats.json",
        ]
    )


def release_summary(out_dir: str) -> str:
    import json

    path = FileSystems.join(out_dir, "release", "manifest.json")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        manifest = json.loads(handle.read().decode("utf-8"))
    tokenizer = manifest["tokenizer"]
    lines = [f"release: tokenizer of {tokenizer['vocab_size']} tokens (end of text: {tokenizer['eot_id']})"]
    for split, shards in sorted(manifest["splits"].items()):
        docs, tokens = sum(s["docs"] for s in shards), sum(s["tokens"] for s in shards)
        lines.append(f"    {split:5s} {len(shards):3d} shards {docs:8d} documents {tokens:10d} tokens")
    lines += [
        f"  manifest: {path}",
        f"  datasheet: {FileSystems.join(out_dir, 'release', 'datasheet.md')}",
    ]
    return "\n".join(lines)
