"""Designing the KV memory: a technology given by its capacity and bandwidth per reticle die, the smallest
one that serves a workload (`planner size-memory`), and the capacity x bandwidth design space
(`planner study memory-space`).

A design point is a memory of C bytes and B bytes/s per reticle die (one device per die), with the energy
per bit, the standby power per GB and the cost per GB of a catalog technology it is "like" (by default
novel-kv-dram): `design_memory`. It replaces the hardware's KV tier like `--kv-memory` does, inline in the
instance (so the instance digest, and the sweep cache key, cover its figures).

Inverse sizing (`size_memory`) takes the optimizer as the oracle. Feasibility is monotone in C and in B
(more capacity or bandwidth only enlarges the set of feasible placements: every plan feasible at (C, B)
is feasible at (C', B') >= (C, B), with the same time and the same or more headroom; J/token may change
through the standby power per GB, not feasibility, unless a power limit binds, where standby power counts).
So each axis is a geometric bisection, exact to a relative tolerance:
- capacity: the smallest C feasible with unlimited bandwidth (UNLIMITED_BANDWIDTH); no smaller capacity
  serves the workload at any bandwidth;
- bandwidth: the smallest B feasible at that C: the corner a memory of exactly the minimal capacity
  needs. With more capacity B can fall, much at times (at the capacity corner the weights that the
  packing pushes out of SRAM are read from the KV memory every micro-batch), so the bandwidth floor, the
  smallest B with FLOOR_CAPACITY_FACTOR x the minimal capacity per die, is found too (not with unlimited
  capacity: its standby power, which scales with capacity, would count against the power limit).
The result holds the solve at the reported size (feasible) and the two just below it (infeasible: C / (1 +
tolerance) with unlimited bandwidth, B / (1 + tolerance) at C), whose binding limits are reported.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.core.errors import InfeasibleError, PlannerInputError
from planner.hardware.catalog import MemoryTechSpec, load_hardware_spec, load_memory_tech
from planner.plans.metrics import reticle_dies_per_chip
from planner.problem.instance import InstanceSpec
from planner.runs.cache import Cache, CaseResult, solve_case
from planner.studies.capacity import feasibility_probe, max_users, spec_with_users, with_core_parts_fixed

TOLERANCE = 0.01  # relative: the reported size is feasible, size / (1 + TOLERANCE) is not
UNLIMITED_BANDWIDTH = 1e15  # B/s per die (1 PB/s, 12x on-die SRAM's 80 TB/s): "bandwidth does not bind"
MIN_CAPACITY, MAX_CAPACITY = 1e6, 1e13  # B per die searched: 1 MB .. 10 TB
MIN_BANDWIDTH, MAX_BANDWIDTH = 1e8, UNLIMITED_BANDWIDTH  # B/s per die searched: 0.1 GB/s .. 1 PB/s
DEFAULT_LIKE = "novel-kv-dram"
FLOOR_CAPACITY_FACTOR = 16  # the bandwidth floor is sought with 16x the minimal capacity per die


# ---------------------------------------------------------------------------------------------- design points


def design_memory(
    capacity_per_die: float,
    bandwidth_per_die: float,
    like: str | MemoryTechSpec = DEFAULT_LIKE,
    energy_pj_per_bit: float | None = None,
) -> MemoryTechSpec:
    """A KV memory of `capacity_per_die` bytes and `bandwidth_per_die` bytes/s per reticle die.

    Energy per bit (pJ/bit, unless given), standby power per GB (W/GB) and cost per GB ($/GB) are those
    of `like`: a design assumption, stated in the technology's `sources` (standby and cost scale with
    capacity, as refresh power and die area do)."""
    base = like if isinstance(like, MemoryTechSpec) else load_memory_tech(like)
    per_byte = 1 / base.capacity_per_device
    standby = base.standby_power_per_device
    energy = base.energy if energy_pj_per_bit is None else energy_pj_per_bit
    name = f"kv-{_short(capacity_per_die, 'B')}-{_short(bandwidth_per_die, 'B/s')}".replace("/", "p")
    assumption = f"design point of planner.studies.memory_design, figures per GB as {base.name}"
    sources = {
        "capacity_per_device": "design point (per reticle die)",
        "bandwidth_per_device": "design point (per reticle die)",
        "energy": "given" if energy_pj_per_bit is not None else f"{base.name}: {base.sources['energy']}",
        "devices_per_reticle_die": "one device per die by definition of a design point",
    }
    if standby is not None:
        sources["standby_power_per_device"] = f"{assumption}: {base.sources['standby_power_per_device']}"
    if base.cost_per_gb_usd is not None:
        sources["cost_per_gb_usd"] = f"{assumption}: {base.sources['cost_per_gb_usd']}"
    return MemoryTechSpec(
        name=name,
        description=f"KV memory design point: {_short(capacity_per_die, 'B')} and "
        f"{_short(bandwidth_per_die, 'B/s')} per die, {energy:g} pJ/bit",
        kind="off-chip",
        capacity_per_device=capacity_per_die,
        bandwidth_per_device=bandwidth_per_die,
        energy=energy,
        devices_per_reticle_die=1,
        standby_power_per_device=None if standby is None else standby * per_byte * capacity_per_die,
        cost_per_gb_usd=base.cost_per_gb_usd,
        sources=sources,
    )


def _short(value: float, unit: str) -> str:
    """1.6e10, 'B' -> '16GB' (3 significant digits, SI prefixes)."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"


