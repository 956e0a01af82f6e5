"""Placement instances: a model, a hardware, the chip groups and a workload, read from YAML or flags.

An instance file (instances/*.yaml):

    model: llama-3.1-70b            # graphs/ name or path to an HF config.json
    hardware: sram-pipeline         # instances/hardware/ name or path
    kv_memory: novel-kv-dram        # optional: technology of the hardware's KV tier (name, path, or inline
                                    #   {name, kind, capacity_per_device, bandwidth_per_device, energy, ...})
    chips_per_group: 8              # optional: default from the hardware; a list [1, 2, 4, 8]: pick the best
    max_groups: 64                  # the largest number of groups (stages) allowed
    tiers: [sram, novel-kv-dram]    # optional: tiers each group may use (default: all of the hardware's)
    weight_tiers: [sram]            # optional: tiers the weights may use (default: all allowed tiers)
    kv_tiers: null                  # optional: tiers the KV cache may use
    split: auto                     # optional: sub-layer parts: auto | none | "16 MB" | {ffn: 4, core: 8, ...}
    core_parts: null                # optional, automatic splits: attention core parts (default: from users)
    core_cuts: null                 # optional: {core part: share of its users in the first piece}, as the
                                    #   capacity search's packing writes it
    max_chip_power: tdp             # optional: per-chip power limit: tdp (default) | none | "350 W"
    max_power: null                 # optional: power budget of the whole pipeline, e.g. "1.2 MW"
    workload: {users: 1024, context: 4096, min_tokens_per_s: 20, weight_dtype: bf16, kv_dtype: bf16}
    solver: {stages: null, time_limit: 60 s, gap: 1e-4}   # optional
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from planner.core.errors import PlannerInputError, bounded_repr, problems_from_validation
from planner.core.fileio import read_mapping, relative_to_file
from planner.core.schema import Strict as _Strict
from planner.core.units import DTYPE_BYTES, Bytes, Seconds, Watts
from planner.hardware.catalog import MemoryTechSpec
from planner.model.split import KINDS


class WorkloadSpec(_Strict):
    """Users served at once, KV tokens held per user, the per-user speed floor and the dtypes."""

    users: int = Field(gt=0, le=100_000_000)
    context: int = Field(gt=0, le=100_000_000, description="KV tokens held per user")
    min_tokens_per_s: float = Field(
        gt=0, le=1e6, allow_inf_nan=False, description="per-user decode speed floor"
    )
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    activation_dtype: str = "bf16"
    micro_batches: int | None = Field(
        default=None,
        gt=0,
        le=100_000_000,
        description="most micro-batches in flight: default min(users, slots x S), the deep pipeline; 1 walks "
        "all users through the stages as one batch",
    )
    sample_top_k: int = Field(
        default=1,
        gt=0,
        le=100_000,
        description="candidates each LM-head shard reports for sampling (1: argmax)",
    )

    @field_validator("weight_dtype", "kv_dtype", "activation_dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        if v not in DTYPE_BYTES:
            raise ValueError(f"unknown dtype {bounded_repr(v)}; expected one of {', '.join(DTYPE_BYTES)}")
        return v


ANY_PLAN_GAP = 1.0  # the largest relative gap: every plan is within it, so the first plan found ends a solve


class SolverSpec(_Strict):
    stages: int | None = Field(default=None, gt=0, le=100_000, description="fix S instead of enumerating")
    time_limit: Seconds | None = Field(default=None, gt=0, description="per solve of one S")
    gap: float = Field(default=1e-4, ge=0, le=ANY_PLAN_GAP)
    method: str = Field(
        default="milp",
        pattern="^(milp|pyomo|exhaustive)$",
        description="milp: exact search + Pyomo MILP placement; pyomo: one Pyomo MILP per S; exhaustive",
    )

    @property
    def any_plan(self) -> bool:
        """The gap accepts any plan (a feasibility check): the first plan found is the answer."""
        return self.gap >= ANY_PLAN_GAP


SplitSpec = Literal["auto", "none"] | Bytes | dict[Literal[KINDS], int]  # type: ignore[valid-type]


class InstanceSpec(_Strict):
    """One placement problem."""

    name: str = ""
    model: str
    hardware: str
    kv_memory: str | MemoryTechSpec | None = Field(
        default=None,
        description="technology of the hardware's KV tier: a catalog name, a path, or the figures inline",
    )
    chips_per_group: int | list[int] | None = Field(
        default=None, description="chips per group, or a list of group sizes to choose from"
    )
    max_groups: int = Field(gt=0, le=100_000)
    tiers: list[str] | None = None
    weight_tiers: list[str] | None = Field(
        default=None, description="tiers the weights may use (default: all)"
    )
    kv_tiers: list[str] | None = Field(default=None, description="tiers the KV cache may use (default: all)")
    split: SplitSpec = Field(
        default="auto",
        description="sub-layer parts: auto, none, the most weight bytes per part ('16 MB'), or parts per kind",
    )
    core_parts: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="parts of each attention core under an automatic split (default: planner.model.split."
        "core_parts, from the instance's users); the capacity and memory-size searches fix it for all probes",
    )
    core_cuts: dict[str, float] | None = Field(
        default=None,
        description="core parts cut between two groups: part name -> share of its users in the first piece "
        "(planner.placement.packing writes these; planner.model.split.cut_graph)",
    )
    max_chip_power: Literal["tdp", "none"] | Watts = Field(
        default="tdp", description="per-chip power limit: the chip's TDP (default), none, or watts"
    )
    max_power: Watts | None = Field(default=None, description="power budget of the whole pipeline, W")
    workload: WorkloadSpec
    solver: SolverSpec = SolverSpec()

    @field_validator("chips_per_group")
    @classmethod
    def _group_sizes(cls, v: int | list[int] | None) -> int | list[int] | None:
        sizes = [v] if isinstance(v, int) else (v or [])
        if any(not 0 < s <= 4096 for s in sizes) or (isinstance(v, list) and not v):
            raise ValueError("chips per group must be whole numbers from 1 to 4096 (a list: at least one)")
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError(f"chips_per_group lists a size twice: {v}")
        return v

    @field_validator("split")
    @classmethod
    def _split_parts(cls, v):
        if isinstance(v, dict) and any(not 1 <= n <= 100_000 for n in v.values()):
            raise ValueError("split: parts per kind must be whole numbers from 1 to 100,000")
        if isinstance(v, float) and v <= 0:
            raise ValueError("split: the bytes per part must be positive, e.g. '16 MB'")
        return v

    @field_validator("core_cuts")
    @classmethod
    def _cut_shares(cls, v):
        bad = {k: s for k, s in (v or {}).items() if not 0 < s < 1}
        if bad:
            raise ValueError(f"core_cuts: each share must be between 0 and 1 (exclusive), not {bad}")
        return v or None

    @property
    def automatic_split(self) -> bool:
        """The split is chosen by the planner's rule ('auto', or the most bytes per part), so
        `core_parts` may fix its cores."""
        return self.split == "auto" or isinstance(self.split, float)

    @model_validator(mode="after")
    def _core_parts_with_an_automatic_split(self) -> InstanceSpec:
        if self.core_parts is not None and not self.automatic_split:
            raise ValueError(
                f"core_parts ({self.core_parts}) applies to an automatic split; with split "
                f"{self.split!r} give the core's parts in split (e.g. {{core: {self.core_parts}, ...}})"
            )
        return self

    @model_validator(mode="after")
    def _stages_within_groups(self) -> InstanceSpec:
        if self.solver.stages is not None and self.solver.stages > self.max_groups:
            raise ValueError(f"solver.stages ({self.solver.stages}) exceeds max_groups ({self.max_groups})")
        return self

    @property
    def kv_memory_name(self) -> str:
        """The KV memory as tables show it: the name or path given, an inline technology's name, or ''."""
        m = self.kv_memory
        return m.name if isinstance(m, MemoryTechSpec) else (m or "")

    @property
    def group_sizes(self) -> list[int | None]:
        """The chips-per-group values to try (None: the hardware's own)."""
        v = self.chips_per_group
        return [None] if v is None else ([v] if isinstance(v, int) else list(v))

    def digest(self) -> str:
        """A stable hash of the instance (for caches): sha256 of its canonical JSON."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_instance(path: str | Path) -> InstanceSpec:
    """Read and validate an instance YAML; every problem is reported at once with its field."""
    path = Path(path)
    data = read_mapping(path)
    try:
        spec = InstanceSpec.model_validate(data)
    except ValidationError as exc:
        raise PlannerInputError(path, problems_from_validation(exc)) from None
    fields = {"model": spec.model, "hardware": spec.hardware, "kv_memory": spec.kv_memory}
    return spec.model_copy(
        update={k: relative_to_file(v, path.parent) for k, v in fields.items() if isinstance(v, str)}
    )


def spec_from_flags(**fields) -> InstanceSpec:
    """Build an instance from CLI flags (same validation and messages as a file)."""
    workload = {
        k: fields.pop(k) for k in list(fields) if k in WorkloadSpec.model_fields and fields[k] is not None
    }
    solver = {
        k: fields.pop(k) for k in list(fields) if k in SolverSpec.model_fields and fields[k] is not None
    }
    data = {k: v for k, v in fields.items() if v is not None}
    data["workload"], data["solver"] = workload, solver
    try:
        return InstanceSpec.model_validate(data)
    except ValidationError as exc:
        raise PlannerInputError("command-line flags", problems_from_validation(exc, flags=True)) from None
