"""The scale harness's verdicts, table, `name: value` lines and plot, from results.json's content.

Targets (issue 16): from the smallest to the largest factor, time grows at most ~linearly (16x the input in
<= 20x the time, i.e. 1.25 times the input ratio) and the peak memory of the largest process at most 1.5x.
A stage whose output is inherently held in memory is named in NOTES with the reason.

matplotlib is imported only when the plot is drawn: run.py imports this module, and every child it starts
begins with run.py's memory in its peak RSS.
"""

from __future__ import annotations

import json
from pathlib import Path

TIME_SLACK = 1.25  # time ratio target = TIME_SLACK x input ratio (16x -> 20)
MEMORY_TARGET = 1.5
NOTES = {
    "ngrams": "a worker holds one partition of the Bloom filter; the harness caps it with --max-memory "
    "(SCALE_NGRAMS_MEMORY), so P grows with the corpus and the partition stays under the cap",
}


def _labels(results: dict) -> list[str]:
    return sorted(results["runs"], key=float)


def _stages(results: dict) -> list[str]:
    """The measured steps in chain order (results.json's keys are sorted; its "stages" list is not)."""
    labels = _labels(results)
    if not labels:
        return []
    steps = results["runs"][labels[0]]["steps"]
    return results.get("stages") or [name for name, record in steps.items() if record.get("measured")]


def _ok(record: dict | None) -> bool:
    return bool(record) and "error" not in record


def ratios(results: dict) -> dict:
    """Per measured step, the largest factor's figures over the smallest's, with the targets."""
    labels = _labels(results)
    if len(labels) < 2:
        return {}
    low, high = (results["runs"][label]["steps"] for label in (labels[0], labels[-1]))
    size = float(labels[-1]) / float(labels[0])
    verdicts = {}
    for name in _stages(results):
        a, b = low.get(name), high.get(name)
        if not (_ok(a) and _ok(b)):
            continue
        time_ratio = b["wall_s"] / a["wall_s"]
        memory_ratio = b["peak_rss_mib"] / a["peak_rss_mib"]
        verdicts[name] = {
            "from": labels[0],
            "to": labels[-1],
            "input_ratio": round(size, 3),
            "work_ratio": round(b["work"] / a["work"], 3) if a.get("work") and b.get("work") else None,
            "time_ratio": round(time_ratio, 3),
            "stage_time_ratio": round(b["stage_s"] / a["stage_s"], 3) if a.get("stage_s") else None,
            "time_target": round(TIME_SLACK * size, 3),
            "time_ok": time_ratio <= TIME_SLACK * size,
            "memory_ratio": round(memory_ratio, 3),
            "memory_target": MEMORY_TARGET,
            "memory_ok": memory_ratio <= MEMORY_TARGET,
            **_process_ratios(a, b),
            **({"note": NOTES[name]} if name in NOTES else {}),
        }
    return verdicts


def _process_ratios(low: dict, high: dict) -> dict:
    """The peak-memory ratios of the step's own process and of the largest process it started (Beam's
    workers under multi_processing), where both factors have them."""
    out = {}
    for key, name in (
        ("self_peak_rss_mib", "self_memory_ratio"),
        ("children_peak_rss_mib", "children_memory_ratio"),
    ):
        if low.get(key) and high.get(key):
            out[name] = round(high[key] / low[key], 3)
    return out


OPTIONAL = (
    "self_peak_rss_mib",
    "children_peak_rss_mib",
    "bytes_written",
    "partitions",
    "largest_partition_bytes",
    "filter_bytes",
)


def _step_figures(prefix: str, record: dict) -> list[tuple[str, float | int | str]]:
    """One step's figures: a stage's time, rate, memory and output, or dedup_quality's shares."""
    if "same_cluster" in record:
        out = [(f"{prefix}.same_cluster_J{band}", v) for band, v in record["same_cluster"].items()]
        return out + [(f"{prefix}.pairs_J{band}", n) for band, n in record["pairs"].items()]
    out = [(f"{prefix}.wall_s", record["wall_s"]), (f"{prefix}.stage_s", record["stage_s"])]
    if record.get("throughput"):
        out.append((f"{prefix}.{record['unit']}_per_s", record["throughput"]))
    out.append((f"{prefix}.peak_rss_mib", record["peak_rss_mib"]))
    out += [(f"{prefix}.{key}", record[key]) for key in OPTIONAL if record.get(key) is not None]
    if record.get("work"):
        out.append((f"{prefix}.{record['unit']}", record["work"]))
    return out


def figures(results: dict) -> list[tuple[str, float | int | str]]:
    """Every figure as (name, value), in the order they are printed."""
    out: list[tuple[str, float | int | str]] = []
    for label in _labels(results):
        run = results["runs"][label]
        out.append((f"scale.{label}x.generate.wall_s", run["generate"]["wall_s"]))
        for name in results.get("steps") or list(run["steps"]):
            record = run["steps"].get(name)
            if record is None:
                continue
            prefix = f"scale.{label}x.{name}"
            if not _ok(record):
                out.append((f"{prefix}.failed_rc", record.get("rc", -1)))
                continue
            out += _step_figures(prefix, record)
    for name, verdict in results.get("ratios", {}).items():
        out.append((f"scale.ratio.{name}.time", verdict["time_ratio"]))
        out.append((f"scale.ratio.{name}.memory", verdict["memory_ratio"]))
        for key in ("self_memory_ratio", "children_memory_ratio"):
            if key in verdict:
                out.append((f"scale.ratio.{name}.{key}", verdict[key]))
    if results.get("ratios"):
        misses = [
            f"{n}.{k}" for n, v in results["ratios"].items() for k in ("time", "memory") if not v[f"{k}_ok"]
        ]
        out.append(("scale.ratio.misses", ", ".join(misses) or "none"))
    return out


