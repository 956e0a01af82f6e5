"""Optimal placement for a fixed number of stages S (FORMULATION.md §3-§4): the path (segment) form.

The node chain 0..N-1 is cut into S contiguous, non-empty slices, one per chip group. Groups are
identical, so a slice i..j needs no group index: a placement is a path from position 0 to N with
exactly S arcs, and an arc's cost depends only on its slice. Everything is priced by planner.cost.

Kept method: exact parametric search over the cycle T (fast), with HiGHS for the slice LPs.

1. Classes. Nodes whose cost data are identical (every attention block of a dense model, every
   MoE block of DeepSeek-V3) form a class. A slice's tier-split LP (minimize energy subject to the
   group's tier capacities and busy time <= tau) is convex and symmetric in the members of a class,
   so averaging their splits loses nothing: one split per (slice, class) is exact, and slices with
   the same class counts (a slice *type*) share one LP.
2. Frontier. For each slice type, HiGHS gives the exact lower convex frontier E(tau) of that LP:
   the least energy of one micro-batch at busy time tau, a convex, non-increasing, piecewise-linear
   function found by the weighted-sum (dichotomic) method, with lexicographic end points (least time,
   then least energy; least energy, then least time). The roofline of the cost model (phase time =
   max over tiers and compute) is kept with epigraph variables.
3. Search over T. For fixed T the best placement is a shortest path with exactly S arcs, arc cost
   E_type(T) + link energy, arcs whose least time or send exceeds T left out (a DP). Between two
   consecutive *events* (an arc becoming feasible, a frontier vertex) every arc cost is linear in T,
   so the best J/token over that interval, a minimum of linear functions plus static power x T, is
   concave and attains its minimum at an end. The optimum is therefore at one of finitely many
   candidate cycles; a best-first search over candidate intervals, bounded by DP(right end) + static
   (left end) (DP is non-increasing in T), finds it within rel_gap and proves the bound.

The Pyomo MILP of the same path form (binary arc z, per (arc, class) continuous splits in perspective
form, busy <= T per arc, sum of busy <= S*T) is kept as `solve_stages_milp` for comparison: it is
exact too, but the min-max coupling through T makes its LP relaxation weak: DeepSeek-V3 on
sram-pipeline+HBM3E, users 1024, context 4096, 20 tokens/s, same arcs, 2 threads: S = 4 proven in
8 s, S = 8, 16, 32, 64 still at 2-6 % gap after 30 s, where the search proves all 124 S within 0.1 %
in about 7 s on one thread (`python -m planner.bench`).
HiGHS is called through highspy directly for the slice LPs: they are tiny and number in the
thousands, where building each through Pyomo would cost ~5 ms.

Units inside: per S, times in units of the slowest node's time and energies in units of the costliest
node's J/token (so tiny test models and DeepSeek-V3 are equally well scaled for HiGHS), capacities as
fractions of a group's tier. A capacity row keeps a relative margin CAPACITY_MARGIN so that solver
round-off never leaves a returned plan over capacity. The returned objective is
planner.cost.pipeline_cost of the returned placement.

Determinism: classes, slice types and arcs are built in graph order and HiGHS is deterministic. Ties:
at each position the DP keeps the arc with the lowest start among equal costs; among candidate
cycles of equal J/token the search keeps the one it evaluated first (the largest, then the smallest,
then bisection order). The same input gives the same output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import networkx as nx
import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.factory import SolverFactory
from pyomo.contrib.solver.common.results import TerminationCondition
from pyomo.core.expr.numeric_expr import LinearExpression

from planner.cost.node import boundary_cost, node_cost
from planner.cost.pipeline import micro_batches, pipeline_cost
from planner.hardware.catalog import Hardware

CAPACITY_MARGIN = 1e-9  # relative; keeps solver round-off from overfilling a tier
_INF = highspy.kHighsInf
_LEX_TOL = 1e-9  # relative slack of the lexicographic second stage


@dataclass(frozen=True)
class StageSolution:
    """The best placement found for one number of stages S (J/token, seconds)."""

    stages: int
    micro_batches: int  # m = min(users, stages)
    status: str  # "optimal" | "time_limit" | "infeasible" | "error"
    objective: float | None  # joules per token of the incumbent (planner.cost.pipeline_cost)
    best_bound: float | None  # proven lower bound on J/token
    gap: float | None  # relative: (objective - best_bound) / objective
    groups: tuple[tuple[str, ...], ...] | None  # node names of each stage, in order
    weight_split: dict[str, dict[str, float]] | None  # node -> tier name -> fraction (sums to 1)
    kv_split: dict[str, dict[str, float]] | None
    cycle_s: float | None
    build_s: float
    solve_s: float
    message: str = ""  # e.g. the HiGHS failure text


# ---------------------------------------------------------------------------------------------------
# Data of one S: node costs grouped into classes
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """The weights ("w") or the KV ("k") of one node of a class, SI units.

    `read_s[t]`: the phase's read time with everything in allowed tier t; `floor_s`: its compute time;
    `energy_j[t]`: dynamic joules of one micro-batch with everything in tier t.
    """

    kind: str
    resident_bytes: float
    read_s: tuple[float, ...]
    floor_s: float
    energy_j: tuple[float, ...]

    @property
    def fixed(self) -> bool:
        """True when the split cannot matter (one tier, or nothing resident and nothing read)."""
        return len(self.read_s) == 1 or (self.resident_bytes == 0 and not any(self.read_s))


@dataclass(frozen=True)
class _Class:
    """Nodes with identical cost data: their two items and per-node constants (SI)."""

    weights: _Item
    kv: _Item
    const_s: float  # overhead + collective
    const_j: float  # compute + collective

    @property
    def items(self) -> tuple[_Item, _Item]:
        return (self.weights, self.kv)


@dataclass(frozen=True)
class StageData:
    """Cost data of one S in SI units, shared by the search, the MILP and lower_bound."""

    nodes: tuple[str, ...]
    tiers: tuple[str, ...]  # allowed tiers, hardware order
    capacity_bytes: tuple[float, ...]  # per group and allowed tier
    stages: int
    micro_batches: int
    micro_batch: float
    t_max_s: float  # cycle allowed by the speed floor (inf without one)
    node_class: tuple[int, ...]
    classes: tuple[_Class, ...]
    send_s: tuple[float, ...]  # edge n -> n+1
    link_j: tuple[float, ...]
    static_j_per_s: float  # J/token per second of cycle: chips x static W x S / U

    @property
    def n(self) -> int:
        return len(self.nodes)

    def class_counts(self) -> np.ndarray:
        """counts[p, c]: nodes of class c among the first p nodes."""
        counts = np.zeros((self.n + 1, len(self.classes)), dtype=np.int64)
        for p, c in enumerate(self.node_class):
            counts[p + 1] = counts[p]
            counts[p + 1, c] += 1
        return counts


def stage_data(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    min_tokens_per_s: float,
    stages: int,
    allowed_tiers: Sequence[str] | None = None,
    in_flight: int | None = None,
) -> StageData:
    """Per-node costs from planner.cost.node_cost at micro-batch b = U / m, m = min(U, S[, in_flight]),
    grouped in classes."""
    nodes = tuple(graph.nodes)
    names = [t.name for t in hw.tiers]
    unknown = sorted(set(allowed_tiers or ()) - set(names))
    if unknown:
        raise ValueError(f"allowed_tiers {unknown} are not tiers of {hw.name} ({', '.join(names)})")
    tiers = tuple(t for t in names if allowed_tiers is None or t in allowed_tiers)
    m = micro_batches(users, stages, in_flight)
    b = users / m
    latency = hw.inter_link.latency_s
    t_max = math.inf if min_tokens_per_s <= 0 else (1.0 / min_tokens_per_s - (stages - 1) * latency) / stages
    keys: dict[_Class, int] = {}
    node_class = []
    for name in nodes:
        c = node_cost(name, graph.nodes[name], hw, b, users, context)

        def item(kind: str, res: float, read: dict, floor: float, joules: dict) -> _Item:
            return _Item(kind, res, tuple(read[t] for t in tiers), floor, tuple(joules[t] for t in tiers))

        cls = _Class(
            weights=item("w", c.weight_resident_bytes, c.weight_read_s, c.weight_compute_s, c.weight_j),
            kv=item("k", c.kv_resident_bytes, c.kv_read_s, c.context_compute_s, c.kv_j),
            const_s=c.overhead_s + c.collective_s,
            const_j=c.compute_j + c.collective_j,
        )
        node_class.append(keys.setdefault(cls, len(keys)))  # frozen dataclass: equal by value
    sends, links = [], []
    for u, v in zip(nodes, nodes[1:]):
        hop = boundary_cost(graph.edges[u, v]["activation_bytes"], hw, b)
        sends.append(hop.send_s)
        links.append(hop.link_j)
    return StageData(
        nodes=nodes,
        tiers=tiers,
        capacity_bytes=tuple(hw.tier(t).capacity_bytes * hw.chips_per_group for t in tiers),
        stages=stages,
        micro_batches=m,
        micro_batch=b,
        t_max_s=t_max,
        node_class=tuple(node_class),
        classes=tuple(keys),
        send_s=tuple(sends),
        link_j=tuple(links),
        static_j_per_s=stages * hw.chips_per_group * hw.static_power_w * stages / users,
    )


@dataclass(frozen=True)
class _FreeItem:
    """An item whose split is a decision, scaled (see _Scaled); capacity as a fraction of each tier's."""

    cls: int
    kind: str
    capacity_share: tuple[float, ...]  # resident bytes / group capacity, per tier
    read_t: tuple[float, ...]
    floor_t: float
    energy_e: tuple[float, ...]


