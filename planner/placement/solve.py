"""Solving an instance: for each group size and each number of stages S, prune by bound, keep the best.

For one S (`solve_stage`): the fluid lower bound (planner.placement.bounds) prunes it against the best
plan so far; a cycle-bound pipeline is solved by the exact cycle search (planner.placement.search),
any other (fewer micro-batches in flight than the groups have slots) by the cycle and walk relaxations
with their proofs, and the gap they leave by the Pyomo MILP, the formulation of record (planner.
placement.milp), over the arcs they priced; `--method pyomo` uses the MILP for every S and `--method
exhaustive` the reference (planner.placement.reference). The best plan keeps the search's own placement
when the evaluator's check passes it, else it is placed by the Pyomo MILP at its cycle, over the arcs the
search priced that can lie on an optimal path (final_placement; nothing is priced twice). Every S's
outcome is reported (J/token vs S is a result in itself), and with several group sizes the best of each. No feasible plan -> InfeasibleError naming the binding limit and the
shortfall (planner.placement.explain).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from planner.core.errors import InfeasibleError
from planner.cost.pipeline import pipeline_cost
from planner.placement import reference
from planner.placement.bounds import lower_bound
from planner.placement.constraints import check
from planner.placement.milp import MILP_FALLBACK_ARCS, solve_milp
from planner.placement.search import Arcs, CycleSearch, Pricing, TimeUp, WalkSearch, build_arcs
from planner.placement.slicelp import tier_fractions
from planner.placement.solution import StageSolution, empty, placement
from planner.placement.stage import StageData, stage_data, walk_data
from planner.plans.plan import GroupSizeRecord, Plan, SolverFacts, StageRecord, clean_split, evaluate, figures
from planner.problem.problem import Problem

Progress = Callable[[int, StageRecord], None]
FINAL_TOL = 1e-6  # relative: the final Pyomo placement must be this close to the search's optimum


@dataclass
class StageRun:
    """One S solved: its solution, and what the final placement reuses (priced slices, arcs, cycle)."""

    solution: StageSolution
    pricing: Pricing | None = None
    arcs: Arcs | None = None
    search: CycleSearch | None = None
    clock: float | None = None  # scaled cycle of the incumbent
    problem: Problem | None = None  # the problem it solved (its micro-batches in flight set)
    by_milp: bool = False  # placed by the Pyomo MILP already (_milp_run): no final placement to redo
    violations: tuple[str, ...] | None = None  # the evaluator's check of its plan (None: not checked)


def _priced(problem: Problem, sol: StageSolution, clock_s: float | None) -> StageSolution:
    """The solution with its objective recomputed by planner.cost.pipeline_cost (the number users see)."""
    return _evaluated(problem, sol, clock_s)[0]


def _evaluated(
    problem: Problem, sol: StageSolution, clock_s: float | None
) -> tuple[StageSolution, list[str]]:
    """(the solution priced by planner.cost.pipeline_cost at its clock, the constraints it violates)."""
    cost = pipeline_cost(
        problem.graph,
        problem.hw,
        problem.users,
        problem.context,
        sol.groups,
        sol.weight_split,
        sol.kv_split,
        problem.in_flight,
        clock_s,
    )
    obj = cost.joules_per_token
    bound = None if sol.best_bound is None else min(sol.best_bound, obj)
    gap = None if bound is None else max(0.0, (obj - bound) / obj)
    priced = dataclasses.replace(
        sol, objective=obj, best_bound=bound, gap=gap, cycle_s=cost.cycle_s, period_s=cost.period_s
    )
    return priced, check(problem, cost)


def solve_stage(
    problem: Problem,
    stages: int,
    method: str = "milp",
    time_limit: float | None = None,
    rel_gap: float = 1e-4,
    cutoff: float | None = None,
    data: tuple[StageData, float | None] | None = None,
) -> StageRun:
    """Least joules per token with exactly `stages` stages (`data`: its StageData and fluid bound in
    J/token when already computed, stage_bounds). `cutoff` (J/token): only plans strictly better
    are wanted; an S that cannot beat it ends 'pruned' with best_bound near the cutoff. Never raises for
    an infeasible instance; a HiGHS failure gives status 'error' with its message.

    A cycle-bound pipeline (m >= slots x S) is solved exactly by the cycle search. Otherwise the walk can
    bind, and two relaxations bound the true problem from below: the cycle search (period m x T, the walk
    left out) and the walk search (period = walk, the groups' cycles left out, planner.placement.search.
    WalkSearch). A relaxation's plan that meets what it left out is optimal; the better of the two plans
    is kept with the best bound, and a gap above `rel_gap` goes to the Pyomo MILP when it is small."""
    t0 = time.perf_counter()
    deadline = math.inf if time_limit is None else t0 + float(time_limit)
    m = problem.micro_batches(stages)
    if not 1 <= stages <= len(problem.nodes):
        return StageRun(empty(stages, m, "infeasible", f"{stages} stages for {len(problem.nodes)} nodes"))
    if method == "exhaustive":
        sol = reference.exhaustive_stages(problem, stages)
        return StageRun(sol if sol.groups is None else _priced(problem, sol, sol.cycle_s))
    d = stage_data(problem, stages)
    if d.t_max <= 0:
        return StageRun(
            empty(stages, m, "infeasible", "the hop latencies alone exceed the speed floor's period")
        )
    es = d.energy_unit_j
    bound = lower_bound(d)
    if bound is None:
        return StageRun(
            empty(stages, m, "infeasible", "the fluid bound is infeasible", build_s=time.perf_counter() - t0)
        )
    bound_j = bound * es
    if cutoff is not None and bound_j >= cutoff:
        msg = f"no placement below the cutoff {cutoff:.6g} J/token (lower bound {bound_j:.6g})"
        return StageRun(empty(stages, m, "pruned", msg, best_bound=bound_j, build_s=time.perf_counter() - t0))
    pricing = Pricing(d)
    try:
        arcs = build_arcs(pricing, deadline)
    except TimeUp:
        msg = "time limit while pricing the slices, before any placement was found"
        return StageRun(
            empty(stages, m, "time_limit", msg, build_s=time.perf_counter() - t0, work=pricing.lp_solves)
        )
    except Exception as exc:  # a HiGHS failure: report it, do not raise
        msg = f"{type(exc).__name__}: {exc}"
        return StageRun(
            empty(stages, m, "error", msg, build_s=time.perf_counter() - t0, work=pricing.lp_solves)
        )
    build_s = time.perf_counter() - t0
    if method == "pyomo":  # the formulation of record for every S (slow; for comparison)
        return _milp_run(problem, pricing, arcs, bound, time_limit, deadline, rel_gap, cutoff, build_s)
    run = _cycle_run(problem, pricing, arcs, bound, rel_gap, cutoff, deadline, build_s)
    if problem.cycle_bound(stages) or run.solution.groups is None:  # a relaxation with no plan: the same
        return run
    return _walk_bound(problem, run, bound, rel_gap, cutoff, time_limit, deadline, build_s)


def _cycle_run(problem, pricing, arcs, bound, rel_gap, cutoff, deadline, build_s) -> StageRun:
    """The exact cycle search (period m x T); a relaxation when the walk can bind."""
    d, m, stages = pricing.d, pricing.d.micro_batches, pricing.d.stages
    es = d.energy_unit_j
    if not len(arcs):
        msg = "no slice fits a group within the speed floor"
        return StageRun(empty(stages, m, "infeasible", msg, build_s=build_s, work=pricing.lp_solves))
    t1 = time.perf_counter()
    search = CycleSearch(pricing, arcs)
    if d.pipeline_power is not None and search.budget_floor(d.pipeline_power) is None:
        msg = "the pipeline power budget is missed at every cycle within the speed floor"
        return StageRun(empty(stages, m, "infeasible", msg, build_s=build_s, work=pricing.lp_solves))
    best_t, best_f, lb, finished = search.run(rel_gap, None if cutoff is None else cutoff / es, deadline)
    solve_s = time.perf_counter() - t1
    lb_j = max(lb, bound) * es if math.isfinite(lb) else bound * es
    if best_t is None:
        status = "time_limit" if not finished else ("pruned" if cutoff is not None else "infeasible")
        msg = (
            "no placement meets the capacities and the speed floor"
            if cutoff is None
            else "no better than the cutoff"
        )
        return StageRun(empty(stages, m, status, msg, best_bound=lb_j, build_s=build_s, solve_s=solve_s,
                              work=pricing.lp_solves))  # fmt: skip
    slices = []
    for a in search.path(best_t):
        frontier = pricing.frontier(int(arcs.types[a]))
        slices.append((int(arcs.starts[a]), int(arcs.ends[a]), frontier.fractions(best_t, len(d.tiers))))
    groups, w_split, k_split = placement(d, slices)
    sol = StageSolution(
        stages=stages,
        micro_batches=m,
        status="optimal" if finished else "time_limit",
        objective=best_f * es,
        best_bound=lb_j,
        gap=None,
        groups=groups,
        weight_split=w_split,
        kv_split=k_split,
        cycle_s=best_t * d.time_unit_s,
        build_s=build_s,
        solve_s=solve_s,
        message=(
            f"{len(arcs)} arcs, {len(pricing.views)} slice types, {pricing.lp_solves} slice LPs, "
            f"{search.dp_calls} DP evaluations of {len(search.cand)} candidate cycles"
            + ("" if finished else "; time limit: incumbent and proven bound")
        ),
        work=pricing.lp_solves,
    )
    priced, violations = _evaluated(problem, sol, best_t * d.time_unit_s)
    return StageRun(priced, pricing, arcs, search, best_t, violations=tuple(violations))


def _proven(plans: list[StageSolution], lower: list[float], rel_gap: float) -> StageSolution | None:
    """The cheapest of `plans` (each meets the full model) as optimal when its J/token is within `rel_gap`
    of the best of the valid lower bounds `lower` (J/token); else None."""
    best = min(plans, key=lambda s: s.objective, default=None)
    best_bound = max(lower)
    if best is None or best.objective - best_bound > rel_gap * best.objective:
        return None
    return dataclasses.replace(best, status="optimal", best_bound=min(best_bound, best.objective),
                               gap=max(0.0, (best.objective - best_bound) / best.objective))  # fmt: skip


def _walk_bound(problem, cycle: StageRun, bound, rel_gap, cutoff, time_limit, deadline, build_s) -> StageRun:
    """An S the walk can bind: the cycle search's and the walk search's plans and bounds (solve_stage).
    The cycle search's plan, when it meets the walk, and its bound (valid here too: the walk only lengthens
    the period) may already prove the S; else the walk's slices are priced for the walk relaxation."""
    d = cycle.pricing.d if cycle.pricing is not None else stage_data(problem, cycle.solution.stages)
    stages, m, es = d.stages, d.micro_batches, d.energy_unit_j
    t1 = time.perf_counter()
    lower = [bound * es]
    if cycle.solution.best_bound is not None and cycle.solution.status in ("optimal", "pruned", "infeasible"):
        lower.append(cycle.solution.best_bound)
    plans: list[StageSolution] = []
    if cycle.solution.groups is not None and cycle.violations == ():  # checked by _cycle_run
        plans.append(cycle.solution)
    proven = _proven(plans, lower, rel_gap)
    if proven is not None:  # the walk relaxation is not needed
        msg = f"walk-bound S: the cycle relaxation's plan meets the walk; {cycle.solution.message}"
        return StageRun(dataclasses.replace(proven, build_s=build_s, solve_s=time.perf_counter() - t1,
                                            message=msg), cycle.pricing, cycle.arcs, violations=())  # fmt: skip
    walk = Pricing(walk_data(d))
    try:
        warcs = build_arcs(walk, deadline)
    except TimeUp:  # the time limit struck while pricing the walk's slices: the cycle search's plan stands
        warcs = None
    timed_out = warcs is None
    if warcs is not None and len(warcs):
        search = WalkSearch(walk, warcs)
        path, lats, value, dual = search.run(walk.d.static_e, walk.d.walk_max, rel_gap)
        lower.append(dual * es)
        if path:
            slices = []
            for a, latency in zip(path, lats):
                frontier = walk.frontier(int(warcs.types[a]))
                slices.append(
                    (int(warcs.starts[a]), int(warcs.ends[a]), frontier.fractions(latency, len(d.tiers)))
                )
            groups, w_split, k_split = placement(d, slices)
            walk_s = sum(lats) * d.time_unit_s
            sol = empty(stages, m, "optimal", "")
            sol = dataclasses.replace(sol, groups=groups, weight_split=w_split, kv_split=k_split)
            priced, violations = _evaluated(problem, sol, walk_s / m)
            if not violations:
                plans.append(priced)
    elif not plans and not timed_out:
        lower.append(math.inf)  # no slice fits within the floor's period: infeasible
    best_bound = max(lower)
    solve_s = time.perf_counter() - t1
    proven = _proven(plans, lower, rel_gap)
    if proven is not None:
        msg = f"walk-bound S: cycle and walk relaxations, {len(warcs or ())} walk arcs; {cycle.solution.message}"
        return StageRun(
            dataclasses.replace(proven, build_s=build_s, solve_s=solve_s, message=msg,
                                work=cycle.pricing.lp_solves + walk.lp_solves),
            cycle.pricing, cycle.arcs, violations=(),
        )  # fmt: skip
    best = min(plans, key=lambda s: s.objective, default=None)
    if best is None and not math.isfinite(best_bound):
        msg = "no placement meets the capacities and the speed floor"
        return StageRun(empty(stages, m, "infeasible", msg, build_s=build_s, solve_s=solve_s))
    if cutoff is not None and best_bound >= cutoff:
        return StageRun(empty(stages, m, "pruned", "no better than the cutoff", best_bound=best_bound))
    if not timed_out and len(cycle.arcs or ()) <= MILP_FALLBACK_ARCS:  # close the gap: formulation of record
        run = _milp_run(
            problem, cycle.pricing, cycle.arcs, bound, time_limit, deadline, rel_gap, cutoff, build_s
        )
        if run.solution.groups is not None and (best is None or run.solution.objective <= best.objective):
            msg = "walk-bound S: the relaxations' gap closed by the Pyomo MILP over the priced arcs; "
            msg += run.solution.message
            return dataclasses.replace(run, solution=dataclasses.replace(run.solution, message=msg))
        if best is None:
            return run
    gap = None if best is None else max(0.0, (best.objective - best_bound) / best.objective)
    msg = (
        f"walk-bound S: best of the cycle and walk relaxations, proven within {gap:.2e}"
        if gap is not None
        else ""
    )
    if best is None:
        return StageRun(empty(stages, m, "time_limit", "no plan from the relaxations", best_bound=best_bound))
    return StageRun(dataclasses.replace(best, status="time_limit", best_bound=best_bound, gap=gap, message=msg,
                                        build_s=build_s, solve_s=solve_s), cycle.pricing, cycle.arcs,
                    violations=())  # fmt: skip


