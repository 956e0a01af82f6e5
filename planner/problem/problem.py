"""The problem the optimizer, the evaluator, the explanations and the studies take: an instance with its
model and hardware loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planner.core.errors import PlannerInputError
from planner.hardware.catalog import Hardware, hardware_files, load_hardware
from planner.model.config import resolve_config_path
from planner.model.graph import Model, load_model
from planner.problem.instance import InstanceSpec


@dataclass(frozen=True)
class Problem:
    """An instance with its model and hardware loaded: what the optimizer and the evaluator read."""

    spec: InstanceSpec
    model: Model
    hw: Hardware
    tiers: tuple[str, ...]

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


def resolve(spec: InstanceSpec, source: str = "instance") -> Problem:
    """Load the model and hardware of an instance and check the tiers it names."""
    w = spec.workload
    try:
        model = load_model(spec.model, w.weight_dtype, w.kv_dtype, w.activation_dtype)
        hw = load_hardware(spec.hardware, spec.kv_memory)
    except PlannerInputError as exc:  # a name or path that leads nowhere: say which field gave it
        field = next((f for f in ("model", "hardware", "kv_memory") if getattr(spec, f) == exc.source), None)
        if field is None:
            raise
        raise PlannerInputError(source, [f"{field}: {exc.source}: {p}" for p in exc.problems]) from None
    if spec.chips_per_group is not None:
        if spec.chips_per_group > 1 and hw.intra_link is None:
            raise PlannerInputError(
                source, [f"chips_per_group: {spec.chips_per_group} needs an intra_group_link in {hw.name}"]
            )
        hw = hw.with_chips_per_group(spec.chips_per_group)
    names = tuple(t.name for t in hw.tiers)
    tiers = tuple(spec.tiers) if spec.tiers else names
    unknown = [t for t in tiers if t not in names]
    if unknown:
        raise PlannerInputError(source, [f"tiers: {unknown} not on {hw.name}; its tiers are {list(names)}"])
    return Problem(spec=spec, model=model, hw=hw, tiers=tiers)


def instance_files(spec: InstanceSpec) -> list[Path]:
    """Every input file an instance is read from: its model config, its hardware file and each memory
    technology file the hardware's tiers use (what a cached result of the instance depends on)."""
    return [resolve_config_path(spec.model), *hardware_files(spec.hardware, spec.kv_memory)]
