"""The problem: the one object the optimizer, the evaluator, the explanations and the studies take.

A Problem is an instance with its model and hardware loaded, its graph split into parts
(planner.model.split), its nodes grouped into cost classes, and its limits resolved. Quantities derived
from it are defined here once, next to the cost model: resident bytes, group capacity, static power,
micro-batches in flight, the period limit of the speed floor, the stage range, and the one feasibility
tolerance (FEASIBILITY_TOL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import networkx as nx

from planner.core.errors import PlannerInputError
from planner.cost.pipeline import micro_batches
from planner.hardware.catalog import Hardware, hardware_files, load_hardware
from planner.model.config import resolve_config_path
from planner.model.graph import Dtypes, Model, kv_tokens, load_model
from planner.model.split import (
    Granularity,
    auto_granularity,
    core_parts,
    cut_graph,
    cuttable,
    granularity_for_part_bytes,
    layer_kv_bytes,
    split_graph,
)
from planner.problem.instance import InstanceSpec, SolverSpec, WorkloadSpec

FEASIBILITY_TOL = 1e-6  # relative: a plan may miss a capacity, a speed floor or a power limit by this much
_NAME_ATTRS = {"order", "layer", "part", "op"}  # node attributes that do not change a node's cost


@dataclass(frozen=True)
class Problem:
    """An instance ready to solve: model, hardware (with the instance's chips per group), allowed tiers,
    the split graph, node classes and limits. Build with `resolve`; vary with `with_users` and
    `with_chips_per_group` (they reuse the loaded model and hardware)."""

    spec: InstanceSpec
    model: Model
    hw: Hardware
    tiers: tuple[str, ...]
    granularity: Granularity
    graph: nx.DiGraph
    base_hw: Hardware  # the hardware as its file gives it (before chips_per_group is applied)

    # ---------------------------------------------------------------------------------- the workload
    @property
    def users(self) -> int:
        return self.spec.workload.users

    @property
    def context(self) -> int:
        return self.spec.workload.context

    @property
    def min_tokens_per_s(self) -> float:
        return self.spec.workload.min_tokens_per_s

    @property
    def max_groups(self) -> int:
        return self.spec.max_groups

    @property
    def in_flight(self) -> int | None:
        """The instance's cap on micro-batches in flight (None: the deep pipeline's slots x S)."""
        return self.spec.workload.micro_batches

    @property
    def period_limit_s(self) -> float:
        """The longest period between a user's tokens the speed floor allows (s)."""
        return 1.0 / self.min_tokens_per_s

    def micro_batches(self, stages: int) -> int:
        return micro_batches(self.users, stages, self.in_flight, self.hw.slots)

    def micro_batch(self, stages: int) -> float:
        """Users per micro-batch b = U / m."""
        return self.users / self.micro_batches(stages)

    def cycle_bound(self, stages: int) -> bool:
        """True when the period is m x cycle for every placement: m >= slots x S, so the walk (the sum of
        the groups' latencies, each at most slots x cycle) never exceeds it."""
        return self.micro_batches(stages) >= self.hw.slots * stages

    # ---------------------------------------------------------------------------------- limits
    @property
    def max_chip_power_w(self) -> float | None:
        """Per-chip power limit (W): the chip's TDP by default, the instance's value, or None."""
        limit = self.spec.max_chip_power
        if limit == "tdp":
            return self.hw.tdp_w
        return None if limit == "none" else float(limit)

    @property
    def max_power_w(self) -> float | None:
        """Power budget of the whole pipeline (W), or None."""
        return self.spec.max_power

    # ---------------------------------------------------------------------------------- the graph
    @cached_property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self.graph.nodes)

    @cached_property
    def node_classes(self) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """(class of each node, a representative node of each class): nodes whose attributes other than
        their names and positions are equal cost the same in every group."""
        keys: dict[tuple, int] = {}
        of_node, first = [], []
        for n, d in self.graph.nodes(data=True):
            key = tuple(sorted((k, v) for k, v in d.items() if k not in _NAME_ATTRS))
            if key not in keys:
                keys[key] = len(keys)
                first.append(n)
            of_node.append(keys[key])
        return tuple(of_node), tuple(first)

    def node_resident_bytes(self, node: str) -> float:
        """Bytes node `node` keeps resident: its weights and the KV of all users (B)."""
        d = self.graph.nodes[node]
        return d["weight_bytes"] + self.users * d["kv_bytes_per_token"] * kv_tokens(d, self.context)

    @cached_property
    def resident_bytes(self) -> tuple[float, float]:
        """Total weight bytes and KV bytes of all users (B)."""
        weights = sum(d["weight_bytes"] for _, d in self.graph.nodes(data=True))
        kv = sum(
            self.users * d["kv_bytes_per_token"] * kv_tokens(d, self.context)
            for _, d in self.graph.nodes(data=True)
        )
        return weights, kv

    # ---------------------------------------------------------------------------------- the hardware
    def tiers_for(self, kind: str) -> tuple[str, ...]:
        """The tiers the weights ("w") or the KV ("k") of a node may use, in hardware order."""
        chosen = self.spec.weight_tiers if kind == "w" else self.spec.kv_tiers
        return self.tiers if not chosen else tuple(t for t in self.tiers if t in chosen)

    def tier_capacity_bytes(self, tier: str) -> float:
        """Bytes one group holds in `tier` (all its chips)."""
        return self.hw.tier(tier).capacity_bytes * self.hw.chips_per_group

    @property
    def group_capacity_bytes(self) -> float:
        """Bytes one group holds in the tiers the instance allows."""
        return sum(self.tier_capacity_bytes(t) for t in self.tiers)

    def static_power_w(self, stages: int) -> float:
        """Static power of all chips of an S-stage pipeline (W), memories' standby included."""
        return stages * self.hw.chips_per_group * self.hw.static_power_per_chip_w

    def stage_range(self) -> range:
        """S values worth trying: from the capacity bound ceil(bytes / group capacity) to
        min(max_groups, nodes), or the instance's fixed S."""
        fixed = self.spec.solver.stages
        if fixed is not None:
            return range(fixed, fixed + 1)
        weights, kv = self.resident_bytes
        low = max(1, math.ceil((weights + kv) / self.group_capacity_bytes - 1e-9))
        high = min(self.max_groups, len(self.nodes))
        return range(low, high + 1)

    # ---------------------------------------------------------------------------------- variants
    def _with_workload(self, **update) -> Problem:
        """The same problem with workload fields changed; what does not depend on the workload (the node
        list and classes) is carried over, not computed again."""
        spec = self.spec.model_copy(update={"workload": self.spec.workload.model_copy(update=update)})
        out = replace(self, spec=spec)
        for key in ("nodes", "node_classes"):
            if key in self.__dict__:
                out.__dict__[key] = self.__dict__[key]
        return out

    def with_users(self, users: int) -> Problem:
        """The same problem for `users` users (model, hardware and graph reused)."""
        return self._with_workload(users=users)

    def with_micro_batches(self, micro_batches: int | None) -> Problem:
        """The same problem with at most `micro_batches` in flight (None: the deep pipeline default)."""
        return self._with_workload(micro_batches=micro_batches)

    def micro_batch_choices(self, stages: int) -> list[int | None]:
        """The numbers of micro-batches in flight the optimizer compares for S stages: the instance's own
        when it fixes one; else k x S for k = 1 .. slots (design choice: a group holds one to `slots`
        micro-batches; more keeps every unit busy, fewer reads the weights less often), distinct values
        below U only (None: min(U, slots x S), the default)."""
        if self.in_flight is not None or self.hw.slots == 1:
            return [self.in_flight]
        out: list[int | None] = []
        for k in range(1, self.hw.slots):
            if k * stages < self.users and k * stages not in out:
                out.append(k * stages)
        return out + [None]

    def with_chips_per_group(self, chips: int) -> Problem:
        """The same problem with `chips` chips per group (the split is chosen again for that group)."""
        spec = self.spec.model_copy(update={"chips_per_group": chips})
        return build(spec, self.model, self.base_hw, self.tiers)