def _milp_run(problem, pricing, arcs, bound, time_limit, deadline, rel_gap, cutoff, build_s) -> StageRun:
    """The Pyomo MILP over the priced arcs, T free (every S for --method pyomo; walk-bound gaps)."""
    d = pricing.d
    es = d.energy_unit_j
    left = None if time_limit is None else max(1.0, deadline - time.perf_counter())
    sol, clock = solve_milp(pricing, arcs, None, left, rel_gap)
    sol = dataclasses.replace(sol, build_s=build_s + sol.build_s, work=pricing.lp_solves)
    if sol.groups is None:
        return StageRun(sol, pricing, arcs)
    sol = dataclasses.replace(sol, best_bound=max(sol.best_bound or 0.0, bound) * es)
    sol = _priced(problem, sol, clock * d.time_unit_s)
    if cutoff is not None and sol.objective >= cutoff:
        return StageRun(
            empty(d.stages, d.micro_batches, "pruned", "no better than the cutoff", best_bound=cutoff)
        )
    return StageRun(sol, pricing, arcs, None, clock, by_milp=True)


def useful_arcs(run: StageRun, tol: float = FINAL_TOL) -> Arcs:
    """Arcs that can lie on an S-arc path within `tol` of the optimum at the incumbent's cycle (forward
    and backward DP values), runnable at that cycle: the final Pyomo placement needs no others."""
    search, arcs, t = run.search, run.arcs, run.clock
    cost = search.costs(t)
    s, n = search.s, search.n
    fwd = np.full((s + 1, n + 1), np.inf)
    fwd[0, 0] = 0.0
    bwd = np.full((s + 1, n + 1), np.inf)
    bwd[0, n] = 0.0
    ends_first = search.first_of_end
    order = np.lexsort((arcs.ends, arcs.starts))
    starts_sorted = arcs.starts[order]
    uniq_starts, first_of_start = np.unique(starts_sorted, return_index=True)
    for k in range(s):
        fwd[k + 1, search.uniq_ends] = np.minimum.reduceat(fwd[k, arcs.starts] + cost, ends_first)
        vals = (bwd[k, arcs.ends] + cost)[order]
        bwd[k + 1, uniq_starts] = np.minimum.reduceat(vals, first_of_start)
    opt = fwd[s, n]
    best = np.full(len(arcs), np.inf)
    for k in range(s):
        best = np.minimum(best, fwd[k, arcs.starts] + cost + bwd[s - 1 - k, arcs.ends])
    keep = (best <= opt + tol * abs(opt)) & np.isfinite(cost)
    return arcs.subset(keep)


