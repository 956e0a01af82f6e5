"""planner capacity, compare, sweep, study ..."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from planner.cli import options as o
from planner.cli.base import (
    Column,
    PlannerTyper,
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
    start_workers,
)
from planner.cli.progress import ProgressReport
from planner.core.errors import PlannerInputError, bounded_repr
from planner.core.fileio import check_output

# ---------------------------------------------------------------------------------------------- capacity, compare, sweep, studies

study_app = PlannerTyper(no_args_is_help=True, help="Studies that write results/ (tables, reports, figures).")
app.add_typer(study_app, name="study")

DEFAULT_CACHE = Path(".planner-cache") / "cases"
MEMORIES = "sram,hbm3e,hbm4,lpddr5x,gddr7,novel-kv-dram"


def _command_line() -> str:
    """The command as typed (recorded at the top of each results/ report)."""
    import shlex

    return shlex.join(["planner", *sys.argv[1:]])


@app.command("capacity")
@handle_errors
def capacity_command(
    model: o.Model,
    hardware: o.Hardware,
    context: o.Context,
    min_tokens_per_s: o.MinTokensPerS,
    kv_memory: o.KvMemory = None,
    chips_per_group: o.ChipsPerGroup = None,
    max_groups: o.MaxGroups = 128,
    split: o.Split = None,
    weight_tiers: o.WeightTiers = None,
    kv_tiers: o.KvTiers = None,
    max_chip_power: o.MaxChipPower = None,
    max_power: o.MaxPower = None,
    stages: o.Stages = None,
    micro_batches: Annotated[
        int | None,
        o.option("--micro-batches", metavar="M", min=1, help="most micro-batches in flight (1: one batch)"),
    ] = None,
    weight_dtype: o.WeightDtype = "bf16",
    kv_dtype: o.KvDtype = "bf16",
    time_limit: o.TimeLimit = None,
    gap: o.OptionalGap = None,
    cache: o.OptionalCacheDir = None,
    json_out: o.JsonFlag = False,
    quiet: o.Quiet = False,
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
        chips_per_group=parse_group_sizes(chips_per_group),
        max_groups=max_groups,
        split=parse_split(split),
        weight_tiers=parse_names(weight_tiers),
        kv_tiers=parse_names(kv_tiers),
        max_chip_power=max_chip_power,
        max_power=max_power,
        micro_batches=micro_batches,
        users=1,
        context=context,
        min_tokens_per_s=min_tokens_per_s,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        stages=stages,
        time_limit=time_limit,
        gap=gap,
    )
    with ProgressReport(f"capacity {model} on {hardware}", quiet=quiet) as progress:

        def probe(users: int, result) -> None:
            verdict = "feasible" if result.feasible else f"infeasible ({result.row.get('binding')})"
            progress.advance(f"U={users:,}: {verdict}")

        result = capacity(spec, cache=cache, progress=probe)
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
        + (
            ""
            if facts["exact"]
            else " (a lower bound: an S above it was left undecided, by a time limit or the relaxations)"
        )
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
    if facts["core_parts"]:
        console.print(
            (
                "attention cores whole"
                if facts["core_parts"] == 1
                else f"attention cores in {facts['core_parts']} parts"
            )
            + " for every probe (the automatic split at the "
            f"capacity bound; `planner solve` reproduces a probe with --core-parts {facts['core_parts']})",
            highlight=False,
        )
    if facts["core_cuts"]:
        from planner.model.split import CUT_STEPS

        console.print(
            f"the plan at {facts['max_users']:,} users shares the users of {facts['core_cuts']} core parts "
            f"between neighbouring groups (cut at 1/{CUT_STEPS} steps of a part's users)",
            highlight=False,
        )
    console.print(
        f"{len(facts['probes'])} solves: "
        + ", ".join(f"{u:,}{'+' if ok else '-'}" for u, ok in facts["probes"])
    )


COMPARE_COMPACT = (
    "memory",
    "max_users",
    "binding",
    "stages",
    "chips",
    "joules_per_token",
    "power_w",
    "tokens_per_s",
)


@app.command("compare")
@handle_errors
def compare_command(
    model: o.Models,
    hardware: o.Hardware,
    users: o.UserCounts,
    context: o.Context,
    min_tokens_per_s: o.MinTokensPerS,
    kv_memory: o.KvMemories = MEMORIES,
    memory: o.MemoryAlias = None,
    chips_per_group: o.ChipsPerGroup = None,
    max_groups: o.MaxGroups = 128,
    weight_dtype: o.WeightDtype = "bf16",
    kv_dtype: o.KvDtype = "bf16",
    time_limit: o.TimeLimit = None,
    gap: o.Gap = 1e-4,
    workers: o.Workers = None,
    cache: o.CacheDir = DEFAULT_CACHE,
    out: Annotated[
        Path | None, o.option("--out", metavar="DIR", help="write memory_comparison.csv, .md and .png here")
    ] = None,
    report: o.Report = None,
    json_out: Annotated[bool, o.flag("--json", help="print the max-users rows as JSON (tables off)")] = False,
    wide: o.Wide = False,
    quiet: o.Quiet = False,
) -> None:
    """Memory technologies for the KV tier side by side: max users, J/token, S, chips, power, tokens/s.

    Every model x memory x users case is solved and each model x memory's max users searched exactly;
    --wide adds J/token by category and KV bandwidth per die; --out writes the tables and a Pareto plot;
    --report FILE.html an interactive report of the same."""
    start_workers(workers, None)
    from planner.studies.compare import COMPARISON_FILES

    check_output(cache, "--cache", directory=True)
    check_output(out, "--out", directory=True, files=COMPARISON_FILES)
    check_output(report, "--report", suffixes=(".html", ".htm"))
    from planner.api import compare

    if memory is not None:
        err_console.print("[yellow]warning:[/] --memory is now --kv-memory (as in the other commands)")
        kv_memory = memory
    models = [m for m in model.split(",") if m.strip()]
    memories = [m for m in kv_memory.split(",") if m.strip()]
    user_list = parse_int_list(users, "--users")
    total = len(models) * len(memories) * (len(user_list) + 1)
    with ProgressReport("compare", total=total, quiet=quiet) as progress:
        result = compare(
            models,
            hardware,
            memories,
            user_list,
            context,
            min_tokens_per_s,
            chips_per_group=parse_group_sizes(chips_per_group),
            max_groups=max_groups,
            time_limit=time_limit,
            gap=gap,
            cache=cache,
            workers=workers,
            progress=progress.advance,
            weight_dtype=weight_dtype,
            kv_dtype=kv_dtype,
        )
    from planner.studies.compare import COMPARE_COLUMNS, write_comparison

    paths = []
    if out is not None:
        paths = write_comparison(result, out, _command_line(), hardware, context, min_tokens_per_s)
    if report is not None:
        from planner.render.report import write_comparison_report

        paths.append(write_comparison_report(result, report, _command_line()))
    if json_out:
        print_json(records(result.maxima))
        return
    columns = [Column(k, h.replace(" ", "\n", 1), wide=k not in COMPARE_COMPACT) for k, h in COMPARE_COLUMNS]
    for m in models:
        rows = records(result.maxima[result.maxima["model"] == m])
        print_table(
            f"{m} on {hardware}: context {context:,}, >= {min_tokens_per_s:g} tokens/s/user, at max users",
            columns,
            rows,
            wide=wide,
        )
    if paths:
        console.print("wrote " + ", ".join(str(p) for p in paths))


SWEEP_COLUMNS = [
    Column("model", "model"),
    Column("hardware", "hardware", wide=True),
    Column("memory", "KV memory"),
    Column("users", "users"),
    Column("context", "context"),
    Column("min_tokens_per_s", "floor\ntok/s"),
    Column("status", "status"),
    Column("stages", "S"),
    Column("chips", "chips", wide=True),
    Column("joules_per_token", "J/token", digits=3),
    Column("tokens_per_s", "tok/s\nin all", wide=True),
    Column("power_w", "power\nW", wide=True),
    Column("binding", "binding"),
]


@app.command("sweep")
@handle_errors
def sweep_command(
    sweep_file: Annotated[
        Path, typer.Argument(metavar="SWEEP.yaml", help="the sweep (see sweeps/example.yaml)")
    ],
    workers: o.Workers = None,
    dask: o.Dask = None,
    weight_dtype: Annotated[
        str | None,
        o.option("--weight-dtype", metavar="DTYPE", help=f"weights: {o.DTYPES} (default: the file's)"),
    ] = None,
    kv_dtype: Annotated[
        str | None,
        o.option("--kv-dtype", metavar="DTYPE", help=f"KV cache: {o.DTYPES} (default: the file's)"),
    ] = None,
    out: Annotated[
        Path | None, o.option("--out", metavar="FILE.csv", help="write the table: FILE.csv or FILE.parquet")
    ] = None,
    cache: o.CacheDir = DEFAULT_CACHE,
    wide: o.Wide = False,
    quiet: o.Quiet = False,
) -> None:
    """Solve every combination of a sweep file in parallel; each case is cached, so a rerun resumes."""
    check_output(out, "--out", suffixes=(".csv", ".parquet"))
    check_output(cache, "--cache", directory=True)
    start_workers(workers, dask)
    from planner.api import sweep
    from planner.runs.sweep import load_sweep

    spec = load_sweep(sweep_file)
    dtypes = {k: v for k, v in (("weight_dtype", weight_dtype), ("kv_dtype", kv_dtype)) if v is not None}
    if dtypes:
        spec = spec.model_validate({**spec.model_dump(), **dtypes})
    with ProgressReport(f"sweep {spec.name or sweep_file.stem}", len(spec.cases()), quiet) as progress:
        frame = sweep(
            spec,
            cache=cache,
            workers=workers,
            scheduler=dask,
            progress=lambda r, hit: progress.advance(f"{r.row['status']}{', cached' if hit else ''}"),
        )
    if out is not None:
        from planner.runs.sweep import write_table

        write_table(frame, out)
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    print_table(
        f"{len(frame)} cases: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + ("" if len(frame) <= 40 else " (first 40 shown; --out writes all)"),
        SWEEP_COLUMNS,
        records(frame.head(40)),
        wide=wide,
    )
    if out is not None:
        console.print(f"wrote {out}")


@study_app.command("deep-pipeline")
@handle_errors
def study_deep_pipeline(
    sweep_file: Annotated[
        Path,
        o.option(
            "--sweep", metavar="SWEEP.yaml", help="the study's cases: models, S values, users grid, floor"
        ),
    ] = Path("sweeps/deep_pipeline.yaml"),
    out: Annotated[
        Path, o.option("--out", metavar="DIR", help="write deep_pipeline.csv, .md and .png here")
    ] = Path("results"),
    workers: o.Workers = None,
    cache: o.CacheDir = DEFAULT_CACHE,
    report: o.Report = None,
    quiet: o.Quiet = False,
) -> None:
    """S micro-batches in flight (the deep pipeline) against one, at the same per-user speed: max users
    and J/token per S, for each model of the sweep file."""
    start_workers(workers, None)
    from planner.studies.deep_pipeline import DEEP_PIPELINE_FILES

    check_output(out, "--out", directory=True, files=DEEP_PIPELINE_FILES)
    check_output(cache, "--cache", directory=True)
    check_output(report, "--report", suffixes=(".html", ".htm"))
    from planner.runs.sweep import load_sweep
    from planner.studies.deep_pipeline import deep_pipeline, progress_total, write_deep_pipeline

    spec = load_sweep(sweep_file)
    total = progress_total(spec)
    with ProgressReport("deep pipeline", total, quiet) as progress:
        result = deep_pipeline(spec, cache=cache, workers=workers, progress=progress.advance)
    paths = write_deep_pipeline(result, out, _command_line())
    if report is not None:
        from planner.render.report import write_deep_pipeline_report

        paths.append(write_deep_pipeline_report(result, report, _command_line()))
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
        str,
        o.option("--from", metavar="TABLE[,TABLE]", help="sweep tables (CSV/Parquet), separated by commas"),
    ] = "results/memory_comparison.csv,results/deep_pipeline.csv",
    out: Annotated[Path, o.option("--out", metavar="DIR", help="write kv_demand.md here")] = Path("results"),
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


# ---------------------------------------------------------------------------------------------- the KV memory

Like = Annotated[
    str,
    o.option(
        "--like",
        metavar="MEMORY",
        help="catalog technology whose pJ/bit, standby W/GB and $/GB a designed KV memory takes",
    ),
]
Energy = Annotated[
    str | None,
    o.option(
        "--energy", metavar="PJ/BIT[,PJ/BIT]", help="energy per bit of the KV memory (default: --like's)"
    ),
]


def _energies(text: str | None) -> list[float | None]:
    """'1.2,2.5' or '1.2 pJ/bit' -> [1.2, 2.5] pJ/bit; None -> [None] (the --like technology's)."""
    if text is None:
        return [None]
    from planner.core.units import parse_quantity

    values = []
    for item in (t for t in text.split(",") if t.strip()):
        try:
            value = (
                float(item)
                if item.strip().replace(".", "", 1).isdigit()
                else parse_quantity(item, "pj_per_bit")
            )
        except ValueError as exc:
            raise PlannerInputError(
                "--energy", [f"{exc} (give pJ/bit such as 1.2 or '1.2 pJ/bit')"]
            ) from None
        if not 0 < value <= 1000:
            raise PlannerInputError("--energy", [f"{bounded_repr(item)}: expected 0 < pJ/bit <= 1000"])
        values.append(value)
    if not values:
        raise PlannerInputError("--energy", [f"{bounded_repr(text)}: expected pJ/bit values such as 1.2,2.5"])
    return values


def _floors(text: str) -> list[float]:
    return _number_list(
        text, "--min-tokens-per-s", lambda v: 0 < v <= 1e6, "tokens/s in (0, 1e6] such as 20,50,200"
    )


def _positive(text: str, flag: str) -> list[float]:
    return sorted(
        set(_number_list(text, flag, lambda v: 0 < v < 1e6, "numbers in (0, 1e6) separated by commas"))
    )


def _number_list(text: str, flag: str, valid, expected: str) -> list[float]:
    """'20,50,200' -> [20.0, 50.0, 200.0]; an input error naming `flag` and what is `expected` otherwise."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(valid(v) for v in values):
        raise PlannerInputError(flag, [f"{bounded_repr(text)}: expected {expected}"])
    return values


@app.command("size-memory")
@handle_errors
def size_memory_command(
    model: o.Model,
    hardware: o.Hardware,
    users: o.Users,
    context: o.Context,
    min_tokens_per_s: o.MinTokensPerS,
    energy: Annotated[
        float | None,
        o.option("--energy", metavar="PJ/BIT", min=0.0, help="KV memory pJ/bit (default: --like's)"),
    ] = None,
    like: Like = "novel-kv-dram",
    max_groups: o.MaxGroups = 128,
    chips_per_group: o.ChipsPerGroup = None,
    max_chip_power: o.MaxChipPower = None,
    tolerance: Annotated[
        float,
        o.option(
            "--tolerance",
            metavar="REL",
            help="relative tolerance of each axis (feasible at the size, not below)",
        ),
    ] = 0.01,
    weight_dtype: o.WeightDtype = "bf16",
    kv_dtype: o.KvDtype = "bf16",
    cache: o.OptionalCacheDir = None,
    json_out: o.JsonFlag = False,
    quiet: o.Quiet = False,
) -> None:
    """The smallest KV memory per die (capacity, then bandwidth) that serves USERS at the floor.

    Geometric bisection on each axis with the solver as the oracle (feasibility is monotone in capacity and
    in bandwidth): the size is feasible, size / (1 + tolerance) is not, and the limit binding there is shown."""
    check_output(cache, "--cache", directory=True)
    from planner.api import size_memory
    from planner.problem.instance import spec_from_flags

    spec = spec_from_flags(
        model=model,
        hardware=hardware,
        chips_per_group=parse_group_sizes(chips_per_group),
        max_groups=max_groups,
        max_chip_power=max_chip_power,
        users=users,
        context=context,
        min_tokens_per_s=min_tokens_per_s,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
    )
    with ProgressReport(f"size-memory {model} on {hardware}", quiet=quiet) as progress:

        def probe(axis: str, value: float, feasible: bool) -> None:
            unit = "GB" if axis == "capacity" else "TB/s"  # the bandwidth axis and its floor
            scale = 1e9 if axis == "capacity" else 1e12
            progress.advance(f"{axis} {value / scale:.4g} {unit}: {'feasible' if feasible else 'infeasible'}")

        size = size_memory(
            spec, like=like, energy_pj_per_bit=energy, tolerance=tolerance, cache=cache, progress=probe
        )
    facts = size.summary()
    if json_out:
        print_json(facts)
        return
    console.print(
        f"[bold]{escape(model)} on {escape(hardware)}[/]: {users:,} users, context {context:,}, "
        f"floor {min_tokens_per_s:g} tokens/s/user, up to {max_groups} groups; KV memory like {escape(like)}",
        highlight=False,
    )
    c, b = facts["capacity_per_die_bytes"], facts["bandwidth_per_die_bytes_per_s"]
    console.print(
        f"[bold]capacity {c / 1e9:.4g} GB per die[/] (below {facts['below_capacity_bytes'] / 1e9 if facts['below_capacity_bytes'] else 0:.4g} GB: "
        f"{escape(str(facts['binding_capacity']))})",
        highlight=False,
    )
    console.print(
        f"[bold]bandwidth {b / 1e12:.4g} TB/s per die[/] (below {facts['below_bandwidth_bytes_per_s'] / 1e12 if facts['below_bandwidth_bytes_per_s'] else 0:.4g} TB/s: "
        f"{escape(str(facts['binding_bandwidth']))})",
        highlight=False,
    )
    console.print(
        f"bandwidth floor {facts['bandwidth_floor_per_die_bytes_per_s'] / 1e12:.4g} TB/s per die (the least "
        f"with {16 * c / 1e9:.4g} GB per die, 16x the capacity)",
        highlight=False,
    )
    console.print(
        f"at that size: {facts['joules_per_token']:.4g} J/token, {facts['dies']:,} dies ({facts['chips']:,} chips, "
        f"S={facts['stages']}), {facts['tokens_per_s_per_user']:.4g} tokens/s/user",
        highlight=False,
    )
    console.print(
        f"balance: bandwidth / capacity {facts['balance_per_s']:.4g} /s against demand r = {facts['demand_per_s']:.4g} /s "
        f"(r / f = {facts['balance_line_per_s']:.4g} /s at f = {facts['achievable_kv_fraction']:g})",
        highlight=False,
    )
    console.print(
        f"closed forms (all {size.closed_forms['dies']:,.0f} dies, KV only): {facts['closed_form_capacity_per_die_bytes'] / 1e9:.4g} GB, "
        f"{facts['closed_form_bandwidth_per_die_bytes_per_s'] / 1e12:.4g} TB/s per die; "
        f"{facts['solves']} solves, tolerance {facts['tolerance']:g}",
        highlight=False,
    )
    for axis in ("capacity", "bandwidth"):
        text = facts[f"explanation_{axis}"]
        if text:
            console.print(f"just below on {axis}: {escape(text)}", highlight=False, soft_wrap=True)


@study_app.command("memory-space")
@handle_errors
def study_memory_space(
    model: o.Models,
    hardware: o.Hardware,
    context: o.Context,
    min_tokens_per_s: Annotated[
        str,
        o.option(
            "--min-tokens-per-s", metavar="TOKENS/S[,TOKENS/S]", help="per-user speed floors, e.g. 20,50,200"
        ),
    ],
    energy: Energy = None,
    like: Like = "novel-kv-dram",
    baseline: Annotated[
        str, o.option("--baseline", metavar="MEMORY", help="catalog technology --like is matched against")
    ] = "hbm4",
    reference_users: Annotated[
        int | None,
        o.option(
            "--reference-users",
            metavar="N",
            min=1,
            help="also J/token at N users per point (one solve more each)",
        ),
    ] = None,
    capacities: Annotated[
        str | None,
        o.option("--capacities", metavar="GB[,GB]", help="capacities per die in GB (default 2,16,128,1024)"),
    ] = None,
    bandwidths: Annotated[
        str | None,
        o.option(
            "--bandwidths",
            metavar="TB/S[,TB/S]",
            help="bandwidths per die in TB/s (default 0.8,6.4,51.2)",
        ),
    ] = None,
    max_groups: o.MaxGroups = 128,
    chips_per_group: o.ChipsPerGroup = None,
    no_crossings: Annotated[
        bool, o.flag("--no-crossings", help="skip the --like vs --baseline search")
    ] = False,
    out: Annotated[
        Path,
        o.option(
            "--out",
            metavar="DIR",
            help="write memory_space.{csv,md,png} and memory_space_vs_baseline.csv here",
        ),
    ] = Path("results"),
    workers: o.Workers = None,
    dask: o.Dask = None,
    cache: o.CacheDir = DEFAULT_CACHE,
    quiet: o.Quiet = False,
) -> None:
    """Max users (exact) and J/token over a log grid of KV-memory capacity x bandwidth per die, per speed
    floor and pJ/bit, with the catalog's technologies marked and the balance line drawn; then the capacity
    per die at which --like serves --baseline's max users."""
    start_workers(workers, dask)
    import time

    from planner.studies.memory_design import MEMORY_SPACE_FILES, SPACE_BANDWIDTHS, SPACE_CAPACITIES

    check_output(out, "--out", directory=True, files=MEMORY_SPACE_FILES)
    check_output(cache, "--cache", directory=True)
    from planner.api import memory_space
    from planner.problem.instance import spec_from_flags
    from planner.studies.memory_design import write_memory_space

    floors = _floors(min_tokens_per_s)
    caps = (
        SPACE_CAPACITIES if capacities is None else [v * 1e9 for v in _positive(capacities, "--capacities")]
    )
    bws = (
        SPACE_BANDWIDTHS if bandwidths is None else [v * 1e12 for v in _positive(bandwidths, "--bandwidths")]
    )
    energies = _energies(energy)
    bases = [
        spec_from_flags(
            model=m,
            hardware=hardware,
            chips_per_group=parse_group_sizes(chips_per_group),
            max_groups=max_groups,
            users=reference_users or 1,
            context=context,
            min_tokens_per_s=floors[0],
        )
        for m in (parse_names(model) or [])
    ]
    total = len(bases) * len(floors) * (len(energies) * len(caps) * len(bws) + (0 if no_crossings else 1))
    started = time.monotonic()
    with ProgressReport("memory space", total, quiet) as progress:
        space = memory_space(
            bases,
            floors,
            capacities=caps,
            bandwidths=bws,
            energies=energies,
            like=like,
            baseline=baseline,
            reference_users=reference_users,
            crossings=not no_crossings,
            cache=cache,
            workers=workers,
            scheduler=dask,
            progress=progress.advance,
        )
    paths = write_memory_space(space, out, _command_line(), time.monotonic() - started)
    print_table(
        "catalog per die",
        [
            ("memory", "memory"),
            ("capacity_per_die_gb", "GB/die"),
            ("bandwidth_per_die_tb_per_s", "TB/s/die"),
            ("balance_per_s", "B/C 1/s"),
            ("energy_pj_per_bit", "pJ/bit"),
        ],
        records(space.catalog),
    )
    if len(space.crossings):
        print_table(
            f"{like} against {baseline}",
            [
                ("model", "model"),
                ("min_tokens_per_s", "tok/s/user"),
                (f"{baseline}_max_users", f"{baseline} users"),
                (f"{like}_max_users", f"{like} users"),
                ("crossing_capacity_per_die_gb", "GB/die to match"),
                ("crossing_joules_per_token", "J/token there"),
                (f"{baseline}_joules_per_token", f"{baseline} J/token"),
            ],
            records(space.crossings),
        )
    console.print("wrote " + ", ".join(str(p) for p in paths))
