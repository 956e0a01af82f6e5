"""Hardware and memory-technology catalog: YAML files in instances/ validated into frozen objects.

Memory technologies (instances/memory/*.yaml) give per-device capacity, bandwidth and energy, each with a
source. Hardware (instances/hardware/*.yaml) gives a chip, the memory tiers attached to each chip, the
chip group (tensor-parallel inside a group) and its links, the group's compute units (which phases each
runs, and whether they overlap across micro-batches), and achievable fractions (calibrated, see
planner.studies.calibration). All values are SI: bytes, bytes/s, pJ/bit, FLOP/s, pJ/FLOP, W, s.

Units of a chip group: a decode node has a *weight phase* (read its weights, do its matmuls) and a *context
phase* (read the KV cache, attend over it). A unit runs one or both phases. On a GPU one unit (the SMs)
runs both, one kernel after another (`units_overlap: false`, the default). The seed's chip group has an
attention unit beside the KV memory and a MAC unit; with `units_overlap: true` they work on different
micro-batches at once, so a group can hold one micro-batch per unit and its cycle is the busiest
resource's time, not the sum (planner.cost.pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from planner.core.errors import PlannerInputError, problems_from_validation
from planner.core.fileio import catalog_file, project_root, read_mapping, relative_to_file
from planner.core.schema import Strict as _Strict
from planner.core.units import (
    Bytes,
    BytesPerSecond,
    FlopsPerSecond,
    PicojoulesPerBit,
    PicojoulesPerFlop,
    Seconds,
    Watts,
)

MEMORY_DIR = project_root() / "instances" / "memory"
HARDWARE_DIR = project_root() / "instances" / "hardware"


class MemoryTechSpec(_Strict):
    """One memory technology, per device (a stack, a package, a module, or one die's SRAM)."""

    name: str
    description: str = ""
    kind: str = Field(pattern="^(on-chip|off-chip)$")
    capacity_per_device: Bytes = Field(gt=0)
    bandwidth_per_device: BytesPerSecond = Field(gt=0)
    energy: PicojoulesPerBit = Field(gt=0)
    devices_per_reticle_die: int = Field(gt=0, le=1000)
    standby_power_per_device: Watts | None = Field(
        default=None, description="power of one device holding data while idle (refresh, leakage), W"
    )
    cost_per_gb_usd: float | None = Field(default=None, gt=0, le=1e6)
    sources: dict[str, str]

    @property
    def capacity_per_die(self) -> float:
        """Bytes per reticle die: devices_per_reticle_die x capacity_per_device."""
        return self.devices_per_reticle_die * self.capacity_per_device

    @property
    def bandwidth_per_die(self) -> float:
        """Bytes/s per reticle die: devices_per_reticle_die x bandwidth_per_device."""
        return self.devices_per_reticle_die * self.bandwidth_per_device

    @model_validator(mode="after")
    def _every_figure_sourced(self) -> MemoryTechSpec:
        figures = ["capacity_per_device", "bandwidth_per_device", "energy", "devices_per_reticle_die"]
        for optional in ("standby_power_per_device", "cost_per_gb_usd"):
            if getattr(self, optional) is not None:
                figures.append(optional)
        missing = [f for f in figures if not self.sources.get(f, "").strip()]
        if missing:
            raise ValueError(f"sources must cite where each figure comes from; missing: {', '.join(missing)}")
        return self


class LinkSpec(_Strict):
    """A link: bandwidth per chip per direction, energy per bit moved, latency per transfer/collective."""

    bandwidth: BytesPerSecond = Field(gt=0)
    energy: PicojoulesPerBit = Field(ge=0)
    latency: Seconds = Field(ge=0)


class TierSpec(_Strict):
    """A memory tier attached to each chip: `devices` of technology `tech`, optionally overriding totals."""

    tech: str
    devices: int | None = Field(default=None, gt=0, le=10_000)
    capacity: Bytes | None = Field(default=None, gt=0)
    bandwidth: BytesPerSecond | None = Field(default=None, gt=0)
    path_energy: PicojoulesPerBit | None = None


class ChipSpec(_Strict):
    name: str
    peak_flops: dict[str, FlopsPerSecond]
    energy_per_flop: PicojoulesPerFlop = Field(gt=0)
    static_power: Watts = Field(gt=0)
    static_power_includes_memory: bool = Field(
        default=False,
        description="true where static_power was measured for the whole device, its memories' standby "
        "included (a GPU at idle): the tiers' standby_power_per_device is then not added again",
    )
    tdp: Watts | None = Field(default=None, gt=0)
    data_path_energy: PicojoulesPerBit = Field(
        ge=0,
        description="energy of moving one bit from a tier to the compute units, on top of the device's own",
    )
    kv_data_path_energy: PicojoulesPerBit = Field(
        default=0.0,
        ge=0,
        description="extra energy per KV-cache bit moved, on top of data_path_energy (fit by planner calibrate)",
    )
    parallel_units: int | None = Field(default=None, gt=0, le=1_000_000)
    reticle_dies: int = Field(default=1, gt=0, le=64)

    @model_validator(mode="after")
    def _has_bf16(self) -> ChipSpec:
        if "bf16" not in self.peak_flops:
            raise ValueError("peak_flops needs at least a bf16 entry, e.g. {bf16: '989 TFLOP/s'}")
        if any(v <= 0 for v in self.peak_flops.values()):
            raise ValueError("peak_flops values must be positive")
        return self


class AchievableSpec(_Strict):
    """Fractions of datasheet peaks reached in practice, and fixed costs (fit by planner calibrate)."""

    weight_bandwidth: float = Field(default=1.0, gt=0, le=1)
    kv_bandwidth: float = Field(default=1.0, gt=0, le=1)
    compute: float = Field(default=1.0, gt=0, le=1)
    link_bandwidth: float = Field(default=1.0, gt=0, le=1)
    node_overhead: Seconds = 0.0
    attention_bytes_per_s_per_work_item: BytesPerSecond | None = Field(default=None, gt=0)


PHASES = ("weights", "context")


class UnitSpec(_Strict):
    """A compute unit of every chip in a group: which phases it runs, at what peak (default: the chip's)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=40)
    runs: list[Literal["weights", "context"]] = Field(min_length=1, max_length=2)
    peak_flops: dict[str, FlopsPerSecond] | None = Field(
        default=None, description="peak FLOP/s per chip by dtype; default the chip's peak_flops"
    )
    energy_per_flop: PicojoulesPerFlop | None = Field(default=None, gt=0, description="default the chip's")

    @model_validator(mode="after")
    def _has_bf16(self) -> UnitSpec:
        if self.peak_flops is not None and "bf16" not in self.peak_flops:
            raise ValueError("peak_flops needs at least a bf16 entry, e.g. {bf16: '250 TFLOP/s'}")
        return self


class HardwareSpec(_Strict):
    name: str
    description: str = ""
    chip: ChipSpec
    memory: list[TierSpec] = Field(min_length=1, max_length=8)
    kv_memory_tier: int | None = Field(
        default=None, ge=0, description="index in memory that --kv-memory replaces"
    )
    chips_per_group: int = Field(default=1, gt=0, le=4096)
    intra_group_link: LinkSpec | None = None
    inter_group_link: LinkSpec
    units: list[UnitSpec] | None = Field(
        default=None, max_length=4, description="the group's compute units (default: one running both phases)"
    )
    units_overlap: bool = Field(
        default=False, description="units work on different micro-batches at once (one micro-batch per unit)"
    )
    moe_dispatch: Literal["all-reduce", "all-to-all"] = Field(
        default="all-reduce",
        description="MoE in a group: experts split tensor-parallel (an all-reduce per layer) or spread over the "
        "chips (token dispatch and combine, all-to-all, on a2e_link if given)",
    )
    a2e_link: LinkSpec | None = Field(
        default=None, description="the attention-to-expert path inside a group (default: intra_group_link)"
    )
    achievable: AchievableSpec = AchievableSpec()
    calibration: dict[str, float | str] | None = None
    sources: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _links(self) -> HardwareSpec:
        if self.chips_per_group > 1 and self.intra_group_link is None:
            raise ValueError("chips_per_group > 1 needs an intra_group_link (bandwidth, energy, latency)")
        if self.kv_memory_tier is not None and self.kv_memory_tier >= len(self.memory):
            raise ValueError(f"kv_memory_tier {self.kv_memory_tier} is not an index of memory")
        if self.units is not None:
            names = [u.name for u in self.units]
            if len(set(names)) != len(names):
                raise ValueError(f"units: names must differ, got {names}")
            for phase in PHASES:
                owners = [u.name for u in self.units if phase in u.runs]
                if len(owners) != 1:
                    raise ValueError(
                        f"units: the {phase} phase must be run by exactly one unit, got {owners or 'none'}"
                    )
        if (
            self.moe_dispatch == "all-to-all"
            and self.chips_per_group > 1
            and not (self.a2e_link or self.intra_group_link)
        ):
            raise ValueError("moe_dispatch all-to-all needs an a2e_link or an intra_group_link")
        return self


@dataclass(frozen=True)
class MemoryTier:
    """A memory tier as the cost model sees it, per chip."""

    name: str
    capacity_bytes: float
    bw_bytes_per_s: float
    device_pj_per_bit: float
    path_pj_per_bit: float
    on_chip: bool
    standby_w: float = 0.0  # all of the tier's devices on one chip, holding data while idle
    cost_usd: float | None = None  # all of the tier's devices on one chip (capacity x $/GB), when sourced

    @property
    def pj_per_bit(self) -> float:
        """Energy per bit read or written: the device's own plus the chip's data path to compute."""
        return self.device_pj_per_bit + self.path_pj_per_bit


@dataclass(frozen=True)
class Link:
    bw_bytes_per_s: float
    pj_per_bit: float
    latency_s: float


@dataclass(frozen=True)
class Achievable:
    weight_bandwidth: float = 1.0
    kv_bandwidth: float = 1.0
    compute: float = 1.0
    link_bandwidth: float = 1.0
    node_overhead_s: float = 0.0
    attention_bytes_per_s_per_work_item: float | None = None


PEAK = Achievable()

# fallback order of matmul dtypes: a format missing from a datasheet runs at the next wider one's peak
_DTYPE_FALLBACK = {
    "fp4": ("fp4", "fp8", "bf16"),
    "int4": ("int4", "fp4", "fp8", "bf16"),
    "fp8": ("fp8", "bf16"),
    "int8": ("int8", "fp8", "bf16"),
}


@dataclass(frozen=True)
class Unit:
    """A compute unit of each chip of a group and the phases it runs; None: the chip's own figure."""

    name: str
    runs: tuple[str, ...]
    peak_flops_per_s: dict[str, float] | None = None
    pj_per_flop: float | None = None


def _peak(table: dict[str, float], dtype: str) -> float:
    """Peak FLOP/s for matmuls in `dtype`, falling back to the next wider format listed."""
    for d in _DTYPE_FALLBACK.get(dtype, (dtype, "bf16")):
        if d in table:
            return table[d]
    return table["bf16"]


@dataclass(frozen=True)
class Hardware:
    """A resolved hardware: one chip kind, its memory tiers, the chip group and links."""

    name: str
    chip_name: str
    peak_flops_per_s: dict[str, float]
    pj_per_flop: float
    static_power_w: float
    parallel_units: int | None
    tiers: tuple[MemoryTier, ...]
    chips_per_group: int
    intra_link: Link | None
    inter_link: Link
    achievable: Achievable
    units: tuple[Unit, ...]
    units_overlap: bool = False
    moe_dispatch: str = "all-reduce"
    a2e_link: Link | None = None
    tdp_w: float | None = None
    kv_path_pj_per_bit: float = 0.0  # extra pJ per KV-cache bit moved, any tier, on top of its pj_per_bit
    kv_memory: str | None = None

    def flops_per_s(self, dtype: str, phase: str = "weights") -> float:
        """Peak FLOP/s per chip for matmuls in `dtype` on the unit that runs `phase`."""
        return _peak(self.unit_for(phase).peak_flops_per_s or self.peak_flops_per_s, dtype)

    def pj_per_flop_of(self, phase: str) -> float:
        """Energy per FLOP of the unit that runs `phase` (pJ)."""
        own = self.unit_for(phase).pj_per_flop
        return self.pj_per_flop if own is None else own

    def unit_for(self, phase: str) -> Unit:
        """The unit that runs `phase` ("weights" or "context")."""
        return next(u for u in self.units if phase in u.runs)

    @property
    def slots(self) -> int:
        """Micro-batches a group works on at once: one per unit when units overlap, else one."""
        return len(self.units) if self.units_overlap else 1

    @property
    def static_power_per_chip_w(self) -> float:
        """Power a chip draws whatever it does (W): the chip's static power and its memories' standby."""
        return self.static_power_w + sum(t.standby_w for t in self.tiers)

    def tier(self, name: str) -> MemoryTier:
        return next(t for t in self.tiers if t.name == name)

    def with_chips_per_group(self, chips: int) -> Hardware:
        return replace(self, chips_per_group=chips)

    def at_peak(self) -> Hardware:
        """The same hardware with datasheet peaks (speed of light): fractions 1, no fixed overheads."""
        return replace(self, achievable=PEAK)


def _validated(model: type[BaseModel], path: Path) -> BaseModel:
    try:
        return model.model_validate(read_mapping(path))
    except ValidationError as exc:
        raise PlannerInputError(path, problems_from_validation(exc)) from None


def memory_tech_path(name_or_path: str | Path) -> Path:
    """The file of a memory technology: instances/memory/NAME.yaml for a name, or a .yaml path."""
    return catalog_file(MEMORY_DIR, name_or_path, "memory technology", (".yaml", ".yml"))


def hardware_path(name_or_path: str | Path) -> Path:
    """The file of a hardware: instances/hardware/NAME.yaml for a name, or a .yaml path."""
    return catalog_file(HARDWARE_DIR, name_or_path, "hardware", (".yaml", ".yml"))


def load_memory_tech(name_or_path: str | Path) -> MemoryTechSpec:
    """Read instances/memory/NAME.yaml (or a path)."""
    return _validated(MemoryTechSpec, memory_tech_path(name_or_path))


def memory_tech_names() -> list[str]:
    return sorted(p.stem for p in MEMORY_DIR.glob("*.yaml"))


def _tier(spec: TierSpec, tech: MemoryTechSpec, chip: ChipSpec) -> MemoryTier:
    devices = spec.devices or tech.devices_per_reticle_die * chip.reticle_dies
    capacity = spec.capacity or devices * tech.capacity_per_device
    return MemoryTier(
        name=tech.name,
        capacity_bytes=capacity,
        bw_bytes_per_s=spec.bandwidth or devices * tech.bandwidth_per_device,
        device_pj_per_bit=tech.energy,
        path_pj_per_bit=chip.data_path_energy if spec.path_energy is None else spec.path_energy,
        on_chip=tech.kind == "on-chip",
        standby_w=0.0
        if chip.static_power_includes_memory
        else devices * (tech.standby_power_per_device or 0.0),
        cost_usd=None if tech.cost_per_gb_usd is None else capacity / 1e9 * tech.cost_per_gb_usd,
    )


KvMemory = str | MemoryTechSpec | None  # a catalog name, a path, or a technology given inline


def _tier_specs(spec: HardwareSpec, path: Path, kv_memory: KvMemory) -> list[TierSpec]:
    """The hardware's tiers with `kv_memory` (if given) as the technology of its KV tier. A `tech:` path in
    the hardware file is taken relative to that file's folder (as an instance's model and hardware are).
    An inline technology's tier names it by its `name` (see _tech_of)."""
    tier_specs = [t.model_copy(update={"tech": relative_to_file(t.tech, path.parent)}) for t in spec.memory]
    if kv_memory is not None:
        label = kv_memory.name if isinstance(kv_memory, MemoryTechSpec) else str(kv_memory)
        if spec.kv_memory_tier is None:
            raise PlannerInputError(
                path,
                [f"kv_memory_tier: not set, so --kv-memory {label} cannot be applied to this hardware"],
            )
        new_tech = kv_memory if isinstance(kv_memory, MemoryTechSpec) else load_memory_tech(kv_memory)
        # the tier names the technology as given (a shipped name or a path), not by its `name` field
        if new_tech.kind == "on-chip":
            del tier_specs[spec.kv_memory_tier]
            if not tier_specs:
                tier_specs = [TierSpec(tech=label)]
        else:
            tier_specs[spec.kv_memory_tier] = TierSpec(tech=label)
    return tier_specs


def _tech_of(tier: TierSpec, kv_memory: KvMemory) -> MemoryTechSpec:
    """The technology of a tier: the inline KV memory if the tier names it, else its file."""
    if isinstance(kv_memory, MemoryTechSpec) and tier.tech == kv_memory.name:
        return kv_memory
    return load_memory_tech(tier.tech)


def hardware_files(name_or_path: str | Path, kv_memory: KvMemory = None) -> list[Path]:
    """Every file a resolved hardware is read from: the hardware file and each memory technology file of
    its tiers (shipped or given by path), in tier order. An inline KV memory has no file (the instance
    holds its figures)."""
    path = hardware_path(name_or_path)
    spec: HardwareSpec = _validated(HardwareSpec, path)
    inline = kv_memory.name if isinstance(kv_memory, MemoryTechSpec) else None
    return [path] + [memory_tech_path(t.tech) for t in _tier_specs(spec, path, kv_memory) if t.tech != inline]


def load_hardware_spec(name_or_path: str | Path) -> HardwareSpec:
    """The hardware file as written (with its TDP and sources), validated."""
    return _validated(HardwareSpec, hardware_path(name_or_path))


def load_hardware(name_or_path: str | Path, kv_memory: KvMemory = None) -> Hardware:
    """Read instances/hardware/NAME.yaml (or a path); `kv_memory` swaps the technology of its KV tier.

    With kv_memory an on-chip technology (sram), the off-chip tier is dropped: everything lives in SRAM.
    """
    path = hardware_path(name_or_path)
    spec: HardwareSpec = _validated(HardwareSpec, path)
    tier_specs = _tier_specs(spec, path, kv_memory)
    problems, tiers = [], []
    for i, t in enumerate(tier_specs):
        try:
            tiers.append(_tier(t, _tech_of(t, kv_memory), spec.chip))
        except PlannerInputError as exc:
            problems += [f"memory.{i}.tech: {exc.source}: {p}" for p in exc.problems]
    if len({t.name for t in tiers}) != len(tiers):
        problems.append("memory: a technology is listed twice; merge the entries")
    if problems:
        raise PlannerInputError(path, problems)

    def link(s: LinkSpec | None) -> Link | None:
        return None if s is None else Link(s.bandwidth, s.energy, s.latency)

    a = spec.achievable
    chip = spec.chip
    unit_specs = spec.units or [UnitSpec(name="chip", runs=list(PHASES))]
    units = tuple(
        Unit(u.name, tuple(u.runs), dict(u.peak_flops) if u.peak_flops else None, u.energy_per_flop)
        for u in unit_specs
    )
    return Hardware(
        name=spec.name,
        chip_name=spec.chip.name,
        peak_flops_per_s=dict(spec.chip.peak_flops),
        pj_per_flop=spec.chip.energy_per_flop,
        static_power_w=spec.chip.static_power,
        parallel_units=spec.chip.parallel_units,
        tiers=tuple(tiers),
        chips_per_group=spec.chips_per_group,
        intra_link=link(spec.intra_group_link),
        inter_link=link(spec.inter_group_link),
        achievable=Achievable(
            a.weight_bandwidth,
            a.kv_bandwidth,
            a.compute,
            a.link_bandwidth,
            a.node_overhead,
            a.attention_bytes_per_s_per_work_item,
        ),
        units=units,
        units_overlap=spec.units_overlap and len(units) > 1,
        moe_dispatch=spec.moe_dispatch,
        a2e_link=link(spec.a2e_link),
        tdp_w=chip.tdp,
        kv_path_pj_per_bit=spec.chip.kv_data_path_energy,
        kv_memory=kv_memory.name if isinstance(kv_memory, MemoryTechSpec) else kv_memory,
    )


def hardware_names() -> list[str]:
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.yaml"))