def _granularity(spec: InstanceSpec, model: Model, hw: Hardware, tiers: tuple[str, ...]) -> Granularity:
    split = spec.split
    if split == "none":
        return Granularity()
    if isinstance(split, dict):
        return Granularity(**split)
    group_bytes = sum(hw.tier(t).capacity_bytes for t in tiers) * hw.chips_per_group
    kv_bytes = sum(hw.tier(t).capacity_bytes for t in (spec.kv_tiers or tiers)) * hw.chips_per_group
    core = spec.core_parts or core_parts(
        layer_kv_bytes(model.graph, spec.workload.users, spec.workload.context), kv_bytes
    )
    if isinstance(split, float):
        return granularity_for_part_bytes(model.graph, split, core)
    fastest = max((hw.tier(t) for t in tiers), key=lambda t: t.bw_bytes_per_s)
    return auto_granularity(
        model.graph, fastest.capacity_bytes * hw.chips_per_group, group_bytes, spec.max_groups, core,
        spec.solver.stages,
    )  # fmt: skip


def build(spec: InstanceSpec, model: Model, base_hw: Hardware, tiers: tuple[str, ...] | None = None,
          source: str = "instance") -> Problem:  # fmt: skip
    """A Problem from a spec and an already loaded model and hardware (one group size: the first)."""
    hw = base_hw
    size = spec.group_sizes[0]
    if size is not None:
        if size > 1 and hw.intra_link is None:
            raise PlannerInputError(
                source, [f"chips_per_group: {size} needs an intra_group_link in {hw.name}"]
            )
        hw = hw.with_chips_per_group(size)
    names = tuple(t.name for t in hw.tiers)
    if tiers is None:
        tiers = tuple(spec.tiers) if spec.tiers else names
    unknown = [t for t in tiers if t not in names]
    if unknown:
        raise PlannerInputError(source, [f"tiers: {unknown} not on {hw.name}; its tiers are {list(names)}"])
    for field in ("weight_tiers", "kv_tiers"):
        chosen = getattr(spec, field)
        if chosen is not None and (not chosen or any(t not in tiers for t in chosen)):
            raise PlannerInputError(
                source, [f"{field}: {chosen} must name one or more of the allowed tiers {list(tiers)}"]
            )
    granularity = _granularity(spec, model, hw, tiers)
    graph = split_graph(model.graph, granularity)
    if spec.core_cuts:
        wrong = [n for n in spec.core_cuts if n not in graph or not cuttable(graph, n)]
        if wrong:
            raise PlannerInputError(source, [
                f"core_cuts: {wrong[:3]} {'is' if len(wrong) == 1 else 'are'} not a part of an attention core "
                f"in {granularity.core} parts of this split; name parts such as "
                f"{next((n for n in graph if cuttable(graph, n)), 'L0.attn.core#1')!r}, or remove core_cuts"
            ])  # fmt: skip
        graph = cut_graph(graph, spec.core_cuts)
    return Problem(spec, model, hw, tiers, granularity, graph, base_hw)


