"""Command line: a thin typer layer over the Python API (planner/__init__.py). Tables via rich.

Exit codes: 0 success, 1 infeasible instance (with the binding limit), 2 bad input (file, field, fix).
Tracebacks only with --debug.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from planner.core.errors import InfeasibleError, PlannerInputError, SolverFailure, bounded_repr

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
            report_interrupt("interrupted")
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


def report_interrupt(message: str) -> None:
    """The one line printed for a Ctrl-C (planner.cli.main prints none of its own after it)."""
    STATE["interrupt_reported"] = True
    err_console.print(message, highlight=False, soft_wrap=True)


def parse_int_list(text: str, flag: str) -> list[int]:
    """'1,8,64' -> [1, 8, 64]; a clear input error otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PlannerInputError(
            flag, [f"{bounded_repr(text)}: expected whole numbers separated by commas, e.g. 1,8,64"]
        ) from None
    if not values or any(v <= 0 for v in values):
        raise PlannerInputError(flag, [f"{bounded_repr(text)}: expected positive whole numbers, e.g. 1,8,64"])
    if any(v > 10**9 for v in values):  # past a float's integer range the cost model overflows
        raise PlannerInputError(flag, [f"{bounded_repr(text)}: expected numbers of at most 1,000,000,000"])
    return values


def print_json(data) -> None:
    """The one JSON printer: never NaN or Infinity (planner.core.fileio.json_text)."""
    from planner.core.fileio import json_text

    sys.stdout.write(json_text(data) + "\n")


def records(frame) -> list[dict]:
    """Rows of a DataFrame with missing values (NaN: a column a row does not have) as None: blank in
    tables, null in JSON."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


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