def final_placement(problem: Problem, run: StageRun, time_limit: float | None) -> StageSolution:
    """The placement of the search's optimum: its own, when the evaluator's check passes it, else the
    Pyomo MILP's at the same S and cycle (milp_placement).

    The search's placement is a plan of the formulation: each slice's tier fractions are its slice LP's
    solution at the plan's cycle (a point of the type's exact frontier), and its J/token, recomputed by
    planner.cost, is the search's optimum, proven within the instance's gap. Solving the Pyomo MILP again
    at that cycle finds the same optimum (tests hold it to 1e-6 against the exhaustive reference) and
    costs up to several times the search (DeepSeek-V3's shipped instance: 5 s of HiGHS for a walk-bound
    S = 5 the relaxations had already proven, only to return an equally cheap arrangement, 1e-12 dearer).
    The check (planner.placement.constraints.check, on the recomputed cost; made where the solution was
    priced, StageRun.violations) is what makes keeping it safe: a placement that misses a limit by more
    than the tolerance goes to the MILP."""
    violations = run.violations
    if violations is None:  # a run that did not check its plan
        violations = _evaluated(problem, run.solution, run.solution.cycle_s)[1]
    if not violations:
        how = "S and cycle by exact search" if run.search is not None else "S and period by the relaxations"
        return dataclasses.replace(
            run.solution, message=f"{how}, placement by the search's slice LPs ({run.solution.message})"
        )
    return milp_placement(problem, run, time_limit)


