"""`python -m planner.cli` is the `planner` command."""

from planner.cli import main

main()
