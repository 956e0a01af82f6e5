"""Command line: a thin typer layer over the Python API (planner/__init__.py). Tables via rich.

Exit codes: 0 success, 1 infeasible instance (with the binding limit), 2 bad input (file, field, fix).
Tracebacks only with --debug.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from planner.errors import InfeasibleError, PlannerInputError, SolverFailure

app = typer.Typer(
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    help="Optimization-based hardware planner for LLM inference.",
)
model_app = typer.Typer(no_args_is_help=True, help="Model descriptions and graphs.")
app.add_typer(model_app, name="model")

# wide enough for the tables when output goes to a file or a pipe (rich falls back to 80 columns there)
console = Console(width=None if sys.stdout.isatty() else 180)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 180)
STATE = {"debug": False}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    STATE["debug"] = debug


def handle_errors(func):
    """Turn planner errors into one clear message and an exit code; anything else is a bug (exit 3)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PlannerInputError as exc:
            if STATE["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(exc.message())}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except InfeasibleError as exc:
            if STATE["debug"]:
                raise
            err_console.print(
                f"[bold red]infeasible[/] ({escape(exc.binding)}): {escape(exc.explanation)}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        except SolverFailure as exc:
            if STATE["debug"]:
                raise
            err_console.print(
                f"[bold red]solver failure:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(3) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug, not the user's input: say so plainly, exit 3
            if STATE["debug"]:
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
                "This is a bug in the planner, not in your input; rerun with --debug for the traceback.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(3) from None

    return wrapper


def parse_int_list(text: str, flag: str) -> list[int]:
    """'1,8,64' -> [1, 8, 64]; a clear input error otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PlannerInputError(
            flag, [f"{text!r}: expected whole numbers separated by commas, e.g. 1,8,64"]
        ) from None
    if not values or any(v <= 0 for v in values):
        raise PlannerInputError(flag, [f"{text!r}: expected positive whole numbers, e.g. 1,8,64"])
    if any(v > 10**9 for v in values):  # past a float's integer range the cost model overflows
        raise PlannerInputError(flag, [f"{text!r}: expected numbers of at most 1,000,000,000"])
    return values


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=float) + "\n")


def print_table(title: str, columns: list[tuple[str, str]], rows: list[dict]) -> None:
    """Rich table; columns are (key, header with unit); floats shown with 4 significant digits."""
    table = Table(title=title, show_lines=False)
    for _, header in columns:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*[_fmt(row.get(k)) for k, _ in columns])
    console.print(table)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


# ---------------------------------------------------------------------------------------------- model


@model_app.command("info")
@handle_errors
def model_info(
    model: Annotated[str, typer.Argument(help="graphs/ name (llama-3.1-70b) or path to an HF config.json")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    weight_dtype: Annotated[str, typer.Option(help="bf16, fp8 or fp4")] = "bf16",
    kv_dtype: Annotated[str, typer.Option(help="bf16, fp8 or fp4")] = "bf16",
) -> None:
    """Parameters, bytes, KV per token, layers, nodes and experts of a model."""
    from planner.model import load_model

    info = load_model(model, weight_dtype, kv_dtype).info()
    if json_out:
        print_json(info)
        return
    table = Table(title=escape(f"{info['model']} ({weight_dtype} weights, {kv_dtype} KV)"), show_header=False)
    rows = [
        ("total parameters", f"{info['total_params'] / 1e9:,.3f} B"),
        ("active parameters per token", f"{info['active_params'] / 1e9:,.3f} B"),
        ("weight bytes", f"{info['weight_bytes'] / 1e9:,.2f} GB"),
        ("KV bytes per token per user", f"{info['kv_bytes_per_token']:,.0f} B"),
        ("layers", f"{info['num_layers']}"),
        ("graph nodes", f"{info['num_nodes']}"),
        (
            "experts (per token)",
            f"{info['experts']} ({info['experts_per_tok']})" if info["experts"] else "dense",
        ),
        ("MoE layers", f"{info['moe_layers']}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@model_app.command("graph")
@handle_errors
def model_graph(
    model: Annotated[str, typer.Argument(help="graphs/ name or path to an HF config.json")],
    out: Annotated[Path, typer.Option("--out", help="FILE.graphml or FILE.json (node-link)")],
    weight_dtype: Annotated[str, typer.Option(help="bf16, fp8 or fp4")] = "bf16",
    kv_dtype: Annotated[str, typer.Option(help="bf16, fp8 or fp4")] = "bf16",
) -> None:
    """Write the model's decode graph as GraphML or node-link JSON (chosen by the file suffix)."""
    from planner.api import write_graph
    from planner.model import load_model

    m = load_model(model, weight_dtype, kv_dtype)
    write_graph(m, out)
    console.print(
        escape(f"wrote {out} ({m.graph.number_of_nodes()} nodes, {m.graph.number_of_edges()} edges)")
    )


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
        from planner.fileio import write_text_atomic

        write_text_atomic(csv, frame.to_csv(index=False))
    if plot:
        from planner.plots import plot_sol

        plot_sol(frames, plot)
    if json_out:
        print_json(frame.to_dict(orient="records"))
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
    if plot:
        console.print(escape(f"wrote {plot}"))


# ---------------------------------------------------------------------------------------------- solve


def _instance_from(instance: Path | None, flags: dict):
    """An instance file, or flags alone; flags given with a file override the file's fields."""
    from planner.instance import load_instance, spec_from_flags

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
    from planner.plan import evaluate, summary, write_csv_tables

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
    if out is not None and out.suffix not in (".yaml", ".yml", ".json"):
        raise PlannerInputError(str(out), ["--out must end in .yaml, .yml or .json"])
    problem = load_problem(spec, source)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from planner.solve import solve_problem  # the solver stack loads only once the input is valid

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
        err_console.print(
            "interrupted: the plan above is the best found before Ctrl-C"
            + (f" and was written to {out}" if out is not None else "; give --out to keep it"),
            highlight=False,
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
    from planner.plan import evaluate as evaluate_plan
    from planner.plan import figures, load_plan, summary

    problem = load_problem(instance)
    plan = load_plan(plan_file)
    result = evaluate_plan(problem, plan)
    data = {"feasible": result.feasible, "violations": result.violations}
    if result.cost is not None:
        data.update(summary(plan, result.cost))
        objective = plan.solver.objective
        data["objective_rel_diff"] = (
            abs(result.cost.joules_per_token - objective) / objective if objective else None
        )
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
    from planner.api import load_problem
    from planner.plan import evaluate, load_plan
    from planner.plots import plot_plan

    plan = load_plan(plan_file)
    problem = load_problem(plan.instance)
    result = evaluate(problem, plan)
    if result.cost is None:
        raise PlannerInputError(plan_file, result.violations)
    plot_plan(plan, problem, result.cost, out)
    console.print(f"wrote {out}")


# ---------------------------------------------------------------------------------------------- calibration


@app.command("check-measurements")
@handle_errors
def check_measurements_command(
    measurements: Annotated[str, typer.Argument(help="measurement CSV (or CSVs separated by commas)")],
    hardware: Annotated[str, typer.Option("--hardware", help="instances/hardware/ name or path")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict each measured decode step (step ms, J/token) from its shape and compare with the measurement."""
    from planner.api import check_measurements

    report = check_measurements(measurements, hardware)
    if json_out:
        print_json(report.to_dict())
        return
    print_table(
        f"measured vs predicted on {report.hardware} (one chip, layers only)",
        [
            ("users", "users"),
            ("context", "context"),
            ("measured_ms", "measured ms"),
            ("predicted_ms", "predicted ms"),
            ("err_time_pct", "error %"),
            ("measured_j_per_token", "measured J/token"),
            ("predicted_j_per_token", "predicted J/token"),
            ("err_energy_pct", "error %"),
        ],
        [
            {
                **r.to_dict(),
                "err_time_pct": round(100 * r.err_time, 1),
                "err_energy_pct": round(100 * r.err_energy, 1),
            }
            for r in report.rows
        ],
    )
    console.print(
        f"median |error|: time {100 * report.median_abs_err_time:.1f}%, "
        f"energy {100 * report.median_abs_err_energy:.1f}%",
        highlight=False,
    )


@app.command("calibrate")
@handle_errors
def calibrate_command(
    microbench: Annotated[Path, typer.Option("--microbench", help="device_microbench.json (priors)")],
    measurements: Annotated[
        str, typer.Option("--measurements", help="decode-step CSV(s), separated by commas")
    ],
    out: Annotated[Path, typer.Option("--out", help="calibrated hardware YAML to write")],
    hardware: Annotated[
        str, typer.Option("--hardware", help="base hardware (instances/hardware/ name or path)")
    ] = "h100-sxm",
    holdout: Annotated[
        str,
        typer.Option(
            "--holdout", help="rows kept out of a fixed-split check: row numbers and/or users=N, context=N"
        ),
    ] = "",
    report: Annotated[
        Path | None, typer.Option("--report", help="FILE.md: write the report there and FILE.csv beside it")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Fit achievable fractions, fixed costs and energy coefficients to measured decode steps.

    Reports in-sample, leave-one-out and (with --holdout) fixed-split errors; writes the hardware YAML."""
    from planner.api import calibrate
    from planner.calibrate import PARAM_ROWS

    with console.status("fitting") as status:
        cal = calibrate(
            microbench, measurements, hardware, out, holdout, report, progress=lambda m: status.update(m)
        )
    checks = {"in_sample": cal.in_sample, "leave_one_out": cal.leave_one_out}
    if cal.split is not None:
        checks["holdout"] = cal.split
    if json_out:
        print_json({"params": vars(cal.params), **{k: v.to_dict() for k, v in checks.items()}})
        return
    print_table(
        f"calibrated {cal.hardware.name}",
        [("field", "field"), ("value", "value"), ("unit", "unit")],
        [
            {"field": name, "value": getattr(cal.params, attr) * scale, "unit": unit}
            for name, attr, scale, unit in PARAM_ROWS
        ],
    )
    print_table(
        "errors on rows the fit used (in_sample) and did not use (leave_one_out, holdout)",
        [
            ("check", "check"),
            ("rows", "rows"),
            *[(k, k.replace("_", " ") + " %") for k in cal.in_sample.summary()],
        ],
        [
            {"check": k, "rows": len(v.rows), **{m: round(100 * e, 1) for m, e in v.summary().items()}}
            for k, v in checks.items()
        ],
    )
    console.print(f"wrote {out}" + (f", {report} and {report.with_suffix('.csv')}" if report else ""))


# ---------------------------------------------------------------------------------------------- capacity, compare, sweep, studies

study_app = typer.Typer(no_args_is_help=True, help="Studies that write results/ (tables, reports, figures).")
app.add_typer(study_app, name="study")

DEFAULT_CACHE = Path(".planner-cache") / "cases"
MEMORIES = "sram,hbm3e,hbm4,lpddr5x,gddr7,novel-kv-dram"


def _command_line() -> str:
    """The command as typed (recorded at the top of each results/ report)."""
    import shlex

    return shlex.join(["planner", *sys.argv[1:]])


def _records(frame) -> list[dict]:
    """Rows of a DataFrame with missing values as None (blank in tables, null in JSON)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _counting_bar(total: int, description: str, disable: bool = False):
    """A rich progress bar on stderr that counts finished cases: (bar, advance(label))."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=disable,
    )
    task = bar.add_task(description, total=total)

    def advance(label: str = "") -> None:
        bar.update(task, advance=1, description=f"{description} {label}".strip())

    return bar, advance


@app.command("capacity")
@handle_errors
def capacity_command(
    model: Annotated[str, typer.Option("--model", help="graphs/ name or HF config.json path")],
    hardware: Annotated[str, typer.Option("--hardware", help="instances/hardware/ name or path")],
    context: Annotated[int, typer.Option("--context", min=1, help="KV tokens per user")],
    min_tokens_per_s: Annotated[float, typer.Option("--min-tokens-per-s", help="per-user speed floor")],
    kv_memory: Annotated[str | None, typer.Option("--kv-memory", help="technology of the KV tier")] = None,
    chips_per_group: Annotated[int | None, typer.Option("--chips-per-group", min=1)] = None,
    max_groups: Annotated[int, typer.Option("--max-groups", min=1, help="largest number of groups")] = 128,
    stages: Annotated[
        int | None, typer.Option("--stages", min=1, help="fix S instead of enumerating")
    ] = None,
    time_limit: Annotated[
        float | None,
        typer.Option("--time-limit", help="seconds per S (an infeasible verdict may then be unproven)"),
    ] = None,
    gap: Annotated[float | None, typer.Option("--gap", help="relative MIP gap")] = None,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="DIR: keep every solve (resume, reuse)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Most users served at the per-user floor: exact search over U with the solver as the oracle.

    Feasibility is monotone in U (see planner.capacity), so a galloping search from the capacity bound and
    a bisection find U* with a feasible solve at U* and an infeasible one at U*+1 (its binding limit shown)."""
    from planner.api import capacity
    from planner.instance import spec_from_flags

    spec = spec_from_flags(
        model=model,
        hardware=hardware,
        kv_memory=kv_memory,
        chips_per_group=chips_per_group,
        max_groups=max_groups,
        users=1,
        context=context,
        min_tokens_per_s=min_tokens_per_s,
        stages=stages,
        time_limit=time_limit,
        gap=gap,
    )
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"searching users for {model} on {hardware}", total=None)

        def progress(users: int, result) -> None:
            verdict = "feasible" if result.feasible else f"infeasible ({result.row.get('binding')})"
            bar.update(task, description=f"U={users:,}: {verdict}")

        result = capacity(spec, cache=cache, progress=progress)
    facts = result.summary()
    if json_out:
        print_json(facts)
        return
    where = f"{model} on {hardware}" + (f" + {kv_memory}" if kv_memory else "")
    console.print(
        f"[bold]{escape(where)}[/]: context {context:,}, floor {min_tokens_per_s:g} tokens/s/user, "
        f"up to {max_groups} groups" + (f", S={stages}" if stages else ""),
        highlight=False,
    )
    console.print(
        f"[bold]max users {facts['max_users']:,}[/]"
        + ("" if facts["exact"] else " (not proven: a time limit stopped an S)")
    )
    if facts["max_users"]:
        console.print(
            f"plan at {facts['max_users']:,} users: S={facts['stages']}, {facts['chips']} chips, "
            f"{facts['joules_per_token']:.4g} J/token, {facts['tokens_per_s']:,.0f} tokens/s, {facts['power_w']:,.0f} W",
            highlight=False,
        )
    console.print(
        f"at {facts['max_users'] + 1:,} users: infeasible ({escape(str(facts['binding']))}): "
        f"{escape(str(facts['explanation']))}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"{len(facts['probes'])} solves: "
        + ", ".join(f"{u:,}{'+' if ok else '-'}" for u, ok in facts["probes"])
    )


@app.command("compare")
@handle_errors
def compare_command(
    model: Annotated[str, typer.Option("--model", help="graphs/ name(s), separated by commas")],
    hardware: Annotated[str, typer.Option("--hardware", help="instances/hardware/ name or path")],
    users: Annotated[str, typer.Option("--users", help="user counts, e.g. 64,256,1024")],
    context: Annotated[int, typer.Option("--context", min=1, help="KV tokens per user")],
    min_tokens_per_s: Annotated[float, typer.Option("--min-tokens-per-s", help="per-user speed floor")],
    memory: Annotated[
        str, typer.Option("--memory", help="KV memory technologies, separated by commas")
    ] = MEMORIES,
    chips_per_group: Annotated[int | None, typer.Option("--chips-per-group", min=1)] = None,
    max_groups: Annotated[int, typer.Option("--max-groups", min=1, help="largest number of groups")] = 128,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="seconds per S")] = None,
    gap: Annotated[float, typer.Option("--gap", help="relative MIP gap")] = 1e-4,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="worker processes (default: cores)")
    ] = None,
    cache: Annotated[Path, typer.Option("--cache", help="DIR of cached case results")] = DEFAULT_CACHE,
    out: Annotated[Path | None, typer.Option("--out", help="DIR: memory_comparison.csv, .md, .png")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the max-users rows as JSON")] = False,
) -> None:
    """Memory technologies for the KV tier side by side: J/token by category, max users, S, chips, power,
    tokens/s and KV bandwidth per die; a Pareto plot of J/token against users."""
    from planner.api import compare

    models = [m for m in model.split(",") if m.strip()]
    memories = [m for m in memory.split(",") if m.strip()]
    user_list = parse_int_list(users, "--users")
    total = len(models) * len(memories) * (len(user_list) + 1)
    bar, advance = _counting_bar(total, "comparing", disable=json_out)
    with bar:
        result = compare(
            models,
            hardware,
            memories,
            user_list,
            context,
            min_tokens_per_s,
            chips_per_group=chips_per_group,
            max_groups=max_groups,
            time_limit=time_limit,
            gap=gap,
            cache=cache,
            workers=workers,
            progress=advance,
        )
    from planner.studies import COMPARE_COLUMNS, write_comparison

    if out is not None:
        paths = write_comparison(result, out, _command_line(), hardware, context, min_tokens_per_s)
    if json_out:
        print_json(_records(result.maxima))
        return
    for m in models:
        rows = _records(result.maxima[result.maxima["model"] == m])
        print_table(
            f"{m} on {hardware}: context {context:,}, >= {min_tokens_per_s:g} tokens/s/user, at max users",
            [
                c
                for c in COMPARE_COLUMNS
                if c[0]
                not in ("compute_j", "link_j", "tokens_per_s_per_user", "kv_tier_fill", "kv_tier_bw_use")
            ],
            rows,
        )
    if out is not None:
        console.print("wrote " + ", ".join(str(p) for p in paths))


@app.command("sweep")
@handle_errors
def sweep_command(
    sweep_file: Annotated[Path, typer.Argument(help="SWEEP.yaml (see sweeps/example.yaml)")],
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="local worker processes (default: cores)")
    ] = None,
    dask: Annotated[
        str | None, typer.Option("--dask", help="SCHEDULER_ADDRESS of a dask.distributed cluster")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="FILE.csv or FILE.parquet: the table")] = None,
    cache: Annotated[
        Path, typer.Option("--cache", help="DIR of cached case results (resume)")
    ] = DEFAULT_CACHE,
) -> None:
    """Solve every combination of a sweep file in parallel; each case is cached, so a rerun resumes."""
    from planner.api import sweep
    from planner.sweep import load_sweep

    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise PlannerInputError(str(out), ["--out must end in .csv or .parquet"])
    spec = load_sweep(sweep_file)
    bar, advance = _counting_bar(len(spec.cases()), f"sweep {spec.name or sweep_file.stem}")
    with bar:
        frame = sweep(
            spec,
            cache=cache,
            workers=workers,
            scheduler=dask,
            progress=lambda r, hit: advance(f"(last: {r.row['status']}{', cached' if hit else ''})"),
        )
    if out is not None:
        from planner.sweep import write_table

        write_table(frame, out)
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    print_table(
        f"{len(frame)} cases: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        [
            ("model", "model"),
            ("hardware", "hardware"),
            ("memory", "KV memory"),
            ("users", "users"),
            ("context", "context"),
            ("min_tokens_per_s", "floor tok/s"),
            ("status", "status"),
            ("stages", "S"),
            ("joules_per_token", "J/token"),
            ("tokens_per_s", "tokens/s"),
            ("binding", "binding"),
        ],
        _records(frame.head(40)),
    )
    if out is not None:
        console.print(f"wrote {out}")


@study_app.command("deep-pipeline")
@handle_errors
def study_deep_pipeline(
    sweep_file: Annotated[
        Path, typer.Option("--sweep", help="the study's cases: models, S values, users grid, floor")
    ] = Path("sweeps/deep_pipeline.yaml"),
    out: Annotated[Path, typer.Option("--out", help="DIR: deep_pipeline.csv, .md, .png")] = Path("results"),
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="worker processes")] = None,
    cache: Annotated[Path, typer.Option("--cache", help="DIR of cached case results")] = DEFAULT_CACHE,
) -> None:
    """S micro-batches in flight (the deep pipeline) against one, at the same per-user speed: max users
    and J/token per S, for each model of the sweep file."""
    from planner.studies import deep_pipeline, write_deep_pipeline
    from planner.sweep import load_sweep

    spec = load_sweep(sweep_file)
    total = len(spec.cases()) + 2 * len(spec.models) * len(spec.stages or [])
    bar, advance = _counting_bar(total, "deep pipeline")
    with bar:
        result = deep_pipeline(spec, cache=cache, workers=workers, progress=advance)
    paths = write_deep_pipeline(result, out, _command_line())
    print_table(
        "deep pipeline: S micro-batches vs one",
        [
            ("model", "model"),
            ("stages", "S"),
            ("deep_max_users", "max users S mb"),
            ("deep_binding", "limit"),
            ("deep_joules_per_token", "J/token"),
            ("one_mb_max_users", "max users 1 mb (>=)"),
            ("one_mb_joules_per_token", "J/token 1 mb"),
            ("users_ratio", "ratio"),
        ],
        _records(result.summary),
    )
    console.print("wrote " + ", ".join(str(p) for p in paths))


@study_app.command("kv-demand")
@handle_errors
def study_kv_demand(
    tables: Annotated[
        str, typer.Option("--from", help="sweep tables (CSV/Parquet), separated by commas")
    ] = "results/memory_comparison.csv,results/deep_pipeline.csv",
    out: Annotated[Path, typer.Option("--out", help="DIR: kv_demand.md")] = Path("results"),
) -> None:
    """KV bandwidth demand per byte of KV stored, per plan, against each technology's bandwidth/capacity:
    which technologies are bandwidth- and which capacity-limited for the KV cache."""
    from planner.studies import kv_demand, kv_demand_markdown, write_markdown

    paths = [p for p in tables.split(",") if p.strip()]
    plans, techs = kv_demand(paths)
    path = write_markdown(out / "kv_demand.md", kv_demand_markdown(plans, techs, _command_line()))
    print_table(
        "bandwidth / capacity per technology",
        [("memory", "memory"), ("bw_per_capacity_per_s", "bw/capacity 1/s"), ("pj_per_bit", "pJ/bit")],
        techs.to_dict(orient="records"),
    )
    summary = plans.groupby(["kv_tier", "kv_limited_by"]).size().reset_index(name="plans")
    print_table(
        "plans by KV tier",
        [("kv_tier", "KV tier"), ("kv_limited_by", "limited by"), ("plans", "plans")],
        summary.to_dict(orient="records"),
    )
    console.print(f"wrote {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
