"""Solving an instance: enumerate the number of stages S, prune by bound, keep the best plan.

For each S (from the capacity lower bound up to min(max_groups, nodes)) the MILP of planner.milp gives
the optimal placement; an S whose lower bound is no better than the best plan found is pruned. Every
S's outcome is reported (J/token vs S is a result in itself). No feasible S -> InfeasibleError naming
the binding limit and the shortfall in the user's units.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from planner.core.errors import InfeasibleError, SolverFailure
from planner.core.units import human_bytes
from planner.cost.node import node_cost
from planner.cost.pipeline import micro_batches
from planner.model.graph import kv_tokens
from planner.placement import reference as exhaustive
from planner.placement import search as milp
from planner.plans.plan import Plan, SolverFacts, StageRecord, clean_split, evaluate, figures
from planner.problem.problem import Problem

Progress = Callable[[int, StageRecord], None]
EXPLAIN_BUDGET_S = 20.0  # seconds spent finding the fastest placement when explaining infeasibility


def resident_bytes(problem: Problem) -> tuple[float, float]:
    """Total weight bytes and KV bytes of all users (B)."""
    g = problem.model.graph
    weights = sum(d["weight_bytes"] for _, d in g.nodes(data=True))
    kv = sum(
        problem.users * d["kv_bytes_per_token"] * kv_tokens(d, problem.context) for _, d in g.nodes(data=True)
    )
    return weights, kv


def group_capacity_bytes(problem: Problem) -> float:
    """Bytes one group holds in the tiers the instance allows."""
    hw = problem.hw
    return sum(t.capacity_bytes for t in hw.tiers if t.name in problem.tiers) * hw.chips_per_group


def stage_range(problem: Problem) -> range:
    """S values worth trying: from the capacity bound ceil(bytes / group capacity) to min(max_groups, nodes)."""
    if problem.spec.solver.stages is not None:
        return range(problem.spec.solver.stages, problem.spec.solver.stages + 1)
    weights, kv = resident_bytes(problem)
    low = max(1, math.ceil((weights + kv) / group_capacity_bytes(problem) - 1e-9))
    high = min(problem.max_groups, problem.model.graph.number_of_nodes())
    return range(low, high + 1)


def _solve_one_s(
    problem: Problem, stages: int, best: milp.StageSolution | None
) -> tuple[StageRecord, milp.StageSolution | None]:
    """One S: its lower bound (prune against the best so far), then its optimum by the chosen method."""
    spec = problem.spec
    args = (problem.model.graph, problem.hw, problem.users, problem.context, problem.min_tokens_per_s, stages)
    in_flight = spec.workload.micro_batches
    started = time.perf_counter()

    def record(status: str, sol: milp.StageSolution | None = None, bound: float | None = None) -> StageRecord:
        return StageRecord(
            status=status,
            joules_per_token=None if sol is None else sol.objective,
            best_bound=bound if sol is None else sol.best_bound,
            solve_s=time.perf_counter() - started,
            message=sol.message if sol is not None and status == "error" else "",
        )

    if spec.solver.method == "exhaustive":
        sol = exhaustive.exhaustive_stages(*args, allowed_tiers=problem.tiers, in_flight=in_flight)
        return record(sol.status, sol), sol
    bound = milp.lower_bound(*args, allowed_tiers=problem.tiers, in_flight=in_flight)
    if bound is None:
        return record("infeasible"), None
    if best is not None and bound >= best.objective * (1 - spec.solver.gap):
        return record("pruned", bound=bound), None
    if spec.solver.method == "pyomo":
        sol = milp.solve_stages_milp(
            *args,
            time_limit=spec.solver.time_limit,
            rel_gap=spec.solver.gap,
            allowed_tiers=problem.tiers,
            in_flight=in_flight,
        )
    else:
        sol = milp.solve_stages(
            *args,
            time_limit=spec.solver.time_limit,
            rel_gap=spec.solver.gap,
            allowed_tiers=problem.tiers,
            in_flight=in_flight,
            cutoff=None if best is None else best.objective,
        )
        if best is not None and sol.status == "infeasible" and sol.best_bound is not None:
            return record("pruned", bound=sol.best_bound), None  # nothing better than the cutoff
    return record(sol.status, sol), sol


def _final_placement(problem: Problem, best: milp.StageSolution) -> milp.StageSolution:
    """Place nodes and tiers with the Pyomo MILP at the optimal S and cycle found by the search.

    With the cycle fixed the path-form MILP is small and its relaxation nearly integral; its optimum
    equals the search's (tests check 1e-6). Should it come out worse (a solver tolerance), the search's
    placement is kept and the message says so."""
    spec = problem.spec
    final = milp.solve_stages_milp(
        problem.model.graph,
        problem.hw,
        problem.users,
        problem.context,
        problem.min_tokens_per_s,
        best.stages,
        time_limit=spec.solver.time_limit,
        rel_gap=1e-7,
        allowed_tiers=problem.tiers,
        in_flight=spec.workload.micro_batches,
        cycle_s=best.cycle_s,
    )
    if (
        final.objective is not None
        and final.groups is not None
        and final.objective <= best.objective * (1 + 1e-6)
    ):
        return dataclasses.replace(
            final,
            best_bound=best.best_bound,
            message=f"S and cycle by exact search; placement by the Pyomo MILP at that cycle ({final.message})",
        )
    return dataclasses.replace(
        best,
        message=f"Pyomo MILP at the optimal cycle ended {final.status} ({final.objective}); search placement kept",
    )


def solve_problem(problem: Problem, progress: Progress | None = None) -> Plan:
    """Best plan over all S; raises InfeasibleError with the binding limit when none is feasible.

    A KeyboardInterrupt during the search returns the best plan found so far (status 'interrupted');
    if none was found it propagates.
    """
    spec = problem.spec
    started = time.perf_counter()
    records: dict[int, StageRecord] = {}
    best: milp.StageSolution | None = None
    build_s = 0.0
    interrupted = False
    try:
        for stages in stage_range(problem):
            record, sol = _solve_one_s(problem, stages, best)
            records[stages] = record
            if progress:
                progress(stages, record)
            if sol is None:
                continue
            build_s += sol.build_s
            if (
                sol.objective is not None
                and sol.groups is not None
                and (best is None or sol.objective < best.objective)
            ):
                best = sol
        if best is not None and spec.solver.method == "milp":
            best = _final_placement(problem, best)
            build_s += best.build_s
    except KeyboardInterrupt:
        if best is None:
            raise
        interrupted = True
    if best is None:
        raise explain_infeasible(problem, records)
    # the proven bound over all S: the least of every S's bound (pruned S included)
    bounds = [r.best_bound if r.best_bound is not None else r.joules_per_token for r in records.values()]
    overall_bound = min((b for b in bounds if b is not None), default=best.best_bound)
    overall_bound = min(overall_bound, best.objective) if overall_bound is not None else None
    if interrupted:
        status = "interrupted"
    elif any(r.status == "time_limit" for r in records.values()):
        status = "time_limit"
    else:
        status = "optimal"
    gap = max(0.0, (best.objective - overall_bound) / best.objective) if overall_bound is not None else None
    plan = Plan(
        instance=spec,
        stages=best.stages,
        groups=[list(g) for g in best.groups],
        weight_split=clean_split(best.weight_split),
        kv_split=clean_split(best.kv_split),
        solver=SolverFacts(
            method=spec.solver.method,
            status=status,
            objective=best.objective,
            best_bound=overall_bound,
            gap=gap,
            build_s=build_s,
            solve_s=time.perf_counter() - started,
            per_stage=records,
            message=best.message,
        ),
    )
    result = evaluate(problem, plan)
    return plan.model_copy(update={"figures": figures(result.cost)})


def explain_infeasible(problem: Problem, records: dict[int, StageRecord]) -> InfeasibleError:
    """Name the limit that binds and by how much, in the user's units."""
    hw, w = problem.hw, problem.spec.workload
    weights, kv = resident_bytes(problem)
    groups = problem.max_groups
    capacity = group_capacity_bytes(problem) * groups
    tiers = "+".join(problem.tiers)
    who = f"{w.users:,} users at {w.context:,} context"
    if weights + kv > capacity:
        return InfeasibleError(
            f"weights ({human_bytes(weights)}) and the KV cache of {who} ({human_bytes(kv)}) need "
            f"{human_bytes(weights + kv)}; {groups} groups of {hw.chips_per_group} chips hold {human_bytes(capacity)} "
            f"of {tiers} (short by {human_bytes(weights + kv - capacity)}; allow more groups or fewer users)",
            binding="capacity",
        )
    graph = problem.model.graph
    per_group = group_capacity_bytes(problem)
    for n, d in graph.nodes(data=True):
        need = d["weight_bytes"] + problem.users * d["kv_bytes_per_token"] * kv_tokens(d, problem.context)
        if need > per_group:
            return InfeasibleError(
                f"node {n} alone needs {human_bytes(need)} (weights and the KV of {who}) but a group of "
                f"{hw.chips_per_group} chips holds {human_bytes(per_group)} of {tiers} (short by "
                f"{human_bytes(need - per_group)}); use more chips per group or fewer users",
                binding="capacity (one node)",
            )
    # speed floor: the fastest a user's token can go for any S tried, ignoring capacity
    best_speed, best_s = 0.0, None
    for stages in stage_range(problem):
        b = problem.users / micro_batches(problem.users, stages, problem.spec.workload.micro_batches)
        total = 0.0
        for n, d in graph.nodes(data=True):
            c = node_cost(n, d, hw, b, problem.users, problem.context)
            fastest_w = {min(problem.tiers, key=lambda t: c.weight_read_s[t]): 1.0}
            fastest_k = {min(problem.tiers, key=lambda t: c.kv_read_s[t]): 1.0}
            total += c.time_s(fastest_w, fastest_k)
        token_s = total + (stages - 1) * hw.inter_link.latency_s
        if 1 / token_s > best_speed:
            best_speed, best_s = 1 / token_s, stages
    if best_speed < problem.min_tokens_per_s:
        return InfeasibleError(
            f"the per-user speed floor of {problem.min_tokens_per_s:,.1f} tokens/s is out of reach: even with every "
            f"tensor in its fastest tier, a token of {who} takes at least {1e3 / best_speed:,.2f} ms "
            f"({best_speed:,.2f} tokens/s, at S={best_s}); short by {problem.min_tokens_per_s - best_speed:,.2f} tokens/s. "
            f"Lower the floor, serve fewer users, or use faster memory",
            binding="speed floor",
        )
    failed = {s: r.message for s, r in records.items() if r.status == "error"}
    if failed:
        detail = "; ".join(f"S={s}: {m}" for s, m in failed.items())
        raise SolverFailure(f"HiGHS failed for {who} ({detail}); no plan was found for the other S either")
    if any(r.status == "time_limit" for r in records.values()):
        return InfeasibleError(
            f"no plan was found within the time limit of {spec_time(problem)} per S for {who}; "
            "raise --time-limit (or solver.time_limit)",
            binding="time limit",
        )
    largest = max(
        d["weight_bytes"] + problem.users * d["kv_bytes_per_token"] * kv_tokens(d, problem.context)
        for _, d in graph.nodes(data=True)
    )
    # within capacity: the fastest any contiguous placement can go, over the S tried (energy ignored)
    fastest: tuple[float, int] | None = None
    deadline = time.perf_counter() + EXPLAIN_BUDGET_S
    complete = True
    for stages in stage_range(problem):
        if time.perf_counter() > deadline:
            complete = False
            break
        cycle = milp.fastest_cycle_s(
            graph,
            hw,
            problem.users,
            problem.context,
            stages,
            problem.tiers,
            problem.spec.workload.micro_batches,
        )
        if cycle is not None:
            token_s = stages * cycle + (stages - 1) * hw.inter_link.latency_s
            if fastest is None or token_s < fastest[0]:
                fastest = (token_s, stages)
    scope = "" if complete else f" (S searched for {EXPLAIN_BUDGET_S:.0f} s)"
    if fastest is None:
        return InfeasibleError(
            f"no contiguous split of {problem.model.name} into at most {groups} groups of {hw.chips_per_group} chips "
            f"fits the weights and the KV cache of {who} in {tiers}{scope}: the total would fit "
            f"({human_bytes(weights + kv)} of {human_bytes(capacity)}) but whole nodes do not pack into the groups "
            f"(largest node {human_bytes(largest)} of a group's {human_bytes(per_group)}); "
            "allow more groups or chips per group, or serve fewer users",
            binding="capacity (contiguous split)",
        )
    speed = 1.0 / fastest[0]
    if speed < problem.min_tokens_per_s:
        return InfeasibleError(
            f"within capacity, the fastest placement gives {speed:,.2f} tokens/s per user (S={fastest[1]}, token "
            f"{fastest[0] * 1e3:,.2f} ms) for {who}, below the floor of {problem.min_tokens_per_s:,.1f}; short by "
            f"{problem.min_tokens_per_s - speed:,.2f} tokens/s{scope}. The KV and weights that fit only in slower "
            "tiers set the pace: serve fewer users, lower the floor, or use faster memory",
            binding="speed floor (within capacity)",
        )
    tried = ", ".join(f"S={s}: {r.status}" for s, r in records.items()) or "no S in range"
    return InfeasibleError(
        f"no plan found for {who} ({tried}), although a placement within capacity reaches {speed:,.2f} tokens/s "
        f"per user at S={fastest[1]}: this is a solver failure, please report it",
        binding="solver",
    )


def spec_time(problem: Problem) -> str:
    limit = problem.spec.solver.time_limit
    return "none" if limit is None else f"{limit:g} s"