def milp_placement(problem: Problem, run: StageRun, time_limit: float | None) -> StageSolution:
    """Place nodes and tiers with the Pyomo MILP at the search's optimal S and cycle.

    With the cycle fixed the path-form MILP is small and its relaxation nearly integral; its optimum
    equals the search's (tests check 1e-6). A walk-bound best (no cycle search) is placed the same way with
    its period fixed, when its arcs are few enough (MILP_FALLBACK_ARCS); a walk-bound best that the Pyomo
    MILP already placed (its gap closed by _milp_run, to the instance's gap or time limit) is not placed
    again (solve_problem). Should the MILP come out worse (a solver tolerance), the search's placement is
    kept and the message says so."""
    best = run.solution
    ts = run.pricing.d.time_unit_s
    if run.search is not None:  # cycle-bound: T = Q fixed, over the arcs an optimal path can use
        arcs = useful_arcs(run)
        final, clock = solve_milp(run.pricing, arcs, run.clock, time_limit, 1e-7)
        how = "S and cycle by exact search; placement by the Pyomo MILP at that cycle"
    else:  # walk-bound: the period fixed, over the arcs that run within it
        period = best.period_s / best.micro_batches / ts
        arcs = run.arcs.subset(run.arcs.t_feas <= period * (1 + 1e-9))
        if len(arcs) > MILP_FALLBACK_ARCS:
            return dataclasses.replace(
                best, message=best.message + f"; placement by the relaxations ({len(arcs)} arcs)"
            )
        final, clock = solve_milp(run.pricing, arcs, None, time_limit, 1e-7, period=period)
        how = "S and period by the walk-bound relaxations; placement by the Pyomo MILP at that period"
    if final.groups is not None:
        final = _priced(problem, dataclasses.replace(final, best_bound=best.best_bound), clock * ts)
        if final.objective <= best.objective * (1 + FINAL_TOL):
            return dataclasses.replace(
                final,
                best_bound=best.best_bound,
                gap=best.gap,
                build_s=best.build_s + final.build_s,
                message=f"{how} ({final.message}; {len(arcs)} of {len(run.arcs)} arcs)",
                work=best.work,
            )
    return dataclasses.replace(
        best,
        message=f"Pyomo MILP at the optimal cycle ended {final.status} ({final.objective}); search placement kept",
    )


