"""Placement plans: what a plan holds (FORMULATION.md §6), export/import, and the independent evaluator.

A plan file carries its instance, the placement (groups of nodes, tier fractions of each node's weights
and KV), the solver facts, and the figures recomputed from the placement by planner.cost. Importing a
plan re-reads only the instance and the placement; `evaluate` recomputes every figure with no solver.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import Field, ValidationError

from planner.core.errors import PlannerInputError, bounded_repr, problems_from_validation
from planner.core.fileio import json_text, read_mapping, write_text_atomic
from planner.core.schema import Strict as _Strict
from planner.cost.pipeline import PipelineCost, pipeline_cost
from planner.model.graph import kv_tokens
from planner.placement.constraints import check

if TYPE_CHECKING:  # pandas loads only when a frame is asked for
    import pandas as pd
from planner.problem.instance import InstanceSpec
from planner.problem.problem import Problem, resolve

SPLIT_TOLERANCE = 1e-6  # fractions may miss 1 by this much (solver round-off)


class StageRecord(_Strict):
    """What happened for one number of stages S: its optimum, bound, or why it was skipped."""

    status: str  # optimal, time_limit, infeasible, pruned, error
    joules_per_token: float | None = None
    best_bound: float | None = None
    solve_s: float = 0.0
    message: str = ""  # the solver's own words when it failed


class GroupSizeRecord(_Strict):
    """The best plan found with one group size (when the instance lists several)."""

    status: str
    joules_per_token: float | None = None
    stages: int | None = None


class SolverFacts(_Strict):
    method: str = "milp"
    status: str
    objective: float | None = None
    best_bound: float | None = None
    gap: float | None = None
    build_s: float = 0.0
    solve_s: float = 0.0
    per_stage: dict[int, StageRecord] = Field(default_factory=dict)
    per_group_size: dict[int, GroupSizeRecord] = Field(default_factory=dict)
    message: str = ""


class Plan(_Strict):
    """A placement and how it was found. `figures` are derived (recomputed on evaluate), kept for readers."""

    instance: InstanceSpec
    stages: int = Field(gt=0, le=100_000)  # InstanceSpec.max_groups' limit
    groups: list[list[str]]
    weight_split: dict[str, dict[str, float]]
    kv_split: dict[str, dict[str, float]]
    cycle_ms: float | None = Field(
        default=None, gt=0, description="the cycle the pipeline runs at (a decision: at least every group's)"
    )
    micro_batches: int | None = Field(
        default=None, gt=0, description="micro-batches in flight (a decision; default: the instance's)"
    )
    chips_per_group: int | None = Field(
        default=None, gt=0, description="chips per group (a decision when the instance lists several)"
    )
    solver: SolverFacts
    figures: dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, width=120)

    def to_json(self) -> str:
        return json_text(self.to_dict(), indent=1)

    def save(self, path: str | Path) -> Path:
        """Write as YAML (.yaml/.yml) or JSON (.json), atomically."""
        path = Path(path)
        if path.suffix not in (".yaml", ".yml", ".json"):
            raise PlannerInputError(str(path), ["plan file must end in .yaml, .yml or .json"])
        return write_text_atomic(path, self.to_json() if path.suffix == ".json" else self.to_yaml())

    def to_frame(self) -> pd.DataFrame:
        """One row per node: group, kind, bytes, tier fractions of weights and KV."""
        problem = plan_problem(resolve(self.instance), self)[0]
        return node_frame(self, problem)

    def groups_frame(self) -> pd.DataFrame:
        """One row per group: residency and fill per tier, bytes read, time per resource, binding, energy."""
        base = resolve(self.instance)
        result = evaluate(base, self)
        if result.cost is None:
            raise PlannerInputError("plan", result.violations)
        return group_frame(result.cost, plan_problem(base, self)[0])


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file (YAML or JSON); the placement is checked by `evaluate`."""
    path = Path(path)
    try:
        return Plan.model_validate(read_mapping(path))
    except ValidationError as exc:
        raise PlannerInputError(path, problems_from_validation(exc)) from None


