"""Benchmarks of the placement core: wall-clock figures, medians of repeated runs, with the load noted.

    python -m planner.bench                          # every benchmark (the sweep and the scale target
                                                     #   take minutes; --skip scale,compare to leave them out)
    python -m planner.bench --only help,instances --repeat 5

Each figure is the wall time of a fresh `planner` process (imports included, as a user waits for it),
the median of --repeat runs, or one run for the long ones. The 1-minute load average before and after
each benchmark is printed beside it: the machines are shared, timings move with load. A script that
prints figures, not a timed test.

- help, model-info: `planner --help` and `planner model info` (and whether Pyomo, pandas or matplotlib
  were imported: they must not be);
- instances: `planner solve` of every shipped instance;
- scale: a Llama-3.1-70B-shaped config with 1,280 layers (2,562 whole nodes, --split none) on
  sram-pipeline, --max-groups 2048, 1,024 users, 4K context, 20 tokens/s: every S solved or pruned;
- sweep: `planner sweep sweeps/example.yaml` and `sweeps/scaling.yaml` (32 cases whose solves outweigh
  the start-up), each with 1 and with 2 workers, alternating, --repeat runs of each (a fresh cache
  each), and the most 2 workers could give by Amdahl's law (the cases' own time, the sum of their
  solve_s, divides among workers; the start-up and the output do not);
- compare: the README's memory comparison (fresh cache).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from planner.core.fileio import project_root

ROOT = project_root()
BENCHMARKS = ("help", "model-info", "instances", "scale", "sweep", "compare")
COMPARE = [
    "compare", "--model", "llama-3.1-70b,deepseek-v3", "--hardware", "sram-pipeline", "--kv-memory",
    "sram,hbm3e,hbm4,lpddr5x,gddr7,novel-kv-dram", "--users", "16,256,4096,32768", "--context", "4096",
    "--min-tokens-per-s", "20",
]  # fmt: skip
SWEEPS = ("sweeps/example.yaml", "sweeps/scaling.yaml")  # the second: cases outweigh start-up
HEAVY = ("pyomo", "pandas", "matplotlib", "networkx")

app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0], pretty_exceptions_enable=False)


def _load() -> float:
    return os.getloadavg()[0]


def _wall(args: list[str], repeat: int, env: dict | None = None) -> tuple[float, list[float]]:
    """(median, all) wall seconds of `planner ARGS` in fresh processes; a failure stops the benchmark."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "planner.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, env=env)  # fmt: skip
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            typer.echo(f"planner {' '.join(args)} exited {done.returncode}: {done.stderr[-400:]}", err=True)
            raise typer.Exit(1)
    return statistics.median(times), times


