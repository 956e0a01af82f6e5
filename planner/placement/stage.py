"""What every solver of one stage count S reads: node classes priced by the cost model, in scaled units.

For a fixed S the micro-batch b = U / m is fixed, so every node's cost (planner.cost.node.node_cost) is
a constant table, linear in its tier split. Nodes with equal attributes form a class (Problem.node_classes)
and are priced once. Each class has two *items*: its weights (weight phase) and its KV (context phase).
An item whose split cannot matter (one allowed tier, or nothing resident and nothing read) is *fixed*
(all of it in the first allowed tier) and folded into the class's constants; the others are *free*.

Units: times in units of `time_unit_s` (about the slowest node's time), energies in units of
`energy_unit_j` J per token (about the costliest node's), capacities as fractions of one group's tier,
so that tiny test models and DeepSeek-V3 are equally well scaled for HiGHS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from planner.cost.node import TOKEN_ID_BYTES, NodeCost, boundary_cost, node_cost
from planner.problem.problem import Problem

CAPACITY_MARGIN = 1e-9  # relative; keeps solver round-off from overfilling a tier


@dataclass(frozen=True)
class Item:
    """The weights ("w") or the KV ("k") of one node of a class, scaled.

    `share[t]`: resident bytes / one group's capacity of tier t; `read[t]`: the phase's read time with all
    of it in t (roofline term); `tier[t]`: the tier's busy time for that traffic; `floor`: the phase's
    compute time; `energy[t]`: J/token with all of it in t; `unit`: the unit that runs the phase;
    `allowed`: the tiers it may use (Problem.tiers_for)."""

    cls: int
    kind: str
    unit: str
    allowed: tuple[int, ...]  # indices of the tiers it may use
    share: tuple[float, ...]
    read: tuple[float, ...]
    tier: tuple[float, ...]
    floor: float
    energy: tuple[float, ...]

    @cached_property
    def key(self) -> tuple[int, str]:
        return (self.cls, self.kind)

    @cached_property
    def f_cols(self) -> tuple[tuple, ...]:
        """Its tier-fraction columns ("f", key, t), one per tier (built once: rows name them often)."""
        return tuple(("f", self.key, t) for t in range(len(self.share)))

    @cached_property
    def p_col(self) -> tuple:
        """Its phase-time epigraph column ("p", key)."""
        return ("p", self.key)


@dataclass(frozen=True)
class NodeClass:
    """One class of nodes, scaled: its free items and what a node of it adds besides them.

    `fixed_*`: the fixed items' contributions (unit time, tier time, shares, energy); `compute_e`:
    compute energy; `op_*`: what the node's op pays once per group (overhead on `main_unit`, collective
    on `link`), counted when the class is `first` or a slice starts at it."""

    free: tuple[Item, ...]
    fixed_unit: dict[str, float]
    fixed_tier: tuple[float, ...]
    fixed_share: tuple[float, ...]
    fixed_e: float
    compute_e: float
    first: bool
    main_unit: str
    link: str
    op_overhead: float
    op_collective: float
    op_collective_e: float


@dataclass(frozen=True)
class StageData:
    """The data of one S (scaled), shared by the search, the bound, the Pyomo MILP and the explanation."""

    problem: Problem
    stages: int
    micro_batches: int
    micro_batch: float
    tiers: tuple[str, ...]
    units: tuple[str, ...]
    overlap: bool
    slots: int
    time_unit_s: float
    energy_unit_j: float
    node_class: tuple[int, ...]
    classes: tuple[NodeClass, ...]
    send: tuple[float, ...]  # scaled send time of the edge after node i (i < n-1); then the return hop
    hop: float  # scaled hop latency
    link_e: tuple[float, ...]  # scaled J/token of each hop (same indexing as send)
    t_max: float  # scaled cycle limit of the speed floor (cycle-bound: period limit / m)
    static_e: float  # scaled J/token per scaled time unit of cycle (cycle-bound: static W x m / U)
    chip_power: float | None  # scaled: a group's energy per micro-batch <= chip_power x cycle
    pipeline_power: float | None  # scaled: all groups' energy per micro-batch <= pipeline_power x cycle
    walk: bool = False  # the latency view (walk_data): tau is a slice's latency, not the cycle
    walk_max: float = 0.0  # the latency view's budget: the whole period the floor allows (scaled)
    cycle_max: float = 0.0  # the latency view's cap on each resource's busy time: the cycle limit (scaled)

    @property
    def n(self) -> int:
        return len(self.node_class)

    @cached_property
    def class_counts(self) -> np.ndarray:
        """counts[p, c]: nodes of class c among the first p nodes."""
        counts = np.zeros((self.n + 1, len(self.classes)), dtype=np.int64)
        for p, c in enumerate(self.node_class):
            counts[p + 1] = counts[p]
            counts[p + 1, c] += 1
        return counts

    def send_after(self, end: int) -> float:
        """Scaled send time of a slice ending before node `end` (the return hop for the last slice)."""
        return self.send[end - 1] if self.stages > 1 else 0.0

    def link_after(self, end: int) -> float:
        return self.link_e[end - 1] if self.stages > 1 else 0.0

    def start_class(self, start: int) -> int | None:
        """The class whose op constants a slice starting at node `start` pays again (inside an op)."""
        c = self.node_class[start]
        return None if self.classes[c].first else c


def _scales(costs: list[NodeCost], b: float) -> tuple[float, float]:
    slowest = max(
        max([c.weight_compute_s, *c.weight_read_s.values()])
        + max([c.context_compute_s, *c.kv_read_s.values()])
        + c.op_overhead_s
        + c.op_collective_s
        for c in costs
    )
    costliest = max(
        max(c.weight_j.values()) + max(c.kv_j.values()) + c.compute_j + c.op_collective_j for c in costs
    )
    return (slowest if slowest > 0 else 1.0), (costliest / b if costliest > 0 else 1.0)


def stage_data(problem: Problem, stages: int) -> StageData:
    """Price the node classes of `problem` for `stages` stages (planner.cost.node.node_cost)."""
    hw, tiers = problem.hw, problem.tiers
    m = problem.micro_batches(stages)
    b = problem.users / m
    node_class, representatives = problem.node_classes
    graph = problem.graph
    costs = [node_cost(n, graph.nodes[n], hw, b, problem.users, problem.context) for n in representatives]
    ts, es = _scales(costs, b)
    cap = [problem.tier_capacity_bytes(t) for t in tiers]
    units = tuple(u.name for u in hw.units)
    allowed = {kind: tuple(i for i, t in enumerate(tiers) if t in problem.tiers_for(kind)) for kind in "wk"}
    classes = []
    for ci, c in enumerate(costs):
        free, fixed_unit = [], dict.fromkeys(units, 0.0)
        fixed_tier, fixed_share, fixed_e = [0.0] * len(tiers), [0.0] * len(tiers), 0.0
        for kind, unit, res, read, tier_s, floor, joules in (
            ("w", c.weight_unit, c.weight_resident_bytes, c.weight_read_s, c.weight_tier_s,
             c.weight_compute_s, c.weight_j),
            ("k", c.context_unit, c.kv_resident_bytes, c.kv_read_s, c.kv_tier_s, c.context_compute_s, c.kv_j),
        ):  # fmt: skip
            item = Item(
                cls=ci,
                kind=kind,
                unit=unit,
                allowed=allowed[kind],
                share=tuple(res / x for x in cap),
                read=tuple(read[t] / ts for t in tiers),
                tier=tuple(tier_s[t] / ts for t in tiers),
                floor=floor / ts,
                energy=tuple(joules[t] / b / es for t in tiers),
            )
            if len(item.allowed) == 1 or (res == 0 and not any(item.read)):
                t0 = item.allowed[0]  # all of it in its first allowed tier
                fixed_unit[unit] += max(item.floor, item.read[t0])
                fixed_tier[t0] += item.tier[t0]
                fixed_share[t0] += item.share[t0]
                fixed_e += item.energy[t0]
            else:
                free.append(item)
        classes.append(
            NodeClass(
                free=tuple(free),
                fixed_unit=fixed_unit,
                fixed_tier=tuple(fixed_tier),
                fixed_share=tuple(fixed_share),
                fixed_e=fixed_e,
                compute_e=c.compute_j / b / es,
                first=c.first,
                main_unit=c.main_unit,
                link=c.collective_link,
                op_overhead=c.op_overhead_s / ts,
                op_collective=c.op_collective_s / ts,
                op_collective_e=c.op_collective_j / b / es,
            )
        )
    nodes = problem.nodes
    sends, links = [], []
    for u, v in zip(nodes, nodes[1:]):
        hop = boundary_cost(graph.edges[u, v]["activation_bytes"], hw, b)
        sends.append(hop.send_s / ts)
        links.append(hop.link_j / b / es)
    back = boundary_cost(TOKEN_ID_BYTES, hw, b)  # the last group returns the sampled tokens
    sends.append(back.send_s / ts)
    links.append(back.link_j / b / es)
    static = problem.static_power_w(stages)
    chip_limit, budget = problem.max_chip_power_w, problem.max_power_w
    c_chips, s_chip = hw.chips_per_group, hw.static_power_per_chip_w
    energy_per_power = ts / (b * es)  # scaled energy per watt of power over one scaled time unit
    return StageData(
        problem=problem,
        stages=stages,
        micro_batches=m,
        micro_batch=b,
        tiers=tuple(tiers),
        units=units,
        overlap=hw.units_overlap,
        slots=hw.slots,
        time_unit_s=ts,
        energy_unit_j=es,
        node_class=node_class,
        classes=tuple(classes),
        send=tuple(sends),
        hop=hw.inter_link.latency_s / ts if stages > 1 else 0.0,
        link_e=tuple(links),
        t_max=problem.period_limit_s / m / ts,
        static_e=static * m * ts / (problem.users * es),
        chip_power=None if chip_limit is None else c_chips * (chip_limit - s_chip) * energy_per_power,
        pipeline_power=None if budget is None else (budget - static) * energy_per_power,
    )


def walk_data(d: StageData) -> StageData:
    """The latency view of one S, for pipelines the walk can bind (fewer micro-batches than slots):
    each slice's tau is its latency through its group, a slice may take at most slots x the cycle limit
    (its cycle is at least latency / slots and at most period / m), each of its resources is busy at most
    the cycle limit (`cycle_max`; the timing family writes these rows), the walk at most the whole period
    the floor allows (`walk_max`), and the static energy is per unit of walk (period = walk). Power rows
    are left out: a plan from this view is checked with the full model afterwards."""
    return dataclasses.replace(
        d,
        walk=True,
        t_max=d.t_max * min(d.slots, d.micro_batches),
        walk_max=d.t_max * d.micro_batches,
        cycle_max=d.t_max,
        static_e=d.static_e / d.micro_batches,
        chip_power=None,
        pipeline_power=None,
    )
