"""Packing attention cores into groups with boundaries anywhere inside a core part (by users).

Groups hold whole nodes (planner.placement.search), so a core's users are shared between neighbouring
groups only at its parts' boundaries, and where capacity binds a group may leave up to one part of its
memory empty (planner.model.split.core_parts). Physically nothing stops a boundary inside a part: the
part's users are split again, some users' KV in one group and the rest in the next, as between two parts
(planner.model.split.cut_graph). This module finds such boundaries.

`pack` walks the chain from the first node and lets each group reach as far as it can: its slice grows
by whole nodes while it still fits and meets the cycle limit (the per-slice LP of
planner.placement.slicelp, every constraint family's rows, with fractional node counts), then by
1/CUT_STEPS of the users of the next core part. The reached positions are the cuts.

Why greedy reach (an argument, not a proof of the whole model): a group's slice that is feasible stays
feasible when work is taken away from either end (its bytes, phase times, energy and power only fall),
and then a cover of the chain in the fewest groups is the one where every group reaches furthest (swap
argument: the greedy's i-th boundary is never behind any cover's i-th boundary). The exceptions are the
activations a boundary sends, which depend on where it falls (inside a core more is sent than after a
layer), and the pipeline-wide power budget, a sum over groups; so `pack` is a generator of cuts, and the
plan is the exact solver's on the cut graph (packed_problem, used by planner.placement.solve when whole
nodes are proven infeasible). It prices the deep pipeline only
(cycle-bound: every group's cycle at most the floor's period / m); other cases return None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.model.split import CUT_STEPS, between_parts_edge, cuttable
from planner.placement.rows import SliceView
from planner.placement.slicelp import SliceLP, new_highs
from planner.placement.stage import StageData, stage_data
from planner.problem.problem import Problem, build


@dataclass(frozen=True)
class Packing:
    """Where `pack` put the group boundaries: core parts cut (name -> share of its users before the cut)
    and the groups used (at most the stages asked for)."""

    stages: int
    groups: int
    cuts: dict[str, float]
    complete: bool  # every node placed within `stages` groups
    reached: str = ""  # incomplete: the node the last group stopped in (or before)
    reached_share: float = 0.0  # ... and the share of its users placed
    limit: str = ""  # ... and what stopped that group: "memory" or "cycle" (the speed floor, or power)
    ends: tuple[tuple[int, float], ...] = ()  # complete: where each group ends, (node, share of its users)
    nodes: tuple[str, ...] = ()  # the chain packed, before the cuts (its group size's split)

    def boundaries(self) -> list[int]:
        """Each group's end as a position in the cut graph of the chain packed (planner.model.split.
        cut_graph puts a cut part's two pieces in its place; a group that ends inside a part ends after
        its first piece)."""
        before = [0]
        for name in self.nodes:
            before.append(before[-1] + (name in self.cuts))
        return [j + before[j] + (1 if y else 0) for j, y in self.ends]

    def verdict(self, problem: Problem) -> str:
        """What stopped an incomplete packing, in words."""
        if self.complete:
            return ""
        held = (
            "its memory is full" if self.limit == "memory" else "it would run past the cycle the floor allows"
        )
        where = (
            f"at {self.reached_share:.0%} of the users of {self.reached}"
            if self.reached_share
            else f"before {self.reached}"
        )
        return (
            f"With core parts cut between groups at any 1/{CUT_STEPS} of their users, {problem.users:,} users "
            f"do not fit {self.stages} groups: each group holds as much as it can, and the last stops {where} "
            f"because {held}."
        )


def packed_problem(problem: Problem) -> tuple[Problem | None, Packing | None]:
    """(`problem` with its core parts cut where `pack` puts the boundaries, or None; the packing tried).

    S is the instance's fixed S, else the largest of its range (the most memory); each group size of the
    instance is tried in turn. None when the instance fixes its cuts, has no core in two or more parts,
    or is not cycle-bound at that S."""
    spec = problem.spec
    if spec.core_cuts or not any(cuttable(problem.graph, v) for v in problem.nodes):
        return None, None
    missed = None
    for size in spec.group_sizes:
        variant = (
            problem
            if size is None or size == problem.hw.chips_per_group
            else problem.with_chips_per_group(size)
        )
        span = variant.stage_range()
        if not len(span):
            continue
        found = pack(variant, span[-1])
        missed = missed or found
        if found is not None and found.complete:
            update = {
                "core_cuts": found.cuts or None,
                "solver": spec.solver.model_copy(update={"stages": found.stages}),
            }
            if size is not None:
                update["chips_per_group"] = size  # the cut problem's; the plan reports the instance's list
            return build(spec.model_copy(update=update), problem.model, problem.base_hw, problem.tiers), found
    return None, missed


class _Chain:
    """Feasibility of one group's slice from position (i, x) to (j, y): the rest of node i after its
    first x (a share of its users), nodes i+1 .. j-1, and the first y of node j."""

    def __init__(self, d: StageData):
        self.d = d
        self.cls = d.node_class
        self.counts = d.class_counts
        graph = d.problem.graph
        self.names = d.problem.nodes
        self.cuttable = [cuttable(graph, v) for v in self.names]
        self.graph = graph
        self.highs = new_highs()

    def view(self, i: int, x: float, j: int, y: float) -> SliceView:
        d = self.d
        counts = (self.counts[j] - self.counts[i]).astype(float)
        counts[self.cls[i]] -= x
        if y:
            counts[self.cls[j]] += y
        ops = self.counts[j + (y > 0)] - self.counts[i + (x > 0)]  # ops whose first part starts here
        start = self.cls[i] if x else d.start_class(i)
        if y:  # a cut inside core part j sends what the edge between two of its parts carries
            edge = between_parts_edge(self.graph.nodes[self.names[j]], j)
            send, link = (d.send[edge], d.link_e[edge]) if d.stages > 1 else (0.0, 0.0)
        else:
            send, link = d.send_after(j), d.link_after(j)
        return SliceView(d, counts, start, send, d.hop, link, ops=ops)

    def fits(self, i: int, x: float, j: int, y: float, cycle: bool = True) -> bool:
        """The slice fits its group's memory and (`cycle`) runs within the cycle limit."""
        lp = SliceLP(self.view(i, x, j, y), self.highs)
        t_min, _ = lp.min_time()
        return t_min <= self.d.t_max if cycle else t_min < math.inf  # the search's own test (Pricing)


