"""Studies on top of the solver: memory-technology comparison, the deep-pipeline (micro-batch) study and
the KV bandwidth demand per byte stored. Every number comes from planner.cost through the solver's plans.

Per case (a row of a sweep table) this module adds:
- KV traffic: KV bytes stored, KV bytes moved per second (read of the cache plus the new token's write)
  per tier, per reticle die, and the demand per byte stored (1/s);
- the same placement run with ONE micro-batch in flight: all U users in one batch of b = U (so each group
  reads its weights once per U users but the batch walks the S stages alone), per-user token time
  S * T(b = U) + hop latencies, as FORMULATION.md §3 defines it for the deep pipeline. planner.cost has
  no micro-batch switch, so this is computed with planner.cost.pipeline_cost on each group alone (one
  group is one micro-batch: b = U, the KV of all U users resident) plus planner.cost.boundary_cost for the
  hops; no formula is repeated here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from planner.catalog import HARDWARE_DIR, Hardware, HardwareSpec, load_memory_tech, memory_tech_names
from planner.cost import PipelineCost, node_cost, pipeline_cost
from planner.errors import PlannerInputError
from planner.fileio import read_mapping, write_text_atomic
from planner.instance import InstanceSpec, Problem
from planner.plan import Plan, evaluate, summary

DEFAULT_CACHE = Path(".planner-cache") / "cases"
CASE_COLUMNS = (  # the columns case_row adds, in table order
    "tiers",
    "stages",
    "chips",
    "micro_batches",
    "micro_batch",
    "cycle_ms",
    "token_ms",
    "tokens_per_s_per_user",
    "tokens_per_s",
    "power_w",
    "joules_per_token",
    "weight_j",
    "kv_j",
    "compute_j",
    "link_j",
    "idle_j",
    "gap",
    "kv_stored_gb",
    "kv_moved_gb_per_s",
    "kv_demand_per_s",
    "kv_gb_per_s_per_die",
    "kv_tier",
    "kv_tier_share",
    "kv_tier_bw_per_capacity",
    "kv_tier_fill",
    "kv_tier_bw_use",
    "one_mb_token_ms",
    "one_mb_tokens_per_s_per_user",
    "one_mb_joules_per_token",
    "one_mb_meets_floor",
    "one_mb_max_users",
)
FLOOR_TOLERANCE = 1e-9  # relative, as planner.plan.evaluate


# ---------------------------------------------------------------------------------------------- metrics


def reticle_dies_per_chip(hardware: str) -> int:
    """chip.reticle_dies of a hardware file (1 when the file cannot be read as a shipped name/path)."""
    path = HARDWARE_DIR / f"{hardware}.yaml"
    path = path if path.is_file() else Path(hardware)
    try:
        return HardwareSpec.model_validate(read_mapping(path)).chip.reticle_dies
    except Exception:  # the hardware was validated when the case was solved; be lenient here
        return 1


@dataclass(frozen=True)
class KvTraffic:
    """KV bytes stored and moved per second, per tier; moved = read of the cache + write of one token."""

    stored_bytes: dict[str, float]
    moved_bytes_per_s: dict[str, float]
    tier_bytes_per_s: dict[str, float]  # everything read from the tier per second (weights + KV)

    @property
    def demand_per_s(self) -> float:
        """KV bytes moved per second per KV byte stored (1/s): about the per-user token rate."""
        stored = sum(self.stored_bytes.values())
        return sum(self.moved_bytes_per_s.values()) / stored if stored else 0.0

    @property
    def main_tier(self) -> str:
        return max(self.stored_bytes, key=self.stored_bytes.get)


def kv_traffic(problem: Problem, plan: Plan, cost: PipelineCost) -> KvTraffic:
    """KV traffic of a plan: each group handles one micro-batch of b users per cycle of cost.cycle_s."""
    hw, graph = problem.hw, problem.model.graph
    stored = {t.name: 0.0 for t in hw.tiers}
    moved = dict(stored)
    for names in plan.groups:
        for n in names:
            c = node_cost(n, graph.nodes[n], hw, cost.micro_batch, problem.users, problem.context)
            for t, f in plan.kv_split[n].items():
                stored[t] += f * c.kv_resident_bytes
                moved[t] += f * c.kv_moved_bytes / cost.cycle_s
    tier = {t: sum(g.read_bytes[t] for g in cost.groups) / cost.cycle_s for t in stored}
    return KvTraffic(stored, moved, tier)


def one_micro_batch_cost(
    graph: nx.DiGraph,
    hw: Hardware,
    users: int,
    context: int,
    groups: Sequence[Sequence[str]],
    weight_split: Mapping[str, Mapping[str, float]],
    kv_split: Mapping[str, Mapping[str, float]],
) -> PipelineCost:
    """Cost of `groups` with all users in one micro-batch (planner.cost.pipeline_cost, in_flight=1):
    token time S * T(b = U) + hop latencies, J/token = dynamic energy / U + static W x S x T / U."""
    return pipeline_cost(graph, hw, users, context, groups, weight_split, kv_split, in_flight=1)


def one_batch_max_users(
    graph: nx.DiGraph,
    hw: Hardware,
    context: int,
    min_tokens_per_s: float,
    groups: Sequence[Sequence[str]],
    weight_split: Mapping[str, Mapping[str, float]],
    kv_split: Mapping[str, Mapping[str, float]],
    limit: int = 100_000_000,
) -> int:
    """Most users this placement serves with one micro-batch in flight at the floor (0 if none).

    Monotone for a fixed placement (b = U: every time term grows with b, KV resident grows with U), so
    doubling then bisection is exact; each step is one evaluation of planner.cost, no solver.
    """

    def ok(users: int) -> bool:
        c = one_micro_batch_cost(graph, hw, users, context, groups, weight_split, kv_split)
        return not c.overflow_bytes and c.tokens_per_s_per_user >= min_tokens_per_s * (1 - FLOOR_TOLERANCE)

    if not ok(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and ok(hi):
        lo, hi = hi, 2 * hi
    if hi > limit:
        return limit if ok(limit) else _bisect(ok, lo, limit)
    return _bisect(ok, lo, hi)


def _bisect(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def case_row(problem: Problem, plan: Plan) -> dict[str, Any]:
    """The result columns of a sweep row: the plan's totals, J/token by category, KV traffic, and the
    same placement with one micro-batch in flight. Units in the names (ms, J, W, GB, /s)."""
    cost = evaluate(problem, plan).cost
    facts = summary(plan, cost)
    e = cost.joules_per_token_by
    kv = kv_traffic(problem, plan, cost)
    hw, graph = problem.hw, problem.model.graph
    dies = cost.chips * reticle_dies_per_chip(problem.spec.hardware)
    tier = hw.tier(kv.main_tier)
    chips = cost.chips
    row: dict[str, Any] = {
        "status": facts["status"],
        "tiers": "+".join(problem.tiers),
        "stages": cost.stages,
        "chips": cost.chips,
        "micro_batches": facts["micro_batches"],
        "micro_batch": cost.micro_batch,
        "cycle_ms": cost.cycle_s * 1e3,
        "token_ms": cost.token_s * 1e3,
        "tokens_per_s_per_user": cost.tokens_per_s_per_user,
        "tokens_per_s": cost.tokens_per_s,
        "power_w": cost.power_w,
        "joules_per_token": cost.joules_per_token,
        "weight_j": e["weights"],
        "kv_j": e["kv"],
        "compute_j": e["compute"],
        "link_j": e["links"],
        "idle_j": e["idle"],
        "gap": facts["gap"],
        "kv_stored_gb": sum(kv.stored_bytes.values()) / 1e9,
        "kv_moved_gb_per_s": sum(kv.moved_bytes_per_s.values()) / 1e9,
        "kv_demand_per_s": kv.demand_per_s,
        "kv_gb_per_s_per_die": sum(kv.moved_bytes_per_s.values()) / dies / 1e9,
        "kv_tier": kv.main_tier,
        "kv_tier_share": kv.stored_bytes[kv.main_tier] / max(sum(kv.stored_bytes.values()), 1e-30),
        "kv_tier_bw_per_capacity": tier.bw_bytes_per_s / tier.capacity_bytes,
        "kv_tier_fill": sum(g.resident_bytes[tier.name] for g in cost.groups) / (tier.capacity_bytes * chips),
        "kv_tier_bw_use": kv.tier_bytes_per_s[tier.name] / (tier.bw_bytes_per_s * chips),
    }
    one = one_micro_batch_cost(
        graph, hw, problem.users, problem.context, plan.groups, plan.weight_split, plan.kv_split
    )
    row |= {
        "one_mb_token_ms": one.token_s * 1e3,
        "one_mb_tokens_per_s_per_user": one.tokens_per_s_per_user,
        "one_mb_joules_per_token": one.joules_per_token,
        "one_mb_meets_floor": bool(
            one.tokens_per_s_per_user >= problem.min_tokens_per_s * (1 - FLOOR_TOLERANCE)
            and not one.overflow_bytes
        ),
        "one_mb_max_users": one_batch_max_users(
            graph,
            hw,
            problem.context,
            problem.min_tokens_per_s,
            plan.groups,
            plan.weight_split,
            plan.kv_split,
        ),
    }
    return row


def memory_ratios() -> pd.DataFrame:
    """Per memory technology (instances/memory): bandwidth / capacity per device (1/s) and its parts."""
    rows = []
    for name in memory_tech_names():
        t = load_memory_tech(name)
        rows.append(
            {
                "memory": name,
                "kind": t.kind,
                "capacity_gb_per_device": t.capacity_per_device / 1e9,
                "bandwidth_gb_per_s_per_device": t.bandwidth_per_device / 1e9,
                "capacity_gb_per_die": t.capacity_per_device * t.devices_per_reticle_die / 1e9,
                "bandwidth_gb_per_s_per_die": t.bandwidth_per_device * t.devices_per_reticle_die / 1e9,
                "bw_per_capacity_per_s": t.bandwidth_per_device / t.capacity_per_device,
                "pj_per_bit": t.energy,
            }
        )
    return pd.DataFrame(rows).sort_values("bw_per_capacity_per_s", ascending=False, ignore_index=True)


def _fmt_md(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def markdown_table(frame: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> str:
    """A GitHub markdown table of `frame`'s (column, header) pairs."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt_md(row.get(c)) for c, _ in columns) + " |")
    return "\n".join(lines)