def kv_tier_name(spec: InstanceSpec) -> str | None:
    """The name of the instance's KV tier (what tier lists call it): its kv_memory, else the hardware's."""
    if spec.kv_memory is not None:
        return spec.kv_memory_name
    hardware = load_hardware_spec(spec.hardware)
    return None if hardware.kv_memory_tier is None else hardware.memory[hardware.kv_memory_tier].tech


def with_memory(spec: InstanceSpec, memory: MemoryTechSpec, users: int | None = None) -> InstanceSpec:
    """`spec` with its KV tier replaced by `memory` (and `users`, if given). Tier lists (tiers,
    weight_tiers, kv_tiers) that name the KV tier name `memory` instead, so a pin to the KV tier holds."""
    old = kv_tier_name(spec)
    update: dict[str, Any] = {"kv_memory": memory}
    for field_name in ("tiers", "weight_tiers", "kv_tiers"):
        names = getattr(spec, field_name)
        if names is not None:
            update[field_name] = [memory.name if n == old else n for n in names]
    if users is not None:
        update["workload"] = spec.workload.model_copy(update={"users": users})
    return spec.model_copy(update=update)


def kv_fraction(hardware: str) -> float:
    """The achievable fraction of KV bandwidth of a hardware (name or path)."""
    return load_hardware_spec(hardware).achievable.kv_bandwidth


# ---------------------------------------------------------------------------------------------- bisection


@dataclass
class Axis:
    """A geometric bisection on one axis: `feasible` at `hi`, not at `lo` (None: feasible at the floor)."""

    name: str
    lo: float | None = None
    hi: float | None = None
    probes: list[tuple[float, bool]] = field(default_factory=list)


def smallest_feasible(
    axis: Axis,
    feasible: Callable[[float], bool],
    guess: float,
    floor: float,
    ceiling: float,
    tolerance: float = TOLERANCE,
) -> Axis:
    """The smallest value in [floor, ceiling] at which `feasible` (monotone: False then True) holds, to a
    relative `tolerance`: from `guess`, steps of x1.25, x1.56, x2.4, ... up or down until the verdict
    flips, then bisection in log space until hi <= lo x (1 + tolerance). hi None: infeasible at ceiling."""

    def probe(value: float) -> bool:
        ok = feasible(value)
        axis.probes.append((value, ok))
        return ok

    value, factor = min(max(guess, floor), ceiling), 1.25
    if probe(value):
        axis.hi = value
        while axis.lo is None and axis.hi > floor:
            value = max(axis.hi / factor, floor)
            if probe(value):
                axis.hi, factor = value, factor**2
            else:
                axis.lo = value
    else:
        axis.lo = value
        while axis.hi is None:
            if axis.lo >= ceiling:
                return axis
            value = min(axis.lo * factor, ceiling)
            if probe(value):
                axis.hi = value
            else:
                axis.lo, factor = value, factor**2
    while axis.lo is not None and axis.hi > axis.lo * (1 + tolerance):
        mid = math.sqrt(axis.lo * axis.hi)
        if probe(mid):
            axis.hi = mid
        else:
            axis.lo = mid
    return axis


# ---------------------------------------------------------------------------------------------- size-memory


