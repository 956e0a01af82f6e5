"""Explaining an infeasible instance: which limit binds and by how much, in the user's units.

In this order: each constraint family's cheap certificate (planner.placement.constraints.explain: the
total capacity of max_groups groups, one node larger than a group, a power limit below static power,
the speed floor out of reach even with every tensor in its fastest tier); a solver failure or a time
limit; then, within capacity, the fastest any contiguous placement can go (a bottleneck path over the
slices that fit, per S) or the packing limit when no split fits at all.

The last search is bounded by work, not by seconds (it stops before the next S once EXPLAIN_BUDGET_LPS
slice LPs have been solved, S from the largest down: more groups hold more and go faster; an S is
priced only up to the cycle at which it would beat the fastest found), so the same input gives the same
explanation on any machine and under any load;
when the budget cuts the search the text says up to which S it looked.
"""

from __future__ import annotations

import dataclasses
import math

from planner.core.errors import InfeasibleError, SolverFailure
from planner.core.units import human_bytes
from planner.placement import constraints
from planner.placement.milp import MILP_FALLBACK_ARCS
from planner.placement.search import Pricing, bottleneck_cycle, build_arcs
from planner.placement.stage import stage_data
from planner.plans.plan import StageRecord
from planner.problem.problem import Problem

EXPLAIN_BUDGET_LPS = 20_000
UNEXPLAINED = "not explained"


FASTEST_CAPS = (2.0, 4.0, 16.0, math.inf)  # cycle caps tried, in multiples of the floor's cycle limit


def fastest_period(problem: Problem, stages: int, below: float | None = None) -> tuple[float | None, int]:
    """(the least period (s) a placement on `stages` stages reaches within capacity and power, energy
    ignored, or None when none fits, or with `below` (s) none is faster than that; slice LPs used).
    Exact for cycle-bound pipelines (period = m x the bottleneck cycle); otherwise a lower bound (the
    walk may add to it).

    The bottleneck path is searched over the slices whose least cycle is within a cap, the cap raised
    through FASTEST_CAPS (and at most `below` / m) until a path exists: a path found within a cap is the
    bottleneck over all slices (every slice within the cap is priced, and one above it cannot lower a
    path's bottleneck below the cap), and slices longer than a few stages' worth are never priced."""
    data = stage_data(problem, stages)
    limit = math.inf if below is None else below / data.micro_batches / data.time_unit_s
    used = 0
    for factor in FASTEST_CAPS:
        cap = min(limit, data.t_max * factor if data.t_max > 0 else math.inf)
        d = dataclasses.replace(data, t_max=cap)
        pricing = Pricing(d, keep_lps=False)
        arcs = build_arcs(pricing)
        used += pricing.lp_solves
        cycle = bottleneck_cycle(pricing, arcs)
        if cycle is not None:
            return d.micro_batches * cycle * d.time_unit_s, used
        if cap >= limit:
            break
    return None, used


