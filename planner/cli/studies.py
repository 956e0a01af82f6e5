"""planner capacity, compare, sweep, study ..."""

from __future__ import annotations

import sys
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
)
from planner.core.fileio import check_output

# ---------------------------------------------------------------------------------------------- capacity, compare, sweep, studies

study_app = typer.Typer(no_args_is_help=True, help="Studies that write results/ (tables, reports, figures).")
app.add_typer(study_app, name="study")

DEFAULT_CACHE = Path(".planner-cache") / "cases"
MEMORIES = "sram,hbm3e,hbm4,lpddr5x,gddr7,novel-kv-dram"


def _command_line() -> str:
    """The command as typed (recorded at the top of each results/ report)."""
    import shlex

    return shlex.join(["planner", *sys.argv[1:]])


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
    check_output(cache, "--cache", directory=True)
    from planner.api import capacity
    from planner.problem.instance import spec_from_flags

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
    from planner.studies.compare import COMPARISON_FILES

    check_output(cache, "--cache", directory=True)
    check_output(out, "--out", directory=True, files=COMPARISON_FILES)
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
    from planner.studies.compare import COMPARE_COLUMNS, write_comparison

    if out is not None:
        paths = write_comparison(result, out, _command_line(), hardware, context, min_tokens_per_s)
    if json_out:
        print_json(records(result.maxima))
        return
    for m in models:
        rows = records(result.maxima[result.maxima["model"] == m])
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
    from planner.runs.sweep import load_sweep

    check_output(out, "--out", suffixes=(".csv", ".parquet"))
    check_output(cache, "--cache", directory=True)
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
        from planner.runs.sweep import write_table

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
        records(frame.head(40)),
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
    from planner.studies.deep_pipeline import DEEP_PIPELINE_FILES

    check_output(out, "--out", directory=True, files=DEEP_PIPELINE_FILES)
    check_output(cache, "--cache", directory=True)
    from planner.runs.sweep import load_sweep
    from planner.studies.deep_pipeline import deep_pipeline, write_deep_pipeline

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
        records(result.summary),
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
    check_output(out, "--out", directory=True, files=("kv_demand.md",))
    from planner.render.markdown import write_markdown
    from planner.studies.kv_demand import kv_demand, kv_demand_markdown

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
