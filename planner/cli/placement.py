"""planner sol, solve, evaluate, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from planner.cli.base import (
    app,
    console,
    err_console,
    handle_errors,
    parse_int_list,
    print_json,
    print_table,
    records,
    report_interrupt,
)
from planner.core.errors import PlannerInputError
from planner.core.fileio import check_output, write_text_atomic

# ---------------------------------------------------------------------------------------------- sol


@app.command("sol")
@handle_errors
def sol_command(
    model: Annotated[
        str,
        typer.Option("--model", help="graphs/ name or HF config.json path; several: a,b (one panel each)"),
    ],
    hardware: Annotated[str, typer.Option("--hardware", help="instances/hardware/ name or path")],
    users: Annotated[str, typer.Option("--users", help="user counts, e.g. 1,8,64,512")],
    context: Annotated[
        int, typer.Option("--context", help="KV tokens held per user", min=1, max=100_000_000)
    ],
    chips: Annotated[
        int | None,
        typer.Option("--chips", help="chips in all (default: fewest that fit)", min=1, max=1_000_000),
    ] = None,
    kv_memory: Annotated[
        str | None, typer.Option("--kv-memory", help="memory technology of the KV tier")
    ] = None,
    achievable: Annotated[
        bool, typer.Option("--achievable", help="calibrated fractions instead of datasheet peaks")
    ] = False,
    weight_dtype: Annotated[str, typer.Option(help="bf16, fp8 or fp4")] = "bf16",
    kv_dtype: Annotated[str, typer.Option(help="bf16, fp8 or fp4")] = "bf16",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="FILE.png: stacked bars of time per token")
    ] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="FILE.csv: the table")] = None,
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
    if csv:
        write_text_atomic(csv, frame.to_csv(index=False))
    if plot:
        from planner.render.plots import plot_sol

        plot_sol(frames, plot)
    if json_out:
        print_json(records(frame))
    else:
        for part in frames:
            first = part.iloc[0]
            print_table(
                escape(
                    f"{'speed of light' if not achievable else 'achievable'}: {first['model']} on "
                    f"{first['chips']} x {first['hardware']}, context {context:,}"
                ),
                [
                    ("users", "users"),
                    ("stages", "stages"),
                    ("weight_ms", "weights ms"),
                    ("kv_ms", "KV ms"),
                    ("compute_ms", "compute ms"),
                    ("link_ms", "links ms"),
                    ("wait_ms", "wait ms"),
                    ("time_ms", "token ms"),
                    ("tokens_per_s_per_user", "tok/s/user"),
                    ("tokens_per_s", "tok/s"),
                    ("joules_per_token", "J/token"),
                    ("weight_energy_pct", "weights %E"),
                    ("kv_energy_pct", "KV %E"),
                    ("idle_energy_pct", "idle %E"),
                ],
                part.to_dict(orient="records"),
            )
    for w in sorted({w for w in frame["warning"] if w}):
        err_console.print(f"[yellow]warning:[/] {escape(w)}")
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
    instance: Annotated[Path | None, typer.Argument(help="instance YAML (or give the flags below)")] = None,
    model: Annotated[str | None, typer.Option("--model", help="graphs/ name or HF config.json path")] = None,
    hardware: Annotated[
        str | None, typer.Option("--hardware", help="instances/hardware/ name or path")
    ] = None,
    kv_memory: Annotated[str | None, typer.Option("--kv-memory", help="technology of the KV tier")] = None,
    chips_per_group: Annotated[int | None, typer.Option("--chips-per-group", min=1)] = None,
    max_groups: Annotated[
        int | None, typer.Option("--max-groups", min=1, help="largest number of groups (default 128)")
    ] = None,
    users: Annotated[int | None, typer.Option("--users", min=1)] = None,
    context: Annotated[int | None, typer.Option("--context", min=1, help="KV tokens per user")] = None,
    min_tokens_per_s: Annotated[
        float | None, typer.Option("--min-tokens-per-s", help="per-user speed floor")
    ] = None,
    stages: Annotated[
        int | None, typer.Option("--stages", min=1, help="fix S instead of enumerating")
    ] = None,
    micro_batches: Annotated[
        int | None,
        typer.Option(
            "--micro-batches",
            min=1,
            help="most micro-batches in flight (default min(users, S); 1: one batch)",
        ),
    ] = None,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="seconds per S")] = None,
    gap: Annotated[float | None, typer.Option("--gap", help="relative MIP gap")] = None,
    method: Annotated[
        str | None, typer.Option("--method", help="milp, pyomo (full MILP per S, slow) or exhaustive (small)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="write the plan: PLAN.yaml or PLAN.json")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="write nodes.csv and groups.csv into DIR")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Place a model on chip groups and memory tiers, minimizing joules per token (Pyomo MILP, HiGHS)."""
    from planner.api import load_problem
    from planner.plans.plan import CSV_TABLES, evaluate, summary, write_csv_tables

    spec, source = _instance_from(
        instance,
        dict(
            model=model,
            hardware=hardware,
            kv_memory=kv_memory,
            chips_per_group=chips_per_group,
            max_groups=max_groups,
            users=users,
            context=context,
            min_tokens_per_s=min_tokens_per_s,
            stages=stages,
            micro_batches=micro_batches,
            time_limit=time_limit,
            gap=gap,
            method=method,
        ),
    )
    check_output(out, "--out", suffixes=(".yaml", ".yml", ".json"))
    check_output(csv, "--csv", directory=True, files=CSV_TABLES)
    problem = load_problem(spec, source)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from planner.placement.solve import solve_problem  # the solver stack loads only once the input is valid

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=json_out,
    ) as bar:
        task = bar.add_task(f"solving {problem.model.name} on {problem.hw.name}", total=None)

        def progress(s: int, record) -> None:
            value = (
                f"{record.joules_per_token:.4g} J/token"
                if record.joules_per_token is not None
                else record.status
            )
            bar.update(task, description=f"S={s}: {value}")

        plan = solve_problem(problem, progress)
    result = evaluate(problem, plan)
    if out is not None:
        plan.save(out)
    if csv is not None:
        write_csv_tables(plan, problem, result.cost, csv)
    facts = summary(plan, result.cost)
    if json_out:
        print_json(facts)
    else:
        _print_plan_summary(problem, plan, facts)
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


