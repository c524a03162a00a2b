"""Human summaries of a stage's published outputs, printed at the end of a command and by the demo."""

from __future__ import annotations

from collections import Counter

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.accounting import StageStats, load_stats
from corpus.workdir import Output
from pipelines.outputs import find_stage_output, read_table, stage_output


def read_stats(output: Output) -> StageStats:
    path = output.join("stats.json")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return load_stats(handle.read().decode("utf-8"))


def by_count(counts: Counter | dict, top: int | None = None) -> list[str]:
    """Indented `count  name` lines, largest first."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [f"    {n:6d}  {name}" for name, n in ranked] or ["    (none)"]


def column_counts(table, name: str) -> Counter:
    return Counter(table.column(name).to_pylist()) if table.num_rows else Counter()


def links_summary(out_dir: str, top: int = 10) -> str:
    output = stage_output(out_dir, "links")
    stats = read_stats(output)
    links = read_table(output.join("part-*.parquet"), ["domain"])
    domains = column_counts(links, "domain")
    return "\n".join(
        [
            f"links: {stats.items_in} submissions read, {stats.items_out} contributed to "
            f"{links.num_rows} links, {sum(stats.dropped.values())} dropped",
            f"  top domains ({len(domains)} in all):",
            *by_count(domains, top),
            "  dropped by reason:",
            *by_count(stats.dropped),
            f"  outputs: {output.path}/: part-*.parquet, ledger/links-*.parquet, stats.json",
        ]
    )


def fetch_summary(out_dir: str) -> str:
    output = stage_output(out_dir, "fetch")
    stats = read_stats(output)
    index = read_table(output.join("index-*.parquet"), ["outcome"])
    return "\n".join(
        [
            f"fetch: {stats.items_in} links, {stats.items_out} pages ok",
            "  outcomes:",
            *by_count(column_counts(index, "outcome")),
            f"  outputs: {output.path}/: index-*.parquet, *.warc.gz, ledger/fetch-*.parquet, stats.json",
        ]
    )


def extract_summary(out_dir: str, top: int = 5) -> str:
    output = stage_output(out_dir, "extract")
    stats = read_stats(output)
    docs = read_table(output.join("part-*.parquet"), ["words", "title", "domain"])
    rows = docs.to_pylist()
    longest = sorted(rows, key=lambda r: -r["words"])[:top]
    words = sum(r["words"] for r in rows)
    return "\n".join(
        [
            f"extract: {stats.items_in} pages, {stats.items_out} documents, {words} words; the longest:",
            *(f"    {r['words']:6d} words  {r['domain']}: {(r['title'] or '')[:60]}" for r in longest),
            "  dropped by reason:",
            *by_count(stats.dropped),
            f"  outputs: {output.path}/: part-*.parquet, ledger/extract-*.parquet, stats.json",
        ]
    )


def dedup_summary(out_dir: str, top: int = 5) -> str:
    output = stage_output(out_dir, "dedup")
    stats = read_stats(output)
    clusters = read_table(output.join("clusters-*.parquet"))
    source = find_stage_output(out_dir, "extract")  # the documents dedup read, the dropped ones too
    docs = read_table(source.join("part-*.parquet"), ["id", "url"]) if source else None
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
            f"  outputs: {output.path}/: part-*.parquet, clusters-*.parquet, ledger/dedup-*.parquet",
        ]
    )


def filter_summary(out_dir: str) -> str:
    output = stage_output(out_dir, "filter")
    stats = read_stats(output)
    return "\n".join(
        [
            f"filter: {stats.items_in} documents, {stats.items_out} kept",
            "  dropped by reason:",
            *by_count(stats.dropped),
            f"  outputs: {output.path}/: part-*.parquet, ledger/filter-*.parquet, stats.json",
        ]
    )


def release_summary(out_dir: str) -> str:
    import json

    output = stage_output(out_dir, "release")
    path = output.join("manifest.json")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        manifest = json.loads(handle.read().decode("utf-8"))
    tokenizer = manifest["tokenizer"]
    lines = [f"release: tokenizer of {tokenizer['vocab_size']} tokens (end of text: {tokenizer['eot_id']})"]
    for split, shards in sorted(manifest["splits"].items()):
        docs, tokens = sum(s["docs"] for s in shards), sum(s["tokens"] for s in shards)
        lines.append(f"    {split:5s} {len(shards):3d} shards {docs:8d} documents {tokens:10d} tokens")
    lines += [
        f"  manifest: {path}",
        f"  datasheet: {output.join('datasheet.md')}",
    ]
    return "\n".join(lines)
