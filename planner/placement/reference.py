"""Reference optimum for small instances: every contiguous partition, one exact LP each.

Independent of planner.milp: it enumerates every way of cutting the node chain into `stages`
non-empty contiguous slices and, for each, solves one LP (scipy.optimize.linprog, HiGHS) over every
node's own continuous tier fractions of weights and KV and the cycle T:

    min  (sum of node energies + hops) / b + chips x static W x S x T / U
    s.t. fractions of each node sum to 1 (weights and KV separately), per allowed tier
         weight phase  >= w_t * weight_read_s[t], >= weight_compute_s      (roofline epigraph)
         context phase >= k_t * kv_read_s[t],     >= context_compute_s
         per group and tier: resident weights + KV of all users <= capacity x chips per group
         per group: sum of its nodes' phases + overhead + collective <= T; its send <= T
         S*T + (S-1) * latency <= 1 / min_tokens_per_s

with the coefficients of planner.cost.node_cost and boundary_cost. The count of partitions is
C(N-1, S-1): keep N small (a dozen nodes). The first partition (in lexicographic order of its cut
positions) that is strictly cheaper than all before it wins ties.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence

import networkx as nx
import numpy as np
from scipy.optimize import linprog

from planner.cost.node import NodeCost, boundary_cost, node_cost
from planner.cost.pipeline import micro_batches
from planner.hardware.catalog import Hardware
from planner.placement.search import StageSolution


def _partition_lp(
    costs: list[NodeCost],
    cuts: tuple[int, ...],
    tiers: list[str],
    cap: list[float],
    sends: list[float],
    links: list[float],
    b: float,
    static_j_per_s: float,
    t_max: float,
) -> tuple[float, np.ndarray, float] | None:
    """J/token, the LP solution and the cycle (s) for groups [cuts[g], cuts[g+1]); None if infeasible."""
    n, nt = len(costs), len(tiers)
    width = 2 * nt + 2  # w[t]..., k[t]..., pw, pk
    ncol = n * width + 1
    tcol = n * width
    # scales: a node's slowest time and the whole model's costliest energy, to keep HiGHS well posed
    ts = max(
        max([c.weight_compute_s, *c.weight_read_s.values()])
        + max([c.context_compute_s, *c.kv_read_s.values()])
        + c.overhead_s
        + c.collective_s
        for c in costs
    )
    ts = ts if ts > 0 else 1.0
    es = sum(max(c.weight_j.values()) + max(c.kv_j.values()) + c.compute_j for c in costs) / b
    es = es if es > 0 else 1.0
    obj = np.zeros(ncol)
    lo, hi = np.zeros(ncol), np.ones(ncol)
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    const = 0.0
    for i, c in enumerate(costs):
        base = i * width
        pw, pk = base + 2 * nt, base + 2 * nt + 1
        lo[pw], hi[pw] = c.weight_compute_s / ts, np.inf
        lo[pk], hi[pk] = c.context_compute_s / ts, np.inf
        const += (c.compute_j + c.collective_j) / b / es
        for kind, reads, joules, p in (
            ("w", c.weight_read_s, c.weight_j, pw),
            ("k", c.kv_read_s, c.kv_j, pk),
        ):
            off = base + (0 if kind == "w" else nt)
            row = np.zeros(ncol)
            row[off : off + nt] = 1.0
            a_eq.append(row)
            b_eq.append(1.0)
            for t, name in enumerate(tiers):
                obj[off + t] = joules[name] / b / es
                row = np.zeros(ncol)
                row[off + t], row[p] = reads[name] / ts, -1.0
                a_ub.append(row)
                b_ub.append(0.0)
    bounds = list(cuts) + [n]
    for g in range(len(cuts)):
        first, last = bounds[g], bounds[g + 1]
        for t in range(nt):
            row = np.zeros(ncol)
            for i in range(first, last):
                row[i * width + t] = costs[i].weight_resident_bytes / cap[t]
                row[i * width + nt + t] = costs[i].kv_resident_bytes / cap[t]
            a_ub.append(row)
            b_ub.append(1.0)
        row = np.zeros(ncol)
        fixed = 0.0
        for i in range(first, last):
            row[i * width + 2 * nt] = row[i * width + 2 * nt + 1] = 1.0
            fixed += (costs[i].overhead_s + costs[i].collective_s) / ts
        row[tcol] = -1.0
        a_ub.append(row)
        b_ub.append(-fixed)
        if g < len(cuts) - 1:
            lo[tcol] = max(lo[tcol], sends[last - 1] / ts)
            const += links[last - 1] / b / es
    hi[tcol] = t_max / ts
    obj[tcol] = static_j_per_s * ts / es
    if lo[tcol] > hi[tcol]:
        return None
    res = linprog(
        obj,
        A_ub=np.array(a_ub),
        b_ub=np.array(b_ub),
        A_eq=np.array(a_eq),
        b_eq=np.array(b_eq),
        bounds=list(zip(lo, hi)),
        method="highs",
        options={"primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9},
    )
    if res.status != 0:
        return None
    return (res.fun + const) * es, res.x, float(res.x[tcol]) * ts


def exhaustive_stages(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    min_tokens_per_s: float,
    stages: int,
    allowed_tiers: Sequence[str] | None = None,
    in_flight: int | None = None,
) -> StageSolution:
    """The optimal placement with exactly `stages` stages by enumeration (small instances only);
    `in_flight` caps the micro-batches in flight as in planner.cost.pipeline_cost."""
    t0 = time.perf_counter()
    nodes = list(graph.nodes)
    n = len(nodes)
    tiers = [t.name for t in hw.tiers if allowed_tiers is None or t.name in allowed_tiers]
    m = micro_batches(users, stages, in_flight)
    b = users / m

    def empty(message: str) -> StageSolution:
        return StageSolution(stages, m, "infeasible", None, None, None, None, None, None, None, 0.0,
                             time.perf_counter() - t0, message)  # fmt: skip

    if not 1 <= stages <= n or not tiers:
        return empty("no partition: need 1 <= S <= nodes and an allowed tier")
    t_max = math.inf
    if min_tokens_per_s > 0:
        t_max = (1.0 / min_tokens_per_s - (stages - 1) * hw.inter_link.latency_s) / stages
        if t_max <= 0:
            return empty("hop latency alone misses the speed floor")
    costs = [node_cost(v, graph.nodes[v], hw, b, users, context) for v in nodes]
    cap = [hw.tier(t).capacity_bytes * hw.chips_per_group for t in tiers]
    hops = [boundary_cost(graph.edges[u, v]["activation_bytes"], hw, b) for u, v in zip(nodes, nodes[1:])]
    sends, links = [h.send_s for h in hops], [h.link_j for h in hops]
    static = stages * hw.chips_per_group * hw.static_power_w * stages / users
    best: tuple[float, tuple[int, ...], np.ndarray, float] | None = None
    for inner in itertools.combinations(range(1, n), stages - 1):
        cuts = (0, *inner)
        res = _partition_lp(costs, cuts, tiers, cap, sends, links, b, static, t_max)
        if res is not None and (best is None or res[0] < best[0] * (1 - 1e-12)):
            best = (res[0], cuts, res[1], res[2])
    if best is None:
        return empty("no partition fits the capacities within the speed floor")
    value, cuts, x, cycle = best
    nt, width = len(tiers), 2 * len(tiers) + 2

    def split(row: np.ndarray) -> dict[str, float]:
        row = np.clip(row, 0.0, 1.0)
        return {t: float(v / row.sum()) for t, v in zip(tiers, row) if v > 0}

    w_split = {v: split(x[i * width : i * width + nt]) for i, v in enumerate(nodes)}
    k_split = {v: split(x[i * width + nt : i * width + 2 * nt]) for i, v in enumerate(nodes)}
    bounds = list(cuts) + [n]
    groups = tuple(tuple(nodes[bounds[g] : bounds[g + 1]]) for g in range(stages))
    return StageSolution(
        stages=stages,
        micro_batches=m,
        status="optimal",
        objective=value,
        best_bound=value,
        gap=0.0,
        groups=groups,
        weight_split=w_split,
        kv_split=k_split,
        cycle_s=cycle,
        build_s=0.0,
        solve_s=time.perf_counter() - t0,
        message=f"{math.comb(n - 1, stages - 1)} partitions",
    )
