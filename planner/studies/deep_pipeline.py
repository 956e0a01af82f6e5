"""The deep pipeline (S micro-batches in flight) against one micro-batch in flight."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from planner.core.errors import PlannerInputError
from planner.plans.metrics import DEFAULT_CACHE
from planner.problem.instance import InstanceSpec
from planner.problem.problem import Problem
from planner.render.markdown import markdown_table, write_markdown
from planner.studies.capacity import search_max_users
from planner.studies.compare import capacity_rows

DEEP_TOLERANCE = 0.01
"""Relative precision of both max users: a ratio of two maxima to 1% answers "more than 100x?", and an
exact search at S = 560 costs about twice the solves."""


def progress_total(spec: Any) -> int:
    """Progress steps of deep_pipeline: each case twice (S and one micro-batch), per model x S two
    max-users searches and the deep pipeline at the one-micro-batch maximum."""
    return 2 * len(spec.cases()) + 3 * len(spec.models) * len(spec.stages or [])


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
    Both max users are searched with the solver at fixed S to DEEP_TOLERANCE (feasible at the value,
    infeasible within 1% above it), once with the default micro-batches in flight and once with one
    (workload.micro_batches = 1, its placement optimized for it).
    """
    from planner.runs.cache import Cache, key_row
    from planner.runs.executor import run_cases
    from planner.runs.sweep import check_names, table
    from planner.studies.capacity import max_users_many

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
    one_cases = [with_micro_batches(c, 1) for c in cases]
    results_one = run_cases(one_cases, store, workers, progress=tick)
    bases = [c for c in cases if c.workload.users == spec.users[0]]
    one_bases = [with_micro_batches(c, 1) for c in bases]
    tick_max = (lambda *_: progress("max users")) if progress else None
    found = max_users_many(bases, cache, workers, tick_max, DEEP_TOLERANCE)
    found_one = max_users_many(one_bases, cache, workers, tick_max, DEEP_TOLERANCE)
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
        row["one_mb_users_bound"] = one_micro_batch_users_bound(_problem(base), base.solver.stages)
        if not one.exact:  # an infeasible verdict stopped on the time limit: the bound answers instead
            row["users_ratio"] = math.nan
        row["users_ratio_at_least"] = (
            cap.max_users / row["one_mb_users_bound"] if row["one_mb_users_bound"] else math.inf
        )
        if u_one:  # on the one-micro-batch plan's graph (its search's core parts), with S micro-batches
            extra.append(with_micro_batches(one.at_max.spec, base.workload.micro_batches))
        summary.append(row)
    same = {(r.spec.model, r.spec.solver.stages): r for r in run_cases(extra, store, workers, progress=tick)}
    for _ in range(len(summary) - len(extra) if tick else 0):  # no one-micro-batch maximum: step skipped
        tick()
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


def one_micro_batch_users_bound(problem: Problem, stages: int) -> int:
    """Most users one micro-batch in flight can serve on `stages` groups at the per-user floor r, from
    physics alone (an upper bound for any placement; the solver's answer when it cannot decide in time).

    With one micro-batch at most one group works at any moment, so a token's period (at most 1/r) is at
    least the sum of the groups' busy times, and a group is busy at least as long as its memory tiers
    take to deliver what it reads for the token: R(U) = the weight bytes a batch of U users reads
    (planner.cost.node.weight_read_bytes: all of a dense layer, one row per user of the embedding, the
    experts the batch touches) plus every user's KV (U x kappa). Each resident byte is read at most once
    per token, so at most S x C_1 of R come from the fastest tier (SRAM); the rest at most at the other
    tiers' summed per-group bandwidth B_2, all of it at most at the summed bandwidth B_sum (achievable
    fraction applied: the larger of the weight and KV ones):
        (R(U) - S C_1)+ / B_2 <= 1/r   and   R(U) / B_sum <= 1/r.
    R grows with U, so the largest such U is found by bisection. Hops, compute and the power limit only
    lower it further."""
    from planner.cost.node import weight_read_bytes

    hw, rate = problem.hw, problem.min_tokens_per_s
    fraction = max(hw.achievable.weight_bandwidth, hw.achievable.kv_bandwidth)
    tiers = sorted((hw.tier(t) for t in problem.tiers), key=lambda t: -t.bw_bytes_per_s)
    per_group = [
        (t.capacity_bytes * hw.chips_per_group, t.bw_bytes_per_s * hw.chips_per_group * fraction)
        for t in tiers
    ]
    fast_bytes = stages * per_group[0][0]
    slower_bw = sum(bw for _, bw in per_group[1:])
    all_bw = sum(bw for _, bw in per_group)
    kappa = problem.model.kv_bytes_per_user(problem.context)
    nodes = [d for _, d in problem.graph.nodes(data=True)]

    def verdict(users: int) -> _Verdict:
        read = sum(weight_read_bytes(d, users) for d in nodes) + users * kappa
        slow = max(0.0, read - fast_bytes)
        fits = read / all_bw <= 1 / rate and (slow == 0 or (slower_bw > 0 and slow / slower_bw <= 1 / rate))
        return _Verdict(fits)

    return search_max_users(verdict).max_users


class _Verdict(NamedTuple):
    """A closed-form verdict in the shape search_max_users reads from a solve (always proven)."""

    feasible: bool
    proven: bool = True