@dataclass(frozen=True)
class _Scaled:
    """Per class: constants of one node (fixed items folded in) and its free items.

    Times are in units of `time_unit_s` seconds, energies in units of `energy_unit_j` J per token.
    """

    time_unit_s: float
    energy_unit_j: float
    const_t: tuple[float, ...]
    const_e: tuple[float, ...]
    fixed_share: tuple[float, ...]  # fixed items' bytes / capacity of the first allowed tier
    free: tuple[tuple[_FreeItem, ...], ...]


def _scaled(d: StageData) -> _Scaled:
    """Scale so that the slowest node takes about 1 time unit and the costliest about 1 energy unit."""
    b = d.micro_batch
    slowest = max(c.const_s + sum(max([it.floor_s, *it.read_s]) for it in c.items) for c in d.classes)
    costliest = max(c.const_j + sum(max(it.energy_j) for it in c.items) for c in d.classes) / b
    ts = slowest if slowest > 0 else 1.0
    es = costliest if costliest > 0 else 1.0
    const_t, const_e, fixed_share, free = [], [], [], []
    for ci, cls in enumerate(d.classes):
        t, e, share, items = cls.const_s / ts, cls.const_j / b / es, 0.0, []
        for it in cls.items:
            if it.fixed:  # all of it in the first allowed tier
                t += max(it.floor_s, it.read_s[0]) / ts
                e += it.energy_j[0] / b / es
                share += it.resident_bytes / d.capacity_bytes[0]
            else:
                items.append(
                    _FreeItem(
                        ci,
                        it.kind,
                        tuple(it.resident_bytes / cap for cap in d.capacity_bytes),
                        tuple(s / ts for s in it.read_s),
                        it.floor_s / ts,
                        tuple(j / b / es for j in it.energy_j),
                    )
                )
        const_t.append(t)
        const_e.append(e)
        fixed_share.append(share)
        free.append(tuple(items))
    return _Scaled(ts, es, tuple(const_t), tuple(const_e), tuple(fixed_share), tuple(free))


# ---------------------------------------------------------------------------------------------------
# Slice types: the exact energy-vs-time frontier of a slice's tier-split LP
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frontier:
    """Least energy per token (one micro-batch) of a slice type against its busy time, scaled units.

    Vertices ascend in time and descend in energy; beyond the last vertex the energy stays flat,
    before the first the slice cannot run. `splits[v]` holds the tier fractions of each free item
    (rows: `free`, columns: allowed tiers) at vertex v.
    """

    times: np.ndarray
    energies: np.ndarray
    splits: tuple[np.ndarray, ...]
    free: tuple[_FreeItem, ...]

    @property
    def t_min(self) -> float:
        return float(self.times[0])

    def split_at(self, t: float) -> np.ndarray:
        """Fractions at busy time t >= t_min: the convex combination of the adjacent vertices."""
        k = int(np.searchsorted(self.times, t, side="right")) - 1
        if k >= len(self.times) - 1:
            return self.splits[-1]
        k = max(k, 0)
        t0, t1 = self.times[k], self.times[k + 1]
        theta = min(1.0, max(0.0, (t - t0) / (t1 - t0)))
        return (1 - theta) * self.splits[k] + theta * self.splits[k + 1]