def explain_infeasible(
    problem: Problem, records: dict[int, StageRecord], search: bool = True
) -> InfeasibleError:
    """Name the limit that binds and by how much, in the user's units. With `search` False the costly
    last step (the fastest placement within capacity) is skipped: the verdict is the same, its reason
    is then 'unexplained' (capacity searches ask for the reason only at the user count above the
    maximum)."""
    fixed, nodes = problem.spec.solver.stages, len(problem.nodes)
    if fixed is not None and fixed > nodes:
        return InfeasibleError(
            f"{fixed} stages need at least {fixed} nodes (each stage holds one or more), and the split gives "
            f"{nodes}: split finer (--split, e.g. '64 MB' or ffn=8,core=4) or fix fewer stages",
            binding="stages (too few nodes)",
        )
    found = constraints.explain(problem)
    if found is not None:
        return found
    who = f"{problem.users:,} users at {problem.context:,} context"
    failed = {s: r.message for s, r in records.items() if r.status == "error"}
    if failed:
        detail = "; ".join(f"S={s}: {m}" for s, m in failed.items())
        raise SolverFailure(f"HiGHS failed for {who} ({detail}); no plan was found for the other S either")
    undecided = sorted(s for s, r in records.items() if r.status == "time_limit")
    if undecided:
        limit = problem.spec.solver.time_limit
        if limit is not None:
            return InfeasibleError(
                f"no plan was found within the time limit of {limit:g} s per S for {who}; raise --time-limit "
                "(or solver.time_limit)",
                binding="time limit",
            )
        at = ", ".join(map(str, undecided[:8])) + (", ..." if len(undecided) > 8 else "")
        return InfeasibleError(
            f"no plan was found for {who}, and none was proven impossible at S = {at}: there the relaxations "
            f"of a walk-bound pipeline left a gap without a plan, and the Pyomo MILP that closes it is "
            f"skipped above {MILP_FALLBACK_ARCS:,} arcs; decide one S with --method pyomo --stages S",
            binding="undecided",
        )
    if not search:
        return InfeasibleError(f"no plan for {who} (reason not searched)", binding=UNEXPLAINED)
    fastest: tuple[float, int] | None = None
    used, last = 0, None
    for stages in reversed(problem.stage_range()):  # more groups hold more and go faster: try them first
        if used >= EXPLAIN_BUDGET_LPS:
            break
        period, lps = fastest_period(problem, stages, None if fastest is None else fastest[0])
        used += lps
        last = stages
        if period is not None and (fastest is None or period < fastest[0]):
            fastest = (period, stages)
    span = problem.stage_range()
    full = last == span[0] if len(span) else True
    scope = "" if full else f" (S searched from {span[-1]} down to {last}, not below: work budget)"
    weights, kv = problem.resident_bytes
    hw, tiers = problem.hw, "+".join(problem.tiers)
    if fastest is None:
        largest = max(problem.node_resident_bytes(n) for n in problem.nodes)
        return InfeasibleError(
            f"no contiguous split of {problem.model.name} into at most {problem.max_groups} groups of "
            f"{hw.chips_per_group} chips fits the weights and the KV cache of {who} in {tiers}{scope}: the total "
            f"would fit ({human_bytes(weights + kv)} of {human_bytes(problem.group_capacity_bytes * problem.max_groups)}) "
            f"but the parts do not pack into the groups (largest {human_bytes(largest)} of a group's "
            f"{human_bytes(problem.group_capacity_bytes)}); allow more groups or chips per group, split finer "
            "(--split), or serve fewer users",
            binding="capacity (contiguous split)",
        )
    speed = 1.0 / fastest[0]
    floor = problem.min_tokens_per_s
    if speed < floor:
        short = floor - speed
        places = max(2, min(8, 1 - math.floor(math.log10(short))))  # a shortfall shown with 2 digits
        return InfeasibleError(
            f"within capacity, the fastest placement gives {speed:,.{places}f} tokens/s per user (S={fastest[1]}, "
            f"period {fastest[0] * 1e3:,.{places}f} ms) for {who}, below the floor of {floor:,.1f}; short by "
            f"{short:,.{places}f} tokens/s{scope}. The KV and weights that fit only in slower tiers set the pace: serve fewer users, "
            "lower the floor, or use faster memory",
            binding="speed floor (within capacity)",
        )
    if problem.max_chip_power_w is not None or problem.max_power_w is not None:
        return InfeasibleError(
            f"within capacity a placement reaches {speed:,.2f} tokens/s per user (S={fastest[1]}), but none does "
            f"within the power limits for {who}: at the speed floor the chips would draw more than "
            f"{problem.max_chip_power_w or 0:,.0f} W each or the pipeline more than its budget; raise "
            "--max-chip-power / --max-power, lower the floor or serve fewer users",
            binding="power",
        )
    tried = ", ".join(f"S={s}: {r.status}" for s, r in records.items()) or "no S in range"
    return InfeasibleError(
        f"no plan found for {who} ({tried}), although a placement within capacity reaches {speed:,.2f} tokens/s "
        f"per user at S={fastest[1]}: this is a solver failure, please report it",
        binding="solver",
    )
