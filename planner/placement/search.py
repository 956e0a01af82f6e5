"""Optimal placement for a fixed number of stages S: the path form, solved by an exact search over the
cycle (FORMULATION §4). Valid for cycle-bound pipelines (Problem.cycle_bound: period = m x cycle); the
Pyomo MILP (planner.placement.milp) is the formulation of record and solves the others.

The node chain 0..N-1 is cut into S contiguous, non-empty slices, one per chip group. Groups are
identical, so a slice needs no group index: a placement is a path from position 0 to N with exactly S
arcs, and an arc's cost depends only on its *type*: its class counts, the op whose constants it pays
again when it starts inside one, and its outgoing hop (planner.placement.rows.SliceView).

0. Cover. Before every slice is priced, a greedy cover (greedy_reach: from node 0, each slice as long
   as it runs within the cycle limit) shows whether S slices can reach the end of the chain at all; no
   path reaches further, because dropping a slice's leading nodes never slows it. Where a speed floor
   is out of reach this prices the slices of S starts instead of every start's.
1. Frontier. For each type, HiGHS gives the exact lower convex frontier E(tau) of its slice LP
   (planner.placement.slicelp; rows from planner.placement.constraints): the least energy at cycle tau.
   Averaging the splits of the nodes of one class loses nothing (the LP is convex and symmetric in them).
2. Search over T. For fixed T the best placement is a shortest path with exactly S arcs, arc cost
   E_type(T), arcs that cannot run within T left out (a DP). Between two consecutive *events* (an arc
   becoming feasible, a frontier vertex) every arc cost is linear in T, so the best J/token over that
   interval, a minimum of linear functions plus static power x T, is concave and attains its minimum at
   an end. The optimum is therefore at one of finitely many candidate cycles; a best-first search over
   candidate intervals, bounded by DP(right end) + static(left end) (DP is non-increasing in T), finds it
   within rel_gap and proves the bound.
3. Power. A per-chip limit is a row of every slice LP (energy <= chips x (limit - static) x tau), so it
   only moves each type's least cycle (its frontier starts where the limit stops binding). A budget for
   the whole pipeline, DP(T) <= K x T, holds exactly for T >= T_b (DP non-increasing, K T increasing);
   T_b is found on the candidate intervals by bisection and then exactly by Newton's method on the
   concave DP (each step follows the current optimal path's line), and becomes the least candidate.
   Both arguments above hold on [T_b, T_max]: the proof is unchanged.

Determinism: classes, types and arcs are built in graph order and HiGHS is deterministic. Ties: at each
position the DP keeps the arc with the lowest start among equal costs; among candidate cycles of equal
J/token the search keeps the one it evaluated first. The same input gives the same output.
"""

from __future__ import annotations

import functools
import heapq
import math
import time
from dataclasses import dataclass, field

import numpy as np

from planner.placement.constraints.capacity import next_fit
from planner.placement.rows import SliceView
from planner.placement.slicelp import Frontier, SliceLP, new_highs
from planner.placement.stage import StageData


class TimeUp(Exception):
    """The time limit passed while the slices were being priced."""


