"""planner sol, solve, evaluate, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from planner.cli import options as o
from planner.cli.base import (
    Column,
    app,
    console,
    err_console,
    handle_errors,
    parse_group_sizes,
    parse_int_list,
    parse_names,
    parse_split,
    print_json,
    print_table,
    records,
    report_interrupt,
)
from planner.cli.progress import ProgressReport
from planner.core.errors import PlannerInputError
from planner.core.fileio import check_output, write_text_atomic

# ---------------------------------------------------------------------------------------------- sol


SOL_COLUMNS = [
    Column("users", "users"),
    Column("stages", "S"),
    Column("chips", "chips", wide=True),
    Column("weight_ms", "weights\nms"),
    Column("kv_ms", "KV\nms"),
    Column("compute_ms", "compute\nms", zero="-"),
    Column("link_ms", "links\nms"),
    Column("overhead_ms", "fixed\nms", wide=True, zero="-"),
    Column("wait_ms", "wait\nms", wide=True),
    Column("time_ms", "token\nms"),
    Column("tokens_per_s_per_user", "tok/s\nper user"),
    Column("tokens_per_s", "tok/s\nin all"),
    Column("joules_per_token", "J/token", digits=3),
    Column("power_w", "power\nW", wide=True),
    Column("weight_energy_pct", "weights\n% of J", wide=True),
    Column("kv_energy_pct", "KV\n% of J", wide=True),
    Column("compute_energy_pct", "compute\n% of J", wide=True),
    Column("idle_energy_pct", "idle\n% of J", wide=True),
]
SOL_FOOTNOTE = (
    "compute ms: time of the phases whose compute binds (a phase takes the longest of its memory reads and "
    "its FLOPs); '-' = compute never binds, its FLOPs finish under the memory time. Times are summed over "
    "the stages of one token."
)


@app.command("sol")
@handle_errors
def sol_command(
    model: o.Models,
    hardware: o.Hardware,
    users: o.UserCounts,
    context: o.Context,
    chips: Annotated[
        int | None,
        o.option(
            "--chips", metavar="N", min=1, max=1_000_000, help="chips in all (default: fewest that fit)"
        ),
    ] = None,
    kv_memory: o.KvMemory = None,
    achievable: Annotated[
        bool, o.flag("--achievable", help="calibrated fractions and overheads instead of datasheet peaks")
    ] = False,
    weight_dtype: o.WeightDtype = "bf16",
    kv_dtype: o.KvDtype = "bf16",
    json_out: o.JsonFlag = False,
    wide: o.Wide = False,
    plot: Annotated[
        Path | None,
        o.option("--plot", metavar="FILE.png", help="stacked bars of time and energy per token"),
    ] = None,
    csv: o.Csv = None,
) -> None:
    """Speed of light of one decode token: time and energy by category (weights, KV, compute, links, idle)."""
    check_output(plot, "--plot")
    check_output(csv, "--csv")
    from planner.api import sol

    user_list = parse_int_list(users, "--users")
    frames = [
        sol(
            name,
            hardware,
            user_list,
            context,
            chips=chips,
            kv_memory=kv_memory,
            achievable=achievable,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
        )
        for name in [m for m in model.split(",") if m.strip()]
    ]
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True)
    for w in sorted({w for w in frame["warning"] if w}):  # before the tables, where it is seen
        err_console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    if csv:
        write_text_atomic(csv, frame.to_csv(index=False))
    if plot:
        from planner.render.plots import plot_sol

        plot_sol(frames, plot)
    if json_out:
        print_json(records(frame))
    else:
        for i, part in enumerate(frames):
            first = part.iloc[0]
            print_table(
                escape(
                    f"{'speed of light' if not achievable else 'achievable'}: {first['model']} on "
                    f"{first['chips']} x {first['hardware']}, context {context:,}"
                ),
                SOL_COLUMNS,
                part.to_dict(orient="records"),
                wide=wide,
                footnotes=[SOL_FOOTNOTE] if i == len(frames) - 1 else [],
            )
    if plot:  # on stderr after --json, which keeps stdout one JSON document
        (err_console if json_out else console).print(escape(f"wrote {plot}"))


# ---------------------------------------------------------------------------------------------- solve


def _instance_from(instance: Path | None, flags: dict):
    """An instance file, or flags alone; flags given with a file override the file's fields."""
    from planner.problem.instance import load_instance, spec_from_flags

    if instance is None:
        missing = [
            f"--{k.replace('_', '-')}"
            for k in ("model", "hardware", "users", "context", "min_tokens_per_s")
            if flags.get(k) is None
        ]
        if missing:
            raise PlannerInputError(
                "command-line flags", [f"give an INSTANCE.yaml or all of {', '.join(missing)}"]
            )
        if flags.get("max_groups") is None:
            flags["max_groups"] = 128
        return spec_from_flags(**flags), "command-line flags"
    spec = load_instance(instance)
    data = spec.model_dump()
    for k, v in flags.items():
        if v is None:
            continue
        if k in data["workload"]:
            data["workload"][k] = v
        elif k in data["solver"]:
            data["solver"][k] = v
        else:
            data[k] = v
    merged = {k: v for k, v in data.items() if k not in ("workload", "solver")}
    return spec_from_flags(**merged, **data["workload"], **data["solver"]), str(instance)