def write_markdown(path: str | Path, text: str) -> Path:
    return write_text_atomic(path, text.rstrip() + "\n")


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PlannerInputError(source, [f"missing columns {missing}; regenerate it with this version"])


# ---------------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    """Memory technologies side by side: `points` one row per model x memory x users (sweep columns),
    `maxima` one row per model x memory at its largest feasible user count (with the limit above it)."""

    points: pd.DataFrame
    maxima: pd.DataFrame


def capacity_rows(specs: Sequence[Any], results: Sequence[Any]) -> pd.DataFrame:
    """One row per capacity search: the sweep row at U* (keys of the instance) + max_users, binding."""
    from planner.sweep import key_row

    rows = []
    for spec, result in zip(specs, results):
        row = dict(result.at_max.row) if result.at_max is not None else key_row(spec) | {"status": "none"}
        above = result.above.row if result.above is not None else {}
        row |= {
            "users": result.max_users,
            "max_users": result.max_users,
            "max_users_exact": result.exact,
            "binding": above.get("binding", "search limit"),
            "explanation": above.get("explanation", ""),
            "point": "max users",
        }
        rows.append(row)
    return pd.DataFrame(rows)


def compare(
    models: Sequence[str],
    hardware: str,
    memories: Sequence[str],
    users: Sequence[int],
    context: int,
    min_tokens_per_s: float,
    chips_per_group: int | None = None,
    max_groups: int = 128,
    time_limit: float | None = None,
    gap: float = 1e-4,
    cache: str | Path | None = DEFAULT_CACHE,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Solve every model x memory x users case and search each model x memory's max users (exact)."""
    from planner.capacity import max_users_many
    from planner.sweep import Cache, SweepSpec, check_names, run_cases, table

    solver = {"gap": gap} | ({"time_limit": time_limit} if time_limit else {})
    grid = SweepSpec(
        name="memory comparison",
        models=list(models),
        hardware=[hardware],
        memory=list(memories),
        users=list(users),
        context=[context],
        min_tokens_per_s=[min_tokens_per_s],
        chips_per_group=chips_per_group,
        max_groups=max_groups,
        solver=solver,
    )
    cases = grid.cases()
    check_names(cases, "compare")
    store = Cache(cache) if cache else None
    results = run_cases(cases, store, workers, progress=lambda r, hit: progress and progress("case"))
    points = table(results).assign(point="users")
    bases = [c for c in cases if c.workload.users == users[0]]
    found = max_users_many(bases, cache, workers, lambda s, r: progress and progress("max users"))
    maxima = capacity_rows(bases, found)
    points = points.merge(
        maxima[["model", "memory", "max_users"]], on=["model", "memory"], how="left", validate="many_to_one"
    )
    return Comparison(points=points, maxima=maxima.reset_index(drop=True))


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """Feasible points (users, joules_per_token) that no other point beats on both (more users, less J)."""
    ok = (
        frame[frame["joules_per_token"].notna() & (frame["users"] > 0)]
        .reset_index(drop=True)
        .sort_values(["users", "joules_per_token"], ascending=[False, True])
    )
    keep, best = [], math.inf
    for i, row in ok.iterrows():
        if row["joules_per_token"] < best:
            keep.append(i)
            best = row["joules_per_token"]
    return ok.loc[keep].sort_values("users")