# instance fields a plan's figures depend on (name is a label; solver says how a plan was searched for)
EVALUATED_FIELDS = (
    "model",
    "hardware",
    "kv_memory",
    "chips_per_group",
    "max_groups",
    "tiers",
    "weight_tiers",
    "kv_tiers",
    "split",
    "core_parts",
    "max_chip_power",
    "max_power",
    "workload",
)


def instance_differences(plan_spec: InstanceSpec, spec: InstanceSpec) -> list[str]:
    """The fields of EVALUATED_FIELDS in which a plan's embedded instance differs from `spec`, each with
    both values. A model, hardware or memory given once by name and once by path is the same if both lead
    to the same file."""
    ours, theirs = plan_spec.model_dump(mode="json"), spec.model_dump(mode="json")
    differ = []
    for field in EVALUATED_FIELDS:
        a, b = ours[field], theirs[field]
        if isinstance(a, dict):
            differ += [
                f"{field}.{k}: plan {bounded_repr(a[k])}, instance {bounded_repr(b[k])}"
                for k in a
                if a[k] != b[k]
            ]
        elif a != b and not _same_file(field, a, b):
            differ.append(f"{field}: plan {bounded_repr(a)}, instance {bounded_repr(b)}")
    return differ


def _same_file(field: str, a: Any, b: Any) -> bool:
    """Whether two model / hardware / kv_memory values name the same file."""
    from planner.hardware.catalog import hardware_path, memory_tech_path
    from planner.model.config import resolve_config_path

    find = {"model": resolve_config_path, "hardware": hardware_path, "kv_memory": memory_tech_path}.get(field)
    if find is None or not isinstance(a, str) or not isinstance(b, str):
        return False
    try:
        return find(a).resolve() == find(b).resolve()
    except (PlannerInputError, OSError):
        return False


@dataclass(frozen=True)
class Evaluation:
    """Every figure of a plan recomputed from the instance and the placement, and what it violates."""

    cost: PipelineCost | None
    violations: list[str]

    @property
    def feasible(self) -> bool:
        return not self.violations


def _few(items: Sequence[Any], shown: int = 5) -> str:
    """The first `shown` items and how many there are in all: violation lists stay short."""
    head = ", ".join(bounded_repr(i) if not isinstance(i, str) else i for i in items[:shown])
    return head if len(items) <= shown else f"{head}, ... ({len(items):,} in all)"


def _parts(granularity: dict[str, int], sep: str = "=") -> str:
    return ", ".join(f"{k}{sep}{v}" for k, v in granularity.items() if v != 1) or "none"