def _print_plan_summary(problem, plan, facts) -> None:
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
        f"cycle {facts['cycle_ms']:.4g} ms, token {facts['token_ms']:.4g} ms = {facts['tokens_per_s_per_user']:.4g} "
        f"tokens/s per user, {facts['tokens_per_s']:,.0f} tokens/s in all, {facts['power_w']:,.0f} W"
    )
    console.print(f"J/token by S: {_per_stage_text(facts['per_stage_count'])}", soft_wrap=True)
    rows = []
    for g in f["groups"]:
        fill = ", ".join(f"{t} {100 * g['resident_gb'][t] / g['capacity_gb'][t]:.0f}%" for t in problem.tiers)
        rows.append(
            {
                "group": g["group"],
                "nodes": f"{g['first_node']} .. {g['last_node']}",
                "fill": fill,
                "busy": g["busy_ms"],
                "binding": g["binding"],
            }
        )
    shown = (
        rows
        if len(rows) <= 24
        else rows[:10] + [{"group": "...", "nodes": f"({len(rows) - 20} more)"}] + rows[-10:]
    )
    print_table(
        "groups",
        [
            ("group", "group"),
            ("nodes", "nodes"),
            ("fill", "tier fill"),
            ("busy", "busy ms"),
            ("binding", "binding"),
        ],
        shown,
    )


@app.command("evaluate")
@handle_errors
def evaluate_command(
    instance: Annotated[Path, typer.Argument(help="instance YAML")],
    plan_file: Annotated[Path, typer.Argument(help="plan YAML or JSON")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Recompute every figure of a plan from the instance and the placement (no solver); list violations.

    Exit 0 when the plan is feasible, 1 when it violates a constraint."""
    from planner.api import load_problem
    from planner.plans.plan import evaluate as evaluate_plan
    from planner.plans.plan import figures, load_plan, objective_rel_diff, summary

    problem = load_problem(instance)
    plan = load_plan(plan_file)
    result = evaluate_plan(problem, plan, source=str(plan_file))
    data = {"feasible": result.feasible, "violations": result.violations}
    if result.cost is not None:
        data.update(summary(plan, result.cost))
        data["objective_rel_diff"] = objective_rel_diff(plan, result.cost)
    if json_out:
        print_json(data)
    else:
        if result.cost is not None:
            _print_plan_summary(problem, plan.model_copy(update={"figures": figures(result.cost)}), data)
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
    plan_file: Annotated[Path, typer.Argument(help="plan YAML or JSON")],
    out: Annotated[Path, typer.Option("--out", help="FILE.png")],
) -> None:
    """Draw a plan: the chip groups in a chain, their layers, tier fill and binding resource."""
    check_output(out, "--out")
    from planner.api import load_problem
    from planner.plans.plan import evaluate, load_plan
    from planner.render.plots import plot_plan

    plan = load_plan(plan_file)
    problem = load_problem(plan.instance, source=f"{plan_file}: instance")
    result = evaluate(problem, plan, source=str(plan_file))
    if result.cost is None:
        raise PlannerInputError(plan_file, result.violations)
    plot_plan(plan, problem, result.cost, out)
    console.print(f"wrote {out}")
