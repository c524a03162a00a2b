"""Human summaries of a stage's published outputs, printed at the end of a command and by the demo."""

from __future__ import annotations

from collections import Counter

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.accounting import load_stats
from pipelines.outputs import read_table


def read_stats(out_dir: str, stage: str):
    path = FileSystems.join(out_dir, stage, "stats.json")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return load_stats(handle.read().decode("utf-8"))


def links_summary(out_dir: str, top: int = 10) -> str:
    stats = read_stats(out_dir, "links")
    links = read_table(FileSystems.join(out_dir, "links", "part-*.parquet"))
    domains = Counter(links.column("domain").to_pylist()) if links.num_rows else Counter()
    lines = [
        f"links: {stats.items_in} submissions read, {stats.items_out} contributed to "
        f"{links.num_rows} links, {sum(stats.dropped.values())} dropped",
        f"  top domains ({len(domains)} in all):",
        *(
            f"    {n:6d}  {domain}"
            for domain, n in sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ),
        "  dropped by reason:",
        *(
            f"    {n:6d}  {reason}"
            for reason, n in sorted(stats.dropped.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        f"  outputs: {FileSystems.join(out_dir, 'links')}/part-*.parquet, "
        f"{FileSystems.join(out_dir, 'ledger')}/links-*.parquet, stats.json",
    ]
    return "\n".join(lines)