def _structure_violations(problem: Problem, plan: Plan) -> tuple[list[str], list[str]]:
    """What is wrong with the plan's structure, as (blocking, other). Blocking: planner.cost cannot price
    the plan (an empty group; a node unknown, placed nowhere, twice or out of order; a split entry missing,
    naming a tier the hardware lacks or holding a fraction outside [0, 1]). Other: it can, but the instance
    forbids it (stages, max_groups, tiers not allowed, fractions that do not sum to 1). One violation per
    kind, listing the first few places; time linear in the size of the plan and the model."""
    nodes = list(problem.nodes)  # the split graph's nodes, in order
    known = set(nodes)
    placed = [n for g in plan.groups for n in g]
    count = Counter(placed)
    blocking, other = [], []
    empty = [i for i, g in enumerate(plan.groups) if not g]
    if empty:
        blocking.append(f"empty groups (no node): {_few(empty)}; every group must hold at least one node")
    unknown = [n for n in count if n not in known]
    made_with = plan.figures.get("granularity")
    if (unknown or len(placed) != len(nodes)) and made_with and made_with != problem.granularity.as_dict():
        parts = _parts(made_with)
        given = f"{{{_parts(made_with, ': ')}}}" if parts != "none" else "none"
        blocking.append(
            f"made with sub-layer parts {parts} (figures.granularity), but this version splits "
            f"its instance into {_parts(problem.granularity.as_dict())}: solve the instance again, or set "
            f"the plan's own instance.split to {given}"
        )
    if unknown:
        blocking.append(f"nodes not in the model: {_few(unknown)}")
    missing = [n for n in nodes if n not in count]
    if missing:
        blocking.append(f"nodes placed nowhere: {_few(missing)}")
    twice = [n for n, c in count.items() if c > 1]
    if twice:
        blocking.append(f"nodes placed more than once: {_few(twice)}")
    if not (unknown or missing or twice) and placed != nodes:
        blocking.append("groups are not contiguous slices in execution order (every edge must go forward)")
    if plan.stages != len(plan.groups):
        other.append(f"stages is {plan.stages} but the plan has {len(plan.groups)} groups")
    if len(plan.groups) > problem.max_groups:
        other.append(f"{len(plan.groups)} groups exceed max_groups {problem.max_groups}")
    on_hardware = {t.name for t in problem.hw.tiers}
    for kind, split in (("weight_split", plan.weight_split), ("kv_split", plan.kv_split)):
        allowed = problem.tiers_for("w" if kind == "weight_split" else "k")
        found: dict[str, list[str]] = {
            "absent": [],
            "no_tier": [],
            "range": [],
            "not_allowed": [],
            "sum": [],
        }
        for n in nodes:
            fractions = split.get(n)
            if fractions is None:
                found["absent"].append(n)
                continue
            if any(t not in on_hardware for t in fractions):
                found["no_tier"].append(f"{n} ({_few(sorted(set(fractions) - on_hardware), 2)})")
            elif any(t not in allowed for t in fractions):
                found["not_allowed"].append(f"{n} ({_few(sorted(set(fractions) - allowed), 2)})")
            if any(not -SPLIT_TOLERANCE <= f <= 1 + SPLIT_TOLERANCE for f in fractions.values()):
                found["range"].append(n)
            elif abs(sum(fractions.values()) - 1.0) > SPLIT_TOLERANCE:
                found["sum"].append(f"{n} (sum {sum(fractions.values()):.6g})")
        extra = [n for n in split if n not in known]
        if found["absent"]:
            blocking.append(f"{kind}: no entry for {_few(found['absent'])}")
        if found["no_tier"]:
            blocking.append(f"{kind}: tiers not on {problem.hw.name} at {_few(found['no_tier'])}")
        if found["range"]:
            blocking.append(f"{kind}: fractions outside [0, 1] at {_few(found['range'])}")
        if found["not_allowed"]:
            other.append(
                f"{kind}: tiers not allowed (allowed: {list(allowed)}) at {_few(found['not_allowed'])}"
            )
        if found["sum"]:
            other.append(f"{kind}: fractions that do not sum to 1 at {_few(found['sum'])}")
        if extra:
            other.append(f"{kind}: entries for nodes not in the model: {_few(extra)}")
    return blocking, other


def plan_problem(problem: Problem, plan: Plan) -> tuple[Problem, list[str]]:
    """The problem as the plan decided it (its group size, the core parts it cuts between groups:
    planner.placement.packing), and what the plan decides that the instance does not allow (a group size
    it does not list, more micro-batches than users or than its cap)."""
    bad = []
    cuts = plan.instance.core_cuts
    size = plan.chips_per_group
    if cuts and not problem.spec.core_cuts:  # a decision of the plan: core parts cut between its groups
        from planner.problem.problem import build

        update: dict = {"core_cuts": cuts}
        if size is not None and size in problem.spec.group_sizes:
            update["chips_per_group"] = size  # the parts the cuts name are that group size's
        spec = problem.spec.model_copy(update=update)
        problem = build(spec, problem.model, problem.base_hw, problem.tiers, "plan")
    if size is not None and size != problem.hw.chips_per_group:
        if size not in [s for s in problem.spec.group_sizes if s is not None]:
            bad.append(
                f"chips_per_group: {size} is not a group size of the instance ({problem.spec.chips_per_group})"
            )
        else:
            problem = problem.with_chips_per_group(size)
    m = plan.micro_batches
    if m is not None:
        cap = problem.in_flight
        if m > problem.users or (cap is not None and m > cap):
            bad.append(
                f"micro_batches: {m} exceeds the users ({problem.users:,}) or the instance's cap ({cap})"
            )
    return problem, bad


