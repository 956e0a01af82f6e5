"""The constraint families of the placement formulation, each defined once.

Every family is a module with the same verbs (the ones it needs):
- `slice_rows(view)`: its rows for one group's slice (planner.placement.rows), which the slice LP of the
  exact search, the Pyomo MILP (one copy per arc) and the fluid lower bound all take;
- `check(problem, cost)`: the violations of a placement's recomputed cost (the evaluator);
- `explain(problem)`: a cheap, certain diagnosis of infeasibility in the user's units, or None.

Adding a constraint is one module here and one line in FAMILIES (the power limit is the worked example:
constraints/power.py and the instance fields max_chip_power / max_power).
"""

from __future__ import annotations

from planner.core.errors import InfeasibleError
from planner.cost.pipeline import PipelineCost
from planner.placement.constraints import capacity, power, roofline, tier_split, timing
from planner.placement.rows import Row, SliceView
from planner.problem.problem import Problem

FAMILIES = (tier_split, capacity, roofline, timing, power)


def slice_rows(view: SliceView) -> list[Row]:
    """Every family's rows for one slice, in FAMILIES order."""
    return [row for family in FAMILIES for row in family.slice_rows(view)]


def check(problem: Problem, cost: PipelineCost) -> list[str]:
    """Every violated constraint of a placement's cost, in FAMILIES order."""
    return [v for family in FAMILIES if hasattr(family, "check") for v in family.check(problem, cost)]


def explain(problem: Problem) -> InfeasibleError | None:
    """The first family that can certify infeasibility cheaply, in FAMILIES order."""
    for family in FAMILIES:
        if hasattr(family, "explain"):
            found = family.explain(problem)
            if found is not None:
                return found
    return None
