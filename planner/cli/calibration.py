"""planner check-measurements, calibrate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from planner.cli.base import app, console, handle_errors, print_json, print_table
from planner.core.fileio import check_output

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
    check_output(out, "--out", suffixes=(".yaml", ".yml"))
    check_output(report, "--report", suffixes=(".md",))
    check_output(report and report.with_suffix(".csv"), "--report")
    from planner.api import calibrate
    from planner.studies.calibration import PARAM_ROWS

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
