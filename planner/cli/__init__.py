"""Command line: a thin typer layer over the Python API (planner.api). Tracebacks only with --debug.

`planner` runs `main`. Each module registers its commands on `app` when imported, in this order (the
order of `planner --help`): models, placement (sol, solve, evaluate, plot), calibration, studies,
listing (list), report.

This module imports nothing heavy itself, so that `main` is running, and catching Ctrl-C, before typer,
pandas or Pyomo start loading: an interrupt at any moment prints one line and exits 130.
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Any

from planner.cli.exits import INTERRUPTED, exit_now

COMMAND_MODULES = ("models", "placement", "calibration", "studies", "listing", "report")

__all__ = ["app", "main"]


def _load_app() -> Any:
    for name in COMMAND_MODULES:  # register the commands
        importlib.import_module(f"planner.cli.{name}")
    from planner.cli.base import app

    return app


def __getattr__(name: str) -> Any:
    """`planner.cli.app` (the typer app with every command), loaded on first use."""
    if name == "app":
        return _load_app()
    raise AttributeError(f"module 'planner.cli' has no attribute {name!r}")


def _interrupt_once(signum: int, frame: Any) -> None:
    """The first Ctrl-C raises KeyboardInterrupt (commands clean up and say so); a second one ends the
    process at once, silently, by the signal's default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    raise KeyboardInterrupt


def _say_interrupted() -> None:
    """Print the one line an interrupt gets, unless a command has printed its own (see base.STATE)."""
    base = sys.modules.get("planner.cli.base")
    if base is None or not base.STATE.get("interrupt_reported"):
        sys.stderr.write("interrupted\n")


def main() -> None:
    """The `planner` console script. Ctrl-C at any moment from here on gives one line and exit 130: during
    the imports (caught below), in a command (handle_errors), or where typer turns it into a silent exit
    130 (parsing the command line). Once the command is done, a late Ctrl-C is ignored, and the process
    ends without the interpreter's teardown (exit_now)."""
    signal.signal(signal.SIGINT, _interrupt_once)
    try:
        try:
            app = _load_app()
            app()
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        _say_interrupted()
        exit_now(INTERRUPTED)
    except SystemExit as exc:
        if exc.code == INTERRUPTED:
            _say_interrupted()
        exit_now(exc.code)
    exit_now(0)
