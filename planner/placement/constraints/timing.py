"""Time: each resource of a group is busy at most one cycle, and the speed floor (FORMULATION §4, §7).

Rows per slice (planner.cost.pipeline states the model): without overlapping units the group is one
resource whose cycle is its latency (phases, overheads, collectives, send, hop). With overlapping units:
each unit's phases and overheads, each tier's traffic, each link's collectives and the send are at most
one cycle, and so is the latency / slots (a group holds one micro-batch per unit). The speed floor is
a bound on the cycle (period / m, cycle-bound pipelines) applied by the solvers; the walk (sum of
latencies <= period) is a pipeline row of the Pyomo MILP.
"""

from __future__ import annotations

from collections import Counter

from planner.core.errors import InfeasibleError
from planner.cost.node import node_cost
from planner.cost.pipeline import PipelineCost
from planner.placement.rows import Row, SliceView, f, p
from planner.problem.problem import FEASIBILITY_TOL, Problem

FAMILY = "timing"


def slice_rows(v: SliceView) -> list[Row]:
    d, g = v.d, v.groups
    latency = tuple((p(it), mult) for it, mult in v.items)
    if not d.overlap:  # one resource: its cycle is its latency
        return [Row(FAMILY, "latency", latency, tau=-g, const=v.latency_const)]
    if d.walk:  # the latency view (planner.placement.stage.walk_data): tau is the latency; each resource
        # is still busy at most one cycle, and a feasible plan's cycle is at most the floor's limit
        return [Row(FAMILY, "latency", latency, tau=-g, const=v.latency_const)] + _resource_rows(
            v, tau=0.0, rhs=g * d.cycle_max
        )
    slots = tuple((col, mult / d.slots) for col, mult in latency)
    return _resource_rows(v, tau=-g, rhs=0.0) + [
        Row(FAMILY, "latency/slots", slots, tau=-g, const=v.latency_const / d.slots)
    ]


def _resource_rows(v: SliceView, tau: float, rhs: float) -> list[Row]:
    """Each unit's phases and overheads, each tier's traffic, each link's collectives and the send:
    busy time + tau x (the cycle) <= rhs."""
    d = v.d
    rows = []
    for u in d.units:
        terms = tuple((p(it), mult) for it, mult in v.items if it.unit == u)
        if terms or v.unit_const[u]:
            rows.append(Row(FAMILY, f"unit[{u}]", terms, tau=tau, const=v.unit_const[u], rhs=rhs))
    for t, name in enumerate(d.tiers):
        terms = tuple(
            (f(it, t), mult * it.tier[t]) for it, mult in v.items if it.tier[t] > 0 and t in it.allowed
        )
        if terms or v.tier_const[t]:
            rows.append(Row(FAMILY, f"tier[{name}]", terms, tau=tau, const=float(v.tier_const[t]), rhs=rhs))
    for link, busy in v.link_const.items():
        if busy:
            rows.append(Row(FAMILY, f"link[{link}]", (), tau=tau, const=busy, rhs=rhs))
    if v.send:
        rows.append(Row(FAMILY, "send", (), tau=tau, const=v.send, rhs=rhs))
    return rows


def walk_row(v: SliceView) -> Row:
    """The walk of one micro-batch through the slice's groups (their latencies) is at most the period,
    m x tau' where tau' = period / m: a pipeline row of the Pyomo MILP and the fluid bound (implied when
    the pipeline is cycle-bound)."""
    terms = tuple((p(it), mult) for it, mult in v.items)
    return Row(FAMILY, "walk", terms, tau=-float(v.d.micro_batches), const=v.latency_const, per_period=True)


def check(problem: Problem, cost: PipelineCost) -> list[str]:
    floor = problem.min_tokens_per_s
    if cost.tokens_per_s_per_user < floor * (1 - FEASIBILITY_TOL):
        return [
            f"speed: {cost.tokens_per_s_per_user:,.2f} tokens/s per user is below the floor {floor:,.2f} "
            f"(period {cost.period_s * 1e3:,.3f} ms > {1e3 / floor:,.3f} ms)"
        ]
    return []


def fastest_period_s(problem: Problem, stages: int) -> float:
    """A lower bound on the period of any S-stage placement, capacity ignored: every tensor in its
    fastest tier; the walk is at least every node's time plus the hops, and m x cycle at least m x the
    busiest unit's share of all the work spread evenly over the S groups."""
    hw = problem.hw
    m = problem.micro_batches(stages)
    b = problem.users / m
    on_unit = dict.fromkeys((u.name for u in hw.units), 0.0)
    walk = 0.0
    of_node, representatives = problem.node_classes  # nodes of a class cost the same: priced once
    counts = Counter(of_node)
    for cls, n in enumerate(representatives):
        count = counts[cls]
        c = node_cost(n, problem.graph.nodes[n], hw, b, problem.users, problem.context)
        kp = max(c.context_compute_s, min(c.kv_read_s[t] for t in problem.tiers))
        wp = max(c.weight_compute_s, min(c.weight_read_s[t] for t in problem.tiers))
        on_unit[c.weight_unit] += count * wp
        on_unit[c.context_unit] += count * kp
        walk += count * (wp + kp + c.overhead_s + c.collective_s)
    hops = stages * hw.inter_link.latency_s if stages > 1 else 0.0
    busiest = max(on_unit.values()) if hw.units_overlap else walk
    return max(walk + hops, m * busiest / stages)


def explain(problem: Problem) -> InfeasibleError | None:
    """The speed floor out of reach for every S tried even with every tensor in its fastest tier."""
    best_s, best = None, 0.0
    for stages in problem.stage_range():
        speed = 1.0 / fastest_period_s(problem, stages)
        if speed > best:
            best, best_s = speed, stages
    floor = problem.min_tokens_per_s
    if best_s is None or best >= floor:
        return None
    who = f"{problem.users:,} users at {problem.context:,} context"
    return InfeasibleError(
        f"the per-user speed floor of {floor:,.1f} tokens/s is out of reach: even with every tensor in its "
        f"fastest tier, a token of {who} takes at least {1e3 / best:,.2f} ms ({best:,.2f} tokens/s, at "
        f"S={best_s}); short by {floor - best:,.2f} tokens/s. Lower the floor, serve fewer users, or use "
        "faster memory",
        binding="speed floor",
    )