def evaluate(problem: Problem, plan: Plan, source: str = "plan") -> Evaluation:
    """Recompute the plan with planner.cost alone and list every violated constraint (each constraint
    family's check, planner.placement.constraints). The plan's decisions (group size, micro-batches in
    flight, clock) are its own; the instance gives everything else.

    A plan made for another instance is bad input (PlannerInputError naming `source` and each differing
    field), not a violation: its figures would describe an instance it was not made for. A plan whose
    structure planner.cost cannot price has violations and no cost."""
    differ = instance_differences(plan.instance, problem.spec)
    if differ:
        raise PlannerInputError(
            source,
            [f"the plan was made for another instance; {d}" for d in differ]
            + ["evaluate it against the instance it was made for (its `instance:` section), or solve again"],
        )
    problem, decisions = plan_problem(problem, plan)
    blocking, violations = _structure_violations(problem, plan)
    violations = decisions + violations
    if blocking:
        return Evaluation(None, blocking + violations)
    cost = pipeline_cost(
        problem.graph,
        problem.hw,
        problem.users,
        problem.context,
        plan.groups,
        plan.weight_split,
        plan.kv_split,
        plan.micro_batches or problem.in_flight,
        None if plan.cycle_ms is None else plan.cycle_ms / 1e3,
    )
    return Evaluation(cost, violations + check(problem, cost))


def totals(cost: PipelineCost) -> dict[str, Any]:
    """The totals of a placement in readable units (ms, J, W): shared by the plan file and --json."""
    return {
        "stages": cost.stages,
        "chips": cost.chips,
        "chips_per_group": cost.chips_per_group,
        "users": cost.users,
        "context": cost.context,
        "micro_batches": cost.micro_batches,
        "micro_batch": cost.micro_batch,
        "cycle_ms": cost.cycle_s * 1e3,
        "walk_ms": cost.walk_s * 1e3,
        "period_ms": cost.period_s * 1e3,
        "token_ms": cost.token_s * 1e3,
        "tokens_per_s_per_user": cost.tokens_per_s_per_user,
        "tokens_per_s": cost.tokens_per_s,
        "joules_per_token": cost.joules_per_token,
        "joules_per_token_by": dict(cost.joules_per_token_by),
        "power_w": cost.power_w,
        "max_chip_power_w": cost.max_chip_power_w,
    }


def figures(cost: PipelineCost, problem: Problem | None = None) -> dict[str, Any]:
    """Totals and per-group figures of FORMULATION.md §6, in readable units (ms, J, GB, W)."""
    out = {
        **totals(cost),
        "groups": [
            {
                "group": g.index,
                "first_node": g.nodes[0],
                "last_node": g.nodes[-1],
                "nodes": len(g.nodes),
                "resident_gb": {t: v / 1e9 for t, v in g.resident_bytes.items()},
                "capacity_gb": {t: v / 1e9 for t, v in g.capacity_bytes.items()},
                "read_gb_per_cycle": {t: v / 1e9 for t, v in g.read_bytes.items()},
                "busy_ms": g.busy_s * 1e3,
                "busy_ms_by_unit": {u: v * 1e3 for u, v in g.unit_busy_s.items()},
                "latency_ms": g.latency_s * 1e3,
                "cycle_ms": g.cycle_s * 1e3,
                "send_ms": g.send_s * 1e3,
                "time_ms_by": {k: v * 1e3 for k, v in g.time_by_kind_s.items()},
                "binding": g.binding,
                "energy_j_per_token_by": {k: v / cost.micro_batch for k, v in g.energy_j.items()},
                "power_w": cost.group_power_w(g),
                "power_w_per_chip": cost.group_power_w(g) / cost.chips_per_group,
            }
            for g in cost.groups
        ],
    }
    if problem is not None:
        out["granularity"] = problem.granularity.as_dict()
        out["graph_nodes"] = len(problem.nodes)
        out["max_chip_power_limit_w"] = problem.max_chip_power_w
        out["max_power_limit_w"] = problem.max_power_w
    return out


