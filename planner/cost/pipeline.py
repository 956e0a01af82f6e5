"""Cost of a whole placement: the chip groups of a pipeline, their cycle, the period between a user's
tokens and joules per token (planner.cost.node prices each node).

Time model of a group (FORMULATION §3 and §7; stated once, used everywhere):
- one micro-batch passes a group's nodes in order; its *latency* through the group is the sum of its
  phases, overheads and collectives, plus sending its activations to the next group and the hop latency
  (the last group returns the sampled tokens to the first);
- a group works on at most `slots` micro-batches at once (design assumption: one per unit when the
  units overlap, else one; a micro-batch holds its place until it has been sent), so its *cycle* (the
  time between two micro-batches it finishes) is at least latency / slots, and at least the busy time of
  each of its resources: each unit (the phases it runs and their overheads), and when units overlap each
  memory tier (all traffic at the tier's rate), each link (collectives) and the outgoing send. Without
  overlap the group is one resource and its cycle is its latency;
- the pipeline's cycle T is the slowest group's (or a slower clock the plan chose, e.g. under a power
  limit); with m micro-batches in flight, each user's tokens come one *period* apart:
  period = max(walk, m x T), walk = the sum of the groups' latencies (a closed loop of S groups with m
  micro-batches: each must walk the loop, each group serves all m);
- m = min(U, slots x S) by default (the deep pipeline), or at most --micro-batches; b = U / m.
J/token = dynamic energy of one micro-batch over all groups (and hops) / b + static power of all chips
x period / U. A chip of group g draws m x E_g / (chips x period) + its static power.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx

from planner.cost.node import DYNAMIC, TOKEN_ID_BYTES, boundary_cost, node_cost
from planner.hardware.catalog import Hardware


def micro_batches(users: int, stages: int, in_flight: int | None = None, slots: int = 1) -> int:
    """Micro-batches in flight: m = min(U, slots x S) (the deep pipeline, FORMULATION §3 with one
    micro-batch per unit of a group), or min(U, in_flight) when given (1: all users in one batch)."""
    m = min(users, stages * slots) if in_flight is None else min(users, in_flight)
    return max(1, m)


@dataclass(frozen=True)
class GroupCost:
    """One chip group of a pipeline: its nodes, time per resource for one micro-batch, energy, residency."""

    index: int
    nodes: tuple[str, ...]
    unit_busy_s: dict[str, float]  # phases and overheads on each unit (all of it on a one-unit group)
    tier_busy_s: dict[str, float]  # all traffic of each tier at the tier's rate
    link_busy_s: dict[str, float]  # collectives on the intra-group link ("intra") and the A2E path ("a2e")
    send_s: float  # activations to the next group
    hop_latency_s: float
    latency_s: float  # one micro-batch through the group, send and hop included
    slots: int
    overlap: bool
    time_by_kind_s: dict[str, float]  # weights / kv / compute / links / overhead: the binding phase's share
    energy_j: dict[str, float]  # dynamic, one micro-batch
    resident_bytes: dict[str, float]  # per tier, whole group
    capacity_bytes: dict[str, float]  # per tier, whole group
    read_bytes: dict[str, float]  # per tier, one micro-batch

    @property
    def busy_s(self) -> float:
        """Work of one micro-batch in this group (its latency less the send and the hop)."""
        return self.latency_s - self.send_s - self.hop_latency_s

    def resource_times(self) -> dict[str, float]:
        """Every lower bound on this group's cycle, by resource name."""
        times = {"latency / slots" if self.slots > 1 else "latency": self.latency_s / self.slots}
        if self.overlap:
            times |= {f"{u} unit": s for u, s in self.unit_busy_s.items()}
            times |= {f"{t} bandwidth": s for t, s in self.tier_busy_s.items()}
            times |= {f"{k} link": s for k, s in self.link_busy_s.items() if s}
            times["inter-group link"] = self.send_s
        return times

    @property
    def cycle_s(self) -> float:
        return max(self.resource_times().values())

    @property
    def binding(self) -> str:
        """What sets this group's cycle: with one resource, the largest share of its time (weights, kv,
        compute, links, overhead) or the inter-group link when the send is larger; else the resource."""
        times = self.resource_times()
        worst = max(times, key=times.get)
        if worst.startswith("latency"):
            if self.send_s + self.hop_latency_s > self.busy_s:
                return "inter-group link"
            return max(self.time_by_kind_s, key=self.time_by_kind_s.get)
        return worst


@dataclass(frozen=True)
class PipelineCost:
    """Totals of a placement: cycle, period between a user's tokens, throughput, joules per token."""

    stages: int
    chips: int
    users: int
    context: int
    micro_batch: float
    micro_batches: int
    cycle_s: float
    walk_s: float
    groups: tuple[GroupCost, ...]
    joules_per_token_by: dict[str, float]
    static_power_w: float  # all chips
    hop_latency_s: float
    chips_per_group: int
    static_power_per_chip_w: float
    link_j: float  # inter-group hops, one micro-batch
    overflow_bytes: dict[str, float] = field(default_factory=dict)

    @property
    def period_s(self) -> float:
        """Time between two tokens of a user: max(walk, m x cycle)."""
        return max(self.walk_s, self.micro_batches * self.cycle_s)

    @property
    def token_s(self) -> float:
        return self.period_s

    @property
    def joules_per_token(self) -> float:
        return sum(self.joules_per_token_by.values())

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1.0 / self.period_s

    @property
    def tokens_per_s(self) -> float:
        return self.users / self.period_s

    @property
    def power_w(self) -> float:
        return self.joules_per_token * self.tokens_per_s

    def group_power_w(self, g: GroupCost) -> float:
        """Power of group g (all its chips), W: its dynamic energy per period plus static power."""
        dynamic = sum(g.energy_j.values()) * self.micro_batches / self.period_s
        return dynamic + self.chips_per_group * self.static_power_per_chip_w

    @property
    def max_chip_power_w(self) -> float:
        return max(self.group_power_w(g) for g in self.groups) / self.chips_per_group