@app.command("solve")
@handle_errors
def solve_command(
    instance: Annotated[
        Path | None, typer.Argument(metavar="INSTANCE.yaml", help="instance YAML (or give the flags below)")
    ] = None,
    model: o.OptionalModel = None,
    hardware: o.OptionalHardware = None,
    kv_memory: o.KvMemory = None,
    chips_per_group: o.ChipsPerGroup = None,
    max_groups: o.OptionalMaxGroups = None,
    split: o.Split = None,
    core_parts: o.CoreParts = None,
    weight_tiers: o.WeightTiers = None,
    kv_tiers: o.KvTiers = None,
    max_chip_power: o.MaxChipPower = None,
    max_power: o.MaxPower = None,
    users: o.OptionalUsers = None,
    context: o.OptionalContext = None,
    min_tokens_per_s: o.OptionalMinTokensPerS = None,
    weight_dtype: o.OptionalWeightDtype = None,
    kv_dtype: o.OptionalKvDtype = None,
    stages: o.Stages = None,
    micro_batches: Annotated[
        int | None,
        o.option(
            "--micro-batches",
            metavar="M",
            min=1,
            help="most micro-batches in flight (default min(users, slots x S); 1: one batch)",
        ),
    ] = None,
    time_limit: Annotated[
        float | None, o.option("--time-limit", metavar="SECONDS", help="wall-clock limit per S")
    ] = None,
    gap: o.OptionalGap = None,
    method: Annotated[
        str | None,
        o.option(
            "--method", metavar="METHOD", help="milp, pyomo (full MILP per S, slow) or exhaustive (small)"
        ),
    ] = None,
    out: Annotated[
        Path | None, o.option("--out", metavar="PLAN.yaml", help="write the plan: PLAN.yaml or PLAN.json")
    ] = None,
    csv: Annotated[
        Path | None,
        o.option(
            "--csv", metavar="DIR", help="write nodes.csv and groups.csv (one flat row per node, group)"
        ),
    ] = None,
    json_out: o.JsonFlag = False,
    wide: Annotated[bool, o.flag("--wide", help="every group and every column of the groups table")] = False,
    quiet: o.Quiet = False,
) -> None:
    """Place a model on chip groups and memory tiers, minimizing joules per token (Pyomo MILP, HiGHS)."""
    from planner.api import PLAN_TABLE_FILES, load_problem
    from planner.plans.plan import evaluate, plan_problem, summary

    spec, source = _instance_from(
        instance,
        dict(
            model=model,
            hardware=hardware,
            kv_memory=kv_memory,
            chips_per_group=parse_group_sizes(chips_per_group),
            max_groups=max_groups,
            split=parse_split(split),
            core_parts=core_parts,
            weight_tiers=parse_names(weight_tiers),
            kv_tiers=parse_names(kv_tiers),
            max_chip_power=max_chip_power,
            max_power=max_power,
            users=users,
            context=context,
            min_tokens_per_s=min_tokens_per_s,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
            stages=stages,
            micro_batches=micro_batches,
            time_limit=time_limit,
            gap=gap,
            method=method,
        ),
    )
    check_output(out, "--out", suffixes=(".yaml", ".yml", ".json"))
    check_output(csv, "--csv", directory=True, files=PLAN_TABLE_FILES)
    problem = load_problem(spec, source)
    from planner.placement.solve import solve_problem  # the solver stack loads only once the input is valid

    with ProgressReport(f"solve {problem.model.name} on {problem.hw.name}", quiet=quiet) as progress:

        def on_stage(s: int, record) -> None:
            value = (
                f"{record.joules_per_token:.4g} J/token"
                if record.joules_per_token is not None
                else record.status
            )
            progress.advance(f"S={s}: {value}")

        plan = solve_problem(problem, on_stage)
    result = evaluate(problem, plan)
    problem = plan_problem(problem, plan)[0]  # the group size the plan chose (from a list)
    if out is not None:
        plan.save(out)
    if csv is not None:
        from planner.api import write_plan_tables

        write_plan_tables(plan, csv)
    facts = summary(plan, result.cost)
    if json_out:
        print_json(facts)
    else:
        _print_plan_summary(problem, plan, facts, wide)
        if out is not None:
            console.print(f"wrote {out}")
    if plan.solver.status == "interrupted":
        report_interrupt(
            "interrupted: the plan above is the best found before Ctrl-C"
            + (f" and was written to {out}" if out is not None else "; give --out to keep it")
        )
        raise typer.Exit(130)


