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
from rich.table import Table

from planner.errors import InfeasibleError, PlannerInputError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Optimization-based hardware planner for LLM inference."
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
            err_console.print(f"[bold red]error:[/] {exc.message()}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except InfeasibleError as exc:
            if STATE["debug"]:
                raise
            err_console.print(
                f"[bold red]infeasible[/] ({exc.binding}): {exc.explanation}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

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
    table = Table(title=f"{info['model']} ({weight_dtype} weights, {kv_dtype} KV)", show_header=False)
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
    console.print(f"wrote {out} ({m.graph.number_of_nodes()} nodes, {m.graph.number_of_edges()} edges)")


# ---------------------------------------------------------------------------------------------- sol


@app.command("sol")
@handle_errors
def sol_command(
    model: Annotated[str, typer.Option("--model", help="graphs/ name or path to an HF config.json")],
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
    frame = sol(
        model,
        hardware,
        user_list,
        context,
        chips=chips,
        kv_memory=kv_memory,
        achievable=achievable,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
    )
    if csv:
        from planner.fileio import write_text_atomic

        write_text_atomic(csv, frame.to_csv(index=False))
    if plot:
        from planner.plots import plot_sol

        plot_sol([frame], plot)
    if json_out:
        print_json(frame.to_dict(orient="records"))
    else:
        first = frame.iloc[0]
        print_table(
            f"{'speed of light' if not achievable else 'achievable'}: {first['model']} on {first['chips']} x {first['hardware']}, context {context:,}",
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
            frame.to_dict(orient="records"),
        )
    for w in sorted({w for w in frame["warning"] if w}):
        err_console.print(f"[yellow]warning:[/] {w}")
    if plot:
        console.print(f"wrote {plot}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
