"""datasheet.md ("Datasheets for Datasets", Gebru et al.) and PNG plots for a release.

Everything is filled from the manifest, the per-stage stats and a small summary of the documents; the same
inputs give the same markdown bytes (and, with matplotlib's Agg backend and no PNG dates, the same PNGs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen first
from matplotlib.ticker import MaxNLocator

from corpus.chain import CHAIN, UNITS
from corpus.signal_histograms import BINS, PRESETS, SHOWN, bin_index, is_count, quantile

PLOTS = {
    "lengths": "doc_lengths.png",
    "domains": "top_domains.png",
    "subreddits": "top_subreddits.png",
    "karma": "karma.png",
    "drops": "drops_by_stage.png",
    "signals": "signals.png",
}
TOP_N = 20
PNG_METADATA = {"Software": None}


def _top(counts: dict[str, int], n: int = TOP_N) -> list[tuple[str, int]]:
    """The n largest counts, ties broken by name."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def _hist(values: list[float], title: str, xlabel: str, path: str, log: bool = False) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    if values:
        ax.hist(values, bins=50, log=log, color="#4c72b0")
        if not log:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("documents")
    _save(fig, path)


def _barh(items: list[tuple[str, int]], title: str, xlabel: str, path: str, log: bool = False) -> None:
    """Horizontal bars, the first item on top; counts on an integer (or, with `log`, a log) axis."""
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.3 * len(items) + 1)))
    if items:
        labels = [k for k, _ in reversed(items)]
        ax.barh(range(len(items)), [v for _, v in reversed(items)], color="#55a868", log=log)
        ax.set_yticks(range(len(items)), labels, fontsize=8)
        if not log:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    _save(fig, path)


def _signal_panels(histograms: dict[str, list[int]], path: str) -> None:
    """One small histogram per signal of SHOWN, each preset's thresholds on it dashed, over the bins from
    the lowest to the highest that holds a document or a threshold."""
    cols = 4
    rows = -(-len(SHOWN) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(14, 2.3 * rows))
    for ax in axes.flat[len(SHOWN) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, SHOWN, strict=False):
        edges = BINS[name]
        counts = histograms.get(name) or [0] * len(edges)
        filled = [i for i, n in enumerate(counts[:-1]) if n]
        title = name if not counts[-1] else f"{name} ({_n(counts[-1])} ≥ {edges[-1]:g})"
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
        if not filled:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            continue
        thresholds = sorted({t for _, t in _preset_rules(name)})
        shown = filled + [bin_index(edges, t) for t in thresholds]
        lo, hi = min(shown), min(max(shown) + 1, len(edges) - 1)
        ax.stairs(counts[lo:hi], edges[lo : hi + 1], fill=True, color="#4c72b0")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if is_count(name):  # counts span decades; the bins are ~12% wide above 10
            ax.set_xscale("symlog", linthresh=10)
        for threshold in thresholds:
            ax.axvline(threshold, color="#c44e52", linestyle="--", linewidth=0.8)
    _save(fig, path)


def _preset_rules(signal: str) -> dict[tuple[str, float], list[str]]:
    """(op, threshold) -> the presets with that rule on `signal`, in preset and rule order."""
    found: dict[tuple[str, float], list[str]] = {}
    for preset, rule_set in PRESETS.items():
        for rule in rule_set.rules:
            if rule.signal == signal and preset not in found.setdefault((rule.op, rule.threshold), []):
                found[rule.op, rule.threshold].append(preset)
    return found


def _chain_order(stage: str) -> tuple[int, str]:
    return (CHAIN.index(stage) if stage in CHAIN else len(CHAIN), stage)


def drops(stats: dict[str, dict]) -> list[tuple[str, int]]:
    """``stage: reason (unit)`` -> count for every drop, stages in pipeline order, reasons by name."""
    out = []
    for stage in sorted(stats, key=_chain_order):
        unit = UNITS.get(stage, "records")
        for reason, n in sorted((stats[stage].get("dropped") or {}).items()):
            out.append((f"{stage}: {reason} ({unit})", int(n)))
    return out


