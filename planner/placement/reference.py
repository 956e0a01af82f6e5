"""Reference optimum for small instances: every contiguous partition, one exact LP each.

Independent of the optimizer (planner.placement.search, .milp, .rows and .constraints): it shares only
the cost model's coefficients (planner.cost.node.node_cost and boundary_cost). For every way of cutting
the node chain into `stages` non-empty contiguous slices it solves one LP (scipy.optimize.linprog,
HiGHS) over every node's own tier fractions of weights and KV, the phase epigraphs, the cycle T and the
period P, with the model of planner.cost.pipeline written out again, node by node:

    min  sum of node energies + hops (per micro-batch) / b + chips x static W x P / U
    s.t. fractions of each node sum to 1 (weights and KV separately), per allowed tier
         weight phase  >= w_t * weight_read_s[t], >= weight_compute_s      (roofline epigraph)
         context phase >= k_t * kv_read_s[t],     >= context_compute_s
         per group and tier: resident weights + KV of all users <= capacity x chips per group
         per group, one unit: its latency (phases, overheads and collectives of the ops it pays for,
             send, hop) <= T
         per group, overlapping units: each unit's phases and overheads <= T, each tier's traffic <= T,
             each link's collectives <= T, its send <= T, its latency / slots <= T
         P >= m T, P >= sum of the groups' latencies, P <= 1 / floor
         per group: its dynamic energy x m / P <= chips x (chip limit - static W)
         all groups and hops: dynamic energy x m / P <= budget - static W of all chips
where a group pays an op's overhead and collective for each first part it holds, and once more when it
starts inside an op. The count of partitions is C(N-1, S-1): keep N small (a dozen nodes). The first
partition (in lexicographic order of its cut positions) strictly cheaper than all before it wins ties.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from planner.cost.node import TOKEN_ID_BYTES, NodeCost, boundary_cost, node_cost
from planner.placement.solution import StageSolution
from planner.problem.problem import Problem


def _partition_lp(p: Problem, costs: list[NodeCost], cuts: tuple[int, ...], hops: list, m: int, b: float):
    """(J/token, the LP solution, the clock P/m in s) for groups [cuts[g], cuts[g+1]); None if infeasible."""
    hw = p.hw
    tiers = list(p.tiers)
    n, nt = len(costs), len(tiers)
    units = [u.name for u in hw.units]
    width = 2 * nt + 2  # w[t]..., k[t]..., pw, pk
    tcol, pcol = n * width, n * width + 1
    ncol = n * width + 2
    ts = max(
        max([c.weight_compute_s, *c.weight_read_s.values()]) + max([c.context_compute_s, *c.kv_read_s.values()])
        + c.op_overhead_s + c.op_collective_s
        for c in costs
    ) or 1.0  # fmt: skip
    es = (sum(max(c.weight_j.values()) + max(c.kv_j.values()) + c.compute_j for c in costs) / b) or 1.0
    obj = np.zeros(ncol)
    lo, hi = np.zeros(ncol), np.ones(ncol)
    lo[tcol] = lo[pcol] = 0.0
    hi[tcol] = hi[pcol] = np.inf
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    energy = np.zeros(ncol)  # dynamic J/token of every node, scaled (columns), and its constant part
    const_e = 0.0

    def col(i: int, kind: str, t: int) -> int:
        return i * width + (0 if kind == "w" else nt) + t

    may = {kind: set(p.tiers_for(kind)) for kind in "wk"}  # the tiers weights and KV may use

    for i, c in enumerate(costs):
        pw, pk = i * width + 2 * nt, i * width + 2 * nt + 1
        lo[pw], hi[pw] = c.weight_compute_s / ts, np.inf
        lo[pk], hi[pk] = c.context_compute_s / ts, np.inf
        const_e += c.compute_j / b / es
        for kind, reads, joules, ph in (
            ("w", c.weight_read_s, c.weight_j, pw),
            ("k", c.kv_read_s, c.kv_j, pk),
        ):
            row = np.zeros(ncol)
            row[[col(i, kind, t) for t in range(nt)]] = 1.0
            a_eq.append(row)
            b_eq.append(1.0)
            for t, name in enumerate(tiers):
                if name not in may[kind]:
                    hi[col(i, kind, t)] = 0.0
                energy[col(i, kind, t)] = joules[name] / b / es
                row = np.zeros(ncol)
                row[col(i, kind, t)], row[ph] = reads[name] / ts, -1.0
                a_ub.append(row)
                b_ub.append(0.0)
    bounds = list(cuts) + [n]
    groups = len(cuts)
    walk = np.zeros(ncol)
    walk_const = 0.0
    chip_limit, budget = p.max_chip_power_w, p.max_power_w
    static_chip = hw.static_power_per_chip_w
    chips = hw.chips_per_group
    all_const = const_e  # compute of every node; collectives and hops added per group below
    for g in range(groups):
        first, last = bounds[g], bounds[g + 1]
        for t in range(nt):
            row = np.zeros(ncol)
            for i in range(first, last):
                row[col(i, "w", t)] = costs[i].weight_resident_bytes
                row[col(i, "k", t)] = costs[i].kv_resident_bytes
            a_ub.append(row / p.tier_capacity_bytes(tiers[t]))
            b_ub.append(1.0)
        unit_rows = {u: np.zeros(ncol) for u in units}
        unit_const = dict.fromkeys(units, 0.0)
        links = {"intra": 0.0, "a2e": 0.0}
        g_energy = np.zeros(ncol)
        g_const = 0.0
        for i in range(first, last):
            c = costs[i]
            unit_rows[c.weight_unit][i * width + 2 * nt] += 1.0
            unit_rows[c.context_unit][i * width + 2 * nt + 1] += 1.0
            pays = c.first or i == first
            if pays:
                unit_const[c.main_unit] += c.op_overhead_s / ts
                links[c.collective_link] += c.op_collective_s / ts
                g_const += c.op_collective_j / b / es
                all_const += c.op_collective_j / b / es
            g_const += c.compute_j / b / es
            for t in range(nt):
                g_energy[col(i, "w", t)] = energy[col(i, "w", t)]
                g_energy[col(i, "k", t)] = energy[col(i, "k", t)]
        send = hop = link_e = 0.0
        if groups > 1:
            h = hops[last - 1] if g < groups - 1 else hops[-1]
            send, hop, link_e = h.send_s / ts, h.latency_s / ts, h.link_j / b / es
        g_const += link_e
        all_const += link_e
        latency = sum(unit_rows.values())
        latency_const = sum(unit_const.values()) + sum(links.values()) + send + hop
        walk += latency
        walk_const += latency_const
        if not hw.units_overlap:
            row = latency.copy()
            row[tcol] = -1.0
            a_ub.append(row)
            b_ub.append(-latency_const)
        else:
            for u in units:
                row = unit_rows[u].copy()
                row[tcol] = -1.0
                a_ub.append(row)
                b_ub.append(-unit_const[u])
            for t, name in enumerate(tiers):
                row = np.zeros(ncol)
                for i in range(first, last):
                    row[col(i, "w", t)] = costs[i].weight_tier_s[name] / ts
                    row[col(i, "k", t)] = costs[i].kv_tier_s[name] / ts
                row[tcol] = -1.0
                a_ub.append(row)
                b_ub.append(0.0)
            lo[tcol] = max(lo[tcol], *links.values(), send)
            row = latency / hw.slots
            row[tcol] = -1.0
            a_ub.append(row)
            b_ub.append(-latency_const / hw.slots)
        if chip_limit is not None:  # m E_g / P <= chips (limit - static): E_g - chips (limit - s) P / m <= 0
            row = g_energy.copy()
            row[pcol] = -chips * (chip_limit - static_chip) * ts / (b * es) / m
            a_ub.append(row)
            b_ub.append(-g_const)
    row = walk.copy()
    row[pcol] = -1.0
    a_ub.append(row)
    b_ub.append(-walk_const)
    row = np.zeros(ncol)
    row[tcol], row[pcol] = float(m), -1.0
    a_ub.append(row)
    b_ub.append(0.0)
    hi[pcol] = p.period_limit_s / ts
    static = p.static_power_w(groups)
    if budget is not None:
        row = energy.copy()
        row[pcol] = -(budget - static) * ts / (b * es) / m
        a_ub.append(row)
        b_ub.append(-all_const)
    obj = energy.copy()
    obj[pcol] = static * ts / (p.users * es)
    from scipy.optimize import linprog  # scipy loads only for the reference (and before it, Pyomo stays lean)

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
    return (res.fun + all_const) * es, res.x, float(res.x[pcol]) * ts / m  # the clock: period / m


def exhaustive_stages(problem: Problem, stages: int) -> StageSolution:
    """The optimal placement with exactly `stages` stages by enumeration (small instances only)."""
    t0 = time.perf_counter()
    nodes = list(problem.nodes)
    n = len(nodes)
    tiers = list(problem.tiers)
    m = problem.micro_batches(stages)
    b = problem.users / m
    hw = problem.hw

    def empty(message: str) -> StageSolution:
        return StageSolution(stages, m, "infeasible", None, None, None, None, None, None, None, 0.0,
                             time.perf_counter() - t0, message)  # fmt: skip

    if not 1 <= stages <= n or not tiers:
        return empty("no partition: need 1 <= S <= nodes and an allowed tier")
    g = problem.graph
    costs = [node_cost(v, g.nodes[v], hw, b, problem.users, problem.context) for v in nodes]
    hops = [boundary_cost(g.edges[u, v]["activation_bytes"], hw, b) for u, v in zip(nodes, nodes[1:])]
    hops.append(boundary_cost(TOKEN_ID_BYTES, hw, b))
    best = None
    for inner in itertools.combinations(range(1, n), stages - 1):
        cuts = (0, *inner)
        res = _partition_lp(problem, costs, cuts, hops, m, b)
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
    groups = tuple(tuple(nodes[bounds[k] : bounds[k + 1]]) for k in range(stages))
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