@dataclass
class Pricing:
    """Slice types of one S, priced once and reused (the search, the final Pyomo MILP, the explanation).

    `views[k]` is type k's slice and `t_min[k]` its least cycle; its frontier is computed on first use
    (`frontier(k)`: only types of arcs an S-arc path can use need one). `lp_solves` counts slice LPs:
    the unit of work of budgets (deterministic, unlike seconds)."""

    d: StageData
    views: list[SliceView] = field(default_factory=list)
    t_min: list[float] = field(default_factory=list)
    frontiers: dict[int, Frontier] = field(default_factory=dict)
    memo: dict[tuple, tuple[int, float]] = field(default_factory=dict)
    priced: list[tuple | None] = field(default_factory=list)  # type k: (its SliceLP, x at t_min, basis)
    keep_lps: bool = True  # False: frontiers are not wanted (explanations), so nothing is kept for them
    lp_solves: int = 0

    def __post_init__(self):
        self.highs = new_highs()
        d = self.d
        # a slice's class counts as one exact integer: the counts' digits in base n + 1 (no count reaches
        # it), so prefix[e] - prefix[i] is slice i..e-1's and equal keys mean equal counts
        base, prefix = d.n + 1, [0]
        for c in d.node_class:
            prefix.append(prefix[-1] + base**c)
        self._prefix = prefix
        self._start_class = [d.start_class(i) for i in range(d.n)]
        self._after = [None] + [(d.send_after(e), d.link_after(e)) for e in range(1, d.n + 1)]

    def type_of(self, start: int, end: int) -> tuple[int, float]:
        """(type index, or -1 if slice start..end-1 cannot run within the cycle limit; a lower bound on
        the least cycle of its nodes alone, without the outgoing hop). The bound only grows as nodes are
        added: build_arcs stops growing a slice once it passes the limit. An LP infeasible whatever the
        cycle is over capacity, which more nodes only make worse: its bound is inf."""
        sc = self._start_class[start]
        send, link = self._after[end]
        key = (self._prefix[end] - self._prefix[start], sc, send, link)
        found = self.memo.get(key)
        if found is None:
            d = self.d
            counts = d.class_counts[end] - d.class_counts[start]
            view = SliceView(d, counts, sc, send, d.hop, link)
            lp = SliceLP(view, self.highs)
            self.lp_solves += 1
            t_min, x = lp.min_time()
            k = -1
            if t_min <= d.t_max:
                k = len(self.views)
                self.views.append(view)
                self.t_min.append(t_min)
                kept = x is not None and self.keep_lps  # None: an LP with no solution, or not kept
                self.priced.append((lp, x, lp.basis()) if kept else None)
            found = self.memo[key] = (k, t_min - self.hop_allowance(send, link))
        return found

    def hop_allowance(self, send: float, link: float) -> float:
        """How much the outgoing hop can add to a slice's least cycle: its send and latency on the time
        rows, and its energy over the power rows' rates."""
        d = self.d
        extra = send + d.hop
        for rate in (d.chip_power, d.pipeline_power):
            if rate:
                extra = max(extra, link / rate) if rate > 0 else math.inf
        return extra

    def frontier(self, k: int) -> Frontier:
        """Type k's frontier, continued from its least-cycle solve in type_of (its LP, solution and
        basis kept there: nothing is built or solved twice)."""
        if k not in self.frontiers:
            if self.priced[k] is None:  # released by build_arcs (on no path), or unsolved: priced again
                lp = SliceLP(self.views[k], self.highs)
                _, x = lp.min_time()
            else:
                lp, x, basis = self.priced[k]
                lp.load(basis)
            self.lp_solves += 1
            self.frontiers[k] = lp.frontier(x)
            self.priced[k] = None
        return self.frontiers[k]


@dataclass(frozen=True)
class Arcs:
    """Slices start..end-1 that can be one stage of an S-stage path, sorted by (end, start)."""

    starts: np.ndarray
    ends: np.ndarray
    types: np.ndarray
    t_feas: np.ndarray  # least cycle at which the arc can run

    def __len__(self) -> int:
        return len(self.starts)

    def subset(self, keep: np.ndarray) -> Arcs:
        return Arcs(self.starts[keep], self.ends[keep], self.types[keep], self.t_feas[keep])


def capacity_covers(d: StageData) -> tuple[np.ndarray, np.ndarray]:
    """(fewest groups that hold the first p nodes, fewest that hold nodes p..n-1) by capacity alone
    (planner.placement.constraints.capacity.next_fit): lower bounds on the groups of any feasible cover."""
    problem = d.problem
    sizes = [problem.node_resident_bytes(v) for v in problem.nodes]
    cap = problem.group_capacity_bytes
    return np.array(next_fit(sizes, cap)), np.array(next_fit(sizes[::-1], cap)[::-1])


