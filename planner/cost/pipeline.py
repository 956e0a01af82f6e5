"""Cost of a whole placement: groups of a pipeline, cycle, token time and joules per token (see
planner.cost.node for the time and energy model of one node)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx

from planner.cost.node import BITS_PER_BYTE, boundary_cost, node_cost  # noqa: F401
from planner.hardware.catalog import Hardware


def micro_batches(users: int, stages: int, in_flight: int | None = None) -> int:
    """Micro-batches in flight: m = min(U, S) (FORMULATION.md §3), or at most `in_flight` when given
    (1: all users walk the pipeline as one batch)."""
    m = min(users, stages) if in_flight is None else min(users, stages, in_flight)
    return max(1, m)


@dataclass(frozen=True)
class GroupCost:
    """One chip group of a pipeline: its nodes, time per resource for one micro-batch, energy, residency."""

    index: int
    nodes: tuple[str, ...]
    busy_s: float  # sum of its nodes' times
    send_s: float  # activations to the next group (overlapped)
    time_by_kind_s: dict[str, float]  # weights / kv / compute / links / overhead: the binding phase's share
    energy_j: dict[str, float]  # dynamic, one micro-batch
    resident_bytes: dict[str, float]  # per tier, whole group
    capacity_bytes: dict[str, float]  # per tier, whole group
    read_bytes: dict[str, float]  # per tier, one micro-batch

    @property
    def cycle_s(self) -> float:
        return max(self.busy_s, self.send_s)

    @property
    def binding(self) -> str:
        """The resource that sets this group's time: the largest share, or the link when sending binds."""
        if self.send_s > self.busy_s:
            return "inter-group link"
        return max(self.time_by_kind_s, key=self.time_by_kind_s.get)


@dataclass(frozen=True)
class PipelineCost:
    """Totals of a placement: per-user token time, throughput, joules per token by category."""

    stages: int
    chips: int
    users: int
    context: int
    micro_batch: float
    micro_batches: int
    cycle_s: float
    token_s: float
    groups: tuple[GroupCost, ...]
    joules_per_token_by: dict[str, float]
    static_power_w: float
    hop_latency_s: float
    overflow_bytes: dict[str, float] = field(default_factory=dict)

    @property
    def joules_per_token(self) -> float:
        return sum(self.joules_per_token_by.values())

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1.0 / self.token_s

    @property
    def tokens_per_s(self) -> float:
        return self.users / self.token_s

    @property
    def power_w(self) -> float:
        return self.joules_per_token * self.tokens_per_s


def pipeline_cost(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    groups: Sequence[Sequence[str]],
    weight_split: Mapping[str, Mapping[str, float]],
    kv_split: Mapping[str, Mapping[str, float]],
    in_flight: int | None = None,
) -> PipelineCost:
    """Cost of a placement: `groups[g]` lists the nodes of stage g in order; splits give tier fractions.

    J/token = (sum over groups of one micro-batch's dynamic energy + hops) / b
              + static power of all chips x S x cycle / U.
    `in_flight`: the most micro-batches in flight; m = min(U, S, in_flight), default min(U, S) (the deep
    pipeline); 1 walks all U users through the S stages as one batch.
    """
    stages = len(groups)
    m = micro_batches(users, stages, in_flight)
    b = users / m
    chips = stages * hw.chips_per_group
    group_costs, link_j, hop_latency = [], 0.0, 0.0
    for g, names in enumerate(groups):
        busy, energy = 0.0, dict.fromkeys(("weights", "kv", "compute", "links"), 0.0)
        by_kind = dict.fromkeys(("weights", "kv", "compute", "links", "overhead"), 0.0)
        resident = {t.name: 0.0 for t in hw.tiers}
        read = {t.name: 0.0 for t in hw.tiers}
        for n in names:
            c = node_cost(n, graph.nodes[n], hw, b, users, context)
            w, k = weight_split[n], kv_split[n]
            busy += c.time_s(w, k)
            for cat, j in c.energy_j(w, k).items():
                energy[cat] += j
            wp, kp = c.weight_phase_s(w), c.context_phase_s(k)
            by_kind["weights" if wp > c.weight_compute_s else "compute"] += wp
            by_kind["kv" if kp > c.context_compute_s else "compute"] += kp
            by_kind["links"] += c.collective_s
            by_kind["overhead"] += c.overhead_s
            for t in hw.tiers:
                resident[t.name] += w.get(t.name, 0.0) * c.weight_resident_bytes
                resident[t.name] += k.get(t.name, 0.0) * c.kv_resident_bytes
                read[t.name] += (
                    w.get(t.name, 0.0) * c.weight_read_bytes + k.get(t.name, 0.0) * c.kv_moved_bytes
                )
        send_s = 0.0
        if g < stages - 1:
            hop = boundary_cost(graph.edges[names[-1], groups[g + 1][0]]["activation_bytes"], hw, b)
            send_s, link_j, hop_latency = hop.send_s, link_j + hop.link_j, hop_latency + hop.latency_s
        group_costs.append(
            GroupCost(
                index=g,
                nodes=tuple(names),
                busy_s=busy,
                send_s=send_s,
                time_by_kind_s=by_kind,
                energy_j=energy,
                resident_bytes=resident,
                capacity_bytes={t.name: t.capacity_bytes * hw.chips_per_group for t in hw.tiers},
                read_bytes=read,
            )
        )
    cycle = max(gc.cycle_s for gc in group_costs)
    token_s = stages * cycle + hop_latency
    static_w = chips * hw.static_power_w
    per_token = {
        cat: sum(gc.energy_j[cat] for gc in group_costs) / b for cat in ("weights", "kv", "compute", "links")
    }
    per_token["links"] += link_j / b
    per_token["idle"] = static_w * stages * cycle / users
    overflow = {
        t: sum(gc.resident_bytes[t] for gc in group_costs if gc.resident_bytes[t] > gc.capacity_bytes[t])
        - sum(gc.capacity_bytes[t] for gc in group_costs if gc.resident_bytes[t] > gc.capacity_bytes[t])
        for t in (tier.name for tier in hw.tiers)
    }
    return PipelineCost(
        stages=stages,
        chips=chips,
        users=users,
        context=context,
        micro_batch=b,
        micro_batches=m,
        cycle_s=cycle,
        token_s=token_s,
        groups=tuple(group_costs),
        joules_per_token_by=per_token,
        static_power_w=static_w,
        hop_latency_s=hop_latency,
        overflow_bytes={t: v for t, v in overflow.items() if v > 0},
    )
