"""planner report PLAN: an interactive, self-contained HTML report of a plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from planner.cli import options as o
from planner.cli.base import app, console, handle_errors
from planner.core.errors import PlannerInputError
from planner.core.fileio import check_output


@app.command("report")
@handle_errors
def report_command(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="plan YAML or JSON")],
    out: Annotated[
        Path | None,
        o.option("--out", metavar="FILE.html", help="the report to write (default: PLAN with .html)"),
    ] = None,
) -> None:
    """Write an interactive HTML report of a plan: one file, no network needed to view it.

    The pipeline of chip groups (busy time by resource, tier fill, binding resource, power per chip against
    TDP), time and energy per token by category, J/token by S, and every node, with hover details."""
    out = out or plan_file.with_suffix(".html")
    check_output(out, "--out", suffixes=(".html", ".htm"))
    from planner.api import load_problem
    from planner.hardware.catalog import load_hardware_spec
    from planner.plans.plan import evaluate, figures, load_plan, plan_problem
    from planner.render.report import write_plan_report

    plan = load_plan(plan_file)
    base = load_problem(plan.instance, f"{plan_file}: instance")
    result = evaluate(base, plan, source=str(plan_file))
    problem = plan_problem(base, plan)[0]
    if result.cost is None:
        raise PlannerInputError(plan_file, result.violations)
    # figures recomputed from the placement; keys only the file has (newer plans) are kept
    data = {**plan.figures, **figures(result.cost)}
    if plan.figures.get("groups") and len(plan.figures["groups"]) == len(data["groups"]):
        data["groups"] = [{**old, **new} for old, new in zip(plan.figures["groups"], data["groups"])]
    tdp = load_hardware_spec(problem.spec.hardware).chip.tdp
    write_plan_report(plan, problem, data, out, tdp)
    console.print(f"wrote {out}")