def table(results: dict) -> str:
    labels = _labels(results)
    if not labels:
        return "(no runs)"
    low, high = labels[0], labels[-1]
    head = (
        f"{'stage':9s} {'unit':12s} {low + 'x s':>9s} {high + 'x s':>9s} {'time ratio':>16s} "
        f"{low + 'x MiB':>9s} {high + 'x MiB':>9s} {'memory ratio':>16s} {high + 'x rate/s':>14s} "
        f"{high + 'x written':>12s}"
    )
    lines = [head, "-" * len(head)]
    verdicts = results.get("ratios", {})
    for name in _stages(results):
        a, b = results["runs"][low]["steps"].get(name), results["runs"][high]["steps"].get(name, {})
        if not _ok(a):
            continue
        v = verdicts.get(name)
        time_cell = memory_cell = "-"
        if v:
            time_cell = f"{v['time_ratio']:.2f} {'ok' if v['time_ok'] else 'MISS'} (<={v['time_target']:g})"
            memory_cell = (
                f"{v['memory_ratio']:.2f} {'ok' if v['memory_ok'] else 'MISS'} (<={MEMORY_TARGET:g})"
            )
        rate = f"{b['throughput']:,.0f}" if _ok(b) and b.get("throughput") else "-"
        written = f"{b.get('bytes_written', 0) / 2**20:,.1f} MiB" if _ok(b) else "-"
        high_s = f"{b['wall_s']:.1f}" if _ok(b) else "FAILED"
        high_mib = f"{b['peak_rss_mib']:.0f}" if _ok(b) else "-"
        lines.append(
            f"{name:9s} {a['unit']:12s} {a['wall_s']:9.1f} {high_s:>9s} {time_cell:>16s} "
            f"{a['peak_rss_mib']:9.0f} {high_mib:>9s} {memory_cell:>16s} {rate:>14s} {written:>12s}"
        )
    quality = results["runs"][high]["steps"].get("dedup_quality")
    if _ok(quality):
        shares = ", ".join(f"J {band}: {v:.3f}" for band, v in quality["same_cluster"].items())
        lines.append(f"dedup at {high}x, planted pairs put in one cluster (recall above 0.8): {shares}")
    for name, v in verdicts.items():
        if "note" in v and not v["memory_ok"]:
            lines.append(f"  {name}: memory grows by design: {v['note']}")
    return "\n".join(lines)


def print_report(results: dict, bench_results: str | None) -> None:
    m = results["machine"]
    beam = results["beam_args"] or "(DirectRunner, 1 worker)"
    print(
        f"\nscale: {m.get('cpus')} CPUs ({m.get('cpu_model', '?')}), {m.get('memory_gib', '?')} GiB, Python "
        f"{m['python']}, Beam {m['apache-beam']}, torch {m['torch']}; load {m['load_1_5_15_at_start']} at "
        f"start, {m.get('load_1_5_15_at_end')} at end; Beam options {beam}"
    )
    for name, value in figures(results):
        print(f"{name}: {value}")
    print()
    print(table(results))
    if bench_results:
        with open(bench_results, "a", encoding="utf-8") as out:
            for name, value in figures(results):
                out.write(json.dumps({"bench": "scale", "name": name, "value": value}) + "\n")


def write_plot(results: dict, path: Path) -> Path:
    """One figure of log-log panels against the size factor, a line per stage: wall time and the peak RSS of
    the largest process; with Beam's multi_processing mode, the peak RSS of the runner process (which holds
    what crosses a shuffle) and of its worker processes instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels = _labels(results)
    factors = [float(label) for label in labels]
    names = _stages(results)
    panels = [("wall_s", "wall time (s)"), ("peak_rss_mib", "peak RSS of the largest process (MiB)")]
    if "--direct_running_mode=multi_processing" in results.get("beam_args", []):
        panels[1:] = [
            ("self_peak_rss_mib", "peak RSS, runner process (MiB)"),
            ("children_peak_rss_mib", "peak RSS, largest worker process (MiB)"),
        ]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8))
    left = axes[0]
    for name in names:
        points = [
            (f, results["runs"][lab]["steps"].get(name)) for f, lab in zip(factors, labels, strict=True)
        ]
        points = [(f, r) for f, r in points if _ok(r)]
        for axis, (key, _) in zip(axes, panels, strict=True):
            shown = [(f, r[key]) for f, r in points if r.get(key)]  # a step without worker processes: none
            if shown:
                axis.plot([f for f, _ in shown], [v for _, v in shown], marker="o", label=name)
    if len(factors) > 1:
        slowest = max(
            (r["wall_s"] for r in results["runs"][labels[0]]["steps"].values() if _ok(r)), default=1.0
        )
        left.plot(factors, [slowest * f / factors[0] for f in factors], "k:", label="linear")
    base = results.get("runs", {}).get(labels[0], {}).get("inputs", {}).get("base", {}) if labels else {}
    xlabel = (
        f"size factor S (1 = {base.get('submissions', '?'):,} submissions, {base.get('pages', '?'):,} pages, "
        f"{base.get('docs', '?'):,} documents)"
        if base
        else "size factor S"
    )
    for axis, (_, ylabel) in zip(axes, panels, strict=True):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(factors, [f"{f:g}x" for f in factors])
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_xlabel(xlabel, fontsize=8)
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
    handles, names = left.get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="center right")
    m = results["machine"]
    fig.suptitle(
        f"webtext cost curves: {m.get('cpus')} CPUs, {m.get('memory_gib', '?')} GiB, Python {m['python']}, "
        f"Beam {m['apache-beam']}, torch {m['torch']}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