def _new_highs() -> highspy.Highs:
    with _quiet_stdout():  # HiGHS prints its banner on stdout at the first construction in a process
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("primal_feasibility_tolerance", 1e-10)
    h.setOptionValue("dual_feasibility_tolerance", 1e-10)
    return h


@contextlib.contextmanager
def _quiet_stdout():
    """Silence file descriptor 1 (C-level printf included) so `--json` output stays clean."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class _SliceLP:
    """The tier-split LP of one slice type on a reusable HiGHS object (columns: f per tier, then p).

    Rows: split of each free item sums to 1; epigraph p >= read_t[t] * f[t]; capacity per tier;
    a busy-time row and an energy row whose bounds the lexicographic stages set.
    """

    def __init__(self, sc: _Scaled, counts: np.ndarray, nt: int, highs: highspy.Highs):
        present = np.flatnonzero(counts).tolist()
        self.nt = nt
        self.mult = [float(counts[c]) for c in present for _ in sc.free[c]]
        self.free = tuple(it for c in present for it in sc.free[c])
        self.const_t = float(sum(counts[c] * sc.const_t[c] for c in present))
        self.const_e = float(sum(counts[c] * sc.const_e[c] for c in present))
        self.fixed_share = float(sum(counts[c] * sc.fixed_share[c] for c in present))
        self.h = highs
        k, w = len(self.free), nt + 1
        ncol = k * w
        self.time_cost = np.zeros(ncol)
        self.energy_cost = np.zeros(ncol)
        lo, hi = np.zeros(ncol), np.ones(ncol)
        rows: list[tuple[list[int], list[float], float, float]] = []
        cap = [([], []) for _ in range(nt)]
        for q, (it, mult) in enumerate(zip(self.free, self.mult)):
            f0, pcol = q * w, q * w + nt
            lo[pcol], hi[pcol] = it.floor_t, _INF
            self.time_cost[pcol] = mult
            rows.append((list(range(f0, f0 + nt)), [1.0] * nt, 1.0, 1.0))
            for t in range(nt):
                self.energy_cost[f0 + t] = mult * it.energy_e[t]
                if it.read_t[t] > 0:
                    rows.append(([f0 + t, pcol], [it.read_t[t], -1.0], -_INF, 0.0))
                if it.capacity_share[t] > 0:
                    cap[t][0].append(f0 + t)
                    cap[t][1].append(mult * it.capacity_share[t])
        self.feasible = True
        for t, (idx, val) in enumerate(cap):
            room = 1.0 - CAPACITY_MARGIN - (self.fixed_share if t == 0 else 0.0)
            if room < 0:
                self.feasible = False
            if idx:
                rows.append((idx, val, -_INF, room))
        self.row_time = len(rows)
        rows.append((list(range(nt, ncol, w)), self.mult[:], -_INF, _INF))
        self.row_energy = len(rows)
        ecols = np.flatnonzero(self.energy_cost)
        rows.append((ecols.tolist(), self.energy_cost[ecols].tolist(), -_INF, _INF))
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = ncol, len(rows)
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = self.time_cost, lo, hi
        lp.row_lower_ = np.array([r[2] for r in rows])
        lp.row_upper_ = np.array([r[3] for r in rows])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.cumsum([0] + [len(r[0]) for r in rows]).astype(np.int32)
        lp.a_matrix_.index_ = np.array([i for r in rows for i in r[0]], dtype=np.int32)
        lp.a_matrix_.value_ = np.array([v for r in rows for v in r[1]], dtype=float)
        if ncol:
            highs.passModel(lp)

    def _solve(self, cost: np.ndarray) -> np.ndarray | None:
        h = self.h
        h.changeColsCost(len(cost), np.arange(len(cost), dtype=np.int32), cost)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            h.clearSolver()  # a warm start can end in a spurious status: retry from scratch
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
        return np.array(h.getSolution().col_value)

    def point(self, x: np.ndarray) -> tuple[float, float]:
        """Actual busy time (roofline max, not the epigraph) and energy of a solution, scaled units."""
        w = self.nt + 1
        t = self.const_t
        for q, (it, mult) in enumerate(zip(self.free, self.mult)):
            f = x[q * w : q * w + self.nt]
            t += mult * max([it.floor_t] + [r * v for r, v in zip(it.read_t, f)])
        return t, self.const_e + float(self.energy_cost @ x)

    def _lexicographic(self, first: np.ndarray, row: int, second: np.ndarray) -> np.ndarray | None:
        x = self._solve(first)
        if x is None:
            return None
        best = float(first @ x)
        self.h.changeRowBounds(row, -_INF, best + _LEX_TOL * max(1.0, abs(best)))
        y = self._solve(second)
        self.h.changeRowBounds(row, -_INF, _INF)
        return x if y is None else y

    def min_time(self) -> tuple[float, np.ndarray | None]:
        """Least busy time (ms) over all splits that fit, then least energy; inf if none fits."""
        if not self.feasible:
            return math.inf, None
        if not self.free:
            return self.const_t, np.zeros(0)
        x = self._lexicographic(self.time_cost, self.row_time, self.energy_cost)
        return (math.inf, None) if x is None else (self.point(x)[0], x)

    def frontier(self, x_fast: np.ndarray) -> _Frontier:
        """All vertices of E(tau), from the fastest split `x_fast` (min_time's) to the cheapest."""
        if not self.free:
            return _Frontier(
                np.array([self.const_t]), np.array([self.const_e]), (np.zeros((0, self.nt)),), ()
            )
        x_cheap = self._lexicographic(self.energy_cost, self.row_energy, self.time_cost)
        if x_cheap is None:
            raise RuntimeError(f"HiGHS: {self.h.modelStatusToString(self.h.getModelStatus())}")
        fast, cheap = (*self.point(x_fast), x_fast), (*self.point(x_cheap), x_cheap)
        if fast[1] <= cheap[1] * (1 + 1e-12) + 1e-15:  # the fastest split is also the cheapest
            verts = [fast]
        elif cheap[0] <= fast[0] * (1 + 1e-12):
            verts = [cheap]
        else:
            found = [fast, cheap]
            stack = [(0, 1)]
            while stack:  # dichotomic: each step either finds a new vertex or proves a frontier edge
                i, j = stack.pop()
                (ti, ei, _), (tj, ej, _) = found[i], found[j]
                lam = (ei - ej) / (tj - ti)
                x = self._solve(self.energy_cost + lam * self.time_cost)
                if x is None:
                    continue
                t, e = self.point(x)
                if ti < t < tj and e + lam * t < ei + lam * ti - 1e-9 * max(1.0, abs(ei + lam * ti)):
                    found.append((t, e, x))
                    stack += [(i, len(found) - 1), (len(found) - 1, j)]
            verts = sorted(found, key=lambda v: v[0])
        w = self.nt + 1
        k = len(self.free)
        splits = tuple(np.array([v[2][q * w : q * w + self.nt] for q in range(k)]) for v in verts)
        return _Frontier(np.array([v[0] for v in verts]), np.array([v[1] for v in verts]), splits, self.free)


# ---------------------------------------------------------------------------------------------------
# Arcs (slices that can be a stage) and the exact search over the cycle T
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Arcs:
    """Slices i..ends-1 that can be one stage of an S-stage path, sorted by (start, end)."""

    starts: np.ndarray
    ends: np.ndarray  # one past the slice's last node
    types: np.ndarray  # index into frontiers
    t_feas: np.ndarray  # least cycle at which the arc can run: its least busy time, its send
    link_e: np.ndarray  # link energy of its outgoing hop per token (0 for the last stage)
    frontiers: tuple[_Frontier, ...]
    lp_solves: int

    def __len__(self) -> int:
        return len(self.starts)


class _TimeUp(Exception):
    """The time limit passed while the slices were being priced."""


def _arcs(d: StageData, sc: _Scaled, deadline: float = math.inf, frontiers_wanted: bool = True) -> _Arcs:
    """Every slice whose tier-split LP fits and whose least busy time meets the speed floor.

    For each start the slice grows until it no longer fits, is too slow or leaves fewer nodes than the
    other S-1 stages need: all only get worse as nodes are added, so the kept slices are closed under
    taking sub-slices, and the stage counts that can cover a prefix form an interval; arcs that no
    path of exactly S arcs can use are dropped.
    """
    n, s, nt = d.n, d.stages, len(d.tiers)
    t_max = d.t_max_s / sc.time_unit_s
    counts = d.class_counts()
    highs = _new_highs()
    memo: dict[bytes, int] = {}
    frontiers: list[_Frontier] = []
    solves = 0
    raw: list[tuple[int, int, int]] = []
    for i in range(n):
        for j in range(i, min(n, i + n - s + 1)):  # the other S-1 stages need a node each
            diff = counts[j + 1] - counts[i]
            key = diff.tobytes()
            if key not in memo:
                if time.perf_counter() > deadline:
                    raise _TimeUp
                lp = _SliceLP(sc, diff, nt, highs)
                t_min, x = lp.min_time()
                if x is None or t_min > t_max:
                    memo[key] = -1
                else:
                    memo[key] = len(frontiers)
                    if frontiers_wanted:
                        frontiers.append(lp.frontier(x))
                    else:  # the least-time vertex only (fastest_cycle_s)
                        frontiers.append(_Frontier(np.array([t_min]), np.zeros(1), (), ()))
                solves += 1
            if memo[key] < 0:
                break
            raw.append((i, j + 1, memo[key]))
    reach = [i for i in range(n)]
    for i, e, _ in raw:
        reach[i] = max(reach[i], e)
    if any(r == i for i, r in enumerate(reach)):
        raw = []  # some node fits no group
    fwd = [0] + [math.inf] * n  # fewest stages covering the first p nodes
    for p in range(1, n + 1):
        fwd[p] = min((fwd[i] + 1 for i in range(p) if reach[i] >= p), default=math.inf)
    bwd = [0] * (n + 1)  # fewest stages covering nodes p..n-1: greedy farthest reach
    for p in range(n - 1, -1, -1):
        bwd[p] = 1 + bwd[reach[p]] if reach[p] > p else math.inf
    keep = []
    for i, e, ty in raw:
        send = d.send_s[e - 1] / sc.time_unit_s if e < n else 0.0
        if send <= t_max and fwd[i] + 1 + bwd[e] <= s <= i + 1 + (n - e):
            link = d.link_j[e - 1] / d.micro_batch / sc.energy_unit_j if e < n else 0.0
            keep.append((i, e, ty, max(frontiers[ty].t_min, send), link))
    cols = list(zip(*keep)) if keep else [[], [], [], [], []]
    return _Arcs(
        starts=np.array(cols[0], dtype=np.int64),
        ends=np.array(cols[1], dtype=np.int64),
        types=np.array(cols[2], dtype=np.int64),
        t_feas=np.array(cols[3], dtype=float),
        link_e=np.array(cols[4], dtype=float),
        frontiers=tuple(frontiers),
        lp_solves=solves,
    )


class _Search:
    """Exact minimization over the cycle T (see the module docstring), in scaled units."""

    def __init__(self, d: StageData, sc: _Scaled, arcs: _Arcs):
        self.n, self.s, self.arcs = d.n, d.stages, arcs
        self.c = d.static_j_per_s * sc.time_unit_s / sc.energy_unit_j  # static energy per time unit
        fr = arcs.frontiers
        v = max((len(f.times) for f in fr), default=1)
        self.tt = np.full((len(fr), v), np.inf)
        self.ee = np.zeros((len(fr), v))
        self.nv = np.array([len(f.times) for f in fr], dtype=np.int64)
        for k, f in enumerate(fr):
            self.tt[k, : len(f.times)] = f.times
            self.ee[k, : len(f.times)] = f.energies
            self.ee[k, len(f.times) :] = f.energies[-1]
        events = [arcs.t_feas] + [f.times for f in fr]
        cand = np.unique(np.concatenate(events)) if len(arcs) else np.zeros(0)
        t_max = d.t_max_s / sc.time_unit_s
        cand = cand[(cand <= t_max) & (cand >= (arcs.t_feas.min() if len(arcs) else 0.0))]
        if math.isfinite(t_max) and len(arcs) and (not len(cand) or cand[-1] < t_max):
            cand = np.append(cand, t_max)
        self.cand = cand
        self.dp_calls = 0

    def costs(self, t: float) -> np.ndarray:
        """Arc costs at cycle t: frontier energy at t plus link; inf where infeasible."""
        k = (self.tt <= t).sum(axis=1) - 1
        rows = np.arange(len(self.nv))
        kk = np.clip(k, 0, None)
        nxt = np.minimum(kk + 1, self.nv - 1)
        t0, t1 = self.tt[rows, kk], self.tt[rows, nxt]
        e0, e1 = self.ee[rows, kk], self.ee[rows, nxt]
        with np.errstate(invalid="ignore", divide="ignore"):
            theta = np.where(nxt > kk, (t - t0) / (t1 - t0), 0.0)
        e = e0 + np.clip(theta, 0.0, 1.0) * (e1 - e0)
        e[k < 0] = np.inf
        cost = e[self.arcs.types] + self.arcs.link_e
        cost[self.arcs.t_feas > t] = np.inf
        return cost

    def dp(self, t: float) -> float:
        """Least dynamic energy per token of a path with exactly S arcs at cycle t."""
        self.dp_calls += 1
        cost = self.costs(t)
        prev = np.full(self.n + 1, np.inf)
        prev[0] = 0.0
        for _ in range(self.s):
            cur = np.full(self.n + 1, np.inf)
            np.minimum.at(cur, self.arcs.ends, prev[self.arcs.starts] + cost)
            prev = cur
        return float(prev[self.n])

    def path(self, t: float) -> list[int]:
        """Arc indices of a least-energy path at cycle t; ties go to the lowest arc index."""
        cost = self.costs(t)
        a = self.arcs
        order = np.lexsort((np.arange(len(a)), a.ends))  # by end, then arc index
        prev = np.full(self.n + 1, np.inf)
        prev[0] = 0.0
        parents = []
        for _ in range(self.s):
            vals = prev[a.starts] + cost
            o = order[np.lexsort((order, vals[order], a.ends[order]))]
            ends, first = np.unique(a.ends[o], return_index=True)
            cur = np.full(self.n + 1, np.inf)
            par = np.full(self.n + 1, -1)
            cur[ends] = vals[o[first]]
            par[ends] = o[first]
            parents.append(par)
            prev = cur
        chosen, pos = [], self.n
        for par in reversed(parents):
            arc = int(par[pos])
            chosen.append(arc)
            pos = int(a.starts[arc])
        return chosen[::-1]

    def run(
        self, rel_gap: float, cutoff_e: float | None, deadline: float
    ) -> tuple[float | None, float, float, bool]:
        """Best-first search over candidate intervals: (best t or None, best F, bound, finished)."""
        cand, c = self.cand, self.c
        if not len(cand):
            return None, math.inf, math.inf, True
        dp = {}

        def at(k: int) -> float:
            if k not in dp:
                dp[k] = self.dp(float(cand[k]))
            return dp[k]

        best_f = math.inf if cutoff_e is None else cutoff_e
        best_t: float | None = None

        def consider(k: int) -> None:
            nonlocal best_f, best_t
            f = at(k) + c * cand[k]
            if f < best_f:
                best_f, best_t = f, float(cand[k])

        last = len(cand) - 1
        consider(last)
        if not math.isfinite(at(last)):
            return None, math.inf, math.inf, True
        consider(0)
        heap = [(at(last) + c * cand[0], 0, last)]
        while heap:
            lb, lo, hi = heap[0]
            if lb >= best_f - rel_gap * abs(best_f) or hi - lo <= 1:
                if hi - lo <= 1:
                    heapq.heappop(heap)
                    continue
                break
            if time.perf_counter() > deadline:
                bound = min(best_f, heap[0][0])
                return best_t, best_f, bound, False
            heapq.heappop(heap)
            mid = (lo + hi) // 2
            consider(mid)
            heapq.heappush(heap, (at(hi) + c * cand[mid], mid, hi))
            heapq.heappush(heap, (at(mid) + c * cand[lo], lo, mid))
        bound = min([best_f] + [h[0] for h in heap])
        return best_t, best_f, bound, True


# ---------------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------------


def _empty(stages: int, users: int, status: str, message: str, **kw: float | None) -> StageSolution:
    return StageSolution(
        stages=stages,
        micro_batches=micro_batches(users, stages),
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
    )


def _fractions(row: np.ndarray, tiers: tuple[str, ...]) -> dict[str, float]:
    """Solver fractions clipped to [0, 1] and renormalized to sum to 1; zeros dropped."""
    x = np.clip(row, 0.0, 1.0)
    total = float(x.sum())
    if total <= 0:
        return {tiers[0]: 1.0}
    return {t: float(v) / total for t, v in zip(tiers, x) if v / total > 1e-12}


def _placement(
    d: StageData, slices: list[tuple[int, int, dict[tuple[int, str], np.ndarray]]]
) -> tuple[tuple[tuple[str, ...], ...], dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Groups and per-node splits from (start, end, {(class, kind): tier fractions}) per stage."""
    groups, w_split, k_split = [], {}, {}
    for i, e, rows in slices:
        groups.append(d.nodes[i:e])
        for p in range(i, e):
            c = d.node_class[p]
            for kind, split in (("w", w_split), ("k", k_split)):
                row = rows.get((c, kind))
                split[d.nodes[p]] = {d.tiers[0]: 1.0} if row is None else _fractions(row, d.tiers)
    return tuple(groups), w_split, k_split


def _check_inputs(graph: nx.DiGraph, users: int, context: int, stages: int) -> str:
    n = graph.number_of_nodes()
    if users < 1 or context < 0:
        return f"users ({users}) must be >= 1 and context ({context}) >= 0"
    if not 1 <= stages <= n:
        return f"{stages} stages for {n} nodes: need 1 <= S <= {n}"
    return ""


def solve_stages(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    min_tokens_per_s: float,
    stages: int,
    time_limit: float | None = None,
    rel_gap: float = 1e-4,
    threads: int | None = None,
    allowed_tiers: Sequence[str] | None = None,
    in_flight: int | None = None,
    cutoff: float | None = None,
) -> StageSolution:
    """Least joules per token with exactly `stages` pipeline stages (FORMULATION.md §3-§4).

    `min_tokens_per_s`: per-user speed floor r (0: none). `time_limit` (s) bounds the whole call.
    `rel_gap`: stop once the incumbent is proven within this relative gap. `threads` is accepted for
    the interface (the slice LPs are tiny and run on one thread). `allowed_tiers`: tier names the plan
    may use (default all). `cutoff` (J/token): only plans strictly better are wanted; with none, the
    status is "infeasible" and best_bound is a proven bound near the cutoff (>= cutoff x (1 - rel_gap)).
    Never raises for an infeasible instance; a HiGHS failure gives status "error" with its message.
    """
    del threads  # the slice LPs are tiny: one thread each
    t0 = time.perf_counter()
    deadline = math.inf if time_limit is None else t0 + float(time_limit)
    problem = _check_inputs(graph, users, context, stages)
    if problem:
        return _empty(max(stages, 1), max(users, 1), "infeasible", problem)
    try:
        d = stage_data(graph, hw, users, context, min_tokens_per_s, stages, allowed_tiers, in_flight)
    except ValueError as exc:
        return _empty(stages, users, "error", str(exc))
    if not d.tiers:
        return _empty(stages, users, "infeasible", "no allowed memory tier")
    if d.t_max_s <= 0:
        msg = f"the latency of {stages - 1} hops alone exceeds 1/{min_tokens_per_s:g} s"
        return _empty(stages, users, "infeasible", msg)
    if cutoff is not None:
        lb = lower_bound(graph, hw, users, context, min_tokens_per_s, stages, allowed_tiers, in_flight)
        if lb is None or lb >= cutoff:
            msg = f"no placement below the cutoff {cutoff:.6g} J/token (lower bound {lb})"
            return _empty(
                stages, users, "infeasible", msg, best_bound=cutoff, build_s=time.perf_counter() - t0
            )
    sc = _scaled(d)
    try:
        arcs = _arcs(d, sc, deadline)
        search = _Search(d, sc, arcs)
    except _TimeUp:
        msg = "time limit while pricing the slices, before any placement was found"
        return _empty(stages, users, "time_limit", msg, build_s=time.perf_counter() - t0)
    except Exception as exc:  # a HiGHS failure: report it, do not raise
        return _empty(
            stages, users, "error", f"{type(exc).__name__}: {exc}", build_s=time.perf_counter() - t0
        )
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    cutoff_e = None if cutoff is None else cutoff / sc.energy_unit_j
    best_t, best_f, bound, finished = search.run(rel_gap, cutoff_e, deadline)
    solve_s = time.perf_counter() - t1
    bound_j = bound * sc.energy_unit_j if math.isfinite(bound) else None
    if best_t is None:
        if not finished:
            return _empty(
                stages,
                users,
                "time_limit",
                "time limit before any placement was found",
                best_bound=bound_j,
                build_s=build_s,
                solve_s=solve_s,
            )
        msg = "infeasible: no placement meets the capacities and the speed floor"
        if cutoff is not None:
            msg = f"no placement below the cutoff {cutoff:.6g} J/token"
        return _empty(
            stages,
            users,
            "infeasible",
            msg,
            best_bound=bound_j if cutoff is not None else None,
            build_s=build_s,
            solve_s=solve_s,
        )
    chosen = search.path(best_t)
    slices = []
    for a in chosen:
        f = arcs.frontiers[arcs.types[a]]
        rows = f.split_at(best_t)
        slices.append(
            (
                int(arcs.starts[a]),
                int(arcs.ends[a]),
                {(it.cls, it.kind): rows[q] for q, it in enumerate(f.free)},
            )
        )
    groups, w_split, k_split = _placement(d, slices)
    cost = pipeline_cost(graph, hw, users, context, groups, w_split, k_split, in_flight)
    obj = cost.joules_per_token
    bound_j = min(bound_j, obj) if bound_j is not None else None
    return StageSolution(
        stages=stages,
        micro_batches=d.micro_batches,
        status="optimal" if finished else "time_limit",
        objective=obj,
        best_bound=bound_j,
        gap=None if bound_j is None else max(0.0, (obj - bound_j) / obj),
        groups=groups,
        weight_split=w_split,
        kv_split=k_split,
        cycle_s=cost.cycle_s,
        build_s=build_s,
        solve_s=solve_s,
        message=(
            f"{len(arcs)} arcs, {len(arcs.frontiers)} slice types, {arcs.lp_solves} slice LPs, "
            f"{search.dp_calls} DP evaluations of {len(search.cand)} candidate cycles"
            + ("" if finished else "; time limit: incumbent and proven bound")
        ),
    )


def fastest_cycle_s(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    stages: int,
    allowed_tiers: Sequence[str] | None = None,
    in_flight: int | None = None,
) -> float | None:
    """The least cycle T (s) that any placement on exactly `stages` stages reaches within capacity,
    energy ignored and no speed floor: a bottleneck path (min over paths of the max slice time) over
    the slices that fit a group. None when no placement fits. Used to explain an unreachable floor."""
    if _check_inputs(graph, users, context, stages):
        return None
    d = stage_data(graph, hw, users, context, 0.0, stages, allowed_tiers, in_flight)
    if not d.tiers:
        return None
    sc = _scaled(d)
    arcs = _arcs(d, sc, frontiers_wanted=False)
    if not len(arcs):
        return None
    best = np.full(d.n + 1, np.inf)
    best[0] = 0.0
    for _ in range(stages):
        reach = np.full(d.n + 1, np.inf)
        np.minimum.at(reach, arcs.ends, np.maximum(best[arcs.starts], arcs.t_feas))
        best = reach
    return None if not np.isfinite(best[d.n]) else float(best[d.n]) * sc.time_unit_s


def _solve_lp(
    cost: list[float],
    col_lo: list[float],
    col_hi: list[float],
    rows: list[tuple[list[int], list[float], float, float]],
) -> tuple[float, np.ndarray] | None:
    """min cost.x over rows (indices, values, lower, upper) and column bounds; None if infeasible."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), len(rows)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = np.array(cost), np.array(col_lo), np.array(col_hi)
    lp.row_lower_ = np.array([r[2] for r in rows])
    lp.row_upper_ = np.array([r[3] for r in rows])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.cumsum([0] + [len(r[0]) for r in rows]).astype(np.int32)
    lp.a_matrix_.index_ = np.array([i for r in rows for i in r[0]], dtype=np.int32)
    lp.a_matrix_.value_ = np.array([v for r in rows for v in r[1]], dtype=float)
    h = _new_highs()
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return h.getInfo().objective_function_value, np.array(h.getSolution().col_value)


def lower_bound(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    min_tokens_per_s: float,
    stages: int,
    allowed_tiers: Sequence[str] | None = None,
    in_flight: int | None = None,
) -> float | None:
    """A valid lower bound on J/token with `stages` stages; None when provably infeasible.

    The fluid relaxation, one small LP: the S groups pooled into one (capacities x S, busy times
    summing to at most S*T), each node alone still within one group's capacity and within T, the
    S-1 cheapest hops, T at least the cheapest send and at most the speed floor's cycle.
    """
    if _check_inputs(graph, users, context, stages):
        return None
    d = stage_data(graph, hw, users, context, min_tokens_per_s, stages, allowed_tiers, in_flight)
    if not d.tiers or d.t_max_s <= 0:
        return None
    sc = _scaled(d)
    nt, s = len(d.tiers), float(stages)
    mult = np.bincount(np.array(d.node_class), minlength=len(d.classes)).astype(float)
    cost, lo, hi = [0.0], [0.0], [d.t_max_s / sc.time_unit_s]  # column 0: T
    if stages > 1:
        lo[0] = min(d.send_s) / sc.time_unit_s
    rows: list[tuple[list[int], list[float], float, float]] = []
    pool_cap: list[tuple[list[int], list[float]]] = [([], []) for _ in range(nt)]
    pool_time: tuple[list[int], list[float]] = ([0], [-s])
    const = 0.0
    for c in range(len(d.classes)):
        const += mult[c] * sc.const_e[c]
        node_cap: list[tuple[list[int], list[float]]] = [([], []) for _ in range(nt)]
        node_time: tuple[list[int], list[float]] = ([0], [-1.0])
        for it in sc.free[c]:
            f0, pcol = len(cost), len(cost) + nt
            cost += [mult[c] * e for e in it.energy_e] + [0.0]
            lo += [0.0] * nt + [it.floor_t]
            hi += [1.0] * nt + [_INF]
            rows.append((list(range(f0, f0 + nt)), [1.0] * nt, 1.0, 1.0))
            for t in range(nt):
                if it.read_t[t] > 0:
                    rows.append(([f0 + t, pcol], [it.read_t[t], -1.0], -_INF, 0.0))
                if it.capacity_share[t] > 0:
                    node_cap[t][0].append(f0 + t)
                    node_cap[t][1].append(it.capacity_share[t])
                    pool_cap[t][0].append(f0 + t)
                    pool_cap[t][1].append(mult[c] * it.capacity_share[t])
            node_time[0].append(pcol)
            node_time[1].append(1.0)
            pool_time[0].append(pcol)
            pool_time[1].append(mult[c])
        rows.append((*node_time, -_INF, -sc.const_t[c]))
        for t in range(nt):
            room = 1.0 - (sc.fixed_share[c] if t == 0 else 0.0)
            if room < 0:
                return None
            if node_cap[t][0]:
                rows.append((*node_cap[t], -_INF, room))
    rows.append((*pool_time, -_INF, -float(mult @ np.array(sc.const_t))))
    for t in range(nt):
        room = s - (float(mult @ np.array(sc.fixed_share)) if t == 0 else 0.0)
        if room < 0:
            return None
        if pool_cap[t][0]:
            rows.append((*pool_cap[t], -_INF, room))
    cost[0] = d.static_j_per_s * sc.time_unit_s / sc.energy_unit_j
    if lo[0] > hi[0]:
        return None
    hops = sorted(d.link_j)[: stages - 1]
    const += sum(hops) / d.micro_batch / sc.energy_unit_j
    res = _solve_lp(cost, lo, hi, rows)
    if res is None:
        return None
    # LP tolerances: shade by a relative 1e-9 so the bound stays valid
    return (res[0] + const) * sc.energy_unit_j * (1 - 1e-9)


# ---------------------------------------------------------------------------------------------------
# The same path form as one Pyomo MILP (kept for comparison; see the module docstring)
# ---------------------------------------------------------------------------------------------------


def _lin(coefs: list[float], variables: list) -> LinearExpression:
    return LinearExpression(constant=0.0, linear_coefs=coefs, linear_vars=variables)


def build_milp(
    d: StageData, sc: _Scaled, arcs: _Arcs, fixed_cycle: float | None = None
) -> tuple[pyo.ConcreteModel, dict]:
    """The path-form MILP over `arcs` (scaled units): binary z per arc, per (arc, class, item) tier
    fractions f (summing to z) and roofline epigraph p, capacity rows, busy <= T per arc, the S busy
    times summing to at most S*T, flow from position 0 to N with exactly S arcs.
    Returns the model and arc -> (class, kind) -> list of f variables (one per tier)."""
    nt, counts = len(d.tiers), d.class_counts()
    na = len(arcs)
    m = pyo.ConcreteModel(name=f"placement_S{d.stages}")
    m.z = pyo.Var(range(na), domain=pyo.Binary)
    t_max = d.t_max_s / sc.time_unit_s
    m.T = pyo.Var(bounds=(float(arcs.t_feas.min()), t_max if math.isfinite(t_max) else None))
    if fixed_cycle is not None:  # scaled units; with T fixed the path form's relaxation is nearly integral
        m.T.setlb(None)  # the cycle comes from the search, which met the floor; a round-off above it is
        m.T.setub(None)  # not a reason to warn (the evaluator checks the floor on the placement itself)
        m.T.fix(fixed_cycle)
    free = []
    for a in range(na):
        cnt = counts[arcs.ends[a]] - counts[arcs.starts[a]]
        for c in np.flatnonzero(cnt).tolist():
            free += [(a, c, float(cnt[c]), it) for it in sc.free[c]]
    m.f = pyo.Var(range(len(free) * nt), bounds=(0.0, 1.0))
    m.p = pyo.Var(range(len(free)), bounds=(0.0, None))
    m.cons = pyo.ConstraintList()
    add = m.cons.add
    z = [m.z[a] for a in range(na)]
    f = [m.f[k] for k in range(len(free) * nt)]
    p = [m.p[k] for k in range(len(free))]
    by_arc: dict[int, list[int]] = {}
    for k, (a, _, _, _) in enumerate(free):
        by_arc.setdefault(a, []).append(k)
    obj_c: list[float] = [d.static_j_per_s * sc.time_unit_s / sc.energy_unit_j]
    obj_v: list = [m.T]
    sum_c: list[float] = []
    sum_v: list = []
    split_vars: dict[int, dict[tuple[int, str], list]] = {}
    for a in range(na):
        i, e = int(arcs.starts[a]), int(arcs.ends[a])
        cnt = counts[e] - counts[i]
        present = np.flatnonzero(cnt).tolist()
        const_t = float(sum(cnt[c] * sc.const_t[c] for c in present))
        const_e = float(sum(cnt[c] * sc.const_e[c] for c in present)) + float(arcs.link_e[a])
        fixed = float(sum(cnt[c] * sc.fixed_share[c] for c in present))
        cap_c: list[list[float]] = [[] for _ in range(nt)]
        cap_v: list[list] = [[] for _ in range(nt)]
        time_c: list[float] = []
        time_v: list = []
        for k in by_arc.get(a, []):
            _, c, mult, it = free[k]
            fs = f[k * nt : (k + 1) * nt]
            split_vars.setdefault(a, {})[(c, it.kind)] = fs
            add(_lin([1.0] * nt + [-1.0], fs + [z[a]]) == 0)
            for t in range(nt):
                if it.read_t[t] > 0:
                    add(_lin([it.read_t[t], -1.0], [fs[t], p[k]]) <= 0)
                if it.capacity_share[t] > 0:
                    cap_c[t].append(mult * it.capacity_share[t])
                    cap_v[t].append(fs[t])
                obj_c.append(mult * it.energy_e[t])
                obj_v.append(fs[t])
            if it.floor_t > 0:
                add(_lin([it.floor_t, -1.0], [z[a], p[k]]) <= 0)
            time_c.append(mult)
            time_v.append(p[k])
        for t in range(nt):
            room = 1.0 - CAPACITY_MARGIN - (fixed if t == 0 else 0.0)
            if cap_c[t]:
                add(_lin(cap_c[t] + [-room], cap_v[t] + [z[a]]) <= 0)
        add(_lin(time_c + [const_t, -1.0], time_v + [z[a], m.T]) <= 0)
        sum_c += time_c + [const_t]
        sum_v += time_v + [z[a]]
        if e < d.n:
            add(_lin([d.send_s[e - 1] / sc.time_unit_s, -1.0], [z[a], m.T]) <= 0)
        obj_c.append(const_e)
        obj_v.append(z[a])
    add(_lin(sum_c + [-float(d.stages)], sum_v + [m.T]) <= 0)
    out_of: dict[int, list[int]] = {}
    into: dict[int, list[int]] = {}
    for a in range(na):
        out_of.setdefault(int(arcs.starts[a]), []).append(a)
        into.setdefault(int(arcs.ends[a]), []).append(a)
    for pos in range(d.n + 1):
        outs, ins = out_of.get(pos, []), into.get(pos, [])
        rhs = 1.0 if pos == 0 else (-1.0 if pos == d.n else 0.0)
        add(_lin([1.0] * len(outs) + [-1.0] * len(ins), [z[a] for a in outs + ins]) == rhs)
    add(_lin([1.0] * na, z) == float(d.stages))
    m.obj = pyo.Objective(expr=_lin(obj_c, obj_v), sense=pyo.minimize)
    return m, split_vars


def solve_stages_milp(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    min_tokens_per_s: float,
    stages: int,
    time_limit: float | None = None,
    rel_gap: float = 1e-4,
    threads: int | None = None,
    allowed_tiers: Sequence[str] | None = None,
    in_flight: int | None = None,
    cycle_s: float | None = None,
) -> StageSolution:
    """solve_stages through one Pyomo MILP solved by HiGHS (pyomo.contrib.solver "highs").

    With `cycle_s` None: the same arcs and the same answer as solve_stages, usually far slower (weak
    relaxation of the min-max cycle); kept to measure and to cross-check. With `cycle_s` given (the
    optimal cycle found by solve_stages), T is fixed, only arcs that run within it are kept, and the
    MILP places nodes and tiers at that cycle: this is how `planner solve` produces its final plan.
    build_s includes pricing the arcs.
    """
    t0 = time.perf_counter()
    problem = _check_inputs(graph, users, context, stages)
    if problem:
        return _empty(max(stages, 1), max(users, 1), "infeasible", problem)
    d = stage_data(graph, hw, users, context, min_tokens_per_s, stages, allowed_tiers, in_flight)
    if not d.tiers or d.t_max_s <= 0:
        return _empty(stages, users, "infeasible", "no tier allowed, or the hop latency alone is too slow")
    sc = _scaled(d)
    arcs = _arcs(d, sc)
    fixed = None
    if cycle_s is not None:
        fixed = cycle_s * (1 + 1e-9) / sc.time_unit_s
        keep = arcs.t_feas <= fixed
        arcs = dataclasses.replace(
            arcs,
            starts=arcs.starts[keep],
            ends=arcs.ends[keep],
            types=arcs.types[keep],
            t_feas=arcs.t_feas[keep],
            link_e=arcs.link_e[keep],
        )
    if not len(arcs):
        return _empty(stages, users, "infeasible", "no slice fits a group within the speed floor")
    model, split_vars = build_milp(d, sc, arcs, fixed)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        res = SolverFactory("highs").solve(
            model,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            time_limit=None if time_limit is None else float(time_limit),
            rel_gap=rel_gap,
            threads=threads,
        )
    except Exception as exc:  # HiGHS or the interface failed: report, do not raise
        return _empty(stages, users, "error", f"{type(exc).__name__}: {exc}", build_s=build_s)
    solve_s = time.perf_counter() - t1
    tc = res.termination_condition
    if tc in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
        return _empty(stages, users, "infeasible", "HiGHS: infeasible", build_s=build_s, solve_s=solve_s)
    ok = (TerminationCondition.convergenceCriteriaSatisfied, TerminationCondition.maxTimeLimit)
    if tc not in ok or res.incumbent_objective is None:
        status = "time_limit" if tc == TerminationCondition.maxTimeLimit else "error"
        return _empty(stages, users, status, f"HiGHS ended with {tc.name}", build_s=build_s, solve_s=solve_s)
    res.solution_loader.load_vars()
    chosen = sorted(
        (a for a in range(len(arcs)) if pyo.value(model.z[a]) > 0.5), key=lambda a: arcs.starts[a]
    )
    slices = []
    for a in chosen:
        rows = {
            (c, kind): np.array([pyo.value(v) for v in fs]) for (c, kind), fs in split_vars.get(a, {}).items()
        }
        slices.append((int(arcs.starts[a]), int(arcs.ends[a]), rows))
    groups, w_split, k_split = _placement(d, slices)
    cost = pipeline_cost(graph, hw, users, context, groups, w_split, k_split, in_flight)
    obj = cost.joules_per_token
    bound = res.objective_bound
    bound_j = min(obj, bound * sc.energy_unit_j) if bound is not None and math.isfinite(bound) else None
    return StageSolution(
        stages=stages,
        micro_batches=d.micro_batches,
        status="optimal" if tc == TerminationCondition.convergenceCriteriaSatisfied else "time_limit",
        objective=obj,
        best_bound=bound_j,
        gap=None if bound_j is None else max(0.0, (obj - bound_j) / obj),
        groups=groups,
        weight_split=w_split,
        kv_split=k_split,
        cycle_s=cost.cycle_s,
        build_s=build_s,
        solve_s=solve_s,
        message=f"Pyomo MILP: {len(arcs)} arcs, {sum(map(len, split_vars.values()))} split blocks",
    )
