"""Capacity: per group and tier, the resident weights and the KV of *all* users fit (FORMULATION §4)."""

from __future__ import annotations

from planner.core.errors import InfeasibleError
from planner.core.units import human_bytes
from planner.cost.pipeline import PipelineCost
from planner.placement.rows import Row, SliceView, f
from planner.placement.stage import CAPACITY_MARGIN
from planner.problem.problem import FEASIBILITY_TOL, Problem

FAMILY = "capacity"


def slice_rows(v: SliceView) -> list[Row]:
    rows = []
    for t, name in enumerate(v.d.tiers):
        terms = tuple(
            (f(it, t), mult * it.share[t]) for it, mult in v.items if it.share[t] > 0 and t in it.allowed
        )
        const, rhs = float(v.share_const[t]), v.groups * (1.0 - CAPACITY_MARGIN)
        if terms or const > rhs:
            rows.append(Row(FAMILY, f"capacity[{name}]", terms, const=const, rhs=rhs))
    return rows


def pooled_rows(v: SliceView, stages: int) -> list[Row]:
    """Packing cuts of the fluid bound (v pools all nodes over `stages` groups): the n_c nodes of class c
    occupy a tier t of the groups holding them at most sum_g min(j_g r, 1) group-tiers, r = one node's
    bytes over a group's tier, j_g the class's nodes in group g; that sum is largest when the j_g are as
    even as possible (min(j r, 1) is concave in j). Valid for any placement, it charges what whole nodes
    larger than half a tier cannot share (two 1.41 GB FFNs in a 2 GB SRAM), which the pooled capacity
    alone does not."""
    rows = []
    for c in v.present:
        n = int(v.counts[c])
        cls = v.d.classes[c]
        low, extra = divmod(n, stages)
        for t, name in enumerate(v.d.tiers):
            r = cls.fixed_share[t] + sum(it.share[t] for it in cls.free if t in it.allowed)
            if r <= 0:
                continue
            room = extra * min((low + 1) * r, 1.0) + (stages - extra) * min(low * r, 1.0)
            terms = tuple(
                (f(it, t), n * it.share[t]) for it in cls.free if it.share[t] > 0 and t in it.allowed
            )
            const = n * cls.fixed_share[t]
            if room < n * r * (1 - 1e-12):  # a cut only where packing binds
                rows.append(Row(FAMILY, f"packing[{c},{name}]", terms, const=const, rhs=room))
    return rows


def check(problem: Problem, cost: PipelineCost) -> list[str]:
    out = []
    for g in cost.groups:
        for t, used in g.resident_bytes.items():
            cap = g.capacity_bytes[t]
            if used > cap * (1 + FEASIBILITY_TOL):
                out.append(
                    f"capacity: group {g.index} holds {used / 1e9:,.3f} GB in {t}, capacity {cap / 1e9:,.3f} GB "
                    f"(over by {(used - cap) / 1e9:,.3f} GB)"
                )
    return out


def explain(problem: Problem) -> InfeasibleError | None:
    """Total bytes beyond max_groups groups, or one node beyond one group."""
    hw = problem.hw
    weights, kv = problem.resident_bytes
    groups = problem.max_groups
    per_group = problem.group_capacity_bytes
    capacity = per_group * groups
    tiers = "+".join(problem.tiers)
    who = f"{problem.users:,} users at {problem.context:,} context"
    if weights + kv > capacity * (1 + FEASIBILITY_TOL):
        return InfeasibleError(
            f"weights ({human_bytes(weights)}) and the KV cache of {who} ({human_bytes(kv)}) need "
            f"{human_bytes(weights + kv)}; {groups} groups of {hw.chips_per_group} chips hold "
            f"{human_bytes(capacity)} of {tiers} (short by {human_bytes(weights + kv - capacity)}; allow more "
            "groups or fewer users)",
            binding="capacity",
        )
    sizes = [problem.node_resident_bytes(n) for n in problem.nodes]
    for n, need in zip(problem.nodes, sizes):
        if need > per_group * (1 + FEASIBILITY_TOL):
            return InfeasibleError(
                f"node {n} alone needs {human_bytes(need)} (weights and the KV of {who}) but a group of "
                f"{hw.chips_per_group} chips holds {human_bytes(per_group)} of {tiers} (short by "
                f"{human_bytes(need - per_group)}); split it finer (--split), use more chips per group or "
                "fewer users",
                binding="capacity (one node)",
            )
    needed = fewest_groups(sizes, per_group)
    if needed > groups:
        return InfeasibleError(
            f"no contiguous split of {problem.model.name} into at most {groups} groups of {hw.chips_per_group} "
            f"chips fits the weights and the KV cache of {who} in {tiers}: the total would fit "
            f"({human_bytes(weights + kv)} of {human_bytes(capacity)}) but the parts pack into no fewer than "
            f"{needed} groups (largest part {human_bytes(max(sizes))} of a group's {human_bytes(per_group)}); "
            "allow more groups or chips per group, split finer (--split), or serve fewer users",
            binding="capacity (contiguous split)",
        )
    return None


def next_fit(sizes, per_group: float) -> list[int]:
    """counts[p]: the fewest contiguous groups of `per_group` bytes that hold the first p parts of
    `sizes` bytes: next-fit (fill each group as far as it goes), optimal for contiguous groups, and exact
    for capacity alone since a part's bytes may be split over a group's tiers freely."""
    counts, groups, filled = [0], 0, 0.0
    for s in sizes:
        if groups == 0 or filled + s > per_group * (1 + FEASIBILITY_TOL):
            groups, filled = groups + 1, 0.0
        filled += s
        counts.append(groups)
    return counts


def fewest_groups(sizes, per_group: float) -> int:
    return next_fit(sizes, per_group)[-1]
