"""The deep pipeline (S micro-batches in flight) against one micro-batch in flight."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from planner.core.errors import PlannerInputError
from planner.plans.metrics import DEFAULT_CACHE
from planner.problem.instance import InstanceSpec
from planner.problem.problem import Problem
from planner.render.markdown import markdown_table, write_markdown
from planner.studies.compare import capacity_rows


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
    from planner.runs.cache import Cache, key_row
    from planner.runs.executor import run_cases
    from planner.runs.sweep import check_names, table
    from planner.studies.capacity import max_users_many, spec_with_users

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
    from planner.problem.problem import resolve

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


DEEP_PIPELINE_FILES = ("deep_pipeline.csv", "deep_pipeline.md", "deep_pipeline.png")


def write_deep_pipeline(d: DeepPipeline, out: str | Path, command: str) -> list[Path]:
    """deep_pipeline.csv (every point, both modes' columns), .md, .png into `out`."""
    from planner.render.plots import plot_deep_pipeline
    from planner.runs.sweep import write_table

    csv, md, png = (Path(out) / name for name in DEEP_PIPELINE_FILES)
    return [
        write_table(d.points, csv),
        write_markdown(md, deep_pipeline_markdown(d, command)),
        plot_deep_pipeline(d.points, d.summary, png),
    ]