def _per_stage_text(per_stage: dict) -> str:
    """'S=2: 0.2009  S=3..124: pruned': numbers per S, runs of the same status folded."""
    parts: list[tuple[int, int, str]] = []
    for s, v in per_stage.items():
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        if parts and not isinstance(v, float) and parts[-1][2] == text and parts[-1][1] == s - 1:
            parts[-1] = (parts[-1][0], s, text)
        else:
            parts.append((s, s, text))
    return "  ".join(f"S={a}: {t}" if a == b else f"S={a}..{b}: {t}" for a, b, t in parts)


def _print_plan_summary(problem, plan, facts, wide: bool = False) -> None:
    f = plan.figures
    e = facts["joules_per_token_by"]
    console.print(
        f"[bold]{problem.model.name}[/] on [bold]{problem.hw.name}[/]"
        + (f" + {problem.hw.kv_memory}" if problem.hw.kv_memory else "")
        + f": {facts['users']:,} users, context {problem.context:,}, floor {problem.min_tokens_per_s:g} tokens/s/user"
    )
    console.print(
        f"status {facts['status']} ({plan.solver.method}), gap {facts['gap'] if facts['gap'] is not None else float('nan'):.2e}, "
        f"solve {facts['solve_s']:.2f} s, build {facts['build_s']:.2f} s"
    )
    console.print(
        f"[bold]{facts['joules_per_token']:.4g} J/token[/] (weights {e['weights']:.3g}, KV {e['kv']:.3g}, compute "
        f"{e['compute']:.3g}, links {e['links']:.3g}, idle {e['idle']:.3g}); {facts['stages']} stages x "
        f"{problem.hw.chips_per_group} chips = {facts['chips']} chips; micro-batch {facts['micro_batch']:.4g} users"
    )
    console.print(
        f"cycle {facts['cycle_ms']:.4g} ms x {facts['micro_batches']:,} micro-batches, walk {facts['walk_ms']:.4g} ms: "
        f"a token every {facts['token_ms']:.4g} ms = {facts['tokens_per_s_per_user']:.4g} tokens/s per user, "
        f"{facts['tokens_per_s']:,.0f} tokens/s in all"
    )
    limit = problem.max_chip_power_w
    console.print(
        f"power {facts['power_w']:,.0f} W, at most {facts['max_chip_power_w']:,.1f} W per chip"
        + (f" (limit {limit:,.0f} W)" if limit is not None else " (no per-chip limit)")
        + (f", budget {problem.max_power_w:,.0f} W" if problem.max_power_w is not None else "")
    )
    g = f.get("granularity")
    if g and any(v > 1 for v in g.values()):
        parts = ", ".join(f"{k} {v}" for k, v in g.items() if v > 1)
        console.print(f"sub-layer parts: {parts} ({f.get('graph_nodes')} graph nodes)")
    if facts["core_cuts"]:
        console.print(
            f"core parts cut between groups: {facts['core_cuts']} (a part's users shared by two neighbouring "
            f"groups in 1/64 steps, planner.placement.packing; solved at S = {facts['stages']} only)"
        )
    console.print(f"J/token by S: {_per_stage_text(facts['per_stage_count'])}", soft_wrap=True)
    if plan.solver.per_group_size:
        sizes = "  ".join(
            f"{c} chips: {r.joules_per_token:.4g} (S={r.stages})"
            if r.joules_per_token is not None
            else f"{c} chips: {r.status}"
            for c, r in plan.solver.per_group_size.items()
        )
        console.print(f"J/token by group size: {sizes}", soft_wrap=True)
    rows = group_rows(f["groups"], problem.tiers)
    shown = (
        rows
        if wide or len(rows) <= 24
        else rows[:10] + [{"group": "...", "nodes": f"({len(rows) - 20} more: --wide)"}] + rows[-10:]
    )
    print_table("groups", GROUP_COLUMNS, shown, wide=wide)


