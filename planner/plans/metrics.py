"""What a solved case reports beyond its plan's totals (the columns of a sweep row), from planner.cost.

Per case (a row of a sweep table) this module adds:
- KV traffic: KV bytes stored, KV bytes moved per second (read of the cache plus the new token's write)
  per tier, per reticle die, and the demand per byte stored (1/s);
- the same placement run with ONE micro-batch in flight: all U users in one batch of b = U (so each group
  reads its weights once per U users but the batch walks the S stages alone), per-user token time
  S * T(b = U) + hop latencies, as FORMULATION.md §3 defines it for the deep pipeline. planner.cost has
  no micro-batch switch, so this is computed with planner.cost.pipeline_cost on each group alone (one
  group is one micro-batch: b = U, the KV of all U users resident) plus planner.cost.boundary_cost for the
  hops; no formula is repeated here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.core.fileio import read_mapping
from planner.cost.node import node_cost
from planner.cost.pipeline import PipelineCost, pipeline_cost
from planner.hardware.catalog import HardwareSpec, hardware_path
from planner.placement.constraints import check
from planner.plans.plan import Plan, evaluate, plan_problem, summary
from planner.problem.problem import Problem

if TYPE_CHECKING:
    import pandas as pd  # annotations only: a worker solving cases never imports pandas

DEFAULT_CACHE = Path(".planner-cache") / "cases"
CASE_COLUMNS = (  # the columns case_row adds, in table order
    "tiers",
    "stages",
    "core_cuts",
    "chips_per_group_used",
    "chips",
    "micro_batches",
    "micro_batch",
    "cycle_ms",
    "walk_ms",
    "token_ms",
    "tokens_per_s_per_user",
    "tokens_per_s",
    "power_w",
    "max_chip_power_w",
    "joules_per_token",
    "weight_j",
    "kv_j",
    "compute_j",
    "link_j",
    "idle_j",
    "gap",
    "graph_nodes",
    "kv_stored_gb",
    "kv_moved_gb_per_s",
    "kv_demand_per_s",
    "kv_gb_per_s_per_die",
    "kv_tier",
    "kv_tier_share",
    "kv_tier_bw_per_capacity",
    "kv_tier_fill",
    "kv_tier_bw_use",
    "standby_w",
    "memory_usd",
    "memory_usd_per_user",
    "one_mb_token_ms",
    "one_mb_tokens_per_s_per_user",
    "one_mb_joules_per_token",
    "one_mb_meets_floor",
    "one_mb_max_users",
)


# ---------------------------------------------------------------------------------------------- metrics


def reticle_dies_per_chip(hardware: str) -> int:
    """chip.reticle_dies of a hardware file (1 when the file cannot be read as a shipped name/path)."""
    try:
        return HardwareSpec.model_validate(read_mapping(hardware_path(hardware))).chip.reticle_dies
    except Exception:  # the hardware was validated when the case was solved; be lenient here
        return 1


@dataclass(frozen=True)
class KvTraffic:
    """KV bytes stored and moved per second, per tier; moved = read of the cache + write of one token."""

    stored_bytes: dict[str, float]
    moved_bytes_per_s: dict[str, float]
    tier_bytes_per_s: dict[str, float]  # everything read from the tier per second (weights + KV)

    @property
    def demand_per_s(self) -> float:
        """KV bytes moved per second per KV byte stored (1/s): about the per-user token rate."""
        stored = sum(self.stored_bytes.values())
        return sum(self.moved_bytes_per_s.values()) / stored if stored else 0.0

    @property
    def main_tier(self) -> str:
        return max(self.stored_bytes, key=self.stored_bytes.get)


def kv_traffic(problem: Problem, plan: Plan, cost: PipelineCost) -> KvTraffic:
    """KV traffic of a plan: each group handles m micro-batches of b users per period."""
    hw, graph = problem.hw, problem.graph
    per_s = cost.micro_batches / cost.period_s
    stored = {t.name: 0.0 for t in hw.tiers}
    moved = dict(stored)
    for names in plan.groups:
        for n in names:
            c = node_cost(n, graph.nodes[n], hw, cost.micro_batch, problem.users, problem.context)
            for t, f in plan.kv_split[n].items():
                stored[t] += f * c.kv_resident_bytes
                moved[t] += f * c.kv_moved_bytes * per_s
    tier = {t: sum(g.read_bytes[t] for g in cost.groups) * per_s for t in stored}
    return KvTraffic(stored, moved, tier)


def one_micro_batch_cost(problem: Problem, plan: Plan, users: int | None = None) -> PipelineCost:
    """Cost of the plan's placement with all users in one micro-batch (pipeline_cost, in_flight=1): the
    batch walks the S groups, period = the walk, J/token = dynamic energy / U + static W x walk / U."""
    users = problem.users if users is None else users
    return pipeline_cost(
        problem.graph, problem.hw, users, problem.context, plan.groups, plan.weight_split, plan.kv_split, 1
    )


def feasible(problem: Problem, cost: PipelineCost) -> bool:
    """The one definition of a feasible placement: no constraint family finds a violation."""
    return not check(problem, cost)


def one_batch_max_users(problem: Problem, plan: Plan, limit: int = 100_000_000) -> int:
    """Most users this placement serves with one micro-batch in flight at the floor (0 if none).

    Monotone for a fixed placement (b = U: every time term grows with b, KV resident grows with U), so
    doubling then bisection is exact; each step is one evaluation of planner.cost, no solver.
    """

    def ok(users: int) -> bool:
        return feasible(problem.with_users(users), one_micro_batch_cost(problem, plan, users))

    if not ok(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and ok(hi):
        lo, hi = hi, 2 * hi
    if hi > limit:
        return limit if ok(limit) else _bisect(ok, lo, limit)
    return _bisect(ok, lo, hi)


def _bisect(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


ONE_BATCH_COLUMNS = (  # the same placement with one micro-batch in flight (case_row)
    "one_mb_token_ms",
    "one_mb_tokens_per_s_per_user",
    "one_mb_joules_per_token",
    "one_mb_meets_floor",
    "one_mb_max_users",
)


def case_row(problem: Problem, plan: Plan, one_batch: bool = True) -> dict[str, Any]:
    """The result columns of a sweep row: the plan's totals, J/token by category, KV traffic, and (unless
    `one_batch` is False: a verdict's row, whose plan is any plan that exists, left None) the same
    placement with one micro-batch in flight. Units in the names (ms, J, W, GB, /s)."""
    cost = evaluate(problem, plan).cost
    problem = plan_problem(problem, plan)[0]  # the group size the plan chose
    facts = summary(plan, cost)
    e = cost.joules_per_token_by
    kv = kv_traffic(problem, plan, cost)
    hw = problem.hw
    dies = cost.chips * reticle_dies_per_chip(problem.spec.hardware)
    tier = hw.tier(kv.main_tier)
    chips = cost.chips
    row: dict[str, Any] = {
        "status": facts["status"],
        "tiers": "+".join(problem.tiers),
        "stages": cost.stages,
        "core_cuts": len(plan.instance.core_cuts or {}),  # core parts cut between groups (placement.packing)
        "chips_per_group_used": cost.chips_per_group,
        "chips": cost.chips,
        "micro_batches": facts["micro_batches"],
        "micro_batch": cost.micro_batch,
        "cycle_ms": cost.cycle_s * 1e3,
        "walk_ms": cost.walk_s * 1e3,
        "token_ms": cost.token_s * 1e3,
        "tokens_per_s_per_user": cost.tokens_per_s_per_user,
        "tokens_per_s": cost.tokens_per_s,
        "power_w": cost.power_w,
        "max_chip_power_w": cost.max_chip_power_w,
        "joules_per_token": cost.joules_per_token,
        "weight_j": e["weights"],
        "kv_j": e["kv"],
        "compute_j": e["compute"],
        "link_j": e["links"],
        "idle_j": e["idle"],
        "gap": facts["gap"],
        "graph_nodes": len(problem.nodes),
        "kv_stored_gb": sum(kv.stored_bytes.values()) / 1e9,
        "kv_moved_gb_per_s": sum(kv.moved_bytes_per_s.values()) / 1e9,
        "kv_demand_per_s": kv.demand_per_s,
        "kv_gb_per_s_per_die": sum(kv.moved_bytes_per_s.values()) / dies / 1e9,
        "kv_tier": kv.main_tier,
        "kv_tier_share": kv.stored_bytes[kv.main_tier] / max(sum(kv.stored_bytes.values()), 1e-30),
        "kv_tier_bw_per_capacity": tier.bw_bytes_per_s / tier.capacity_bytes,
        "kv_tier_fill": sum(g.resident_bytes[tier.name] for g in cost.groups) / (tier.capacity_bytes * chips),
        "kv_tier_bw_use": kv.tier_bytes_per_s[tier.name] / (tier.bw_bytes_per_s * chips),
        "standby_w": chips * sum(t.standby_w for t in hw.tiers),
    }
    costs = [t.cost_usd for t in hw.tiers if not t.on_chip]  # off-chip memory priced where sourced
    memory_usd = chips * sum(costs) if costs and None not in costs else None
    row["memory_usd"] = memory_usd
    row["memory_usd_per_user"] = None if memory_usd is None else memory_usd / problem.users
    if not one_batch:
        return row | dict.fromkeys(ONE_BATCH_COLUMNS)
    one = one_micro_batch_cost(problem, plan)
    values = (
        one.token_s * 1e3,
        one.tokens_per_s_per_user,
        one.joules_per_token,
        feasible(problem, one),
        one_batch_max_users(problem, plan),
    )
    return row | dict(zip(ONE_BATCH_COLUMNS, values, strict=True))


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """Feasible points (users, joules_per_token) that no other point beats on both (more users, less J)."""
    ok = (
        frame[frame["joules_per_token"].notna() & (frame["users"] > 0)]
        .reset_index(drop=True)
        .sort_values(["users", "joules_per_token"], ascending=[False, True])
    )
    keep, best = [], math.inf
    for i, row in ok.iterrows():
        if row["joules_per_token"] < best:
            keep.append(i)
            best = row["joules_per_token"]
    return ok.loc[keep].sort_values("users")