def _record(run: StageRun, started: float) -> StageRecord:
    sol = run.solution
    return StageRecord(
        status=sol.status,
        joules_per_token=sol.objective,
        best_bound=sol.best_bound,
        solve_s=time.perf_counter() - started,
        message=sol.message if sol.status == "error" else "",
    )


def stage_bounds(problem: Problem) -> dict[tuple[int, int | None], tuple[Problem, StageData, float | None]]:
    """Every (S, micro-batches in flight) the optimizer compares (Problem.micro_batch_choices): its
    problem, priced data and fluid lower bound on J/token (None: no plan)."""
    out = {}
    for stages in problem.stage_range():
        if not 1 <= stages <= len(problem.nodes):
            continue
        for m in problem.micro_batch_choices(stages):
            variant = problem if m == problem.in_flight else problem.with_micro_batches(m)
            d = stage_data(variant, stages)
            bound = lower_bound(d) if d.t_max > 0 else None
            out[(stages, m)] = (variant, d, None if bound is None else bound * d.energy_unit_j)
    return out


_STATUS_RANK = {"optimal": 0, "time_limit": 1, "error": 2, "pruned": 3, "infeasible": 4}


def _merge(old: StageRecord | None, new: StageRecord) -> StageRecord:
    """One record per S over its micro-batch choices: the better plan, else the more informative status;
    the bound is the least of theirs (a bound on every choice of that S)."""
    if old is None:
        return new
    keep = old
    if new.joules_per_token is not None and (
        old.joules_per_token is None or new.joules_per_token < old.joules_per_token
    ):
        keep = new
    elif old.joules_per_token is None and _STATUS_RANK.get(new.status, 9) < _STATUS_RANK.get(old.status, 9):
        keep = new
    bounds = [r.best_bound if r.best_bound is not None else r.joules_per_token for r in (old, new)]
    known = [b for b in bounds if b is not None]
    return keep.model_copy(update={"best_bound": min(known) if len(known) == 2 else keep.best_bound})