def write_plots(directory: str, stats: dict[str, dict], docs_summary: dict) -> list[str]:
    """Write the PNG plots of PLOTS into ``directory``; return their file names."""
    j = lambda name: os.path.join(directory, PLOTS[name])  # noqa: E731
    _hist(list(docs_summary.get("lengths", [])), "Document length", "tokens per document", j("lengths"))
    domains = _top(dict(docs_summary.get("domains", {})))
    _barh(domains, f"Top {len(domains)} domains", "documents", j("domains"))
    subreddits = _top(dict(docs_summary.get("subreddits", {})))
    _barh(subreddits, f"Top {len(subreddits)} subreddits", "documents", j("subreddits"))
    _hist(list(docs_summary.get("karma", [])), "Reddit karma per document", "karma", j("karma"), log=True)
    # A log axis: one large reason (hundreds of links not in the archive) would hide every small one.
    _barh(drops(stats), "Drops by stage and reason", "dropped (log scale)", j("drops"), log=True)
    _signal_panels((docs_summary.get("signals") or {}).get("histograms") or {}, j("signals"))
    return [PLOTS[k] for k in PLOTS]


def _n(x: object) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_n(c) for c in row) + " |" for row in rows]
    return lines


def _split_rows(manifest: dict) -> list[tuple[str, int, int, int, int]]:
    rows = []
    for split, shards in sorted((manifest.get("splits") or {}).items()):
        rows.append(
            (
                split,
                len(shards),
                sum(int(s.get("docs", 0)) for s in shards),
                sum(int(s.get("tokens", 0)) for s in shards),
                sum(int(s.get("bytes", 0)) for s in shards),
            )
        )
    return rows


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "n/a"


def _languages(signals: dict) -> str:
    """The language mix: the ten largest, then the rest as one."""
    counts = dict(signals.get("languages") or {})
    total = sum(counts.values())
    top = _top(counts, 10)
    parts = [f"{code} {_n(n)} ({_share(n, total)})" for code, n in top]
    rest = total - sum(n for _, n in top)
    if rest:
        parts.append(f"{len(counts) - len(top)} others {_n(rest)} ({_share(rest, total)})")
    return ", ".join(parts) or "n/a"


def _quantile_cell(signal: str, counts: list[int], q: float) -> str:
    value = quantile(counts, BINS[signal], q)
    if value is None:
        return f"≥ {BINS[signal][-1]:g}" if sum(counts) else "n/a"
    return _n(int(value)) if is_count(signal) else f"{value:g}"


def _pii_line(stats: dict[str, dict]) -> str:
    """Whether the filter replaced e-mail and IP addresses (`--scrub-pii`), and how many."""
    filter_stats = stats.get("filter") or {}
    if not ((filter_stats.get("config") or {}).get("filter") or {}).get("scrub_pii"):
        return (
            "- **Personal information.** E-mail and IP addresses were left in the text, as in GPT-2's "
            "WebText (`webtext filter --scrub-pii` replaces them)."
        )
    emails, ips = (_n(int(filter_stats.get(k, 0))) for k in ("pii_email", "pii_ip"))
    return (
        f"- **Personal information.** {emails} e-mail and {ips} public IP addresses were replaced by "
        "placeholders (`email@example.com`, `0.0.0.0`, `::`; `webtext filter --scrub-pii`)."
    )


def _applied_rules(stats: dict[str, dict]) -> str:
    """The rule sets the filter stage applied, as its stats.json config records them."""
    filter_config = ((stats.get("filter") or {}).get("config") or {}).get("filter") or {}
    names = [r.get("name", "?") for r in filter_config.get("rules") or []]
    return f"`--rules {','.join(names)}`" if names else "not recorded in its stats"