@dataclass(frozen=True)
class MemorySize:
    """The smallest KV memory per die that serves the workload, with the solves that prove it."""

    capacity_per_die_bytes: float
    bandwidth_per_die_bytes_per_s: float
    at_size: CaseResult  # feasible
    bandwidth_floor: float  # the smallest bandwidth per die with FLOOR_CAPACITY_FACTOR x capacity (B/s)
    capacity_below: float | None  # >= capacity / (1 + tol), infeasible with unlimited bandwidth (None: floor)
    bandwidth_below: float | None  # >= bandwidth / (1 + tol), infeasible at the capacity (None: floor)
    below_capacity: CaseResult | None  # the solve at capacity_below
    below_bandwidth: CaseResult | None  # the solve at bandwidth_below
    tolerance: float
    achievable_kv_fraction: float
    dies_per_chip: int
    probes: dict[str, list[tuple[float, bool]]]
    closed_forms: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """Flat facts (the keys of `planner size-memory --json`); units in the names."""
        row = self.at_size.row
        dies = row["chips"] * self.dies_per_chip
        demand = self.at_size.spec.workload.min_tokens_per_s  # r: a token reads each stored KV byte once
        c, b = self.capacity_per_die_bytes, self.bandwidth_per_die_bytes_per_s

        def binding(result: CaseResult | None) -> str:
            return "search floor (smaller never probed)" if result is None else result.row["binding"]

        return {
            "capacity_per_die_bytes": c,
            "bandwidth_per_die_bytes_per_s": b,
            "joules_per_token": row["joules_per_token"],
            "binding_capacity": binding(self.below_capacity),
            "binding_bandwidth": binding(self.below_bandwidth),
            "explanation_capacity": ""
            if self.below_capacity is None
            else self.below_capacity.row["explanation"],
            "explanation_bandwidth": (
                "" if self.below_bandwidth is None else self.below_bandwidth.row["explanation"]
            ),
            "dies": dies,
            "chips": row["chips"],
            "stages": row["stages"],
            "users": self.at_size.spec.workload.users,
            "tokens_per_s_per_user": row["tokens_per_s_per_user"],
            "kv_stored_bytes_per_die": row["kv_stored_gb"] * 1e9 / dies,
            "kv_read_bytes_per_s_per_die": row["kv_gb_per_s_per_die"] * 1e9,
            "bandwidth_floor_per_die_bytes_per_s": self.bandwidth_floor,
            "balance_per_s": b / c,
            "demand_per_s": demand,
            "achievable_kv_fraction": self.achievable_kv_fraction,
            "balance_line_per_s": demand / self.achievable_kv_fraction,
            "tolerance": self.tolerance,
            "below_capacity_bytes": self.capacity_below,
            "below_bandwidth_bytes_per_s": self.bandwidth_below,
            "closed_form_capacity_per_die_bytes": self.closed_forms["capacity"],
            "closed_form_bandwidth_per_die_bytes_per_s": self.closed_forms["bandwidth"],
            "solves": sum(len(p) for p in self.probes.values()),
        }


def closed_form_sizes(spec: InstanceSpec) -> dict[str, float]:
    """The KV memory per die if every allowed die held an equal share of the KV (no weights, no SRAM):
    capacity U x L x KV bytes / dies, bandwidth U x L x KV bytes x r / (dies x fraction), with dies =
    max_groups x (largest) chips per group x dies per chip and r = the per-user token rate (a token reads
    each stored KV byte once). Lower bounds on what the optimizer finds, and its starting guesses."""
    from planner.problem.problem import resolve

    problem = resolve(spec)
    sizes = [s for s in spec.group_sizes if s is not None] or [problem.hw.chips_per_group]
    groups = spec.solver.stages or spec.max_groups
    dies = groups * max(sizes) * reticle_dies_per_chip(spec.hardware)
    kv = spec.workload.users * problem.model.kv_bytes_per_user(problem.context)
    rate = spec.workload.min_tokens_per_s
    return {"capacity": kv / dies, "bandwidth": kv * rate / (dies * kv_fraction(spec.hardware)), "dies": dies}


