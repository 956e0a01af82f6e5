"""Command line: a thin typer layer over the Python API (planner/__init__.py). Tables via rich.

Exit codes: 0 success, 1 infeasible instance (with the binding limit), 2 bad input (file, field, fix).
Tracebacks only with --debug.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from planner.cli.exits import BROKEN_PIPE
from planner.core.errors import InfeasibleError, PlannerInputError, SolverFailure, bounded_repr


class _NoBoolMetavar:
    """--help is a flag: show no metavar for it (typer prints `<bool>`)."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


def empty_flag_values(args: Sequence[str]) -> list[str]:
    """The flags of `args` given an empty value (`--out ''` or `--out=`). No flag takes one, and a path
    option would read it as the current folder (pathlib's Path('') is '.'): an unset shell variable
    would silently write, or cache, where the command runs."""
    flags = []
    for arg, value in zip(args, [*args[1:], None]):
        if not arg.startswith("--"):
            continue
        name, eq, inline = arg.partition("=")
        if (eq and not inline.strip()) or (not eq and value is not None and not value.strip()):
            flags.append(name)
    return flags


class PlannerCommand(_NoBoolMetavar, TyperCommand):
    def parse_args(self, ctx, args):
        empty = empty_flag_values(args)
        if empty:
            raise typer.BadParameter(
                "an empty value; give one (see --help)", ctx, param_hint=", ".join(empty[:5])
            )
        return super().parse_args(ctx, args)


class PlannerGroup(_NoBoolMetavar, TyperGroup):
    pass


class PlannerTyper(typer.Typer):
    """typer.Typer whose commands and groups show flags without a metavar."""

    def __init__(self, **kwargs):
        super().__init__(cls=PlannerGroup, **kwargs)

    def command(self, *args, **kwargs):
        kwargs.setdefault("cls", PlannerCommand)
        return super().command(*args, **kwargs)


app = PlannerTyper(
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    help="Optimization-based hardware planner for LLM inference.",
)
model_app = PlannerTyper(no_args_is_help=True, help="Model descriptions and graphs.")
app.add_typer(model_app, name="model")


def _stdout_to_devnull() -> None:
    """The reader of stdout went away: later writes (and the interpreter's last flush) go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class PlannerConsole(Console):
    """rich's Console, whose broken pipe exits 141 instead of rich's 1 (the planner's 'infeasible')."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _stdout_to_devnull()
        raise SystemExit(BROKEN_PIPE)


# wide enough for the tables when output goes to a file or a pipe (rich falls back to 80 columns there)
console = PlannerConsole(width=None if sys.stdout.isatty() else 180)
err_console = PlannerConsole(stderr=True, width=None if sys.stderr.isatty() else 180)
STATE = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="show tracebacks on errors")] = False,
) -> None:
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
        except BrokenPipeError:  # the reader of stdout went away (`planner ... | head`): not a bug
            _stdout_to_devnull()
            raise typer.Exit(BROKEN_PIPE) from None
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


def parse_group_sizes(text: str | None) -> int | list[int] | None:
    """'8' -> 8, '1,2,4,8' -> [1, 2, 4, 8] (--chips-per-group)."""
    if text is None:
        return None
    sizes = parse_int_list(text, "--chips-per-group")
    return sizes[0] if len(sizes) == 1 and "," not in text else sizes


def parse_names(text: str | None) -> list[str] | None:
    """'sram,hbm3e' -> ['sram', 'hbm3e'] (tier lists)."""
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def parse_split(text: str | None):
    """--split: 'auto', 'none', a size ('16 MB'), or parts per kind ('ffn=4,core=8')."""
    if text is None or "=" not in text:
        return text
    parts: dict[str, int] = {}
    for item in text.split(","):
        kind, _, count = item.partition("=")
        try:
            parts[kind.strip()] = int(count)
        except ValueError:
            raise PlannerInputError(
                "--split",
                [
                    f"{bounded_repr(item)}: expected KIND=PARTS, e.g. ffn=4,core=8 (kinds: embed, qkv, core, o, ffn, moe, lm_head)"
                ],
            ) from None
    return parts


def start_workers(workers: int | None, scheduler: str | None) -> None:
    """Start the local workers' fork server first thing (planner.runs.workers.start_fork_server) when the
    command will use local workers: it imports the planner while the command does."""
    if scheduler is None and workers != 1:
        from planner.runs.workers import start_fork_server

        start_fork_server()