def solve_group_size(problem: Problem, progress: Progress | None = None):
    """Best run over the S range of one group size: (best StageRun or None, records by S, interrupted).

    Every (S, micro-batches) pair's fluid bound first (cheap: one small LP each, priced per node class);
    then the pairs are solved in ascending order of their bounds, so the best plan comes early and every
    pair whose bound cannot beat it is pruned with that proof (ties: the smaller S first)."""
    spec = problem.spec.solver
    records: dict[int, StageRecord] = {}
    best: StageRun | None = None
    interrupted = False
    try:
        if spec.method == "exhaustive":  # every pair, no bound
            bounds = {
                (s, m): (problem if m == problem.in_flight else problem.with_micro_batches(m), None, None)
                for s in problem.stage_range()
                for m in problem.micro_batch_choices(s)
            }
            order = list(bounds)
        else:
            bounds = stage_bounds(problem)
            for (stages, _), (_, _, bound) in bounds.items():
                if bound is None:
                    records[stages] = _merge(records.get(stages), StageRecord(status="infeasible"))
            order = sorted(
                (k for k, v in bounds.items() if v[2] is not None), key=lambda k: (bounds[k][2], k[0])
            )
        for key in order:
            stages = key[0]
            variant, d, bound = bounds[key]
            started = time.perf_counter()
            cutoff = None if best is None else best.solution.objective * (1 - spec.gap)
            if cutoff is not None and bound is not None and bound >= cutoff:
                record = StageRecord(status="pruned", best_bound=bound)
            else:
                data = None if d is None else (d, bound)
                run = solve_stage(variant, stages, spec.method, spec.time_limit, spec.gap, cutoff, data)
                record = _record(run, started)
                sol = run.solution
                if sol.groups is not None and sol.objective is not None:
                    if best is None or sol.objective < best.solution.objective:
                        best = dataclasses.replace(run, problem=variant)
            records[stages] = _merge(records.get(stages), record)
            if progress:
                progress(stages, records[stages])
    except KeyboardInterrupt:
        if best is None:
            raise
        interrupted = True
    return best, dict(sorted(records.items())), interrupted


def solve_problem(problem: Problem, progress: Progress | None = None, explain: bool = True) -> Plan:
    """Best plan over all group sizes and S; raises InfeasibleError with the binding limit when none is
    feasible (`explain` False: without searching for the reason when no cheap certificate gives it).
    A KeyboardInterrupt during the search returns the best plan found so far (status 'interrupted');
    if none was found it propagates.

    Groups hold whole nodes first. When that is proven infeasible, the core parts are cut between
    neighbouring groups where the packing puts its boundaries (planner.placement.packing), and the plan
    is the exact solve of the cut problem (its instance carries the cuts and the S they were made for);
    when that fails too, the whole-node verdict stands, with what stopped the packing put first. The
    whole-node verdict is only explained then (its search for the reason is wasted when the cuts fit).

    A solve that wants any plan (a verdict: the gap accepts any plan; method milp) tries the packing's
    own groups first (_packed_plan): a plan of the cut problem that passes the evaluator's check is a
    plan the steps above would also end with a plan for when they finish (whole nodes feasible, or else
    the cut problem's exact search), so the verdict is theirs, or better where a time limit would stop
    them first; only when it fails do they run."""
    from planner.placement.packing import packed_problem

    started = time.perf_counter()
    solver = problem.spec.solver
    packed = packed_problem(problem) if solver.any_plan and solver.method == "milp" else None
    if packed is not None and packed[0] is not None:
        plan = _packed_plan(packed[0], packed[1], started)
        if plan is not None:
            return _cut_plan(problem, plan, *packed)
    whole = _search_group_sizes(problem, progress, started)
    if whole.feasible:
        return whole.plan()
    if not whole.proven:
        raise whole.error(explain)
    cut, packing = packed if packed is not None else packed_problem(problem)
    proven = True
    if cut is not None:
        with_cuts = _search_group_sizes(cut, progress, started)  # solve_s counts both searches
        if with_cuts.feasible:
            return _cut_plan(problem, with_cuts.plan(), cut, packing)
        with_cuts.error(explain=False)  # raises SolverFailure where HiGHS failed on the cut problem
        proven = with_cuts.proven  # a cut search stopped by a time limit proves nothing
    raise _verdict(problem, whole.error(explain), packing, proven) from None