def size_memory(
    spec: InstanceSpec,
    like: str | MemoryTechSpec = DEFAULT_LIKE,
    energy_pj_per_bit: float | None = None,
    tolerance: float = TOLERANCE,
    cache: str | Path | Cache | None = None,
    progress: Callable[[str, float, bool], None] | None = None,
) -> MemorySize:
    """The smallest KV-memory capacity and bandwidth per die that serve `spec`'s workload (see the module
    docstring). `progress(axis, value, feasible)` after each solve. Raises InfeasibleError when even a
    memory of MAX_CAPACITY and UNLIMITED_BANDWIDTH per die does not serve it (the binding limit is the
    solver's at that size)."""
    if not 0 < tolerance < 1:
        raise PlannerInputError("--tolerance", [f"{tolerance:g}: give a relative tolerance in (0, 1)"])
    store = cache if isinstance(cache, Cache) or cache is None else Cache(cache)
    guesses = closed_form_sizes(spec)
    guessed = design_memory(guesses["capacity"], UNLIMITED_BANDWIDTH, like, energy_pj_per_bit)
    fixed = with_core_parts_fixed(with_memory(spec, guessed)).core_parts  # one graph for every probe
    spec = spec.model_copy(update={"core_parts": fixed})

    def sized(capacity: float, bandwidth: float) -> InstanceSpec:
        return with_memory(spec, design_memory(capacity, bandwidth, like, energy_pj_per_bit))

    def solve(capacity: float, bandwidth: float, explain: bool = False) -> CaseResult:
        return solve_case(sized(capacity, bandwidth), store, explain=explain)

    def oracle(axis: str, other: float) -> Callable[[float], bool]:
        def feasible(value: float) -> bool:  # the verdict only (planner.studies.capacity.feasibility_probe)
            c, b = (value, other) if axis == "capacity" else (other, value)
            ok = solve_case(feasibility_probe(sized(c, b)), store, explain=False).feasible
            if progress:
                progress(axis, value, ok)
            return ok

        return feasible

    cap = smallest_feasible(
        Axis("capacity"),
        oracle("capacity", UNLIMITED_BANDWIDTH),
        guesses["capacity"],
        MIN_CAPACITY,
        MAX_CAPACITY,
        tolerance,
    )
    if cap.hi is None:
        at_most = solve(MAX_CAPACITY, UNLIMITED_BANDWIDTH, explain=True)
        raise InfeasibleError(
            at_most.row["binding"],
            f"no KV memory up to {_short(MAX_CAPACITY, 'B')} and {_short(UNLIMITED_BANDWIDTH, 'B/s')} per "
            f"die serves this workload: {at_most.row['explanation']}",
        )
    bw = smallest_feasible(
        Axis("bandwidth"),
        oracle("bandwidth", cap.hi),
        guesses["bandwidth"],
        MIN_BANDWIDTH,
        UNLIMITED_BANDWIDTH,
        tolerance,
    )
    assert bw.hi is not None  # feasible at (cap.hi, UNLIMITED_BANDWIDTH) by construction
    floor = smallest_feasible(
        Axis("bandwidth floor"),
        oracle("bandwidth floor", min(MAX_CAPACITY, FLOOR_CAPACITY_FACTOR * cap.hi)),
        min(bw.hi, guesses["bandwidth"] * 1.25),
        MIN_BANDWIDTH,
        bw.hi,
        tolerance,
    )
    return MemorySize(
        capacity_per_die_bytes=cap.hi,
        bandwidth_per_die_bytes_per_s=bw.hi,
        bandwidth_floor=bw.hi if floor.hi is None else floor.hi,
        capacity_below=cap.lo,
        bandwidth_below=bw.lo,
        at_size=solve(cap.hi, bw.hi),
        below_capacity=None if cap.lo is None else solve(cap.lo, UNLIMITED_BANDWIDTH, explain=True),
        below_bandwidth=None if bw.lo is None else solve(cap.hi, bw.lo, explain=True),
        tolerance=tolerance,
        achievable_kv_fraction=kv_fraction(spec.hardware),
        dies_per_chip=reticle_dies_per_chip(spec.hardware),
        probes={"capacity": cap.probes, "bandwidth": bw.probes, "bandwidth floor": floor.probes},
        closed_forms=guesses,
    )


# ---------------------------------------------------------------------------------------------- memory-space

# the default grid, x8 steps (each point is a max-users search to SPACE_TOLERANCE, ~5 solves): capacity
# per die from 2 GB (8 SRAM dies' worth) to LPDDR-like 1 TB, bandwidth per die from LPDDR-like 0.8 TB/s
# (4 LPDDR5X packages per die: 0.62 TB/s) to SRAM-like 51 TB/s
SPACE_CAPACITIES = tuple(2e9 * 8**k for k in range(4))  # B per die: 2, 16, 128, 1024 GB
SPACE_BANDWIDTHS = tuple(0.8e12 * 8**k for k in range(3))  # B/s per die: 0.8, 6.4, 51.2 TB/s
REFERENCE_USERS = None  # J/token at max users only, unless a reference user count is given
SPACE_TOLERANCE = 0.01  # max users per design point to 1%: feasible at the value, infeasible <= 1% above
CATALOG_KV_MEMORIES = ("hbm3", "hbm3e", "hbm4", "lpddr5x", "gddr7", "ddr5", "novel-kv-dram")


class CacheMiss(Exception):
    """A solve the read-only cache does not hold."""