def with_micro_batches(spec: InstanceSpec, batches: int | None) -> InstanceSpec:
    """The same instance with at most `batches` micro-batches in flight (1: all users walk the S stages
    as one batch; None: the default)."""
    return spec.model_copy(update={"workload": spec.workload.model_copy(update={"micro_batches": batches})})


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
    ("one_mb_users_bound", "1 mb users bound"),
    ("users_ratio_at_least", "users ratio >="),
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
        "- **S micro-batches** (the deep pipeline, FORMULATION.md §3): U users split into m = min(U, slots x S) "
        "micro-batches in flight; a user's token period is max(walk, m x cycle), walk = the sum over groups "
        f"of busy and send times plus hops. Max users to {DEEP_TOLERANCE:.0%} (solver as oracle: feasible "
        f"at max, infeasible within {DEEP_TOLERANCE:.0%} above; the limit is the solver's binding limit "
        "there).",
        "- **1 micro-batch**: all U users in one batch (`--micro-batches 1`): each group reads its weights "
        "once per U users, but the batch walks the S stages alone (period = walk) and the other groups "
        "wait, drawing idle power. Placed by the same solver for that case; max users the same way.",
    ]
    for model, rows in d.summary.groupby("model", sort=False):
        best_deep = rows.loc[rows["deep_max_users"].idxmax()]
        decided = rows["one_mb_max_users_exact"].astype(bool)
        one_users = rows["one_mb_max_users"].where(decided, rows["one_mb_users_bound"])
        best_one = rows.loc[one_users.idxmax()]
        bounded = not decided[one_users.idxmax()]
        ratio = best_deep["deep_max_users"] / max(one_users.max(), 1)
        parts += [
            "",
            f"## {model}",
            "",
            markdown_table(_shown(rows), DEEP_COLUMNS),
            "",
            f"Best over S: {best_deep['deep_max_users']:,} users with S micro-batches (S={best_deep['stages']}, "
            f"limit {best_deep['deep_binding']}) against {'at most ' if bounded else ''}{one_users.max():,} "
            f"with one (S={best_one['stages']}{', the physics bound' if bounded else ''}): "
            f"{'at least ' if bounded else ''}{ratio:,.1f}x.",
            "",
            _deep_reading(rows),
        ]
    return "\n".join(parts)


def _shown(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows as the table shows them: a one-micro-batch maximum the solver did not decide reads
    ">= N" when its search proved N feasible before a time limit stopped it, "undecided" when it proved
    nothing (not the 0 it records)."""
    decided = rows["one_mb_max_users_exact"].astype(bool)
    users = rows["one_mb_max_users"]
    shown = [
        u if ok else (f">= {int(u):,}" if u > 0 else "undecided")
        for u, ok in zip(users, decided, strict=True)
    ]
    return rows.assign(one_mb_max_users=pd.Series(shown, index=rows.index, dtype=object))


def _deep_reading(rows: pd.DataFrame) -> str:
    """What the table says, in numbers taken from it."""
    decided = rows["one_mb_max_users_exact"].astype(bool)
    undecided = rows[~decided]
    ok = rows[(rows["one_mb_max_users"] > 0) & decided]
    ratio = rows["users_ratio"].where(decided, rows["users_ratio_at_least"])
    over_100 = rows[ratio > 100]
    text = ""
    if len(undecided):
        text += (
            f"At {', '.join(f'S={s}' for s in undecided['stages'])} the solver did not decide one micro-batch "
            "within its time limit (with one batch in flight a group may take as much of the token period as "
            "it likes, so the slices it prices grow with the number of nodes times their spare count); there "
            "the users ratio column is empty and `users ratio >=` (deep-pipeline users over the physics bound "
            "on one micro-batch, `1 mb users bound`: one group works at a time, so every resident byte is read "
            "once per token through one group's memory) is the answer, a lower bound. "
        )
    if len(ok):
        per_s = ok["users_ratio"] / ok["stages"]
        text += (
            f"Where both are solved the users ratio is {per_s.min():.2f}-{per_s.max():.2f} x S: with one "
            "micro-batch only one of the S groups works at a time, so every user's KV read and FLOPs pass "
            "through one group's bandwidth and compute within 1/r, while the deep pipeline keeps all S groups "
            f"busy ({ok['one_mb_max_users'].min():,}-{ok['one_mb_max_users'].max():,} users with one "
            "micro-batch). "
        )
    text += (
        f"More than 100x at equal S: {', '.join(f'S={s}' for s in over_100['stages'])}. "
        if len(over_100)
        else "No S here gives more than 100x at equal S. "
    )
    if len(ok):
        at = ok.loc[ok["stages"].idxmax()]  # the deepest pipeline: where waiting groups cost most
        idle = at.get("one_mb_idle_j", math.nan) / at["one_mb_joules_per_token"]
        text += (
            f"Energy: at S={at['stages']} the one-micro-batch pipeline spends {at['one_mb_joules_per_token']:.3g} "
            f"J/token at its {at['one_mb_max_users']:,} users ({100 * idle:.0f}% idle power of the waiting "
            f"groups) against {at['deep_joules_per_token_at_one_mb_users']:.3g} J/token for S micro-batches at "
            "the same users."
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