GREEDY_TOL = 1e-9  # relative: the greedy cover accepts a slice this far past the limit (LP round-off)


def greedy_reach(pricing: Pricing, deadline: float = math.inf) -> int:
    """How far S slices reach along the chain from node 0, each as long as it can run within the cycle
    limit (and fit): no S-arc path reaches further, so a reach short of N proves there is no placement.

    Why: removing a slice's leading nodes never makes it slower or larger (every row is a sum of
    non-negative terms, and the op constants the shorter slice pays are among those the longer one
    pays: its ops' first parts, or the op it starts inside, which the longer slice either holds from
    its start or also starts inside). So if a path's k-th slice ends at p_k and the greedy's k-1 slices
    reach g >= p_(k-1), the slice g..p_k-1 can run too, and the greedy's k-th slice reaches at least
    p_k (by induction, every path stays behind it). Growing a slice stops where its nodes' bound passes
    the limit (type_of: the bound only grows with nodes). The limit is widened by GREEDY_TOL, so LP
    round-off can only weaken the test. Where a speed floor is out of reach this prices the slices of S
    starts instead of every start's."""
    d = pricing.d
    limit = d.t_max * (1 + GREEDY_TOL)
    pos = 0
    for _ in range(d.stages):
        furthest = pos
        for e in range(pos + 1, d.n + 1):
            if time.perf_counter() > deadline:
                raise TimeUp
            ty, core = pricing.type_of(pos, e)
            if core > d.t_max:
                break
            send, link = pricing._after[e]
            if ty >= 0 or core + pricing.hop_allowance(send, link) <= limit:
                furthest = e
        if furthest == pos or furthest == d.n:
            return furthest
        pos = furthest
    return pos


def _runnable_slices(pricing: Pricing, deadline: float) -> list[tuple[int, int, int]]:
    """(start, end, type) of every slice build_arcs tries (its docstring) that runs within the limit."""
    d = pricing.d
    n, s = d.n, d.stages
    before, after = (c.tolist() for c in capacity_covers(d))
    reach = [0] + [math.inf] * n  # fewest runnable slices covering the first p nodes, found so far
    raw: list[tuple[int, int, int]] = []
    for i in range(n):
        if before[i] > s - 1:
            break
        needed = max(before[i], reach[i])  # slices any path needs before node i
        if needed > s - 1:
            continue  # unreached, or the rest would need too many
        for j in range(i, min(n, i + n - s + 1)):  # the other S-1 stages need a node each
            e = j + 1
            if needed + after[e] > s - 1:
                continue  # the rest needs too many groups: a longer slice may still do
            if time.perf_counter() > deadline:
                raise TimeUp
            ty, core = pricing.type_of(i, e)
            if core > d.t_max:
                break
            if ty >= 0:
                raw.append((i, e, ty))
                reach[e] = min(reach[e], reach[i] + 1)
    return raw


