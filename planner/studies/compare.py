"""Memory technologies for the KV tier side by side (planner compare)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from planner.plans.metrics import DEFAULT_CACHE, pareto_front
from planner.render.markdown import markdown_table, write_markdown

# ---------------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    """Memory technologies side by side: `points` one row per model x memory x users (sweep columns),
    `maxima` one row per model x memory at its largest feasible user count (with the limit above it)."""

    points: pd.DataFrame
    maxima: pd.DataFrame


def capacity_rows(specs: Sequence[Any], results: Sequence[Any]) -> pd.DataFrame:
    """One row per capacity search: the sweep row at U* (keys of the instance) + max_users, binding."""
    from planner.runs.cache import key_row

    rows = []
    for spec, result in zip(specs, results):
        row = dict(result.at_max.row) if result.at_max is not None else key_row(spec) | {"status": "none"}
        above = result.above.row if result.above is not None else {}
        row |= {
            "users": result.max_users,
            "max_users": result.max_users,
            "max_users_exact": result.exact,
            "core_cuts": result.summary()["core_cuts"],
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
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
) -> Comparison:
    """Solve every model x memory x users case and search each model x memory's max users (exact).

    `progress(label)` is called once per finished case and once per finished max-users search."""
    from planner.model.graph import load_model_facts
    from planner.runs.cache import Cache
    from planner.runs.executor import run_cases
    from planner.runs.sweep import SweepSpec, check_names, table
    from planner.studies.capacity import max_users

    solver = {"gap": gap} | ({"time_limit": time_limit} if time_limit else {})
    grid = SweepSpec.from_arguments(
        "compare",
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
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
    )
    cases = grid.cases()
    check_names(cases, "compare")
    store = Cache(cache) if cache else None
    bases = [c for c in cases if c.workload.users == users[0]]
    found: dict[int, Any] = {}

    def searched(i: int, result: Any) -> None:
        found[i] = result
        if progress:
            progress("max users")

    # the max-users searches first, the larger models' first (their searches take longest), on the
    # cases' workers: the cases fill the workers while the long searches run
    weights = {m: load_model_facts(m, weight_dtype, kv_dtype)["weight_bytes"] for m in models}
    order = sorted(range(len(bases)), key=lambda i: -weights[bases[i].model])
    jobs = [(max_users, (bases[i], cache), functools.partial(searched, i)) for i in order]
    results = run_cases(
        cases, store, workers, progress=lambda r, hit: progress and progress("case"), first=jobs
    )
    points = table(results).assign(point="users")
    maxima = capacity_rows(bases, [found[i] for i in range(len(bases))])
    points = points.merge(
        maxima[["model", "memory", "max_users"]], on=["model", "memory"], how="left", validate="many_to_one"
    )
    return Comparison(points=points, maxima=maxima.reset_index(drop=True))


COMPARE_COLUMNS = [
    ("memory", "KV memory"),
    ("max_users", "max users"),
    ("binding", "limit at max+1"),
    ("stages", "S"),
    ("chips", "chips"),
    ("joules_per_token", "J/token"),
    ("memory_usd_per_user", "memory $/user"),
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


COMPARISON_FILES = ("memory_comparison.csv", "memory_comparison.md", "memory_comparison.png")


def write_comparison(
    c: Comparison, out: str | Path, command: str, hardware: str, context: int, floor: float
) -> list[Path]:
    """memory_comparison.csv (points and max-users rows), .md and .png into `out`."""
    from planner.render.plots import plot_memory_comparison
    from planner.runs.sweep import write_table

    out = Path(out)
    both = pd.concat([c.points, c.maxima], ignore_index=True)
    csv, md, png = (out / name for name in COMPARISON_FILES)
    return [
        write_table(both, csv),
        write_markdown(md, comparison_markdown(c, command, hardware, context, floor)),
        plot_memory_comparison(c.points, c.maxima, png),
    ]


# ---------------------------------------------------------------------------------------------- deep pipeline
