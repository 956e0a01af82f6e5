"""How many users can this hardware serve at r tokens/s per user? An exact search over U with the solver.

The oracle is the solver (planner.solve over the instance's S range, or one fixed S): U is feasible when
a plan meets capacity and the per-user speed floor. Search: U = 1, 2, 4, ... until infeasible, then
bisection; the answer U* comes with a feasible solve at U* and an infeasible one at U* + 1.

Why feasibility is monotone in U (so bisection is exact), power limits included: take any plan feasible
at U + 1 (placement, group size, and its clock: the period per micro-batch P / m it runs at) and keep its
placement at U users.
- capacity: a group's resident bytes are its weights plus U x (KV per user) of its nodes; fewer users
  hold less, so every tier still fits;
- micro-batches: m' = min(U, slots x S) (or the instance's cap) is at most m, and b' = U / m' at most b
  (b = 1 below slots x S, U / (slots x S) above);
- time: every time term of planner.cost grows with b or is constant (weight bytes are constant, or
  E(1 - (1 - k/E)^b) for experts, increasing; KV bytes, FLOPs, collectives and activation bytes are
  proportional to b; the attention pull-rate cap min(R, b c) gives b X / min(R, b c) = max(b X / R, X / c),
  non-decreasing), so every group's busy times, latencies and the walk W' do not grow;
- keep the period: run at the clock P / m' (at least P / m, so at least every group's cycle): the period
  max(W', m' x P / m') = P meets the floor as before;
- power: a chip draws m' E'_g / (chips x P) + static <= m E_g / (chips x P) + static, since m' <= m and
  the energy per micro-batch E'_g <= E_g (it grows with b); the pipeline's budget likewise;
- the S range: its lower end ceil(bytes / group capacity) only falls with U, its upper end does not
  depend on U, so the plan's S is still tried.
Hence feasible(U + 1) implies feasible(U): the optimizer's space includes the clock (a plan may run
slower than its slowest group), which is what makes the power limits monotone. The search is exact for the stated space (the instance's
max_groups, chips_per_group, tiers, and its S range or fixed S) provided each infeasible verdict is
proven: with a time limit, an S stopped without an incumbent leaves the verdict unproven, and the result
says so (`exact` False).

Where whole nodes per group are proven infeasible, the solver tries core parts cut between neighbouring
groups (planner.placement.solve, planner.placement.packing). The packing's verdict is monotone in U too
(fewer users: every slice only shrinks, so each group reaches at least as far), so the oracle "whole
nodes, else cut parts" stays monotone as far as the packing's greedy reach is exact (its module says
where it is not), and U* + 1 carries both verdicts.

A probe asks only whether a plan exists, so it is solved with the gap 1 (feasibility_probe): the first
plan found ends it. Its verdict is the full solve's: the solver takes the same steps up to its first plan
(the (S, m) pairs in the order of their bounds, each searched until a plan or a proof that there is none),
so it finds a plan exactly when the full solve would, and "infeasible" is the same proof. Only the
minimization after that first plan is left out, and the final placement's step (planner.placement.
solve.final_placement: the search's own placement checked, else the Pyomo MILP's; a probe keeps the
search's, which is a plan either way). The solve at U* is then
repeated with the instance's own gap (its J/token is the optimum the study reports); at U* + 1 the
probe's proven verdict stands and only its explanation is computed (planner.placement.solve.
explain_proven_infeasible: the reason the full solve would give, without repeating its search). Where the cut problem decides, a probe first tries the packing's own groups
as its plan (planner.placement.solve._packed_plan: one slice LP per group, then the evaluator's check);
a plan that passes is a plan of the cut problem, which its exact search would also find when it
finishes, so the verdict is unchanged (where a time limit would stop the searches first, it is a plan
they did not find: the verdict can only gain), and only when it fails is every slice priced.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.problem.instance import ANY_PLAN_GAP, InstanceSpec
from planner.problem.problem import resolve
from planner.runs.cache import Cache, CaseResult, solve_case
from planner.runs.executor import executor

MAX_USERS = 100_000_000  # WorkloadSpec's limit

Oracle = Callable[[int], CaseResult]


@dataclass(frozen=True)
class CapacityResult:
    """The largest feasible U, the solve at U (None when U = 0) and at U + 1 (None when capped)."""

    max_users: int
    at_max: CaseResult | None
    above: CaseResult | None
    probes: tuple[tuple[int, bool], ...]  # (users, feasible) in the order tried
    exact: bool

    def summary(self) -> dict[str, Any]:
        """Flat facts: max_users, the plan's S, chips, J/token, power, and the binding limit at U + 1."""
        row = self.at_max.row if self.at_max is not None else {}
        above = self.above.row if self.above is not None else {}
        return {
            "max_users": self.max_users,
            "stages": row.get("stages"),
            "chips": row.get("chips"),
            "joules_per_token": row.get("joules_per_token"),
            "joules_per_token_by": {  # the category names of planner.cost (and `planner solve --json`)
                cat: row.get(f"{col}_j")
                for cat, col in (
                    ("weights", "weight"),
                    ("kv", "kv"),
                    ("compute", "compute"),
                    ("links", "link"),
                    ("idle", "idle"),
                )
                if row
            },
            "tokens_per_s_per_user": row.get("tokens_per_s_per_user"),
            "tokens_per_s": row.get("tokens_per_s"),
            "power_w": row.get("power_w"),
            "status_at_max": row.get("status"),
            "binding": above.get("binding", "max_users limit" if self.above is None else ""),
            "explanation": above.get("explanation", f"searched up to {MAX_USERS:,} users"),
            "exact": self.exact,
            "probes": [list(p) for p in self.probes],
            "core_parts": getattr(self._probed(), "core_parts", None),  # fixed for every probe
            "core_cuts": row.get("core_cuts", 0),  # core parts the plan at U* cuts between groups
        }

    def _probed(self):
        """The instance every probe solved (its users aside)."""
        return next((r.spec for r in (self.at_max, self.above) if r is not None), None)


