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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from planner.core.fileio import read_mapping
from planner.cost.node import node_cost
from planner.cost.pipeline import PipelineCost, pipeline_cost
from planner.hardware.catalog import Hardware, HardwareSpec, hardware_path
from planner.plans.plan import Plan, evaluate, summary
from planner.problem.problem import Problem

DEFAULT_CACHE = Path(".planner-cache") / "cases"
CASE_COLUMNS = (  # the columns case_row adds, in table order
    "tiers",
    "stages",
    "chips",
    "micro_batches",
    "micro_batch",
    "cycle_ms",
    "token_ms",
    "tokens_per_s_per_user",
    "tokens_per_s",
    "power_w",
    "joules_per_token",
    "weight_j",
    "kv_j",
    "compute_j",
    "link_j",
    "idle_j",
    "gap",
    "kv_stored_gb",
    "kv_moved_gb_per_s",
    "kv_demand_per_s",
    "kv_gb_per_s_per_die",
    "kv_tier",
    "kv_tier_share",
    "kv_tier_bw_per_capacity",
    "kv_tier_fill",
    "kv_tier_bw_use",
    "one_mb_token_ms",
    "one_mb_tokens_per_s_per_user",
    "one_mb_joules_per_token",
    "one_mb_meets_floor",
    "one_mb_max_users",
)
FLOOR_TOLERANCE = 1e-9  # relative, as planner.plan.evaluate


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
    """KV traffic of a plan: each group handles one micro-batch of b users per cycle of cost.cycle_s."""
    hw, graph = problem.hw, problem.model.graph
    stored = {t.name: 0.0 for t in hw.tiers}
    moved = dict(stored)
    for names in plan.groups:
        for n in names:
            c = node_cost(n, graph.nodes[n], hw, cost.micro_batch, problem.users, problem.context)
            for t, f in plan.kv_split[n].items():
                stored[t] += f * c.kv_resident_bytes
                moved[t] += f * c.kv_moved_bytes / cost.cycle_s
    tier = {t: sum(g.read_bytes[t] for g in cost.groups) / cost.cycle_s for t in stored}
    return KvTraffic(stored, moved, tier)


def one_micro_batch_cost(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    groups: Sequence[Sequence[str]],
    weight_split: Mapping[str, Mapping[str, float]],
    kv_split: Mapping[str, Mapping[str, float]],
) -> PipelineCost:
    """Cost of `groups` with all users in one micro-batch (planner.cost.pipeline_cost, in_flight=1):
    token time S * T(b = U) + hop latencies, J/token = dynamic energy / U + static W x S x T / U."""
    return pipeline_cost(graph, hw, users, context, groups, weight_split, kv_split, in_flight=1)


def one_batch_max_users(
    graph: nx.DiGraph,
    hw: Hardware,
    context: int,
    min_tokens_per_s: float,
    groups: Sequence[Sequence[str]],
    weight_split: Mapping[str, Mapping[str, float]],
    kv_split: Mapping[str, Mapping[str, float]],
    limit: int = 100_000_000,
) -> int:
    """Most users this placement serves with one micro-batch in flight at the floor (0 if none).

    Monotone for a fixed placement (b = U: every time term grows with b, KV resident grows with U), so
    doubling then bisection is exact; each step is one evaluation of planner.cost, no solver.
    """

    def ok(users: int) -> bool:
        c = one_micro_batch_cost(graph, hw, users, context, groups, weight_split, kv_split)
        return not c.overflow_bytes and c.tokens_per_s_per_user >= min_tokens_per_s * (1 - FLOOR_TOLERANCE)

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


def case_row(problem: Problem, plan: Plan) -> dict[str, Any]:
    """The result columns of a sweep row: the plan's totals, J/token by category, KV traffic, and the
    same placement with one micro-batch in flight. Units in the names (ms, J, W, GB, /s)."""
    cost = evaluate(problem, plan).cost
    facts = summary(plan, cost)
    e = cost.joules_per_token_by
    kv = kv_traffic(problem, plan, cost)
    hw, graph = problem.hw, problem.model.graph
    dies = cost.chips * reticle_dies_per_chip(problem.spec.hardware)
    tier = hw.tier(kv.main_tier)
    chips = cost.chips
    row: dict[str, Any] = {
        "status": facts["status"],
        "tiers": "+".join(problem.tiers),
        "stages": cost.stages,
        "chips": cost.chips,
        "micro_batches": facts["micro_batches"],
        "micro_batch": cost.micro_batch,
        "cycle_ms": cost.cycle_s * 1e3,
        "token_ms": cost.token_s * 1e3,
        "tokens_per_s_per_user": cost.tokens_per_s_per_user,
        "tokens_per_s": cost.tokens_per_s,
        "power_w": cost.power_w,
        "joules_per_token": cost.joules_per_token,
        "weight_j": e["weights"],
        "kv_j": e["kv"],
        "compute_j": e["compute"],
        "link_j": e["links"],
        "idle_j": e["idle"],
        "gap": facts["gap"],
        "kv_stored_gb": sum(kv.stored_bytes.values()) / 1e9,
        "kv_moved_gb_per_s": sum(kv.moved_bytes_per_s.values()) / 1e9,
        "kv_demand_per_s": kv.demand_per_s,
        "kv_gb_per_s_per_die": sum(kv.moved_bytes_per_s.values()) / dies / 1e9,
        "kv_tier": kv.main_tier,
        "kv_tier_share": kv.stored_bytes[kv.main_tier] / max(sum(kv.stored_bytes.values()), 1e-30),
        "kv_tier_bw_per_capacity": tier.bw_bytes_per_s / tier.capacity_bytes,
        "kv_tier_fill": sum(g.resident_bytes[tier.name] for g in cost.groups) / (tier.capacity_bytes * chips),
        "kv_tier_bw_use": kv.tier_bytes_per_s[tier.name] / (tier.bw_bytes_per_s * chips),
    }
    one = one_micro_batch_cost(
        graph, hw, problem.users, problem.context, plan.groups, plan.weight_split, plan.kv_split
    )
    row |= {
        "one_mb_token_ms": one.token_s * 1e3,
        "one_mb_tokens_per_s_per_user": one.tokens_per_s_per_user,
        "one_mb_joules_per_token": one.joules_per_token,
        "one_mb_meets_floor": bool(
            one.tokens_per_s_per_user >= problem.min_tokens_per_s * (1 - FLOOR_TOLERANCE)
            and not one.overflow_bytes
        ),
        "one_mb_max_users": one_batch_max_users(
            graph,
            hw,
            problem.context,
            problem.min_tokens_per_s,
            plan.groups,
            plan.weight_split,
            plan.kv_split,
        ),
    }
    return row


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