def _last_true(test, lo: int, hi: int, guess: int) -> int | None:
    """The largest k in [lo, hi] with test(k), for a test true up to some k and false after (None if
    test(lo) is false); galloping from `guess`, then bisection."""
    if not test(lo):
        return None
    good, bad = lo, None
    k, step = max(lo, min(guess, hi)), 1
    while bad is None and k > good:  # gallop up from the guess
        if test(k):
            good = k
            if k == hi:
                return good
            k, step = min(hi, k + step), 2 * step
        else:
            bad = k
    bad = hi + 1 if bad is None else bad
    while bad - good > 1:
        mid = (good + bad) // 2
        if test(mid):
            good = mid
        else:
            bad = mid
    return good


def pack(problem: Problem, stages: int) -> Packing | None:
    """Group boundaries for `stages` groups, each reaching as far as it fits (module docstring); None when
    the case is not cycle-bound. An incomplete Packing says where its groups stopped and why."""
    if not problem.cycle_bound(stages):
        return None
    chain = _Chain(stage_data(problem, stages))
    n = chain.d.n
    i, x, groups, length = 0, 0.0, 0, 1
    cuts: dict[str, float] = {}

    def stopped(i: int, x: float, why_i: int, why_x: float) -> Packing:
        """The packing that ends at (i, x): what stops the group that starts at (why_i, why_x) there."""
        nxt = (i, x + 1 / CUT_STEPS) if chain.cuttable[min(i, n - 1)] else (i + 1, 0.0)
        by_memory = not chain.fits(why_i, why_x, *nxt, cycle=False)
        return Packing(stages, groups, cuts, False, chain.names[min(i, n - 1)], x,
                       "memory" if by_memory else "cycle")  # fmt: skip

    start = (0, 0.0)
    ends: list[tuple[int, float]] = []
    while i < n:
        groups += 1
        if groups > stages:
            groups -= 1
            return stopped(i, x, *start)
        start = (i, x)
        j = _last_true(lambda e, i=i, x=x: chain.fits(i, x, e, 0.0), i + 1, n, i + length)
        if j is None:  # not even the rest of node i: a cut inside it (only when it starts whole)
            if x or not chain.cuttable[i]:
                return stopped(i, x, i, x)
            j = i
        y = 0.0
        if j < n and chain.cuttable[j] and (j > i or not x):
            q = _last_true(
                lambda k, i=i, x=x, j=j: chain.fits(i, x, j, k / CUT_STEPS), 1, CUT_STEPS - 1, CUT_STEPS // 2
            )
            if q is not None:
                y = q / CUT_STEPS
                if chain.names[j] in cuts:  # a group inside one part (parts are far smaller than groups)
                    return stopped(j, y, i, x)
                cuts[chain.names[j]] = y
            elif j == i:
                return stopped(i, x, i, x)
        length = max(1, j - i)
        i, x = j, y
        ends.append((i, x))
    return Packing(stages, groups, cuts, True, ends=tuple(ends), nodes=tuple(chain.names))