def _imports(args: list[str]) -> list[str]:
    """The heavy modules a `planner ARGS` process imports."""
    code = (
        "import sys, runpy; sys.argv = ['planner', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('planner.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print(repr([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    return eval(done.stderr.strip().splitlines()[-1]) if done.stderr.strip() else []  # noqa: S307


def _row(name: str, median: float, runs: list[float], load: tuple[float, float], note: str = "") -> None:
    spread = f"{min(runs):.2f}-{max(runs):.2f}" if len(runs) > 1 else "-"
    print(f"{name:<58} {median:>8.2f} s  runs {spread:<11} load {load[0]:.1f}->{load[1]:.1f}  {note}")


@app.command()
def main(
    only: Annotated[
        str, typer.Option("--only", metavar="NAMES", help=f"comma list of {', '.join(BENCHMARKS)}")
    ] = "",
    skip: Annotated[
        str, typer.Option("--skip", metavar="NAMES", help="comma list of benchmarks to leave out")
    ] = "",
    repeat: Annotated[int, typer.Option("--repeat", metavar="N", min=1, help="runs per short benchmark")] = 3,
    json_out: Annotated[
        Path | None, typer.Option("--json", metavar="FILE", help="also write the figures as JSON")
    ] = None,
) -> None:
    """Print wall times of the placement core's benchmarks (medians of --repeat fresh processes)."""
    chosen = [b for b in BENCHMARKS if (not only or b in only.split(",")) and b not in skip.split(",")]
    print(
        f"planner benchmarks on {os.cpu_count()} cores, python {sys.version.split()[0]}; load = 1-min average"
    )
    figures: dict[str, dict] = {}

    def report(name: str, times: list[float], before: float, note: str = "") -> None:
        after = _load()
        _row(name, statistics.median(times), times, (before, after), note)
        figures[name] = {
            "median_s": statistics.median(times), "runs_s": times, "load_before": before, "load_after": after,
        }  # fmt: skip

    def record(name: str, args: list[str], runs: int, note: str = "", env: dict | None = None) -> None:
        before = _load()
        report(name, _wall(args, runs, env)[1], before, note)

    if "help" in chosen:
        record("planner --help", ["--help"], repeat, f"imports {_imports(['--help']) or 'none'} of {HEAVY}")
    if "model-info" in chosen:
        args = ["model", "info", "llama-3.1-70b"]
        record(
            "planner model info llama-3.1-70b", args, repeat, f"imports {_imports(args) or 'none'} of {HEAVY}"
        )
    if "instances" in chosen:
        for path in sorted((ROOT / "instances").glob("*.yaml")):
            record(f"planner solve {path.relative_to(ROOT)}", ["solve", str(path), "-q"], repeat)
    if "scale" in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            config = json.loads((ROOT / "graphs" / "llama-3.1-70b.json").read_text())
            config["num_hidden_layers"] = 1280
            path = Path(tmp) / "llama-70b-1280-layers.json"
            path.write_text(json.dumps(config))
            args = ["solve", "--model", str(path), "--hardware", "sram-pipeline", "--max-groups", "2048", "--users",
                    "1024", "--context", "4096", "--min-tokens-per-s", "20", "--split", "none", "-q", "--json"]  # fmt: skip
            record("scale target: 2,562 nodes, S = 21..2048, every S solved or pruned", args, 1)
    if "sweep" in chosen:
        for sweep_file in SWEEPS:
            _sweep_speedup(sweep_file, repeat, report, figures)
    if "compare" in chosen:
        cache = Path(tempfile.mkdtemp(prefix="planner-bench-"))
        try:
            record("README memory comparison (cold cache)", [*COMPARE, "--cache", str(cache), "-q"], 1)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    if json_out is not None:
        json_out.write_text(json.dumps(figures, indent=1))


def _sweep_speedup(sweep_file: str, repeat: int, report, figures: dict) -> None:
    """`planner sweep SWEEP_FILE` with 1 and 2 workers, alternating, --repeat runs of each with a fresh
    cache each; prints the speed-up and the most 2 workers could give by Amdahl's law."""
    before = _load()
    times: dict[int, list[float]] = {1: [], 2: []}
    case_s: list[float] = []  # per 1-worker run: the cases' own time, the sum of their solve_s
    for _ in range(repeat):
        for workers in (1, 2):
            cache = Path(tempfile.mkdtemp(prefix="planner-bench-"))
            try:
                out = cache / "cases.csv"
                args = ["sweep", sweep_file, "--workers", str(workers), "--cache", str(cache),
                        "--out", str(out), "-q"]  # fmt: skip
                times[workers] += _wall(args, 1)[1]
                if workers == 1:
                    with out.open(newline="") as rows:
                        case_s.append(sum(float(r["solve_s"]) for r in csv.DictReader(rows)))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    name = {w: f"planner sweep {sweep_file} --workers {w} (cold cache)" for w in (1, 2)}
    for workers in (1, 2):
        report(name[workers], times[workers], before)
    one, two = figures[name[1]]["median_s"], figures[name[2]]["median_s"]
    print(f"{'  sweep speed-up with 2 workers':<58} {one / two:>8.2f} x")
    # Amdahl: only the cases' own time divides among workers; the rest (start-up, imports, output)
    # does not, so even two perfectly balanced workers with no overhead give at most one / (one - X/2)
    work = statistics.median(case_s)
    limit = one / (one - work / 2)
    print(f"{'  cases own time, 1 worker (sum of solve_s)':<58} {work:>8.2f} s  of {one:.2f} s: "
          f"2 workers can give at most {limit:.2f} x")  # fmt: skip
    figures[f"sweep_speedup_2_workers {sweep_file}"] = {
        "x": one / two,
        "cases_s": work,
        "amdahl_limit_x": limit,
    }


if __name__ == "__main__":
    app()
