"""Per-step training metrics: JSONL and TensorBoard, MFU against the device's stated peak, the loss-curve PNG.

MFU follows PaLM (appendix B): model FLOPs per token (6N + 12·L·H·Q·T, training = forward + backward,
without activation recomputation) times tokens/s, over the device's peak dense FLOP/s for the dtype used.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

# Dense (no sparsity) peak FLOP/s from the vendors' data sheets, by device-name substring, for bf16 / fp32.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.4e12, "fp32": 66.9e12},
    "H100 PCIe": {"bf16": 756.0e12, "fp32": 51.2e12},
    "H100": {"bf16": 989.4e12, "fp32": 66.9e12},  # SXM
    "A100": {"bf16": 312.0e12, "fp32": 19.5e12},
    "L40S": {"bf16": 362.0e12, "fp32": 91.6e12},
    "A10G": {"bf16": 70.0e12, "fp32": 31.2e12},
    "L4": {"bf16": 121.0e12, "fp32": 30.3e12},
}


def device_peak_flops(device: torch.device, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s, what it is) for a CUDA device we know; (None, reason) otherwise (e.g. a CPU)."""
    if device.type != "cuda":
        return None, f"no stated peak for {device.type}; pass --peak-flops"
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_FLOPS.items():
        if key in name:
            return peaks[precision], f"{name} {precision} dense peak {peaks[precision] / 1e12:.1f} TFLOP/s"
    return None, f"no stated peak for {name}; pass --peak-flops"


class MetricsLog:
    """Appends one JSON line per record to OUT/metrics.jsonl and mirrors scalars to TensorBoard (OUT/tb)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.writer = None
        if enabled:
            out.mkdir(parents=True, exist_ok=True)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        for name, value in record.items():
            if name not in ("step", "kind") and isinstance(value, int | float) and math.isfinite(value):
                self.writer.add_scalar(f"{record['kind']}/{name}", value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; after a resume a step may appear twice, the later record wins."""
    latest: dict[tuple[str, int], dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        latest[(record["kind"], record["step"])] = record
    return [latest[key] for key in sorted(latest, key=lambda k: (k[0], k[1]))]


def plot_loss_curve(metrics: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for kind, label in (("train", "train loss"), ("val", "val loss")):
        points = [(r["step"], r["loss"]) for r in records if r["kind"] == kind]
        if points:
            ax.plot(*zip(*points, strict=True), label=label, marker="o" if kind == "val" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, metadata={"Software": None})
    plt.close(fig)
