"""A valid lower bound on J/token for a fixed S: the fluid relaxation, one small LP per S.

The S groups pooled into one: every family's slice rows written for all nodes with `groups` = S
(capacities x S; each resource's busy times summing to at most S x the cycle), each class's single node
still within one group (its capacity, time and power rows), the capacity family's packing cuts (whole
nodes that cannot share a tier), the S-1 cheapest hops plus the return hop, and the period at least
m x the cycle and at least the walk. Columns: the classes' tier fractions and
epigraphs, the cycle tau and the period per micro-batch q = period / m (q >= tau, q <= the speed floor's
limit). Any placement gives a feasible point of this LP with the same energy, so its optimum is a bound.
Priced per node class: one node_cost per class (planner.placement.stage), whatever the node count.
"""

from __future__ import annotations

import highspy
import numpy as np

from planner.placement.constraints import capacity, slice_rows
from planner.placement.constraints.timing import walk_row
from planner.placement.objective import energy_terms
from planner.placement.rows import Col, Row, SliceView
from planner.placement.slicelp import INF, new_highs, pass_lp, row_bounds
from planner.placement.stage import StageData

SINGLE_NODE_FAMILIES = ("capacity", "timing", "power")


def pooled_view(d: StageData) -> SliceView:
    """All nodes as S pooled groups, with the S-1 cheapest internal hops and the return hop."""
    s = d.stages
    counts = d.class_counts[d.n]
    send = link = 0.0
    if s > 1:
        send = sum(sorted(d.send[:-1])[: s - 1]) + d.send[-1]
        link = sum(sorted(d.link_e[:-1])[: s - 1]) + d.link_e[-1]
    return SliceView(d, counts, None, send, d.hop * s, link, groups=float(s))


def lower_bound(d: StageData) -> float | None:
    """A lower bound on J/token (scaled) with d.stages stages; None when provably infeasible."""
    view = pooled_view(d)
    rows: list[Row] = slice_rows(view) + [walk_row(view)] + capacity.pooled_rows(view, d.stages)
    for c in view.present:
        single = SliceView(d, np.eye(len(d.classes), dtype=np.int64)[c], None, min(d.send), d.hop, 0.0)
        rows += [r for r in slice_rows(single) if r.family in SINGLE_NODE_FAMILIES and r.name != "pipeline"]
    terms, const = energy_terms(view)
    cols: dict[Col, int] = {}
    for row in rows:
        for col, _ in row.terms:
            cols.setdefault(col, len(cols))
    for col, _ in terms:
        cols.setdefault(col, len(cols))
    tau, q = len(cols), len(cols) + 1
    n = q + 1
    cost = np.zeros(n)
    for col, v in terms:
        cost[cols[col]] += v
    cost[q] = d.static_e
    lo, hi = np.zeros(n), np.full(n, INF)
    for col, j in cols.items():
        if col[0] == "f":
            hi[j] = 1.0
    hi[tau] = hi[q] = d.t_max
    lp_rows = [([tau, q], [1.0, -1.0], -INF, 0.0)]  # tau <= q
    for row in rows:
        idx = [cols[c] for c, _ in row.terms]
        val = [v for _, v in row.terms]
        if row.tau:
            idx.append(q if row.per_period else tau)
            val.append(row.tau)
        lo_r, hi_r = row_bounds(row)
        if not idx:
            if not lo_r - 1e-12 <= 0.0 <= hi_r + 1e-12:
                return None
            continue
        lp_rows.append((idx, val, lo_r, hi_r))
    h = new_highs()
    pass_lp(h, cost, lo, hi, lp_rows)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    # LP tolerances: shade by a relative 1e-9 so the bound stays valid
    return (h.getInfo().objective_function_value + const) * (1 - 1e-9)