def objective_rel_diff(plan: Plan, cost: PipelineCost) -> float | None:
    """|recomputed J/token - the plan's objective| / the larger of the two (in [0, 2], never overflowing:
    a hand-edited objective of 1e-320 gives 1, not infinity); None when the plan records no objective."""
    objective = plan.solver.objective
    if objective is None:
        return None
    scale = max(abs(objective), abs(cost.joules_per_token))
    return abs(cost.joules_per_token - objective) / scale if scale else 0.0


def summary(plan: Plan, cost: PipelineCost) -> dict[str, Any]:
    """The flat result a user scripts against (JSON keys of `planner solve --json`)."""
    s = plan.solver
    return {
        "status": s.status,
        **totals(cost),
        "objective": s.objective,
        "gap": s.gap,
        "best_bound": s.best_bound,
        "solve_s": s.solve_s,
        "build_s": s.build_s,
        "method": s.method,
        "core_cuts": len(plan.instance.core_cuts or {}),  # core parts cut between groups (placement.packing)
        "per_stage_count": {
            int(k): (r.joules_per_token if r.joules_per_token is not None else r.status)
            for k, r in s.per_stage.items()
        },
    }


def node_frame(plan: Plan, problem: Problem) -> pd.DataFrame:
    import pandas as pd

    graph = problem.graph
    group_of = {n: g for g, names in enumerate(plan.groups) for n in names}
    rows = []
    for n, d in graph.nodes(data=True):
        row = {
            "node": n,
            "kind": d["kind"],
            "group": group_of.get(n),
            "weight_gb": d["weight_bytes"] / 1e9,
            "kv_gb_all_users": problem.users * d["kv_bytes_per_token"] * kv_tokens(d, problem.context) / 1e9,
        }
        for t in problem.tiers:
            row[f"weight_frac_{t}"] = plan.weight_split.get(n, {}).get(t, 0.0)
            row[f"kv_frac_{t}"] = plan.kv_split.get(n, {}).get(t, 0.0)
        rows.append(row)
    return pd.DataFrame(rows)


def group_frame(cost: PipelineCost, problem: Problem) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for g in cost.groups:
        row: dict[str, Any] = {
            "group": g.index,
            "first_node": g.nodes[0],
            "last_node": g.nodes[-1],
            "nodes": len(g.nodes),
        }
        for t in problem.tiers:
            row[f"{t}_resident_gb"] = g.resident_bytes[t] / 1e9
            row[f"{t}_fill_pct"] = 100 * g.resident_bytes[t] / g.capacity_bytes[t]
            row[f"{t}_read_gb_per_cycle"] = g.read_bytes[t] / 1e9
        for k, v in g.time_by_kind_s.items():
            row[f"{k}_ms"] = v * 1e3
        row["busy_ms"], row["send_ms"], row["binding"] = g.busy_s * 1e3, g.send_s * 1e3, g.binding
        for u, v in g.unit_busy_s.items():
            row[f"{u}_unit_busy_ms"] = v * 1e3
        row["latency_ms"], row["cycle_ms"] = g.latency_s * 1e3, g.cycle_s * 1e3
        for k, v in g.energy_j.items():
            row[f"{k}_j_per_token"] = v / cost.micro_batch
        row["power_w_per_chip"] = cost.group_power_w(g) / cost.chips_per_group
        rows.append(row)
    return pd.DataFrame(rows)


def clean_split(split: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Drop zero fractions so plans stay readable; order tiers by name for byte-stable files."""
    return {n: {t: float(f) for t, f in sorted(fr.items()) if f > 1e-12} for n, fr in split.items()}