def build_arcs(pricing: Pricing, deadline: float = math.inf) -> Arcs:
    """Every slice that fits and meets the cycle limit, among those a path of exactly S arcs can use.

    A slice i..e-1 is tried only if the nodes before it can be covered by k slices and those after it
    by S-1-k for some k; for each start it grows until its nodes alone no longer fit or run within the
    limit (both only get worse as nodes are added) or leave fewer nodes than the other S-1 stages need.
    Then only arcs on some path of exactly S arcs are kept. None is tried when the greedy cover
    (greedy_reach) falls short of the chain.

    The k before a start is the larger of two lower bounds: the next-fit bound by capacity
    (capacity_covers) and `reach`, the fewest slices already found runnable that cover the nodes before
    it (starts are taken in order, so every slice ending at i is priced before start i). A start no
    such chain reaches is not priced at all. This leaves out only slices that no path of at most S arcs
    can use: a path's slices each meet the test with the path's own prefix, so the kept arcs are those
    of the unpruned enumeration (where a speed floor is out of reach, most starts are never priced)."""
    d = pricing.d
    n, s = d.n, d.stages
    # no S slices cover the chain: no slice is on a path (the tail below then releases every kept LP)
    raw = _runnable_slices(pricing, deadline) if greedy_reach(pricing, deadline) >= n else []
    fwd = [0] + [math.inf] * n  # fewest arcs covering the first p nodes
    ends_at: dict[int, list[int]] = {}
    starts_at: dict[int, list[int]] = {}
    for i, e, _ in raw:
        ends_at.setdefault(e, []).append(i)
        starts_at.setdefault(i, []).append(e)
    for e in range(1, n + 1):
        fwd[e] = min([fwd[i] for i in ends_at.get(e, ())], default=math.inf) + 1
    bwd = [math.inf] * n + [0]  # fewest arcs covering nodes p..n-1
    for q in range(n - 1, -1, -1):
        bwd[q] = min([bwd[e] for e in starts_at.get(q, ())], default=math.inf) + 1
    keep = sorted((e, i, ty) for i, e, ty in raw if fwd[i] + 1 + bwd[e] <= s <= i + 1 + (n - e))
    cols = list(zip(*keep)) if keep else [[], [], []]
    types = np.array(cols[2], dtype=np.int64)
    used = set(cols[2])
    for k in range(len(pricing.priced)):  # no path uses these types: their kept LPs are not needed
        if k not in used:
            pricing.priced[k] = None
    return Arcs(
        starts=np.array(cols[1], dtype=np.int64),
        ends=np.array(cols[0], dtype=np.int64),
        types=types,
        t_feas=np.array([pricing.t_min[k] for k in types], dtype=float),
    )