COMPARE_COLUMNS = [
    ("memory", "KV memory"),
    ("max_users", "max users"),
    ("binding", "limit at max+1"),
    ("stages", "S"),
    ("chips", "chips"),
    ("joules_per_token", "J/token"),
    ("weight_j", "weights J"),
    ("kv_j", "KV J"),
    ("compute_j", "compute J"),
    ("link_j", "links J"),
    ("idle_j", "idle J"),
    ("power_w", "power W"),
    ("tokens_per_s", "tokens/s"),
    ("tokens_per_s_per_user", "tok/s/user"),
    ("kv_gb_per_s_per_die", "KV GB/s per die"),
    ("kv_tier_fill", "KV tier fill"),
    ("kv_tier_bw_use", "KV tier bw use"),
]


def comparison_markdown(c: Comparison, command: str, hardware: str, context: int, floor: float) -> str:
    """results/memory_comparison.md: the command, per model the max-users table and J/token per users."""
    parts = [
        "# Memory technologies for the KV tier",
        "",
        f"Regenerate: `{command}`",
        "",
        f"Hardware {hardware} with its KV tier replaced by each technology (`--kv-memory`; `sram` = no "
        f"off-chip tier), context {context:,} tokens, per-user floor {floor:g} tokens/s. Max users is exact "
        "(galloping search + bisection with the MILP as oracle: feasible at max, infeasible at max+1); the "
        "limit column is the solver's binding limit at max+1. J/token split by category at max users; KV "
        "GB/s per die is the KV traffic (cache read + new token write) per reticle die of the plan.",
    ]
    for model, maxima in c.maxima.groupby("model", sort=False):
        parts += ["", f"## {model}", "", markdown_table(maxima, COMPARE_COLUMNS), ""]
        points = c.points[c.points["model"] == model]
        wide = points.pivot_table(index="memory", columns="users", values="joules_per_token", aggfunc="first")
        wide = wide.reindex(maxima["memory"]).reset_index()
        cols = [("memory", "J/token at users =")] + [(u, f"{u:,}") for u in wide.columns if u != "memory"]
        parts += [markdown_table(wide, cols), ""]
        front = pareto_front(pd.concat([points, maxima]))
        parts.append(
            "Pareto front (more users, fewer J/token): "
            + ", ".join(
                f"{r.memory} at {r.users:,} users {r.joules_per_token:.3g} J" for r in front.itertuples()
            )
        )
    return "\n".join(parts)