def pipeline_cost(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    groups: Sequence[Sequence[str]],
    weight_split: Mapping[str, Mapping[str, float]],
    kv_split: Mapping[str, Mapping[str, float]],
    in_flight: int | None = None,
    clock_s: float | None = None,
) -> PipelineCost:
    """Cost of a placement: `groups[g]` lists the nodes of stage g in order; splits give tier fractions.

    `in_flight`: the most micro-batches in flight (default slots x S, the deep pipeline; 1: all users
    in one batch). `clock_s`: the cycle the plan runs at when slower than its slowest group (seconds)."""
    stages = len(groups)
    slots = hw.slots
    m = micro_batches(users, stages, in_flight, slots)
    b = users / m
    c = hw.chips_per_group
    tiers = [t.name for t in hw.tiers]
    units = [u.name for u in hw.units]
    group_costs, link_j, hops = [], 0.0, 0.0
    for g, names in enumerate(groups):
        unit_busy = dict.fromkeys(units, 0.0)
        tier_busy = dict.fromkeys(tiers, 0.0)
        link_busy = {"intra": 0.0, "a2e": 0.0}
        energy = dict.fromkeys(DYNAMIC, 0.0)
        by_kind = dict.fromkeys(("weights", "kv", "compute", "links", "overhead"), 0.0)
        resident = dict.fromkeys(tiers, 0.0)
        read = dict.fromkeys(tiers, 0.0)
        work = 0.0
        for i, n in enumerate(names):
            cost = node_cost(n, graph.nodes[n], hw, b, users, context)
            w, k = weight_split[n], kv_split[n]
            carries = cost.first or i == 0  # a group starting inside a node pays its op's constants
            overhead = cost.op_overhead_s if carries else 0.0
            collective = cost.op_collective_s if carries else 0.0
            wp, kp = cost.weight_phase_s(w), cost.context_phase_s(k)
            unit_busy[cost.weight_unit] += wp
            unit_busy[cost.context_unit] += kp
            unit_busy[cost.main_unit] += overhead
            link_busy[cost.collective_link] += collective
            work += wp + kp + overhead + collective
            for cat, j in cost.energy_j(w, k).items():
                energy[cat] += j
            if carries and not cost.first:
                energy["links"] += cost.op_collective_j
            by_kind["weights" if wp > cost.weight_compute_s else "compute"] += wp
            by_kind["kv" if kp > cost.context_compute_s else "compute"] += kp
            by_kind["links"] += collective
            by_kind["overhead"] += overhead
            for t in tiers:
                wt, kt = w.get(t, 0.0), k.get(t, 0.0)
                resident[t] += wt * cost.weight_resident_bytes + kt * cost.kv_resident_bytes
                read[t] += wt * cost.weight_read_bytes + kt * cost.kv_moved_bytes
                tier_busy[t] += wt * cost.weight_tier_s[t] + kt * cost.kv_tier_s[t]
        send_s = hop_s = 0.0
        if stages > 1:
            if g < stages - 1:
                carried = graph.edges[names[-1], groups[g + 1][0]]["activation_bytes"]
            else:  # the sampled token of each user goes back to the first group
                carried = TOKEN_ID_BYTES
            hop = boundary_cost(carried, hw, b)
            send_s, hop_s, link_j = hop.send_s, hop.latency_s, link_j + hop.link_j
            hops += hop_s
        if not hw.units_overlap:  # one resource: everything on the one unit
            unit_busy = {units[0]: work} if len(units) == 1 else unit_busy
        group_costs.append(
            GroupCost(
                index=g,
                nodes=tuple(names),
                unit_busy_s=unit_busy,
                tier_busy_s=tier_busy,
                link_busy_s=link_busy,
                send_s=send_s,
                hop_latency_s=hop_s,
                latency_s=work + send_s + hop_s,
                slots=slots,
                overlap=hw.units_overlap,
                time_by_kind_s=by_kind,
                energy_j=energy,
                resident_bytes=resident,
                capacity_bytes={t.name: t.capacity_bytes * c for t in hw.tiers},
                read_bytes=read,
            )
        )
    cycle = max(gc.cycle_s for gc in group_costs)
    if clock_s is not None:
        cycle = max(cycle, clock_s)
    walk = sum(gc.latency_s for gc in group_costs)
    period = max(walk, m * cycle)
    static_per_chip = hw.static_power_per_chip_w
    chips = stages * c
    per_token = {cat: sum(gc.energy_j[cat] for gc in group_costs) / b for cat in DYNAMIC}
    per_token["links"] += link_j / b
    per_token["idle"] = chips * static_per_chip * period / users
    overflow = {}
    for t in tiers:
        over = sum(max(0.0, gc.resident_bytes[t] - gc.capacity_bytes[t]) for gc in group_costs)
        if over > 0:
            overflow[t] = over
    return PipelineCost(
        stages=stages,
        chips=chips,
        users=users,
        context=context,
        micro_batch=b,
        micro_batches=m,
        cycle_s=cycle,
        walk_s=walk,
        groups=tuple(group_costs),
        joules_per_token_by=per_token,
        static_power_w=chips * static_per_chip,
        hop_latency_s=hops,
        chips_per_group=c,
        static_power_per_chip_w=static_per_chip,
        link_j=link_j,
        overflow_bytes=overflow,
    )