def resolve(spec: InstanceSpec, source: str = "instance") -> Problem:
    """Load the model and hardware of an instance, check the tiers it names, split its graph."""
    w = spec.workload
    try:
        model = load_model(spec.model, w.weight_dtype, w.kv_dtype, w.activation_dtype, w.sample_top_k)
        hw = load_hardware(spec.hardware, spec.kv_memory)
    except PlannerInputError as exc:  # a name or path that leads nowhere: say which field gave it
        field = next((f for f in ("model", "hardware", "kv_memory") if getattr(spec, f) == exc.source), None)
        if field is None:
            raise
        raise PlannerInputError(source, [f"{field}: {exc.source}: {p}" for p in exc.problems]) from None
    sizes = [s for s in spec.group_sizes if s is not None]
    if any(s > 1 for s in sizes) and hw.intra_link is None:
        raise PlannerInputError(source, [f"chips_per_group: {sizes} needs an intra_group_link in {hw.name}"])
    return build(spec, model, hw, source=source)


def instance_files(spec: InstanceSpec) -> list[Path]:
    """Every input file an instance is read from: its model config, its hardware file and each memory
    technology file the hardware's tiers use (what a cached result of the instance depends on)."""
    return [resolve_config_path(spec.model), *hardware_files(spec.hardware, spec.kv_memory)]


def from_graph(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    min_tokens_per_s: float,
    *,
    max_groups: int | None = None,
    stages: int | None = None,
    tiers: tuple[str, ...] | None = None,
    in_flight: int | None = None,
    max_chip_power: str | float = "none",
    max_power: float | None = None,
    weight_tiers: list[str] | None = None,
    kv_tiers: list[str] | None = None,
    name: str = "in-memory graph",
) -> Problem:
    """A Problem from a graph and a hardware built in code (tests, studies): no files are read. The
    graph is placed as given (no split); a floor of 0 means none (a period limit of 1e12 s)."""
    spec = InstanceSpec(
        name=name,
        model=name,
        hardware=hw.name,
        chips_per_group=hw.chips_per_group,
        max_groups=max_groups or graph.number_of_nodes(),
        tiers=list(tiers) if tiers else None,
        weight_tiers=weight_tiers,
        kv_tiers=kv_tiers,
        split="none",
        max_chip_power=max_chip_power,
        max_power=max_power,
        workload=WorkloadSpec(
            users=users, context=context, min_tokens_per_s=min_tokens_per_s or 1e-12, micro_batches=in_flight
        ),
        solver=SolverSpec(stages=stages),
    )
    model = Model(name=name, config=None, dtypes=Dtypes(), graph=graph)
    return build(spec, model, hw, tiers)
