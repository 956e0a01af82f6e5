"""What a solver returns for one stage count S, and turning solver fractions into a placement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.placement.stage import StageData


@dataclass(frozen=True)
class StageSolution:
    """The best placement found for one number of stages S (J/token, seconds)."""

    stages: int
    micro_batches: int
    status: str  # "optimal" | "time_limit" | "infeasible" | "error"
    objective: float | None  # joules per token of the incumbent (planner.cost.pipeline_cost)
    best_bound: float | None  # proven lower bound on J/token
    gap: float | None  # relative: (objective - best_bound) / objective
    groups: tuple[tuple[str, ...], ...] | None  # node names of each stage, in order
    weight_split: dict[str, dict[str, float]] | None  # node -> tier name -> fraction (sums to 1)
    kv_split: dict[str, dict[str, float]] | None
    cycle_s: float | None  # the cycle the plan runs at (its clock)
    build_s: float
    solve_s: float
    message: str = ""  # e.g. the HiGHS failure text
    work: int = 0  # slice LPs priced (the deterministic unit of work)
    period_s: float | None = None  # between a user's tokens, as planner.cost.pipeline_cost prices the plan


def empty(stages: int, micro_batches: int, status: str, message: str, **kw) -> StageSolution:
    return StageSolution(
        stages=stages,
        micro_batches=micro_batches,
        status=status,
        objective=None,
        best_bound=kw.get("best_bound"),
        gap=None,
        groups=None,
        weight_split=None,
        kv_split=None,
        cycle_s=None,
        build_s=kw.get("build_s") or 0.0,
        solve_s=kw.get("solve_s") or 0.0,
        message=message,
        work=kw.get("work", 0),
    )


def fractions(row: np.ndarray, tiers: tuple[str, ...]) -> dict[str, float]:
    """Solver fractions clipped to [0, 1] and renormalized to sum to 1; zeros dropped."""
    x = np.clip(np.asarray(row, dtype=float), 0.0, 1.0)
    total = float(x.sum())
    if total <= 0:  # nothing to place (a solver's zero row): the first tier, as a fixed item would be
        return {tiers[0]: 1.0}
    return {t: float(v) / total for t, v in zip(tiers, x) if v / total > 1e-12}


def placement(
    d: StageData, slices: list[tuple[int, int, dict[tuple, np.ndarray]]]
) -> tuple[tuple[tuple[str, ...], ...], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Groups and per-node splits from (start, end, {(class, kind): tier fractions}) per stage; fixed
    items sit in the first tier they may use."""
    nodes = d.problem.nodes
    first = {kind: d.problem.tiers_for(kind)[0] for kind in "wk"}
    groups, w_split, k_split = [], {}, {}
    for i, e, rows in slices:
        groups.append(nodes[i:e])
        for pos in range(i, e):
            c = d.node_class[pos]
            for kind, split in (("w", w_split), ("k", k_split)):
                row = rows.get((c, kind))
                split[nodes[pos]] = {first[kind]: 1.0} if row is None else fractions(row, d.tiers)
    return tuple(groups), w_split, k_split