def _signals_section(signals: dict, stats: dict[str, dict]) -> list[str]:
    histograms = signals.get("histograms") or {}
    annotated = int(signals.get("documents", 0)) - int(signals.get("unannotated", 0))
    L = ["## Quality signals", ""]
    L += [
        "Every document carries the quality signals of `corpus/signals.py`, computed in the extract stage",
        "and named after the paper rules that threshold them. Their distribution over the released",
        f"documents (plot: `{PLOTS['signals']}`, each preset's thresholds dashed); a quantile is the lower",
        "edge of the histogram bin that holds it: fractions to 0.01, mean word length to 0.1, counts",
        "exactly up to 10 and to about 12% above.",
        "",
    ]
    if signals.get("unannotated"):
        L += [
            f"{_n(int(signals['unannotated']))} of {_n(int(signals['documents']))} documents carry no signals"
            " (a docs table from before them) and are left out of this section.",
            "",
        ]
    rows = []
    for name in SHOWN:
        counts = histograms.get(name) or []
        rules = "; ".join(f"{', '.join(p)} {op} {t:g}" for (op, t), p in _preset_rules(name).items())
        rows.append((f"`{name}`", *(_quantile_cell(name, counts, q) for q in (0.1, 0.5, 0.9)), rules or "-"))
    L += _table(["signal", "p10", "p50", "p90", "preset rules (drop when)"], rows) + [""]
    L += ["### Documents each preset would drop", ""]
    L += [
        f"All {_n(annotated)} documents counted here are in the release: the filter stage already applied",
        f"its rules ({_applied_rules(stats)}), so each row is what that",
        "preset, with the thresholds of `corpus/rules.py`, would drop on top of them. A document is counted",
        "under the first of the preset's rules that drops it (`corpus.rules.would_drop`). The numbers are",
        "there to choose thresholds with (a rules file: docs/stages/filter.md).",
        "",
    ]
    rows = []
    would_drop = signals.get("would_drop") or {}
    for preset in (p for p in PRESETS if p in would_drop):
        drops = would_drop[preset]
        dropped = int(drops.get("dropped", 0))
        top = _top({f"{preset}:{rule}": int(n) for rule, n in (drops.get("by_rule") or {}).items()}, 3)
        rules = ", ".join(f"`{rule}` {_n(n)}" for rule, n in top) or "-"
        rows.append((preset, dropped, _share(dropped, annotated), rules))
    L += _table(["preset", "would drop", "share", "top rules"], rows) + [""]
    return L


