"""Tier split: each free item's fractions over the tiers it may use sum to one (FORMULATION §4: w and k
per node and tier; Problem.tiers_for restricts the weights or the KV to some tiers)."""

from __future__ import annotations

from planner.placement.rows import Row, SliceView, f

FAMILY = "tier_split"


def slice_rows(v: SliceView) -> list[Row]:
    return [
        Row(
            FAMILY, f"split[{it.cls},{it.kind}]", tuple((f(it, t), 1.0) for t in it.allowed), rhs=1.0, eq=True
        )
        for it, _ in v.items
    ]
