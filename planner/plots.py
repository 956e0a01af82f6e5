"""Figures: stacked bars of time per token (speed of light). Matplotlib with the Agg backend."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from planner.fileio import write_bytes_atomic  # noqa: E402

SOL_PARTS = [
    ("weight_ms", "weights", "#4C72B0"),
    ("kv_ms", "KV cache", "#DD8452"),
    ("compute_ms", "compute", "#55A868"),
    ("link_ms", "links", "#8172B3"),
    ("overhead_ms", "fixed overhead", "#937860"),
    ("wait_ms", "pipeline wait", "#BBBBBB"),
]


def save_figure(fig, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def plot_sol(frames: Sequence[pd.DataFrame], path: str | Path) -> Path:
    """One panel per frame (model x hardware): stacked time per token by category over the user counts,
    with J/token written above each bar."""
    fig, axes = plt.subplots(1, len(frames), figsize=(6 * len(frames), 4.5), squeeze=False)
    for ax, frame in zip(axes[0], frames):
        labels = [f"{u:,}" for u in frame["users"]]
        bottom = [0.0] * len(frame)
        for col, name, color in SOL_PARTS:
            values = list(frame[col])
            ax.bar(labels, values, bottom=bottom, label=name, color=color)
            bottom = [b + v for b, v in zip(bottom, values)]
        for x, (top, j) in enumerate(zip(bottom, frame["joules_per_token"])):
            ax.text(x, top, f"{j:.3g} J/tok", ha="center", va="bottom", fontsize=8)
        first = frame.iloc[0]
        ax.set_title(
            f"{first['model']} on {first['chips']} x {first['hardware']} ({first['mode']}), ctx {first['context']:,}",
            fontsize=9,
        )
        ax.set_xlabel("concurrent users")
        ax.set_ylabel("time per output token per user (ms)")
        ax.set_ylim(0, max(bottom) * 1.15)
    axes[0][0].legend(fontsize=8, loc="upper left")
    return save_figure(fig, path)
