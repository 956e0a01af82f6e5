"""Speed of light: time and energy of one decode token by category, for a simple placement.

The placement: `chips` chips in groups of hw.chips_per_group (tensor-parallel inside a group), the groups
in a pipeline holding contiguous slices of the model balanced by bytes, each group's weights then KV
filled into its tiers cheapest-energy first. The numbers come from planner.cost, as for every plan.
Datasheet peaks by default; `achievable=True` uses the hardware's calibrated fractions and overheads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:  # pandas loads only when the table is built
    import pandas as pd

from planner.core.errors import PlannerInputError
from planner.cost.pipeline import PipelineCost, pipeline_cost
from planner.hardware.catalog import Hardware
from planner.model.graph import Model, kv_tokens


def node_bytes(graph: nx.DiGraph, n: str, users: int, context: int) -> float:
    """Resident bytes of a node: its weights plus the KV of `users` users."""
    d = graph.nodes[n]
    return d["weight_bytes"] + users * d["kv_bytes_per_token"] * kv_tokens(d, context)


def balanced_partition(graph: nx.DiGraph, stages: int, users: int, context: int) -> list[list[str]]:
    """Split the node chain into `stages` contiguous, non-empty slices of about equal resident bytes."""
    nodes = list(graph.nodes)
    if stages > len(nodes):
        raise ValueError(f"{stages} stages for {len(nodes)} nodes: at most one stage per node")
    sizes = [node_bytes(graph, n, users, context) for n in nodes]
    target = sum(sizes) / stages
    groups: list[list[str]] = [[]]
    filled = 0.0
    for i, (n, size) in enumerate(zip(nodes, sizes)):
        remaining_nodes, remaining_groups = len(nodes) - i, stages - len(groups)
        must_close = remaining_nodes == remaining_groups
        if groups[-1] and (filled + size / 2 > target * len(groups) or must_close) and remaining_groups:
            groups.append([])
        groups[-1].append(n)
        filled += size
    return groups


def greedy_tier_split(
    graph: nx.DiGraph, hw: Hardware, groups: Sequence[Sequence[str]], users: int, context: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per group, fill tiers lowest pJ/bit first: all weights, then the KV; what fits nowhere spills
    into the largest tier (reported as overflow by pipeline_cost)."""
    order = sorted(hw.tiers, key=lambda t: t.pj_per_bit)
    spill = max(hw.tiers, key=lambda t: t.capacity_bytes).name
    w_split: dict[str, dict[str, float]] = {}
    k_split: dict[str, dict[str, float]] = {}
    for names in groups:
        free = {t.name: t.capacity_bytes * hw.chips_per_group for t in hw.tiers}
        for kind, split in (("w", w_split), ("k", k_split)):
            for n in names:
                d = graph.nodes[n]
                size = (
                    d["weight_bytes"]
                    if kind == "w"
                    else users * d["kv_bytes_per_token"] * kv_tokens(d, context)
                )
                fractions: dict[str, float] = {}
                left = size
                for t in order:
                    if left <= 0:
                        break
                    take = min(left, free[t.name])
                    if take > 0:
                        fractions[t.name] = take / size
                        free[t.name] -= take
                        left -= take
                if left > 0 or size == 0:
                    fractions[spill] = fractions.get(spill, 0.0) + (left / size if size else 1.0)
                split[n] = fractions
    return w_split, k_split


def chips_to_fit(model: Model, hw: Hardware, users: int, context: int) -> int:
    """Fewest chips (a multiple of the group size) whose tiers hold the weights and KV of `users` users."""
    sizes = [node_bytes(model.graph, n, users, context) for n in model.graph.nodes]
    per_group = sum(t.capacity_bytes for t in hw.tiers) * hw.chips_per_group
    if max(sizes) > per_group:
        # one node alone overflows a group, so no number of stages fits: skip the search (it would
        # cost a pipeline evaluation per node count) and return one group per node
        return model.graph.number_of_nodes() * hw.chips_per_group
    # fewest contiguous groups that could hold the chain (next-fit is optimal for contiguous slices):
    # a lower bound for the balanced split, so the search below starts there
    groups, filled = 1, 0.0
    for size in sizes:
        if filled and filled + size > per_group:
            groups, filled = groups + 1, 0.0
        filled += size
    groups = max(groups, math.ceil(sum(sizes) / per_group * 1.0000001))
    # contiguous slices waste some capacity; add groups until the balanced split fits
    for extra in range(0, model.graph.number_of_nodes()):
        stages = min(max(1, groups + extra), model.graph.number_of_nodes())
        cost = place_and_cost(model, hw, users, context, stages)
        if not cost.overflow_bytes:
            return stages * hw.chips_per_group
    return model.graph.number_of_nodes() * hw.chips_per_group