def write_comparison(
    c: Comparison, out: str | Path, command: str, hardware: str, context: int, floor: float
) -> list[Path]:
    """memory_comparison.csv (points and max-users rows), .md and .png into `out`."""
    from planner.plots import plot_memory_comparison
    from planner.sweep import write_table

    out = Path(out)
    both = pd.concat([c.points, c.maxima], ignore_index=True)
    return [
        write_table(both, out / "memory_comparison.csv"),
        write_markdown(
            out / "memory_comparison.md", comparison_markdown(c, command, hardware, context, floor)
        ),
        plot_memory_comparison(c.points, c.maxima, out / "memory_comparison.png"),
    ]


# ---------------------------------------------------------------------------------------------- deep pipeline


@dataclass(frozen=True)
class DeepPipeline:
    """`points`: sweep rows (users grid, max users, and the deep pipeline at the one-micro-batch maximum),
    each with the one_mb_* columns of the same placement; `summary`: one row per model x S."""

    points: pd.DataFrame
    summary: pd.DataFrame


def deep_pipeline(
    spec: Any,
    cache: str | Path | None = DEFAULT_CACHE,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> DeepPipeline:
    """Deep pipeline (S micro-batches in flight) against one micro-batch in flight, per model and S.

    `spec` is a planner.sweep.SweepSpec with fixed `stages` and one hardware, memory, context and floor.
    Both max users are exact: capacity searches with the solver at fixed S, once with min(U, S)
    micro-batches in flight and once with one (workload.micro_batches = 1, its placement optimized for it).
    """
    from planner.capacity import max_users_many, spec_with_users
    from planner.sweep import Cache, check_names, key_row, run_cases, table

    one = {"hardware": spec.hardware, "memory": spec.memory, "context": spec.context}
    one["min_tokens_per_s"] = spec.min_tokens_per_s
    problems = [f"{k}: the study takes one value, got {v}" for k, v in one.items() if len(v) != 1]
    if not spec.stages:
        problems.append("stages: list the stage counts S to compare, e.g. [8, 16, 32, 64]")
    if problems:
        raise PlannerInputError("deep-pipeline sweep", problems)
    cases = spec.cases()
    check_names(cases, "deep-pipeline sweep")
    store = Cache(cache) if cache else None
    tick = (lambda *_: progress("case")) if progress else None
    results = run_cases(cases, store, workers, progress=tick)
    one_cases = [with_one_micro_batch(c) for c in cases]
    results_one = run_cases(one_cases, store, workers, progress=tick)
    bases = [c for c in cases if c.workload.users == spec.users[0]]
    one_bases = [with_one_micro_batch(c) for c in bases]
    tick_max = (lambda *_: progress("max users")) if progress else None
    found = max_users_many(bases, cache, workers, tick_max)
    found_one = max_users_many(one_bases, cache, workers, tick_max)
    summary, extra = [], []
    for base, cap, one in zip(bases, found, found_one):
        at = cap.at_max.row if cap.at_max is not None else {}
        at_one = one.at_max.row if one.at_max is not None else {}
        u_one = one.max_users
        row = key_row(base) | {"stages": base.solver.stages}
        row |= {
            "chips": at.get("chips"),
            "deep_max_users": cap.max_users,
            "deep_max_users_exact": cap.exact,
            "deep_binding": cap.above.row.get("binding") if cap.above is not None else "search limit",
            "deep_joules_per_token": at.get("joules_per_token"),
            "deep_tokens_per_s_per_user": at.get("tokens_per_s_per_user"),
            "deep_tokens_per_s": at.get("tokens_per_s"),
            "one_mb_max_users": u_one,
            "one_mb_max_users_exact": one.exact,
            "one_mb_binding": one.above.row.get("binding") if one.above is not None else "search limit",
            "one_mb_joules_per_token": at_one.get("joules_per_token"),
            "one_mb_idle_j": at_one.get("idle_j"),
            "one_mb_tokens_per_s_per_user": at_one.get("tokens_per_s_per_user"),
            "one_mb_tokens_per_s": at_one.get("tokens_per_s"),
            "users_ratio": cap.max_users / u_one if u_one else math.inf if cap.max_users else math.nan,
        }
        if u_one:
            extra.append(spec_with_users(base, u_one))
        summary.append(row)
    same = {(r.spec.model, r.spec.solver.stages): r for r in run_cases(extra, store, workers, progress=tick)}
    for row in summary:
        r = same.get((row["model"], row["stages"]))
        row["deep_joules_per_token_at_one_mb_users"] = r.row.get("joules_per_token") if r else None
    points = pd.concat(
        [
            table(results).assign(point="users"),
            capacity_rows(bases, found),
            table(results_one).assign(point="users"),
            capacity_rows(one_bases, found_one),
            table(list(same.values())).assign(point="one-mb max users"),
        ],
        ignore_index=True,
    )
    return DeepPipeline(points=points, summary=pd.DataFrame(summary))


def with_one_micro_batch(spec: InstanceSpec) -> InstanceSpec:
    """The same instance with one micro-batch in flight (all users walk the S stages as one batch)."""
    return spec.model_copy(update={"workload": spec.workload.model_copy(update={"micro_batches": 1})})


def _problem(spec: Any) -> Problem:
    from planner.instance import resolve

    return resolve(spec)


DEEP_COLUMNS = [
    ("stages", "S"),
    ("chips", "chips"),
    ("deep_max_users", "max users, S micro-batches"),
    ("deep_binding", "limit at max+1"),
    ("deep_joules_per_token", "J/token at max"),
    ("one_mb_max_users", "max users, 1 micro-batch"),
    ("one_mb_binding", "limit at max+1, 1 mb"),
    ("one_mb_joules_per_token", "J/token at max, 1 mb"),
    ("deep_joules_per_token_at_one_mb_users", "J/token, S mb, same users"),
    ("users_ratio", "users ratio"),
]


def deep_pipeline_markdown(d: DeepPipeline, command: str) -> str:
    """results/deep_pipeline.md: how to regenerate, what is compared, per model a table over S."""
    first = d.summary.iloc[0]
    parts = [
        "# Deep pipeline: S micro-batches in flight against one",
        "",
        f"Regenerate: `{command}`",
        "",
        f"{first['hardware']} (KV tier: {first['memory'] or 'the hardware default'}), context "
        f"{first['context']:,}, per-user floor {first['min_tokens_per_s']:g} tokens/s, S fixed per row.",
        "",
        "- **S micro-batches** (the deep pipeline, FORMULATION.md §3): U users split into min(U, S) "
        "micro-batches; per-user token time S*T(b = U/S) + hops. Max users exact (solver as oracle, "
        "feasible at max, infeasible at max+1; the limit is the solver's binding limit at max+1).",
        "- **1 micro-batch**: all U users in one batch (`--micro-batches 1`): each group reads its weights "
        "once per U users, but the batch walks the S stages alone, token time S*T(b = U) + hops, and the "
        "other S-1 groups wait. Placed by the same solver for that case (pipeline_cost with in_flight=1); "
        "max users exact the same way.",
    ]
    for model, rows in d.summary.groupby("model", sort=False):
        best_deep = rows.loc[rows["deep_max_users"].idxmax()]
        best_one = rows.loc[rows["one_mb_max_users"].idxmax()]
        ratio = best_deep["deep_max_users"] / max(best_one["one_mb_max_users"], 1)
        parts += [
            "",
            f"## {model}",
            "",
            markdown_table(rows, DEEP_COLUMNS),
            "",
            f"Best over S: {best_deep['deep_max_users']:,} users with S micro-batches (S={best_deep['stages']}, "
            f"limit {best_deep['deep_binding']}) against {best_one['one_mb_max_users']:,} with one "
            f"(S={best_one['stages']}): {ratio:,.1f}x.",
            "",
            _deep_reading(rows),
        ]
    return "\n".join(parts)


def _deep_reading(rows: pd.DataFrame) -> str:
    """What the table says, in numbers taken from it."""
    ok = rows[rows["one_mb_max_users"] > 0]
    if ok.empty:
        return "No S serves even one user with one micro-batch at this floor."
    per_s = ok["users_ratio"] / ok["stages"]
    over_100 = ok[ok["users_ratio"] > 100]
    at = ok.loc[ok["stages"].idxmax()]  # the deepest pipeline: where waiting groups cost most
    idle = at.get("one_mb_idle_j", math.nan) / at["one_mb_joules_per_token"]
    text = (
        f"Why: the users ratio is {per_s.min():.2f}-{per_s.max():.2f} x S. With one micro-batch only one of "
        f"the S groups works at a time, so every user's KV read and FLOPs pass through one group's "
        f"bandwidth and compute within 1/r: the one-micro-batch maximum stays between "
        f"{ok['one_mb_max_users'].min():,} and {ok['one_mb_max_users'].max():,} users, while the "
        f"deep pipeline keeps all S groups busy: {rows['deep_max_users'].iloc[0]:,} users at S="
        f"{rows['stages'].iloc[0]}, {rows['deep_max_users'].max():,} at best. "
    )
    text += (
        f"More than 100x needs S > 100 at equal S (here: {', '.join(f'S={s}' for s in over_100['stages'])}). "
        if len(over_100)
        else "No S here gives more than 100x at equal S. "
    )
    text += (
        f"Energy: at S={at['stages']} the one-micro-batch pipeline spends {at['one_mb_joules_per_token']:.3g} J/token "
        f"at its {at['one_mb_max_users']:,} users ({100 * idle:.0f}% idle power of the waiting groups) against "
        f"{at['deep_joules_per_token_at_one_mb_users']:.3g} J/token for S micro-batches at the same users."
    )
    return text


def write_deep_pipeline(d: DeepPipeline, out: str | Path, command: str) -> list[Path]:
    """deep_pipeline.csv (every point, both modes' columns), .md, .png into `out`."""
    from planner.plots import plot_deep_pipeline
    from planner.sweep import write_table

    out = Path(out)
    return [
        write_table(d.points, out / "deep_pipeline.csv"),
        write_markdown(out / "deep_pipeline.md", deep_pipeline_markdown(d, command)),
        plot_deep_pipeline(d.points, d.summary, out / "deep_pipeline.png"),
    ]


# ---------------------------------------------------------------------------------------------- KV demand


KV_SOURCES = ("results/memory_comparison.csv", "results/deep_pipeline.csv")
KV_COLUMNS = ("model", "memory", "users", "stages", "tokens_per_s_per_user", "kv_demand_per_s", "kv_tier")


def kv_demand(tables: Sequence[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per feasible plan of the given sweep tables: KV demand per byte stored against the bandwidth /
    capacity ratio of the tier holding it. Returns (plans, technologies)."""
    frames = []
    for path in tables:
        path = Path(path)
        if not path.is_file():
            raise PlannerInputError(str(path), ["no such table; run the study that writes it first"])
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        require_columns(frame, KV_COLUMNS, str(path))
        frames.append(frame[frame["joules_per_token"].notna()].assign(source=path.stem))
    plans = pd.concat(frames, ignore_index=True).drop_duplicates(subset=["source", *KV_KEYS], keep="first")
    techs = memory_ratios()
    ratio = dict(zip(techs["memory"], techs["bw_per_capacity_per_s"]))
    plans["tech_bw_per_capacity_per_s"] = plans["kv_tier"].map(ratio)
    plans["demand_over_ratio"] = plans["kv_demand_per_s"] / plans["tech_bw_per_capacity_per_s"]
    plans["kv_limited_by"] = [
        "bandwidth" if x > 1 else "capacity" for x in plans["demand_over_ratio"].fillna(0)
    ]
    return plans.reset_index(drop=True), techs


KV_KEYS = ("model", "hardware", "memory", "fixed_stages", "users", "context", "min_tokens_per_s")


def kv_demand_markdown(plans: pd.DataFrame, techs: pd.DataFrame, command: str) -> str:
    """results/kv_demand.md: the technologies' bandwidth/capacity, each plan's demand, the verdict."""
    techs = techs.copy()
    tech_columns = [
        ("memory", "memory"),
        ("kind", "kind"),
        ("capacity_gb_per_die", "GB per die"),
        ("bandwidth_gb_per_s_per_die", "GB/s per die"),
        ("bw_per_capacity_per_s", "bandwidth/capacity (1/s)"),
        ("pj_per_bit", "pJ/bit"),
    ]
    for r in sorted(plans["min_tokens_per_s"].unique()):
        ratio = techs["bw_per_capacity_per_s"] / r
        techs[f"limit_{r:g}"] = ["capacity" if x > 1 else "bandwidth" for x in ratio]
        techs[f"usable_{r:g}"] = [f"{min(1.0, x):.0%}" for x in ratio]
        tech_columns += [
            (f"limit_{r:g}", f"KV at {r:g} tok/s limited by"),
            (f"usable_{r:g}", f"usable for KV at {r:g}"),
        ]
    lines = [
        "# KV bandwidth demand per byte of KV stored",
        "",
        f"Regenerate: `{command}` (reads the tables of `planner compare` and `planner study deep-pipeline`).",
        "",
        "A decode step reads every user's whole KV cache once per token, so a plan's KV traffic per byte "
        "of KV stored (bytes/s per byte = 1/s) is about its per-user token rate (plus the new token's "
        "write). A technology whose bandwidth/capacity ratio is above that demand fills up before its "
        "bandwidth is used: it is **capacity-limited** for KV; below it, the bandwidth runs out first "
        "(**bandwidth-limited**), and capacity is wasted. Ratios per device from instances/memory/*.yaml "
        "(datasheet peaks; the hardware's achievable fraction lowers usable bandwidth by ~10%).",
        "",
        "## Technologies",
        "",
        "At a per-user floor of r tokens/s the KV demand is r (1 + 1/L) per second per byte stored. "
        "`usable for KV at r` is the share of a technology's capacity its bandwidth can serve at that "
        "rate, min(1, bandwidth/capacity / r), with KV alone in the tier.",
        "",
        markdown_table(techs, tech_columns),
        "",
        "## Plans",
        "",
        "Demand per byte: KV bytes moved per second / KV bytes stored, over the plan. `fill` and `bw use`: "
        "the KV tier's capacity filled and bandwidth used by the plan (weights and KV together).",
    ]
    columns = [
        ("model", "model"),
        ("memory", "KV memory"),
        ("users", "users"),
        ("stages", "S"),
        ("tokens_per_s_per_user", "tok/s/user"),
        ("kv_tier", "KV tier"),
        ("kv_demand_per_s", "KV demand (1/s)"),
        ("tech_bw_per_capacity_per_s", "tier bw/cap (1/s)"),
        ("kv_tier_fill", "fill"),
        ("kv_tier_bw_use", "bw use"),
        ("kv_limited_by", "KV limited by"),
    ]
    for source, frame in plans.groupby("source", sort=False):
        lines += ["", f"### {source}", "", markdown_table(frame, columns)]
    summary = plans.groupby("kv_tier").agg(
        plans=("kv_demand_per_s", "size"),
        demand_min=("kv_demand_per_s", "min"),
        demand_max=("kv_demand_per_s", "max"),
        ratio=("tech_bw_per_capacity_per_s", "first"),
        bandwidth_limited=("kv_limited_by", lambda s: int((s == "bandwidth").sum())),
    )
    lines += [
        "",
        "## Summary by KV tier",
        "",
        markdown_table(
            summary.reset_index(),
            [
                ("kv_tier", "KV tier"),
                ("plans", "plans"),
                ("demand_min", "demand min (1/s)"),
                ("demand_max", "demand max (1/s)"),
                ("ratio", "bw/cap (1/s)"),
                ("bandwidth_limited", "bandwidth-limited plans"),
            ],
        ),
    ]
    return "\n".join(lines)


def write_kv_demand(tables: Sequence[str | Path], out: str | Path, command: str) -> Path:
    plans, techs = kv_demand(tables)
    return write_markdown(Path(out) / "kv_demand.md", kv_demand_markdown(plans, techs, command))