class CacheOnly(Cache):
    """A cache that answers from its files or raises CacheMiss (never solves, never writes): replays a
    finished design point in the parent process without starting a worker."""

    def get(self, spec: InstanceSpec, explained: bool = True) -> CaseResult | None:
        hit = super().get(spec, explained)
        if hit is None:
            raise CacheMiss(spec.digest())
        return hit

    def put(self, result: CaseResult) -> None:
        pass


def point_row(spec: InstanceSpec, found: Any, reference: CaseResult | None) -> dict[str, Any]:
    """One design point's table row: max users (to SPACE_TOLERANCE) and what the plan at max users spends, J/token at
    the reference users. Units in the names."""
    memory: MemoryTechSpec = spec.kv_memory  # type: ignore[assignment]
    row = found.at_max.row if found.at_max is not None else {}
    users = found.max_users
    dies = row.get("chips", 0) * reticle_dies_per_chip(spec.hardware)
    cost = (
        None
        if memory.cost_per_gb_usd is None
        else dies * memory.capacity_per_device / 1e9 * memory.cost_per_gb_usd
    )
    ref_ok = reference is not None and reference.feasible
    return {
        "model": spec.model,
        "hardware": spec.hardware,
        "min_tokens_per_s": spec.workload.min_tokens_per_s,
        "energy_pj_per_bit": memory.energy,
        "capacity_per_die_gb": memory.capacity_per_device / 1e9,
        "bandwidth_per_die_tb_per_s": memory.bandwidth_per_device / 1e12,
        "balance_per_s": memory.bandwidth_per_device / memory.capacity_per_device,
        "max_users": users,
        "max_users_infeasible_at": found.above.spec.workload.users if found.above is not None else None,
        "max_users_proven": found.exact,
        "core_cuts": found.summary()["core_cuts"],
        "binding": found.above.row.get("binding", "") if found.above is not None else "search limit",
        "stages": row.get("stages"),
        "chips": row.get("chips"),
        "dies": dies,
        "joules_per_token_at_max": row.get("joules_per_token"),
        "memory_usd_per_user": None if cost is None or users == 0 else cost / users,
        "reference_users": None if reference is None else reference.spec.workload.users,
        "joules_per_token_at_reference": reference.row.get("joules_per_token") if ref_ok else None,
        "binding_at_reference": "" if ref_ok or reference is None else reference.row.get("binding", ""),
    }


def space_point(
    spec_data: dict[str, Any], reference_users: int | None, cache: str | Cache | None
) -> dict[str, Any]:
    """One design point (a worker's job, plain data in and out): its row and every solve it made (JSON),
    for the parent to cache when the worker cannot (a dask worker on another machine)."""
    spec = InstanceSpec.model_validate(spec_data)
    store = Cache(cache) if isinstance(cache, str) else cache
    solves: list[CaseResult] = []
    found = max_users(
        spec, store, progress=lambda users, result: solves.append(result), tolerance=SPACE_TOLERANCE
    )
    if found.above is not None:
        solves.append(found.above)
    reference = None  # J/token at a fixed user count: one more full solve per point, when asked for
    if reference_users is not None:
        reference = solve_case(spec_with_users(spec, reference_users), store, explain=False)
        solves.append(reference)
    return {"row": point_row(spec, found, reference), "solves": [r.to_json() for r in solves]}


def space_specs(
    base: InstanceSpec,
    floors: Sequence[float],
    capacities: Sequence[float] = SPACE_CAPACITIES,
    bandwidths: Sequence[float] = SPACE_BANDWIDTHS,
    energies: Sequence[float | None] = (None,),
    like: str = DEFAULT_LIKE,
) -> list[InstanceSpec]:
    """The grid: one instance per speed floor x pJ/bit x capacity x bandwidth (in that order)."""
    specs = []
    for floor in floors:
        workload = base.workload.model_copy(update={"min_tokens_per_s": floor})
        for energy in energies:
            for c in capacities:
                for b in bandwidths:
                    memory = design_memory(c, b, like, energy)
                    specs.append(base.model_copy(update={"kv_memory": memory, "workload": workload}))
    return specs


