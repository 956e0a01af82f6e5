"""Command line: a thin typer layer over the Python API (planner.api). Tracebacks only with --debug.

`planner` runs `main`. Each module registers its commands on `app` when imported, in this order (the
order of `planner --help`): calibration, listing (list), models, placement (sol, solve, evaluate, plot), report,
studies.
"""

from planner.cli import calibration, listing, models, placement, report, studies  # noqa: E402, F401, I001  (register commands)
from planner.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    """The `planner` console script."""
    app()
