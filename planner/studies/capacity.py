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

That space holds whole nodes per group. Then (packed_beyond) the search goes on with core parts cut
between neighbouring groups (planner.placement.packing): the packing's greedy reach is monotone in U too
(fewer users: every slice only shrinks), so a second galloping search over U finds where it stops, and
the plan at that U is the exact solver's on the cut graph. The answer is then a plan the solver proved
feasible, and U* + 1 carries two verdicts: the packing's (no cover of the chain in the groups allowed)
and the solver's on whole parts.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.model.split import CUT_STEPS, cuttable
from planner.placement.packing import Packing, pack
from planner.problem.instance import InstanceSpec
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
    packing: dict[str, int] | None = None  # the plan at U* cuts core parts (planner.placement.packing)

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
            "core_cuts": (self.packing or {}).get("cuts", 0),  # core parts cut between groups at U*
            "whole_parts_max_users": (self.packing or {}).get("whole_parts_max_users", self.max_users),
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
        result = solve_case(spec_with_users(spec, users), store, explain=False)
        if progress:
            progress(users, result)
        return result

    found = search_max_users(oracle, start=start, tolerance=tolerance)
    found = packed_beyond(spec, found, store, progress)
    if found.above is not None and not found.above.row.get("explained", True):
        found = dataclasses.replace(found, above=solve_case(found.above.spec, store))
    return found


@dataclass(frozen=True)
class _Packed:
    """A verdict of the packing (planner.placement.packing) at some users: its cuts if it fits."""

    feasible: bool
    spec: InstanceSpec | None = None
    packing: Packing | None = None
    proven: bool = True


def _packing_oracle(spec: InstanceSpec, stages: list[int]) -> Callable[[int], _Packed]:
    base = resolve(spec)
    problems = [base if size is None else base.with_chips_per_group(size) for size in spec.group_sizes]

    def packs(users: int) -> _Packed:
        missed = None
        for size, problem in zip(spec.group_sizes, problems):
            for s in stages:
                found = pack(problem.with_users(users), s)
                missed = missed or found
                if found is not None and found.complete:
                    solver = spec.solver.model_copy(update={"stages": s})
                    update = {"core_cuts": found.cuts or None, "solver": solver}
                    if size is not None:
                        update["chips_per_group"] = size
                    at = spec_with_users(spec, users).model_copy(update=update)
                    return _Packed(True, at, found)
        return _Packed(False, packing=missed)

    return packs


def _with_packing_verdict(above: CaseResult, missed: _Packed) -> CaseResult:
    """The solver's verdict at U* + 1 with what stopped the packing there put first."""
    p = missed.packing
    if missed.feasible or p is None or above.feasible:
        return above
    held = (
        "its memory is full" if p.limit == "memory" else "it would run past the cycle the speed floor allows"
    )
    where = (
        f"at {p.reached_share:.0%} of the users of {p.reached}" if p.reached_share else f"before {p.reached}"
    )
    note = (
        f"With core parts cut between groups at any 1/{CUT_STEPS} of their users, {above.spec.workload.users:,} "
        f"users do not fit {p.stages} groups: each group holds as much as it can, and the last stops "
        f"{where} because {held}. With whole parts: "
    )
    binding = "capacity" if p.limit == "memory" else above.row.get("binding", "")
    return dataclasses.replace(
        above, row=dict(above.row, binding=binding, explanation=note + above.row.get("explanation", ""))
    )


def packed_beyond(
    spec: InstanceSpec, found: CapacityResult, store: Cache | None,
    progress: Callable[[int, CaseResult], None] | None = None,
) -> CapacityResult:  # fmt: skip
    """`found` (a search over whole core parts), continued with core parts cut between groups: the
    largest U at which the packing (planner.placement.packing) fits, then the exact solve on that cut
    graph at U (the plan), trying up to two smaller U between when the solver finds none there.

    Why: groups hold whole nodes, so where capacity binds the search over parts stops up to a part per
    group short of the physics (planner.model.split.core_parts); a core's users may as well be shared
    between two neighbouring groups at any share (1/CUT_STEPS of a part here). The packing is tried at
    the instance's fixed S, else at the S of the plan at `found`'s U* and the largest S of the range.
    `above` stays the solver's verdict (and explanation) on the uncut graph at the new U* + 1."""
    graph = resolve(spec).graph
    if spec.core_cuts or not any(cuttable(graph, v) for v in graph):
        return found
    fixed = spec.solver.stages
    if fixed is not None:
        stages = [fixed]
    else:
        at = found.at_max.row.get("stages") if found.at_max is not None else None
        top = resolve(spec_with_users(spec, max(1, found.max_users))).stage_range()
        stages = sorted({s for s in (at, top[-1] if len(top) else None) if s}, reverse=True)
    packs = _packing_oracle(spec, stages)
    beyond = search_max_users(packs, start=max(1, found.max_users))
    if beyond.max_users <= found.max_users:
        return found
    lo, hi = found.max_users, beyond.max_users
    for users in dict.fromkeys((hi, lo + 3 * (hi - lo) // 4, lo + (hi - lo) // 2)):
        packed = beyond.at_max if users == hi else packs(users)
        if not packed.feasible or users <= lo:
            continue
        result = solve_case(packed.spec, store, explain=False)
        if progress:
            progress(users, result)
        if result.feasible:
            above = _with_packing_verdict(
                solve_case(spec_with_users(spec, users + 1), store), packs(users + 1)
            )
            p = packed.packing
            return dataclasses.replace(
                found,
                max_users=users,
                at_max=result,
                above=above,
                probes=found.probes + ((users, True),),
                exact=found.exact and above.proven,
                packing={
                    "stages": p.stages,
                    "groups": p.groups,
                    "cuts": len(p.cuts),
                    "whole_parts_max_users": found.max_users,
                },  # fmt: skip
            )
    return found


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
