"""planner check-measurements, calibrate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from planner.cli import options as o
from planner.cli.base import Column, app, console, handle_errors, print_json, print_table
from planner.cli.progress import ProgressReport
from planner.core.fileio import check_output

# ---------------------------------------------------------------------------------------------- calibration


@app.command("check-measurements")
@handle_errors
def check_measurements_command(
    measurements: Annotated[
        str, typer.Argument(metavar="CSV[,CSV]", help="measurement CSV (or CSVs separated by commas)")
    ],
    hardware: o.Hardware,
    json_out: o.JsonFlag = False,
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
            Column("users", "users"),
            Column("context", "context"),
            Column("measured_ms", "measured\nms", digits=3),
            Column("predicted_ms", "predicted\nms", digits=3),
            Column("err_time_pct", "time\nerror %", decimals=1),
            Column("measured_j_per_token", "measured\nJ/token", digits=3),
            Column("predicted_j_per_token", "predicted\nJ/token", digits=3),
            Column("err_energy_pct", "energy\nerror %", decimals=1),
        ],
        [
            {**r.to_dict(), "err_time_pct": 100 * r.err_time, "err_energy_pct": 100 * r.err_energy}
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
    microbench: Annotated[
        Path, o.option("--microbench", metavar="FILE.json", help="device_microbench.json (priors)")
    ],
    measurements: Annotated[
        str, o.option("--measurements", metavar="CSV[,CSV]", help="decode-step CSV(s), separated by commas")
    ],
    out: Annotated[Path, o.option("--out", metavar="FILE.yaml", help="calibrated hardware YAML to write")],
    hardware: Annotated[
        str,
        o.option("--hardware", metavar="HARDWARE", help="base hardware (instances/hardware/ name or path)"),
    ] = "h100-sxm",
    holdout: Annotated[
        str,
        o.option(
            "--holdout",
            metavar="ROWS",
            help="rows kept out of a fixed-split check: row numbers and/or users=N, context=N",
        ),
    ] = "",
    report: Annotated[
        Path | None,
        o.option("--report", metavar="FILE.md", help="write the report there and FILE.csv beside it"),
    ] = None,
    json_out: o.JsonFlag = False,
    quiet: o.Quiet = False,
) -> None:
    """Fit achievable fractions, fixed costs and energy coefficients to measured decode steps.

    Reports in-sample, leave-one-out and (with --holdout) fixed-split errors; writes the hardware YAML."""
    check_output(out, "--out", suffixes=(".yaml", ".yml"))
    check_output(report, "--report", suffixes=(".md",))
    check_output(report and report.with_suffix(".csv"), "--report")
    from planner.api import calibrate
    from planner.studies.calibration import PARAM_ROWS

    with ProgressReport("calibrate", quiet=quiet) as progress:
        cal = calibrate(microbench, measurements, hardware, out, holdout, report, progress=progress.note)
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
            {
                "field": name,
                "value": f"{getattr(cal.params, attr) * scale:.4g}",
                "unit": unit,
            }  # a unit per row
            for name, attr, scale, unit in PARAM_ROWS
        ],
    )
    print_table(
        "errors on rows the fit used (in_sample) and did not use (leave_one_out, holdout)",
        [
            ("check", "check"),
            ("rows", "rows"),
            *[Column(k, k.replace("_", " ") + " %", decimals=1) for k in cal.in_sample.summary()],
        ],
        [
            {"check": k, "rows": len(v.rows), **{m: 100 * e for m, e in v.summary().items()}}
            for k, v in checks.items()
        ],
    )
    console.print(f"wrote {out}" + (f", {report} and {report.with_suffix('.csv')}" if report else ""))