def memory_space(
    specs: Sequence[InstanceSpec],
    reference_users: int | None = REFERENCE_USERS,
    cache: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[dict[str, Any], bool], None] | None = None,
) -> list[dict[str, Any]]:
    """Every design point's row (in the order of `specs`). A point whose solves are all in `cache` is
    replayed here (progress(row, True)); the others run on local workers (which write the cache
    themselves) or on the dask scheduler (whose solves this process caches). Resumable: an interrupted
    study keeps every finished solve."""
    from planner.runs.executor import executor

    store = Cache(cache) if cache is not None else None
    rows: dict[int, dict[str, Any]] = {}
    todo: list[int] = []
    for i, spec in enumerate(specs):
        try:
            if store is None:
                raise CacheMiss
            rows[i] = space_point(spec.model_dump(mode="json"), reference_users, CacheOnly(store.directory))[
                "row"
            ]
            if progress:
                progress(rows[i], True)
        except CacheMiss:
            todo.append(i)

    def done(i: int, reply: dict[str, Any]) -> None:
        if store is not None and scheduler is not None:
            for text in reply["solves"]:
                store.put(CaseResult.from_json(text))
        rows[i] = reply["row"]
        if progress:
            progress(rows[i], False)

    local_cache = None if store is None or scheduler is not None else str(store.directory)
    if todo and workers == 1 and scheduler is None:
        for i in todo:
            done(i, space_point(specs[i].model_dump(mode="json"), reference_users, local_cache))
    elif todo:
        with executor(workers, scheduler) as pool:
            futures = {
                pool.submit(space_point, specs[i].model_dump(mode="json"), reference_users, local_cache): i
                for i in todo
            }
            try:
                for future in cf.as_completed(futures):
                    done(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return [rows[i] for i in range(len(specs))]


# ---------------------------------------------------------------------------------------------- against a baseline


def beat_baseline(
    base: InstanceSpec,
    floor: float,
    novel: str = DEFAULT_LIKE,
    baseline: str = "hbm4",
    cache: str | Path | None = None,
    tolerance: float = TOLERANCE,
) -> dict[str, Any]:
    """At one speed floor: the baseline technology's max users U_b (exact) and J/token there; the catalog
    `novel` technology's; and the smallest capacity per die at which a memory with the novel one's
    bandwidth, pJ/bit, standby and cost per GB serves U_b users (the users crossing, to `tolerance`), with
    its J/token at U_b users against the baseline's (the J/token crossing at equal users)."""
    store = Cache(cache) if cache is not None else None
    workload = base.workload.model_copy(update={"min_tokens_per_s": floor})
    at_floor = base.model_copy(update={"workload": workload})
    found = {
        name: max_users(at_floor.model_copy(update={"kv_memory": name}), store) for name in (baseline, novel)
    }
    users_b = found[baseline].max_users
    row_b = found[baseline].at_max.row if found[baseline].at_max else {}
    tech = load_memory_tech(novel)
    novel_bw = tech.bandwidth_per_die
    out: dict[str, Any] = {
        "model": base.model,
        "min_tokens_per_s": floor,
        f"{baseline}_max_users": users_b,
        f"{baseline}_joules_per_token": row_b.get("joules_per_token"),
        f"{novel}_max_users": found[novel].max_users,
        f"{novel}_joules_per_token": (found[novel].at_max.row if found[novel].at_max else {}).get(
            "joules_per_token"
        ),
        f"{novel}_capacity_per_die_gb": tech.capacity_per_die / 1e9,
    }
    if users_b == 0:
        return out | {"crossing_capacity_per_die_gb": None, "crossing_joules_per_token": None}
    sized = with_memory(at_floor, design_memory(1e9, novel_bw, tech), users=users_b)
    guess = closed_form_sizes(sized)["capacity"]

    def feasible(capacity: float) -> bool:  # the verdict only (planner.studies.capacity.feasibility_probe)
        probe = feasibility_probe(with_memory(sized, design_memory(capacity, novel_bw, tech)))
        return solve_case(probe, store, False).feasible

    axis = smallest_feasible(Axis("capacity"), feasible, guess, MIN_CAPACITY, MAX_CAPACITY, tolerance)
    if axis.hi is None:
        return out | {"crossing_capacity_per_die_gb": None, "crossing_joules_per_token": None}
    at = solve_case(with_memory(sized, design_memory(axis.hi, novel_bw, tech)), store)
    return out | {
        "crossing_capacity_per_die_gb": axis.hi / 1e9,
        "crossing_joules_per_token": at.row["joules_per_token"],
        "crossing_beats_on_joules": at.row["joules_per_token"] < (row_b.get("joules_per_token") or math.inf),
        "crossing_stages": at.row["stages"],
    }


# ---------------------------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class MemorySpace:
    """`points`: one row per model x floor x pJ/bit x capacity x bandwidth (point_row); `catalog`: the
    catalog technologies per die; `crossings`: per model x floor, the novel memory against the baseline
    (beat_baseline)."""

    points: Any  # pandas.DataFrame
    catalog: Any
    crossings: Any
    like: str = DEFAULT_LIKE
    baseline: str = "hbm4"


def catalog_rows(names: Sequence[str] = CATALOG_KV_MEMORIES) -> list[dict[str, Any]]:
    """The catalog's off-chip technologies per reticle die: capacity, bandwidth, their ratio, pJ/bit,
    standby W per GB and $ per GB (None where not sourced)."""
    rows = []
    for name in names:
        tech = load_memory_tech(name)
        c, b = tech.capacity_per_die, tech.bandwidth_per_die
        standby = tech.standby_power_per_device
        rows.append(
            {
                "memory": name,
                "capacity_per_die_gb": c / 1e9,
                "bandwidth_per_die_tb_per_s": b / 1e12,
                "balance_per_s": b / c,
                "energy_pj_per_bit": tech.energy,
                "standby_w_per_gb": None if standby is None else standby / tech.capacity_per_device * 1e9,
                "cost_per_gb_usd": tech.cost_per_gb_usd,
            }
        )
    return rows


def _crossing_job(spec_data: dict[str, Any], floor: float, novel: str, baseline: str, cache: str | None):
    return beat_baseline(InstanceSpec.model_validate(spec_data), floor, novel, baseline, cache)


def run_memory_space(
    bases: Sequence[InstanceSpec],
    floors: Sequence[float],
    capacities: Sequence[float] = SPACE_CAPACITIES,
    bandwidths: Sequence[float] = SPACE_BANDWIDTHS,
    energies: Sequence[float | None] = (None,),
    like: str = DEFAULT_LIKE,
    reference_users: int | None = REFERENCE_USERS,
    baseline: str = "hbm4",
    crossings: bool = True,
    cache: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> MemorySpace:
    """The design space for each base instance (its users and floor ignored): the grid at every floor and
    pJ/bit (`energies`, None: `like`'s), and, with `crossings`, `like` against `baseline` per floor."""
    import pandas as pd

    from planner.runs.executor import executor

    specs = [s for base in bases for s in space_specs(base, floors, capacities, bandwidths, energies, like)]
    rows = memory_space(
        specs, reference_users, cache, workers, scheduler, lambda row, hit: progress and progress("point")
    )
    found: list[dict[str, Any]] = []
    if crossings:
        jobs = [(base, floor) for base in bases for floor in floors]
        local = None if cache is None or scheduler is not None else str(cache)
        if workers == 1 and scheduler is None:
            for base, floor in jobs:
                found.append(beat_baseline(base, floor, like, baseline, local))
                if progress:
                    progress("crossing")
        else:
            with executor(workers, scheduler) as pool:
                futures = [
                    pool.submit(_crossing_job, b.model_dump(mode="json"), f, like, baseline, local)
                    for b, f in jobs
                ]
                for future in futures:
                    found.append(future.result())
                    if progress:
                        progress("crossing")
    return MemorySpace(pd.DataFrame(rows), pd.DataFrame(catalog_rows()), pd.DataFrame(found), like, baseline)


MEMORY_SPACE_FILES = (
    "memory_space.csv",
    "memory_space.md",
    "memory_space.png",
    "memory_space_vs_baseline.csv",
)


def _grid(points: Any, value: str, fmt: Callable[[Any], str]) -> tuple[list[str], list[list[str]]]:
    """A capacity (rows) x bandwidth (columns) table of one column of `points`."""
    wide = points.pivot_table(
        index="capacity_per_die_gb", columns="bandwidth_per_die_tb_per_s", values=value, aggfunc="first"
    )
    header = ["GB per die \\ TB/s per die"] + [f"{b:.3g}" for b in wide.columns]
    body = [[f"{c:.3g}"] + [fmt(v) for v in wide.loc[c]] for c in wide.index]
    return header, body


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def _num(fmt: str) -> Callable[[Any], str]:
    def f(v: Any) -> str:
        return "" if v is None or v != v else format(v, fmt)

    return f


def memory_space_markdown(space: MemorySpace, command: str, runtime_s: float | None = None) -> str:
    """results/memory_space.md: the command, the catalog per die, per model and floor the max-users and
    J/token grids, and the novel memory against the baseline."""
    from planner.render.markdown import markdown_table

    p = space.points
    parts = [
        "# The KV memory design space: capacity x bandwidth per die",
        "",
        f"Regenerate: `{command}`" + (f" ({runtime_s / 60:.0f} min on this machine)" if runtime_s else ""),
        "",
        "Each point is a KV memory of the given capacity and bandwidth per reticle die (one device per die) "
        "replacing the hardware's KV tier, with the energy per bit, standby power per GB and cost per GB of "
        "the technology it is like (a design assumption: standby and cost scale with capacity). Max users "
        f"is found to {SPACE_TOLERANCE:.0%} (galloping search and bisection, the solver as oracle: feasible "
        "at the value shown, infeasible at most 1% above it, `max_users_infeasible_at` in the CSV; the "
        "comparison against the baseline below is exact); J/token at max users and at the reference user count; memory $/user = dies x capacity x "
        "$/GB / max users. The balance line is bandwidth = r x capacity / f with r = the per-user token "
        "rate (a token reads each stored KV byte once) and f the achievable KV bandwidth fraction: above "
        "it a memory is capacity-limited, below it bandwidth-limited.",
        "",
        "## Catalog technologies per reticle die",
        "",
        markdown_table(
            space.catalog,
            [
                ("memory", "memory"),
                ("capacity_per_die_gb", "GB per die"),
                ("bandwidth_per_die_tb_per_s", "TB/s per die"),
                ("balance_per_s", "bandwidth / capacity 1/s"),
                ("energy_pj_per_bit", "pJ/bit"),
                ("standby_w_per_gb", "standby W/GB"),
                ("cost_per_gb_usd", "$/GB"),
            ],
        ),
    ]
    keys = ["model", "min_tokens_per_s", "energy_pj_per_bit"]
    for (model, floor, energy), points in p.groupby(keys, sort=False):
        fraction = kv_fraction(points["hardware"].iloc[0])
        ref = points["reference_users"].iloc[0]
        at_reference = (
            []
            if ref is None or ref != ref
            else [
                f"J/token at {int(ref):,} users (blank: infeasible):",
                "",
                _table(*_grid(points, "joules_per_token_at_reference", _num(".3g"))),
                "",
            ]
        )
        parts += [
            "",
            f"## {model}, {floor:g} tokens/s/user, {energy:g} pJ/bit",
            "",
            f"Balance line: bandwidth / capacity = {floor:g} / {fraction:g} = {floor / fraction:.3g} per s.",
            "",
            f"Max users (to {SPACE_TOLERANCE:.0%}):",
            "",
            _table(*_grid(points, "max_users", lambda v: f"{int(v):,}")),
            "",
            "Limit just above max users:",
            "",
            _table(*_grid(points, "binding", lambda v: str(v))),
            "",
            "J/token at max users:",
            "",
            _table(*_grid(points, "joules_per_token_at_max", _num(".3g"))),
            "",
            *at_reference,
            "Memory $ per user at max users:",
            "",
            _table(*_grid(points, "memory_usd_per_user", _num(",.0f"))),
        ]
    c = space.crossings
    if len(c):
        novel, base = space.like, space.baseline
        parts += [
            "",
            f"## {novel} against {base}",
            "",
            f"{base} and {novel} as catalogued (exact max users, J/token at max users); then the smallest "
            f"capacity per die at which a memory with {novel}'s bandwidth, pJ/bit, standby and cost per GB "
            f"serves {base}'s max users (bisection to {TOLERANCE:.0%}), and its J/token at those users.",
            "",
            markdown_table(
                c,
                [
                    ("model", "model"),
                    ("min_tokens_per_s", "tok/s/user"),
                    (f"{base}_max_users", f"{base} max users"),
                    (f"{base}_joules_per_token", f"{base} J/token"),
                    (f"{novel}_max_users", f"{novel} max users"),
                    (f"{novel}_joules_per_token", f"{novel} J/token"),
                    ("crossing_capacity_per_die_gb", "GB/die to match users"),
                    ("crossing_joules_per_token", "J/token there"),
                    ("crossing_beats_on_joules", "beats on J/token"),
                ],
            ),
        ]
    return "\n".join(parts) + "\n"


def write_memory_space(
    space: MemorySpace, out: str | Path, command: str, runtime_s: float | None = None
) -> list[Path]:
    """memory_space.csv (the grid), .md, .png and memory_space_vs_baseline.csv (the crossings) into `out`."""
    from planner.render.markdown import write_markdown
    from planner.render.plots import plot_memory_space
    from planner.runs.sweep import write_table

    out = Path(out)
    csv, md, png, vs = (out / name for name in MEMORY_SPACE_FILES)
    return [
        write_table(space.points, csv),
        write_markdown(md, memory_space_markdown(space, command, runtime_s)),
        plot_memory_space(space, png),
        write_table(space.crossings, vs),
    ]
