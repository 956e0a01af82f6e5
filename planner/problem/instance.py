"""Placement instances: a model, a hardware, the chip groups and a workload, read from YAML or flags.

An instance file (instances/*.yaml):

    model: llama-3.1-70b            # graphs/ name or path to an HF config.json
    hardware: sram-pipeline         # instances/hardware/ name or path
    kv_memory: novel-kv-dram        # optional: technology of the hardware's KV tier
    chips_per_group: 8              # optional: default from the hardware
    max_groups: 64                  # the largest number of groups (stages) allowed
    tiers: [sram, novel-kv-dram]    # optional: tiers each group may use (default: all of the hardware's)
    workload: {users: 1024, context: 4096, min_tokens_per_s: 20, weight_dtype: bf16, kv_dtype: bf16}
    solver: {stages: null, time_limit: 60 s, gap: 1e-4}   # optional
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from planner.core.errors import PlannerInputError, bounded_repr, problems_from_validation
from planner.core.fileio import read_mapping, relative_to_file
from planner.core.schema import Strict as _Strict
from planner.core.units import DTYPE_BYTES, Seconds


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
        description="most micro-batches in flight: default min(users, S), the deep pipeline; 1 walks all users "
        "through the stages as one batch",
    )

    @field_validator("weight_dtype", "kv_dtype", "activation_dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        if v not in DTYPE_BYTES:
            raise ValueError(f"unknown dtype {bounded_repr(v)}; expected one of {', '.join(DTYPE_BYTES)}")
        return v


class SolverSpec(_Strict):
    stages: int | None = Field(default=None, gt=0, le=100_000, description="fix S instead of enumerating")
    time_limit: Seconds | None = Field(default=None, gt=0, description="per solve of one S")
    gap: float = Field(default=1e-4, ge=0, le=1)
    method: str = Field(
        default="milp",
        pattern="^(milp|pyomo|exhaustive)$",
        description="milp: exact search + Pyomo MILP placement; pyomo: one Pyomo MILP per S; exhaustive",
    )


class InstanceSpec(_Strict):
    """One placement problem."""

    name: str = ""
    model: str
    hardware: str
    kv_memory: str | None = None
    chips_per_group: int | None = Field(default=None, gt=0, le=4096)
    max_groups: int = Field(gt=0, le=100_000)
    tiers: list[str] | None = None
    workload: WorkloadSpec
    solver: SolverSpec = SolverSpec()

    @model_validator(mode="after")
    def _stages_within_groups(self) -> InstanceSpec:
        if self.solver.stages is not None and self.solver.stages > self.max_groups:
            raise ValueError(f"solver.stages ({self.solver.stages}) exceeds max_groups ({self.max_groups})")
        return self

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
        update={k: relative_to_file(v, path.parent) for k, v in fields.items() if v is not None}
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