def _verdict(problem: Problem, error: InfeasibleError, packing, proven: bool) -> InfeasibleError:
    """The whole-node verdict `error`, with what stopped the packing put first when it has a say."""
    error.proven = error.proven and proven
    note = packing.verdict(problem) if packing is not None else ""
    if not note:
        return error
    binding = "capacity" if packing.limit == "memory" else error.binding
    combined = InfeasibleError(note + " With whole parts: " + error.explanation, binding)
    combined.proven = error.proven
    return combined


def explain_proven_infeasible(problem: Problem) -> InfeasibleError:
    """The InfeasibleError that solve_problem(problem) raises when its search ends proven infeasible,
    without the search: for an instance that a feasibility probe (the same search, planner.studies.
    capacity) has already proven to have no plan, so that its reason costs only the explanation. The
    search's records are then 'infeasible' for every S of every group size, which is all that
    explain_infeasible reads of them; the packing's verdict is computed as solve_problem computes it."""
    from planner.placement.explain import explain_infeasible
    from planner.placement.packing import packed_problem

    variant = _group_size_variants(problem)[0]
    records = {
        s: StageRecord(status="infeasible")
        for s in variant.stage_range()
        if 1 <= s <= len(variant.nodes) and variant.micro_batch_choices(s)
    }
    error = explain_infeasible(variant, records, True)
    error.proven = True
    return _verdict(problem, error, packed_problem(problem)[1], True)


def _cut_plan(problem: Problem, plan: Plan, cut: Problem, packing) -> Plan:
    """A plan of the cut problem as the instance's: the instance as given + the cuts (a plan's decision,
    like its group size), the message saying where they came from."""
    solver = plan.solver.model_copy(update={"message": (
        f"core parts cut between groups at {len(packing.cuts)} places (planner.placement.packing), "
        f"solved at S = {packing.stages} only; " + plan.solver.message
    )})  # fmt: skip
    instance = problem.spec.model_copy(update={"core_cuts": cut.spec.core_cuts})
    return plan.model_copy(update={"instance": instance, "solver": solver})