GROUP_COLUMNS = [
    Column("group", "group"),
    Column("nodes", "nodes"),
    Column("count", "node\ncount", wide=True),
    Column("fill", "tier fill"),
    Column("busy", "busy\nms"),
    Column("send", "send\nms", wide=True),
    Column("power", "W per\nchip"),
    Column("binding", "binding"),
]


def group_rows(groups: list[dict], tiers) -> list[dict]:
    """Rows of the groups table from a plan's `figures.groups` (power per chip where the plan has it)."""
    return [
        {
            "group": g["group"],
            "nodes": f"{g['first_node']} .. {g['last_node']}",
            "count": g["nodes"],
            "fill": ", ".join(f"{t} {100 * g['resident_gb'][t] / g['capacity_gb'][t]:.0f}%" for t in tiers),
            "busy": g["busy_ms"],
            "send": g.get("send_ms"),
            "power": g.get("power_w_per_chip"),
            "binding": g["binding"],
        }
        for g in groups
    ]


@app.command("evaluate")
@handle_errors
def evaluate_command(
    instance: Annotated[Path, typer.Argument(metavar="INSTANCE.yaml", help="instance YAML")],
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="plan YAML or JSON")],
    json_out: o.JsonFlag = False,
    wide: Annotated[bool, o.flag("--wide", help="every group and every column of the groups table")] = False,
) -> None:
    """Recompute every figure of a plan from the instance and the placement (no solver); list violations.

    Exit 0 when the plan is feasible, 1 when it violates a constraint."""
    from planner.api import load_problem
    from planner.plans.plan import evaluate as evaluate_plan
    from planner.plans.plan import figures, load_plan, objective_rel_diff, plan_problem, summary

    plan = load_plan(plan_file)
    base = load_problem(instance)
    result = evaluate_plan(base, plan, source=str(plan_file))
    problem = plan_problem(base, plan)[0]
    data = {"feasible": result.feasible, "violations": result.violations}
    if result.cost is not None:
        data.update(summary(plan, result.cost))
        data["objective_rel_diff"] = objective_rel_diff(plan, result.cost)
    if json_out:
        print_json(data)
    else:
        if result.cost is not None:
            _print_plan_summary(
                problem, plan.model_copy(update={"figures": figures(result.cost, problem)}), data, wide
            )
            if data["objective_rel_diff"] is not None:
                console.print(
                    f"recomputed J/token vs the plan's objective: relative difference {data['objective_rel_diff']:.2e}"
                )
        for v in result.violations:
            err_console.print(f"[red]violated:[/] {v}", highlight=False)
        if result.feasible:
            console.print("feasible: no constraint violated")
    if not result.feasible:
        raise typer.Exit(1)


@app.command("plot")
@handle_errors
def plot_command(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="plan YAML or JSON")],
    out: Annotated[Path, o.option("--out", metavar="FILE.png", help="the figure to write")],
) -> None:
    """Draw a plan: the chip groups in a chain, their layers, tier fill and binding resource."""
    check_output(out, "--out")
    from planner.api import load_problem
    from planner.plans.plan import evaluate, load_plan, plan_problem
    from planner.render.plots import plot_plan

    plan = load_plan(plan_file)
    base = load_problem(plan.instance, source=f"{plan_file}: instance")
    result = evaluate(base, plan, source=str(plan_file))
    problem = plan_problem(base, plan)[0]
    if result.cost is None:
        raise PlannerInputError(plan_file, result.violations)
    plot_plan(plan, problem, result.cost, out)
    console.print(f"wrote {out}")