def place_and_cost(model: Model, hw: Hardware, users: int, context: int, stages: int) -> PipelineCost:
    groups = balanced_partition(model.graph, stages, users, context)
    w, k = greedy_tier_split(model.graph, hw, groups, users, context)
    return pipeline_cost(model.graph, hw, users, context, groups, w, k)


def breakdown_row(cost: PipelineCost) -> dict[str, float | int | str | bool]:
    """One SOL row: per-token time (ms) and energy (J) by category, shares in percent, throughput."""
    ms = 1e3
    time_by = {
        k: sum(g.time_by_kind_s[k] for g in cost.groups) * ms
        for k in ("weights", "kv", "compute", "links", "overhead")
    }
    time_by["links"] += sum(g.send_s + g.hop_latency_s for g in cost.groups) * ms
    time_by["wait"] = max(0.0, cost.period_s - cost.walk_s) * ms  # the token waits for a slower group
    time_ms = cost.token_s * ms
    e = cost.joules_per_token_by
    row: dict[str, float | int | str | bool] = {
        "users": cost.users,
        "context": cost.context,
        "chips": cost.chips,
        "stages": cost.stages,
        "micro_batch": cost.micro_batch,
        "weight_ms": time_by["weights"],
        "kv_ms": time_by["kv"],
        "compute_ms": time_by["compute"],
        "link_ms": time_by["links"],
        "overhead_ms": time_by["overhead"],
        "wait_ms": time_by["wait"],
        "time_ms": time_ms,
        "tokens_per_s_per_user": cost.tokens_per_s_per_user,
        "tokens_per_s": cost.tokens_per_s,
        "joules_per_token": cost.joules_per_token,
        "weight_j": e["weights"],
        "kv_j": e["kv"],
        "compute_j": e["compute"],
        "link_j": e["links"],
        "idle_j": e["idle"],
        "power_w": cost.power_w,
    }
    for k, key in (
        ("weights", "weight"),
        ("kv", "kv"),
        ("compute", "compute"),
        ("links", "link"),
        ("overhead", "overhead"),
        ("wait", "wait"),
    ):
        row[f"{key}_time_pct"] = 100.0 * time_by[k] / time_ms if time_ms else 0.0
    for k, key in (
        ("weights", "weight"),
        ("kv", "kv"),
        ("compute", "compute"),
        ("links", "link"),
        ("idle", "idle"),
    ):
        row[f"{key}_energy_pct"] = 100.0 * e[k] / cost.joules_per_token
    row["fits"] = not cost.overflow_bytes
    row["warning"] = (
        ""
        if row["fits"]
        else "does not fit: "
        + ", ".join(f"{t} over by {v / 1e9:,.1f} GB" for t, v in cost.overflow_bytes.items())
        + f" on {cost.chips} chips; give more --chips"
    )
    return row


def sol(
    model: Model,
    hw: Hardware,
    users: Sequence[int],
    context: int,
    chips: int | None = None,
    achievable: bool = False,
) -> pd.DataFrame:
    """Speed-of-light table, one row per user count (columns of breakdown_row).

    `chips` defaults to the fewest that hold the model and the KV of the largest user count.
    """
    hw_used = hw if achievable else hw.at_peak()
    if chips is None:
        chips = chips_to_fit(model, hw_used, max(users), context)
    per_group = min(chips, hw.chips_per_group)
    if chips % per_group:
        raise PlannerInputError("--chips", [f"{chips} is not a multiple of the group size {per_group}"])
    hw_used = hw_used.with_chips_per_group(per_group)
    stages = min(chips // per_group, model.graph.number_of_nodes())
    rows = []
    for u in users:
        cost = place_and_cost(model, hw_used, u, context, stages)
        row = breakdown_row(cost)
        row["model"], row["hardware"] = model.name, hw.name + (f"+{hw.kv_memory}" if hw.kv_memory else "")
        row["mode"] = "achievable" if achievable else "sol"
        row["micro_batches"] = cost.micro_batches
        if not row["fits"]:
            row["warning"] = _unfixable_by_chips(model, hw_used, u, context) or row["warning"]
        rows.append(row)
    import pandas as pd

    return pd.DataFrame(rows)


def _unfixable_by_chips(model: Model, hw: Hardware, users: int, context: int) -> str:
    """The warning when one node alone overflows a chip group, so that more chips cannot help; else ''."""
    sizes = {n: node_bytes(model.graph, n, users, context) for n in model.graph.nodes}
    biggest = max(sizes, key=sizes.get)
    capacity = sum(t.capacity_bytes for t in hw.tiers) * hw.chips_per_group
    if sizes[biggest] <= capacity:
        return ""
    return (
        f"does not fit: {biggest} alone holds {sizes[biggest] / 1e9:,.1f} GB (its weights and the KV of "
        f"{users:,} users), more than a group of {hw.chips_per_group} chips ({capacity / 1e9:,.1f} GB); "
        "more chips do not help: use fewer users, a shorter context or a smaller KV dtype"
    )