def _packed_plan(cut: Problem, packing, started: float) -> Plan | None:
    """The packing's own groups as a plan of the cut problem, for a solve that wants any plan (a
    verdict, planner.studies.capacity): each group's slice LP at its least cycle, the plan run at the
    slowest group's and checked by the evaluator's constraints. A packing with fewer groups than its S
    has its longest groups halved until there are S (less work per group; the check decides). None when
    a slice misses the cycle limit or the check fails; the exact search of the cut problem then decides.
    A plan it returns is one the search would accept, so the verdict is the search's, without pricing
    every slice."""
    stages = packing.stages
    t0 = time.perf_counter()
    d = stage_data(cut, stages)
    ends = packing.boundaries()  # on the chain it packed (its group size's split)
    if d.t_max <= 0 or ends[-1] != d.n or d.n < stages:
        return None
    while len(ends) < stages:  # halve the longest group (the first of the longest)
        starts = [0] + ends[:-1]
        k = max(range(len(ends)), key=lambda g: ends[g] - starts[g])
        ends.insert(k, (starts[k] + ends[k]) // 2)
    pricing, slices, cycle, start = Pricing(d), [], 0.0, 0  # the search's slices: equal groups priced once
    for end in ends:
        k, _ = pricing.type_of(start, end)
        if k < 0 or pricing.priced[k] is None:  # past the cycle limit, or no solution kept
            return None
        lp, x, _ = pricing.priced[k]
        slices.append((start, end, tier_fractions(lp.cols, x, len(d.tiers))))
        cycle, start = max(cycle, pricing.t_min[k]), end
    bound = lower_bound(d)
    if bound is None:
        return None
    groups, w_split, k_split = placement(d, slices)
    sol = dataclasses.replace(
        empty(stages, d.micro_batches, "optimal", "the packing's groups at their least cycles, checked by "
              "the evaluator (any plan was asked for)", build_s=time.perf_counter() - t0),
        groups=groups, weight_split=w_split, kv_split=k_split, best_bound=bound * d.energy_unit_j,
    )  # fmt: skip
    priced, violations = _evaluated(cut, sol, cycle * d.time_unit_s)
    if violations:
        return None
    record = StageRecord(status="optimal", joules_per_token=priced.objective, best_bound=priced.best_bound,
                         solve_s=time.perf_counter() - t0)  # fmt: skip
    return _best_plan(cut, [(cut, StageRun(priced, problem=cut), {stages: record})], False, started)


@dataclass
class GroupSizeSearch:
    """Every group size of a problem searched (solve_group_size): each size's best run and per-S records."""

    problem: Problem
    outcomes: list[tuple[Problem, StageRun | None, dict[int, StageRecord]]]
    interrupted: bool
    started: float  # perf_counter at the start of the search

    @property
    def feasible(self) -> bool:
        return any(best is not None for _, best, _ in self.outcomes)

    @property
    def proven(self) -> bool:
        """No S ended by a time limit or a solver error: an infeasible verdict is a proof."""
        return not any(r.status in ("time_limit", "error") for _, _, rs in self.outcomes for r in rs.values())

    def error(self, explain: bool) -> InfeasibleError:
        """The infeasible verdict, the binding limit named (planner.placement.explain)."""
        from planner.placement.explain import explain_infeasible

        variant, _, records = self.outcomes[0]
        error = explain_infeasible(variant, records, explain)
        error.proven = self.proven
        return error

    def plan(self) -> Plan:
        """The best plan over the group sizes, placed and evaluated."""
        return _best_plan(self.problem, self.outcomes, self.interrupted, self.started)


def _group_size_variants(problem: Problem) -> list[Problem]:
    """The problem once per group size it allows (itself when it allows one), in the instance's order."""
    sizes = problem.spec.group_sizes
    if sizes == [None] or len(sizes) == 1:
        return [problem]
    return [problem.with_chips_per_group(c) for c in sizes]


def _search_group_sizes(
    problem: Problem, progress: Progress | None, started: float | None = None
) -> GroupSizeSearch:
    """Every group size searched; `started` (perf_counter) is when the solve began, by default now."""
    started = time.perf_counter() if started is None else started
    outcomes = []
    interrupted = False
    for variant in _group_size_variants(problem):
        best, records, stopped = solve_group_size(variant, progress)
        outcomes.append((variant, best, records))
        if stopped:
            interrupted = True
            break
    return GroupSizeSearch(problem, outcomes, interrupted, started)


def _best_plan(problem: Problem, outcomes, interrupted: bool, started: float) -> Plan:
    spec = problem.spec
    feasible = [(v, b, r) for v, b, r in outcomes if b is not None]
    chosen, best, records = min(feasible, key=lambda o: o[1].solution.objective)
    size_problem = chosen
    chosen = best.problem if best.problem is not None else chosen  # with its micro-batches in flight
    sol = best.solution
    build_s = sum(o[1].solution.build_s for o in feasible)
    # the placement of the search's optimum (final_placement: its own once checked, else the Pyomo
    # MILP's); where the gap accepts any plan (a feasibility probe, planner.studies.capacity) the search's
    # own placement stands
    placed = spec.solver.method == "milp" and best.pricing is not None and not best.by_milp
    if not interrupted and placed and not spec.solver.any_plan:
        try:
            sol = final_placement(chosen, best, spec.solver.time_limit)
        except KeyboardInterrupt:
            interrupted = True
    bounds = [r.best_bound if r.best_bound is not None else r.joules_per_token for r in records.values()]
    overall = min((b for b in bounds if b is not None), default=sol.best_bound)
    for v, _, r in outcomes:  # other group sizes' bounds count too
        if v is not size_problem:
            overall = min([overall] + [x.best_bound for x in r.values() if x.best_bound is not None])
    overall = min(overall, sol.objective) if overall is not None else None
    if interrupted:
        status = "interrupted"
    elif any(r.status == "time_limit" for _, _, rs in outcomes for r in rs.values()):
        status = "time_limit"
    else:
        status = "optimal"
    gap = max(0.0, (sol.objective - overall) / sol.objective) if overall is not None else None
    per_size = {}
    if len(spec.group_sizes) > 1:  # as many outcomes, unless interrupted
        for v, b, _ in outcomes:
            per_size[v.hw.chips_per_group] = GroupSizeRecord(
                joules_per_token=None if b is None else b.solution.objective,
                stages=None if b is None else b.solution.stages,
                status="optimal" if b is not None else "infeasible",
            )
    plan = Plan(
        instance=spec,
        stages=sol.stages,
        groups=[list(g) for g in sol.groups],
        weight_split=clean_split(sol.weight_split),
        kv_split=clean_split(sol.kv_split),
        cycle_ms=sol.cycle_s * 1e3,
        micro_batches=sol.micro_batches,
        chips_per_group=chosen.hw.chips_per_group,
        solver=SolverFacts(
            method=spec.solver.method,
            status=status,
            objective=sol.objective,
            best_bound=overall,
            gap=gap,
            build_s=build_s,
            solve_s=time.perf_counter() - started,
            per_stage=records,
            per_group_size=per_size,
            message=sol.message,
        ),
    )
    result = evaluate(problem, plan)
    return plan.model_copy(update={"figures": figures(result.cost, chosen)})