class CycleSearch:
    """Exact minimization over the cycle T (module docstring), in scaled units."""

    def __init__(self, pricing: Pricing, arcs: Arcs):
        d = pricing.d
        self.d, self.n, self.s, self.arcs = d, d.n, d.stages, arcs
        self.c = d.static_e
        fr = [pricing.frontier(t) for t in sorted(set(arcs.types.tolist()))]
        self.type_index = {t: k for k, t in enumerate(sorted(set(arcs.types.tolist())))}
        self.arc_type = np.array([self.type_index[t] for t in arcs.types.tolist()], dtype=np.int64)
        v = max((len(f.times) for f in fr), default=1)
        self.tt = np.full((len(fr), v), np.inf)
        self.ee = np.zeros((len(fr), v))
        self.nv = np.array([len(f.times) for f in fr], dtype=np.int64)
        for k, f in enumerate(fr):
            self.tt[k, : len(f.times)] = f.times
            self.ee[k, : len(f.times)] = f.energies
            self.ee[k, len(f.times) :] = f.energies[-1]
        cand = np.unique(np.concatenate([arcs.t_feas] + [f.times for f in fr])) if len(arcs) else np.zeros(0)
        t_max = d.t_max
        cand = cand[(cand <= t_max) & (cand >= (arcs.t_feas.min() if len(arcs) else 0.0))]
        if math.isfinite(t_max) and len(arcs) and (not len(cand) or cand[-1] < t_max):
            cand = np.append(cand, t_max)
        self.cand = cand
        self.dp_calls = 0
        # arcs grouped by end for the DP (they are sorted by end, then start)
        self.uniq_ends, self.first_of_end = np.unique(arcs.ends, return_index=True)

    def costs(self, t: float, slopes: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Arc costs at cycle t (frontier energy; inf where infeasible), and their slopes in t."""
        k = (self.tt <= t).sum(axis=1) - 1
        rows = np.arange(len(self.nv))
        kk = np.clip(k, 0, None)
        nxt = np.minimum(kk + 1, self.nv - 1)
        t0, t1 = self.tt[rows, kk], self.tt[rows, nxt]
        e0, e1 = self.ee[rows, kk], self.ee[rows, nxt]
        with np.errstate(invalid="ignore", divide="ignore"):
            inside = (nxt > kk) & (t < t1)
            slope = np.where(inside, (e1 - e0) / (t1 - t0), 0.0)
            theta = np.where(nxt > kk, (t - t0) / (t1 - t0), 0.0)
        e = e0 + np.clip(theta, 0.0, 1.0) * (e1 - e0)
        e[k < 0] = np.inf
        cost = e[self.arc_type]
        cost[self.arcs.t_feas > t] = np.inf
        return (cost, slope[self.arc_type]) if slopes else cost

    def dp(self, t: float) -> float:
        """Least dynamic energy per token (scaled) of a path with exactly S arcs at cycle t."""
        self.dp_calls += 1
        cost = self.costs(t)
        a = self.arcs
        prev = np.full(self.n + 1, np.inf)
        prev[0] = 0.0
        for _ in range(self.s):
            cur = np.full(self.n + 1, np.inf)
            cur[self.uniq_ends] = np.minimum.reduceat(prev[a.starts] + cost, self.first_of_end)
            prev = cur
        return float(prev[self.n])

    def path(self, t: float) -> list[int]:
        """Arc indices of a least-energy path at cycle t; ties go to the lowest start."""
        cost = self.costs(t)
        a = self.arcs
        prev = np.full(self.n + 1, np.inf)
        prev[0] = 0.0
        parents = []
        for _ in range(self.s):
            vals = prev[a.starts] + cost
            best = np.minimum.reduceat(vals, self.first_of_end)
            # the first arc (lowest start, arcs being sorted by end then start) reaching the minimum
            hit = vals <= np.repeat(best, np.diff(np.append(self.first_of_end, len(vals))))
            idx = np.flatnonzero(hit)
            group = np.searchsorted(self.first_of_end, idx, side="right") - 1
            firsts = idx[np.unique(group, return_index=True)[1]]
            cur = np.full(self.n + 1, np.inf)
            par = np.full(self.n + 1, -1)
            ends = a.ends[firsts]
            cur[ends] = vals[firsts]
            par[ends] = firsts
            parents.append(par)
            prev = cur
        chosen, pos = [], self.n
        for par in reversed(parents):
            arc = int(par[pos])
            chosen.append(arc)
            pos = int(a.starts[arc])
        return chosen[::-1]

    def path_line(self, t: float) -> tuple[float, float]:
        """(alpha, beta): the optimal path at t costs alpha + beta x T near t (its arcs' frontier pieces)."""
        chosen = self.path(t)
        cost, slope = self.costs(t, slopes=True)
        beta = float(slope[chosen].sum())
        return float(cost[chosen].sum()) - beta * t, beta

    def budget_floor(self, kappa: float) -> float | None:
        """The least candidate-interval cycle T with DP(T) <= kappa T (the pipeline power budget); None
        when even the largest cycle misses it. Restricts the candidates to [T_b, T_max]."""
        cand = self.cand
        ok = lambda k: self.dp(float(cand[k])) <= kappa * cand[k]  # noqa: E731
        last = len(cand) - 1
        if not ok(last):
            return None
        if ok(0):
            return float(cand[0])
        lo, hi = 0, last
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        t = float(cand[hi])
        for _ in range(200):  # Newton on the concave DP from the right: each step a new, cheaper line
            alpha, beta = self.path_line(t)
            if kappa - beta <= 0:
                break
            root = max(float(cand[lo]), alpha / (kappa - beta))
            if root >= t * (1 - 1e-12):
                break
            if self.dp(root) > kappa * root * (1 + 1e-12):
                break
            t = root
        keep = cand[cand > t]
        self.cand = np.concatenate([[t], keep])
        return t

    def run(
        self, rel_gap: float, cutoff: float | None, deadline: float
    ) -> tuple[float | None, float, float, bool]:
        """Best-first search over candidate intervals: (best T or None, best F, bound, finished)."""
        cand, c = self.cand, self.c
        if not len(cand):
            return None, math.inf, math.inf, True
        dp = {}

        def at(k: int) -> float:
            if k not in dp:
                dp[k] = self.dp(float(cand[k]))
            return dp[k]

        best_f = math.inf if cutoff is None else cutoff
        best_t: float | None = None

        def consider(k: int) -> None:
            nonlocal best_f, best_t
            value = at(k) + c * cand[k]
            if value < best_f:
                best_f, best_t = value, float(cand[k])

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
                return best_t, best_f, min(best_f, heap[0][0]), False
            heapq.heappop(heap)
            mid = (lo + hi) // 2
            consider(mid)
            heapq.heappush(heap, (at(hi) + c * cand[mid], mid, hi))
            heapq.heappush(heap, (at(mid) + c * cand[lo], lo, mid))
        bound = min([best_f] + [h[0] for h in heap])
        return best_t, best_f, bound, True


class WalkSearch:
    """Least energy plus static energy of the walk, the walk within the period the floor allows: the
    relaxation of pipelines the walk can bind (planner.placement.solve), exact for one micro-batch.

    In the latency view (planner.placement.stage.walk_data) each type's frontier E(L) gives its least
    energy at latency L. With the budget sum(L) <= W_max priced by a multiplier mu, the best path is a
    shortest path with arc cost min_L E(L) + (c + mu) L (a frontier vertex): the dual value
    DP(c + mu) - mu W_max bounds the relaxation for every mu >= 0. The multiplier is searched by
    bisection; the primal is the under-budget path at the bisection's upper end, its latencies then
    spent on its arcs' cheapest frontier segments while the budget lasts (the exact LP on that path)."""

    def __init__(self, pricing: Pricing, arcs: Arcs):
        d = pricing.d
        self.n, self.s, self.arcs, self.pricing = d.n, d.stages, arcs, pricing
        self.kinds = sorted(set(arcs.types.tolist()))
        index = {k: j for j, k in enumerate(self.kinds)}
        self.arc_type = np.array([index[k] for k in arcs.types.tolist()], dtype=np.int64)
        self.uniq_ends, self.first_of_end = np.unique(arcs.ends, return_index=True)

    @functools.cached_property
    def fr(self) -> list[Frontier]:
        """The frontiers of the arcs' types (priced on first use: run() needs none when even the least
        latency of every arc runs past the budget)."""
        return [self.pricing.frontier(k) for k in self.kinds]

    def _choice(self, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per arc: (E + lam L, L, E) at the frontier vertex that minimizes E + lam L."""
        vals, lats, ens = [], [], []
        for f in self.fr:
            k = int(np.argmin(f.energies + lam * f.times))
            vals.append(f.energies[k] + lam * f.times[k])
            lats.append(f.times[k])
            ens.append(f.energies[k])
        at = self.arc_type
        return np.array(vals)[at], np.array(lats)[at], np.array(ens)[at]

    def _path(self, cost: np.ndarray) -> tuple[float, list[int]]:
        a = self.arcs
        prev = np.full(self.n + 1, np.inf)
        prev[0] = 0.0
        parents = []
        for _ in range(self.s):
            vals = prev[a.starts] + cost
            best = np.minimum.reduceat(vals, self.first_of_end)
            hit = vals <= np.repeat(best, np.diff(np.append(self.first_of_end, len(vals))))
            idx = np.flatnonzero(hit)
            group = np.searchsorted(self.first_of_end, idx, side="right") - 1
            firsts = idx[np.unique(group, return_index=True)[1]]
            cur, par = np.full(self.n + 1, np.inf), np.full(self.n + 1, -1)
            cur[a.ends[firsts]] = vals[firsts]
            par[a.ends[firsts]] = firsts
            parents.append(par)
            prev = cur
        if not np.isfinite(prev[self.n]):
            return math.inf, []
        chosen, pos = [], self.n
        for par in reversed(parents):
            arc = int(par[pos])
            chosen.append(arc)
            pos = int(a.starts[arc])
        return float(prev[self.n]), chosen[::-1]

    def _spend(self, path: list[int], lat: np.ndarray, c: float, w_max: float) -> list[float]:
        """The path's latencies: from its vertices, move along each arc's frontier segments that save
        more energy per unit of latency than c costs, cheapest first, while the budget lasts."""
        lats = [float(lat[a]) for a in path]
        room = w_max - sum(lats)
        segments = []
        for j, a in enumerate(path):
            f = self.fr[int(self.arc_type[a])]
            k = int(np.searchsorted(f.times, lats[j] - 1e-15))
            for v in range(k, len(f.times) - 1):
                dt = f.times[v + 1] - f.times[v]
                slope = (f.energies[v + 1] - f.energies[v]) / dt
                segments.append((slope, j, dt))
        for slope, j, dt in sorted(segments):
            if room <= 0 or slope + c >= 0:
                break
            step = min(dt, room)
            lats[j] += step
            room -= step
        return lats

    def run(self, c: float, w_max: float, rel_gap: float) -> tuple[list[int], list[float], float, float]:
        """(path, latency of each of its arcs, best value, dual bound), scaled; an empty path when no
        path meets the budget."""
        least, _ = self._path(self.arcs.t_feas)  # each arc's least latency (its frontier's first vertex)
        if least > w_max * (1 + 1e-9):  # even the least latency of every arc runs past the budget
            return [], [], math.inf, math.inf
        value, path = self._path(self._choice(c)[0])
        if not path:
            return [], [], math.inf, math.inf
        _, lat, en = self._choice(c)
        if sum(lat[a] for a in path) <= w_max:  # the budget does not bind: exact
            return path, [float(lat[a]) for a in path], value, value
        bound = -math.inf
        lo, hi = 0.0, max(1.0, c)
        best: tuple[list[int], float] | None = None

        def probe(mu: float) -> bool:
            nonlocal bound, best
            dp, pth = self._path(self._choice(c + mu)[0])
            if not pth:
                return False
            bound = max(bound, dp - mu * w_max)
            _, lat_mu, en_mu = self._choice(c + mu)
            w = sum(lat_mu[a] for a in pth)
            if w <= w_max:
                lats = self._spend(pth, lat_mu, c, w_max)
                e = sum(self._energy(a, L) for a, L in zip(pth, lats))
                primal = e + c * sum(lats)
                if best is None or primal < best[1]:
                    best = ((pth, lats), primal)
                return True
            return False

        for _ in range(60):  # an upper end where the path fits the budget
            if probe(hi):
                break
            lo, hi = hi, hi * 4
        else:
            return [], [], math.inf, bound
        for _ in range(60):
            if best is not None and best[1] - bound <= rel_gap * abs(best[1]):
                break
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if probe(mid) else (mid, hi)
        (pth, lats), primal = best
        return pth, lats, primal, min(bound, primal)

    def _energy(self, arc: int, latency: float) -> float:
        f = self.fr[int(self.arc_type[arc])]
        return float(np.interp(latency, f.times, f.energies))


def bottleneck_cycle(pricing: Pricing, arcs: Arcs) -> float | None:
    """The least cycle (scaled) any placement on exactly S stages reaches within capacity, energy
    ignored: a bottleneck path (min over paths of the max arc cycle). None when no placement fits."""
    if not len(arcs):
        return None
    n, s = pricing.d.n, pricing.d.stages
    first = np.unique(arcs.ends, return_index=True)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    for _ in range(s):
        reach = np.full(n + 1, np.inf)
        reach[first[0]] = np.minimum.reduceat(np.maximum(best[arcs.starts], arcs.t_feas), first[1])
        best = reach
    return None if not np.isfinite(best[n]) else float(best[n])
