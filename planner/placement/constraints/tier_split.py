"""Tier split: each free item's tier fractions sum to one (FORMULATION §4: w and k per node and tier)."""

from __future__ import annotations

from planner.placement.rows import Row, SliceView, f

FAMILY = "tier_split"


def slice_rows(v: SliceView) -> list[Row]:
    nt = len(v.d.tiers)
    return [
        Row(FAMILY, f"split[{it.cls},{it.kind}]", tuple((f(it, t), 1.0) for t in range(nt)), rhs=1.0, eq=True)
        for it, _ in v.items
    ]
