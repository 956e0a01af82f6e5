"""Roofline of a phase: its time is at least each tier's read time and its compute time (epigraph p)."""

from __future__ import annotations

from planner.placement.rows import Row, SliceView, f, p

FAMILY = "roofline"


def slice_rows(v: SliceView) -> list[Row]:
    rows = []
    for it, _ in v.items:
        for t in it.allowed:
            read = it.read[t]
            if read > 0:
                rows.append(Row(FAMILY, f"read[{it.cls},{it.kind},{t}]", ((f(it, t), read), (p(it), -1.0))))
        if it.floor > 0:  # floor - p <= 0
            rows.append(Row(FAMILY, f"compute[{it.cls},{it.kind}]", ((p(it), -1.0),), const=it.floor))
    return rows