def search_max_users(
    oracle: Oracle, start: int = 1, limit: int = MAX_USERS, tolerance: float = 0.0
) -> CapacityResult:
    """Galloping search from a guess `start`, then bisection, on a monotone feasibility oracle.

    From start = 1 it probes 1, 2, 4, 8, ...; from a guess (the capacity bound, say) it steps s, 2s, 4s,
    ... users up or down from it, s = guess / 128 (a bound is usually within a few percent). Either way at
    most about 2 log2(distance) oracle calls; each U at most once. The answer comes with the solves at U*
    (feasible) and U* + 1 (infeasible). With a relative `tolerance` the bisection stops once the
    infeasible end is within tolerance x U above the feasible one (the answer is then a proven lower
    bound, `above` the proven upper one).
    """
    seen: dict[int, CaseResult] = {}
    order: list[tuple[int, bool]] = []

    def feasible(users: int) -> bool:
        if users not in seen:
            seen[users] = oracle(users)
            order.append((users, seen[users].feasible))
        return seen[users].feasible

    guess = max(1, min(start, limit))
    step = max(1, guess // 128)  # a good guess (the bound) is within a few percent: reach it in a few probes
    if feasible(guess):  # walk up: lo feasible, hi the first infeasible found (None: feasible at limit)
        lo, hi = guess, None
        while lo < limit:
            users = min(lo + step, limit)
            if not feasible(users):
                hi = users
                break
            lo, step = users, 2 * step
    else:  # walk down: 0 users is trivially feasible
        lo, hi = 0, guess
        while hi > 1:
            users = max(hi - step, 1)
            if feasible(users):
                lo = users
                break
            hi, step = users, 2 * step
    while hi is not None and hi - lo > max(1, int(tolerance * lo)):  # tolerance 0: exact
        mid = (lo + hi) // 2
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    return CapacityResult(
        max_users=lo,
        at_max=seen.get(lo),
        above=seen[hi] if hi is not None else None,
        probes=tuple(order),
        exact=all(r.proven for r in seen.values() if not r.feasible),
    )


def capacity_bound_users(spec: InstanceSpec) -> int:
    """Users whose KV fits, with the weights, in all the tiers of all groups, for the largest group
    size the instance allows (an upper bound on U*)."""
    base = resolve(spec)
    best = 0
    for size in spec.group_sizes:
        problem = base if size is None else base.with_chips_per_group(size)
        groups = spec.solver.stages or min(spec.max_groups, len(problem.nodes))
        per_user = problem.model.kv_bytes_per_user(problem.context)
        free = groups * problem.group_capacity_bytes - problem.resident_bytes[0]
        if per_user <= 0:
            return MAX_USERS
        best = max(best, int(free // per_user))
    return max(0, min(MAX_USERS, best))


def spec_with_users(spec: InstanceSpec, users: int) -> InstanceSpec:
    return spec.model_copy(update={"workload": spec.workload.model_copy(update={"users": users})})


def feasibility_probe(spec: InstanceSpec) -> InstanceSpec:
    """`spec` solved only for its verdict (a plan exists or not): its gap set to ANY_PLAN_GAP, so the
    solver stops at the first plan it finds (the module docstring says why the verdict is unchanged)."""
    return spec.model_copy(update={"solver": spec.solver.model_copy(update={"gap": ANY_PLAN_GAP})})


def with_core_parts_fixed(spec: InstanceSpec) -> InstanceSpec:
    """`spec` with its attention cores' parts fixed (InstanceSpec.core_parts) at what the automatic split
    gives at `spec`'s own workload, so that a search that changes the users or the memory probes one graph
    (planner.model.split.core_parts says why it must). Unchanged when the split is not automatic or the
    parts are already fixed."""
    if spec.core_parts is not None or not spec.automatic_split:
        return spec
    return spec.model_copy(update={"core_parts": resolve(spec).granularity.core})


def max_users(
    spec: InstanceSpec,
    cache: str | Path | Cache | None = None,
    start: int | None = None,
    progress: Callable[[int, CaseResult], None] | None = None,
    tolerance: float = 0.0,
) -> CapacityResult:
    """The largest U (exact, or to a relative `tolerance`: see search_max_users) for which `spec` (its users ignored) has a feasible plan; solver = planner.solve.

    The search starts at `start`, by default the capacity bound (capacity_bound_users), which is U*
    itself or near it when capacity binds.

    `cache` (a directory, or a Cache) keeps every solve, so a repeated or interrupted search costs nothing twice.
    """
    store = cache if isinstance(cache, Cache) or cache is None else Cache(cache)
    bound = max(1, capacity_bound_users(spec))
    if start is None:
        start = bound
    spec = with_core_parts_fixed(spec_with_users(spec, bound))  # one graph for every probe: the finest

    def oracle(users: int) -> CaseResult:  # the verdict only: the reason is asked for at U* + 1 alone
        result = solve_case(feasibility_probe(spec_with_users(spec, users)), store, explain=False)
        if progress:
            progress(users, result)
        return result

    found = search_max_users(oracle, start=start, tolerance=tolerance)
    at_max = found.at_max
    if at_max is not None:  # the optimum at U*: the instance's own gap
        full = solve_case(spec_with_users(spec, found.max_users), store, explain=False)
        # only a wall-clock time limit can stop the full solve before the plan the probe found (the same
        # steps, on a busier machine; or, where the probe's plan was the packing's, a time limit on the
        # whole-node search the full solve runs first): then the probe's plan stands, marked as stopped
        # by the time limit
        at_max = (
            full if full.feasible else dataclasses.replace(at_max, row=at_max.row | {"status": "time_limit"})
        )
    above = found.above
    if above is not None and not above.row.get("explained", True):  # the binding limit and its shortfall
        # a proven verdict is the full solve's (the module docstring): only its reason is computed
        above = solve_case(
            spec_with_users(spec, above.spec.workload.users), store, proven_infeasible=above.proven
        )
    return dataclasses.replace(found, at_max=at_max, above=above)


def max_users_many(
    specs: Sequence[InstanceSpec],
    cache: str | Path | None = None,
    workers: int | None = None,
    progress: Callable[[InstanceSpec, CapacityResult], None] | None = None,
    tolerance: float = 0.0,
) -> list[CapacityResult]:
    """max_users for several instances (exact, or to a relative `tolerance`), one search per local worker
    process (results in input order).

    The searches write their solves to `cache` themselves (so it must be a local directory)."""
    if workers == 1 or len(specs) <= 1:
        out = []
        for spec in specs:
            out.append(max_users(spec, cache, tolerance=tolerance))
            if progress:
                progress(spec, out[-1])
        return out
    results: dict[int, CapacityResult] = {}
    with executor(workers) as pool:
        search = functools.partial(max_users, tolerance=tolerance)
        futures = {pool.submit(search, spec, cache): i for i, spec in enumerate(specs)}
        try:
            for future in cf.as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if progress:
                    progress(specs[i], results[i])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return [results[i] for i in range(len(specs))]