def render_datasheet(manifest: dict, stats: dict[str, dict], docs_summary: dict) -> str:
    """The datasheet markdown text (deterministic for the same inputs)."""
    tok = manifest.get("tokenizer") or {}
    config = manifest.get("config") or {}
    splits = _split_rows(manifest)
    total_docs = sum(r[2] for r in splits)
    total_tokens = sum(r[3] for r in splits)
    top_domains = _top(dict(docs_summary.get("domains", {})), 10)
    top_subs = _top(dict(docs_summary.get("subreddits", {})), 10)
    lengths = sorted(docs_summary.get("lengths", []))
    karma = sorted(docs_summary.get("karma", []))
    signals = docs_summary.get("signals") or {}

    def median(v: list) -> object:
        return v[len(v) // 2] if v else "n/a"

    L = ["# Datasheet: WebText-style corpus release", ""]
    L += [
        f"Format version {manifest.get('format_version', 'n/a')},"
        f" created by {manifest.get('created_by', 'n/a')}.",
        "",
    ]
    L += ["## Motivation", ""]
    L += [
        "- **Purpose.** A reproducible rebuild of OpenAI's WebText (GPT-2, Radford et al. 2019): web pages",
        "  linked from Reddit submissions with at least 3 karma, a heuristic signal that people found them",
        "  interesting, for pretraining and studying GPT-style language models.",
        "- **Creators and funding.** Whoever ran this pipeline; see `created_by` and the config below.",
        "",
    ]
    L += ["## Composition", ""]
    L += [
        f"- **Instances.** {_n(total_docs)} documents (web pages' main text),"
        f" {_n(total_tokens)} tokens in total.",
        "  Each sample is `__key__` (document id: SHA-1 of the canonical URL), `txt` (UTF-8 text), `json`",
        "  (metadata: URL, domain, karma, lineage) and `tokens.npy` (token ids, no end-of-text token).",
        "",
    ]
    L += _table(["split", "shards", "docs", "tokens", "bytes"], splits) + [""]
    L += [
        f"- **Tokenizer.** vocab size {_n(tok.get('vocab_size', 'n/a'))},"
        f" end-of-text id {_n(tok.get('eot_id', 'n/a'))},",
        f"  file `{tok.get('path', 'n/a')}` (sha256 `{tok.get('sha256', 'n/a')}`).",
        f"- **Document length.** median {_n(median(lengths))} tokens over {_n(len(lengths))} documents"
        f" (plot: `{PLOTS['lengths']}`).",
        f"- **Karma.** median {_n(median(karma))} (plot: `{PLOTS['karma']}`).",
        f"- **Top domains** (plot: `{PLOTS['domains']}`): "
        + (", ".join(f"{d} ({_n(n)})" for d, n in top_domains) or "n/a")
        + ".",
        f"- **Top subreddits** (plot: `{PLOTS['subreddits']}`): "
        + (", ".join(f"{s} ({_n(n)})" for s, n in top_subs) or "n/a")
        + ".",
        f"- **Languages** (the `language` annotation, `corpus/language.py`): {_languages(signals)}.",
        "- **Sensitive content.** Web text as found: it may contain offensive material, personal information",
        "  published on the web, and the biases of Reddit's user base. Wikipedia pages were removed (as in",
        "  GPT-2) to limit overlap with common evaluation sets.",
        "",
    ]
    L += ["## Collection process", ""]
    L += [
        "- Reddit submissions (Pushshift dumps or the Reddit API) give outbound links and their karma; links",
        "  below the karma threshold, self posts and rejected URLs are dropped (ledger rows, counted below).",
        "- Pages were fetched politely (robots.txt, rate limits) into WARC files (or read from given ones).",
        "",
    ]
    L += ["## Preprocessing, cleaning, labeling", ""]
    L += [
        "Main text was extracted with trafilatura, exact and near duplicates (MinHash LSH) and Wikipedia",
        "were removed, quality rules applied, then the text was tokenized. Each drop is counted by stage and",
        f"reason (plot: `{PLOTS['drops']}`); each stage reconciles in = out + dropped.",
        "",
    ]
    stage_rows = []
    for stage, s in sorted(stats.items(), key=lambda kv: _chain_order(kv[0])):
        dropped = s.get("dropped") or {}
        reasons = ", ".join(f"{r}: {_n(int(n))}" for r, n in sorted(dropped.items())) or "-"
        stage_rows.append(
            (stage, s.get("in", "n/a"), s.get("out", "n/a"), sum(map(int, dropped.values())), reasons)
        )
    L += _table(["stage", "in", "out", "dropped", "by reason"], stage_rows) + [""]
    L += [_pii_line(stats), ""]
    L += [
        "Configuration of every stage:",
        "",
        "```json",
        json.dumps(config, sort_keys=True, indent=2),
        "```",
        "",
    ]
    L += _signals_section(signals, stats)
    L += ["## Uses", ""]
    L += [
        "- **Intended.** Pretraining and research on language models; reproducing GPT-2's data pipeline.",
        "- **Not intended.** Anything treating the text as factual, representative or consented-to",
        "  personal data; models trained on it inherit its biases and errors.",
        "- Evaluation sets should be checked for n-gram overlap with the training split (`ngrams` stage).",
        "",
    ]
    L += ["## Distribution", ""]
    L += [
        "- WebDataset tar shards `{split}-NNNNNN.tar`, listed with sha256, bytes, docs and tokens in",
        "  `manifest.json`; `webtext verify DIR` re-checks them. The copyright of the text stays with its",
        "  authors; distribute under the terms that apply to the source pages.",
        "",
    ]
    L += ["## Maintenance", ""]
    L += [
        "- The release is rebuilt byte-identically from the same inputs and config (see the manifest);",
        "  a new release gets a new manifest. Report problems through the project's issue tracker.",
        "",
    ]
    return "\n".join(L)


def write_datasheet(directory: str, manifest: dict, stats: dict[str, dict], docs_summary: dict) -> list[str]:
    """Write ``datasheet.md`` and its PNG plots into ``directory``; return the file names written."""
    os.makedirs(directory, exist_ok=True)
    names = write_plots(directory, stats, docs_summary)
    path = os.path.join(directory, "datasheet.md")
    with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
        f.write(render_datasheet(manifest, stats, docs_summary))
    os.replace(path + ".tmp", path)
    return ["datasheet.md", *names]
