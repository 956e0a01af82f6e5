"""`python -m planner.cli ARGS` runs the `planner` command (as the results/ files written before the
CLI became a package say)."""

from planner.cli import main

main()
