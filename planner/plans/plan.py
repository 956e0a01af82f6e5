"""Placement plans: what a plan holds (FORMULATION.md §6), export/import, and the independent evaluator.

A plan file carries its instance, the placement (groups of nodes, tier fractions of each node's weights
and KV), the solver facts, and the figures recomputed from the placement by planner.cost. Importing a
plan re-reads only the instance and the placement; `evaluate` recomputes every figure with no solver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import Field, ValidationError

from planner.core.errors import PlannerInputError, problems_from_validation
from planner.core.fileio import json_text, read_mapping, write_text_atomic
from planner.core.schema import Strict as _Strict
from planner.cost.pipeline import PipelineCost, pipeline_cost
from planner.model.graph import kv_tokens
from planner.problem.instance import InstanceSpec
from planner.problem.problem import Problem, resolve

SPLIT_TOLERANCE = 1e-6  # fractions may miss 1 by this much (solver round-off)
CAPACITY_TOLERANCE = 1e-6  # relative


class StageRecord(_Strict):
    """What happened for one number of stages S: its optimum, bound, or why it was skipped."""

    status: str  # optimal, time_limit, infeasible, pruned, error
    joules_per_token: float | None = None
    best_bound: float | None = None
    solve_s: float = 0.0
    message: str = ""  # the solver's own words when it failed


class SolverFacts(_Strict):
    method: str = "milp"
    status: str
    objective: float | None = None
    best_bound: float | None = None
    gap: float | None = None
    build_s: float = 0.0
    solve_s: float = 0.0
    per_stage: dict[int, StageRecord] = Field(default_factory=dict)
    message: str = ""


class Plan(_Strict):
    """A placement and how it was found. `figures` are derived (recomputed on evaluate), kept for readers."""

    instance: InstanceSpec
    stages: int = Field(gt=0, le=100_000)  # InstanceSpec.max_groups' limit
    groups: list[list[str]]
    weight_split: dict[str, dict[str, float]]
    kv_split: dict[str, dict[str, float]]
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
        problem = resolve(self.instance)
        return node_frame(self, problem)

    def groups_frame(self) -> pd.DataFrame:
        """One row per group: residency and fill per tier, bytes read, time per resource, binding, energy."""
        problem = resolve(self.instance)
        return group_frame(evaluate(problem, self).cost, problem)


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    try:
        return Plan.model_validate(read_mapping(path))
    except ValidationError as exc:
        raise PlannerInputError(path, problems_from_validation(exc)) from None


@dataclass(frozen=True)
class Evaluation:
    """Every figure of a plan recomputed from the instance and the placement, and what it violates."""

    cost: PipelineCost | None
    violations: list[str]

    @property
    def feasible(self) -> bool:
        return not self.violations


def _structure_violations(problem: Problem, plan: Plan) -> list[str]:
    nodes = list(problem.model.graph.nodes)
    placed = [n for g in plan.groups for n in g]
    v = []
    if plan.stages != len(plan.groups):
        v.append(f"stages is {plan.stages} but the plan has {len(plan.groups)} groups")
    if any(not g for g in plan.groups):
        v.append("a group holds no node; every group must be used")
    if len(plan.groups) > problem.max_groups:
        v.append(f"{len(plan.groups)} groups exceed max_groups {problem.max_groups}")
    unknown = sorted(set(placed) - set(nodes))
    if unknown:
        v.append(f"nodes not in the model: {unknown[:5]}")
    missing = [n for n in nodes if n not in set(placed)]
    if missing:
        v.append(f"nodes placed nowhere: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    twice = sorted({n for n in placed if placed.count(n) > 1})
    if twice:
        v.append(f"nodes placed more than once: {twice[:5]}")
    if not (unknown or missing or twice) and placed != nodes:
        v.append("groups are not contiguous slices in execution order (every edge must go forward)")
    for kind, split in (("weight_split", plan.weight_split), ("kv_split", plan.kv_split)):
        for n in nodes:
            fractions = split.get(n)
            if fractions is None:
                v.append(f"{kind}: no entry for {n}")
                continue
            bad_tiers = sorted(set(fractions) - set(problem.tiers))
            if bad_tiers:
                v.append(f"{kind}.{n}: tiers {bad_tiers} not allowed (allowed: {list(problem.tiers)})")
            if any(f < -SPLIT_TOLERANCE for f in fractions.values()):
                v.append(f"{kind}.{n}: negative fraction")
            if abs(sum(fractions.values()) - 1.0) > SPLIT_TOLERANCE:
                v.append(f"{kind}.{n}: fractions sum to {sum(fractions.values()):.6g}, not 1")
    return v


def evaluate(problem: Problem, plan: Plan) -> Evaluation:
    """Recompute the plan with planner.cost alone and list every violated constraint."""
    violations = _structure_violations(problem, plan)
    if any(
        ("placed" in s or "not in the model" in s or "contiguous" in s or "no entry" in s) for s in violations
    ):
        return Evaluation(None, violations)
    cost = pipeline_cost(
        problem.model.graph,
        problem.hw,
        problem.users,
        problem.context,
        plan.groups,
        plan.weight_split,
        plan.kv_split,
        problem.spec.workload.micro_batches,
    )
    for g in cost.groups:
        for t, used in g.resident_bytes.items():
            cap = g.capacity_bytes[t]
            if used > cap * (1 + CAPACITY_TOLERANCE):
                violations.append(
                    f"capacity: group {g.index} holds {used / 1e9:,.3f} GB in {t}, capacity {cap / 1e9:,.3f} GB "
                    f"(over by {(used - cap) / 1e9:,.3f} GB)"
                )
    floor = problem.min_tokens_per_s
    if cost.tokens_per_s_per_user < floor * (1 - 1e-9):
        violations.append(
            f"speed: {cost.tokens_per_s_per_user:,.2f} tokens/s per user is below the floor {floor:,.2f} "
            f"(token time {cost.token_s * 1e3:,.3f} ms > {1e3 / floor:,.3f} ms)"
        )
    return Evaluation(cost, violations)


def totals(cost: PipelineCost) -> dict[str, Any]:
    """The totals of a placement in readable units (ms, J, W): shared by the plan file and --json."""
    return {
        "stages": cost.stages,
        "chips": cost.chips,
        "users": cost.users,
        "context": cost.context,
        "micro_batches": cost.micro_batches,
        "micro_batch": cost.micro_batch,
        "cycle_ms": cost.cycle_s * 1e3,
        "token_ms": cost.token_s * 1e3,
        "tokens_per_s_per_user": cost.tokens_per_s_per_user,
        "tokens_per_s": cost.tokens_per_s,
        "joules_per_token": cost.joules_per_token,
        "joules_per_token_by": dict(cost.joules_per_token_by),
        "power_w": cost.power_w,
    }


def figures(cost: PipelineCost) -> dict[str, Any]:
    """Totals and per-group figures of FORMULATION.md §6, in readable units (ms, J, GB, W)."""
    return {
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
                "send_ms": g.send_s * 1e3,
                "time_ms_by": {k: v * 1e3 for k, v in g.time_by_kind_s.items()},
                "binding": g.binding,
                "energy_j_per_token_by": {k: v / cost.micro_batch for k, v in g.energy_j.items()},
            }
            for g in cost.groups
        ],
    }


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
        "per_stage_count": {
            int(k): (r.joules_per_token if r.joules_per_token is not None else r.status)
            for k, r in s.per_stage.items()
        },
    }


def node_frame(plan: Plan, problem: Problem) -> pd.DataFrame:
    graph = problem.model.graph
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
        for k, v in g.energy_j.items():
            row[f"{k}_j_per_token"] = v / cost.micro_batch
        rows.append(row)
    return pd.DataFrame(rows)


def write_csv_tables(plan: Plan, problem: Problem, cost: PipelineCost, directory: str | Path) -> list[Path]:
    directory = Path(directory)
    return [
        write_text_atomic(directory / "nodes.csv", node_frame(plan, problem).to_csv(index=False)),
        write_text_atomic(directory / "groups.csv", group_frame(cost, problem).to_csv(index=False)),
    ]


def clean_split(split: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Drop zero fractions so plans stay readable; order tiers by name for byte-stable files."""
    return {n: {t: float(f) for t, f in sorted(fr.items()) if f > 1e-12} for n, fr in split.items()}
