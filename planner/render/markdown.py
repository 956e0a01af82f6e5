"""Markdown tables of result frames (results/*.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from planner.core.errors import PlannerInputError
from planner.core.fileio import write_text_atomic


def _fmt_md(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def markdown_table(frame: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> str:
    """A GitHub markdown table of `frame`'s (column, header) pairs."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt_md(row.get(c)) for c, _ in columns) + " |")
    return "\n".join(lines)


def write_markdown(path: str | Path, text: str) -> Path:
    return write_text_atomic(path, text.rstrip() + "\n")


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PlannerInputError(source, [f"missing columns {missing}; regenerate it with this version"])