def print_json(data) -> None:
    """The one JSON printer: never NaN or Infinity (planner.core.fileio.json_text)."""
    from planner.core.fileio import json_text

    sys.stdout.write(json_text(data) + "\n")


def records(frame) -> list[dict]:
    """Rows of a DataFrame with missing values (NaN: a column a row does not have) as None: blank in
    tables, null in JSON."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


@dataclass(frozen=True)
class Column:
    """A table column: the row key, its header (unit included, "\n" for a second line), whether only
    --wide shows it, and what a zero shows as when zero means "not applicable" (explained in a footnote)."""

    key: str
    header: str
    wide: bool = False
    zero: str | None = None
    digits: int = 2  # significant digits of the column's smallest nonzero value
    decimals: int | None = None  # a fixed number of decimals instead


ColumnSpec = Column | tuple[str, str]


def print_table(
    title: str,
    columns: Sequence[ColumnSpec],
    rows: list[dict],
    wide: bool = True,
    footnotes: Sequence[str] = (),
    out: Console | None = None,
) -> None:
    """A rich table with one number format per column (column_formatter), numbers right-aligned and never
    cut ("..."): numeric columns keep their width, text columns wrap. Columns marked wide are left out
    unless `wide`, and so are columns with no value in any row; footnotes follow the table. `columns` are Column or (key, header) pairs."""
    out = out or console
    shown = [c if isinstance(c, Column) else Column(*c) for c in columns]
    # a column with no value in any row (a figure older plans lack) says nothing: leave it out
    shown = [c for c in shown if (wide or not c.wide) and any(_known(row.get(c.key)) for row in rows)]
    table = Table(title=title, show_lines=False, title_justify="left")
    cells = []
    for c in shown:
        values = [row.get(c.key) for row in rows]
        cells.append(column_formatter(values, c.zero, c.digits, c.decimals)(values))
    for c, texts in zip(shown, cells):
        numeric = any(_is_number(row.get(c.key)) for row in rows)
        longest = max([len(t) for t in texts] + [1])
        table.add_column(
            c.header,
            justify="right" if numeric else "left",
            no_wrap=numeric,
            min_width=longest if numeric else min(longest, 10),
            overflow="fold",
        )
    for i in range(len(rows)):
        table.add_row(*[texts[i] for texts in cells])
    out.print(table, crop=False)
    for note in footnotes:
        out.print(note, style="dim", highlight=False, soft_wrap=True)


def _known(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def column_formatter(
    values: Sequence[Any], zero: str | None = None, digits: int = 2, decimals: int | None = None
) -> Callable[[Sequence[Any]], list[str]]:
    """One format for a whole column, chosen from its values: whole numbers with thousands separators;
    `decimals` fixed by the caller (percent errors, say);
    other numbers with the decimals that give the largest value 3 significant digits and the smallest
    nonzero one `digits` (at most 4 decimals and 7 significant digits; a nonzero value below that shows as "<0.0001"), scientific for the whole
    column only when every value is below 0.001; text as it is; missing values (None, NaN) as "-"."""
    numbers = [float(v) for v in values if _is_number(v)]
    if all(x.is_integer() for x in numbers):  # counts, also as floats (a column with gaps is float)
        return lambda vs: [_cell(v, "{:,.0f}", zero) for v in vs]
    if decimals is not None:
        return lambda vs: [_cell(v, f"{{:,.{decimals}f}}", zero, decimals) for v in vs]
    nonzero = [abs(x) for x in numbers if x != 0]
    if not nonzero:
        return lambda vs: [_cell(v, "{:,.0f}", zero) for v in vs]
    top, low = max(nonzero), min(nonzero)
    if top < 1e-3:
        return lambda vs: [_cell(v, "{:.2e}", zero) for v in vs]
    decimals = max(0, 2 - math.floor(math.log10(top)), digits - 1 - math.floor(math.log10(low)))
    decimals = min(decimals, 4, max(0, 6 - math.floor(math.log10(top))))  # at most 7 significant digits
    return lambda vs: [_cell(v, f"{{:,.{decimals}f}}", zero, decimals) for v in vs]


def _cell(v: Any, fmt: str, zero: str | None, decimals: int | None = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not _is_number(v):
        return str(v)
    if v == 0:
        return zero if zero is not None else "0"
    if decimals is not None and abs(v) < 0.5 * 10**-decimals:
        return ("-" if v < 0 else "") + f"<{10**-decimals:.{decimals}f}"
    return fmt.format(v)
