"""Power (FORMULATION §8): per-chip power at most a limit (the chip's TDP by default) and a budget for
the whole pipeline.

A chip of group g draws m x E_g / (chips x period) + its static power (planner.cost.pipeline), E_g the
group's dynamic energy per micro-batch. With the period m x T (cycle-bound), the per-chip limit is
linear for a fixed cycle: E_g <= chips x (limit - static) x T, a row of every slice (its tau is the period
per micro-batch, P/m). The budget, sum_g E_g + hops <= (budget - static power of all chips) x T, couples
the groups: the exact search takes the cycle where it starts to bind (planner.placement.search), the
Pyomo MILP writes it as one pipeline row; each slice also gets it as a valid (weaker) row of its own.
Below the static power no cycle helps: the instance is infeasible, and the explanation says by how
many watts.
"""

from __future__ import annotations

from planner.core.errors import InfeasibleError
from planner.cost.pipeline import PipelineCost
from planner.placement.objective import energy_terms
from planner.placement.rows import Row, SliceView
from planner.problem.problem import FEASIBILITY_TOL, Problem

FAMILY = "power"


def slice_rows(v: SliceView) -> list[Row]:
    d = v.d
    rows: list[Row] = []
    if d.chip_power is None and d.pipeline_power is None:  # no limit (or the latency view)
        return rows
    terms, const = energy_terms(v)
    terms = tuple(terms)
    if d.chip_power is not None:
        rows.append(Row(FAMILY, "chip", terms, tau=-v.groups * d.chip_power, const=const, per_period=True))
    if d.pipeline_power is not None:
        rows.append(Row(FAMILY, "pipeline", terms, tau=-d.pipeline_power, const=const, per_period=True))
    return rows


def check(problem: Problem, cost: PipelineCost) -> list[str]:
    out = []
    limit = problem.max_chip_power_w
    if limit is not None:
        for g in cost.groups:
            per_chip = cost.group_power_w(g) / cost.chips_per_group
            if per_chip > limit * (1 + FEASIBILITY_TOL):
                out.append(
                    f"power: a chip of group {g.index} draws {per_chip:,.1f} W, above the limit of {limit:,.1f} W "
                    f"(over by {per_chip - limit:,.1f} W)"
                )
    budget = problem.max_power_w
    if budget is not None and cost.power_w > budget * (1 + FEASIBILITY_TOL):
        out.append(
            f"power: the pipeline draws {cost.power_w:,.0f} W, above its budget of {budget:,.0f} W "
            f"(over by {cost.power_w - budget:,.0f} W)"
        )
    return out


def explain(problem: Problem) -> InfeasibleError | None:
    """A limit below the static power of the chips: no placement and no cycle can meet it."""
    hw = problem.hw
    static = hw.static_power_per_chip_w
    limit = problem.max_chip_power_w
    if limit is not None and limit < static:
        return InfeasibleError(
            f"the per-chip power limit of {limit:,.1f} W is below a {hw.chip_name} chip's static power of "
            f"{static:,.1f} W (chip and memory standby) before it does any work: short by {static - limit:,.1f} W; "
            "raise --max-chip-power",
            binding="power (per chip)",
        )
    budget = problem.max_power_w
    fewest = problem.stage_range().start
    if budget is not None and budget < problem.static_power_w(fewest):
        need = problem.static_power_w(fewest)
        return InfeasibleError(
            f"the pipeline power budget of {budget:,.0f} W is below the static power of the fewest chips that "
            f"hold the model and the KV cache ({fewest} groups x {hw.chips_per_group} chips: {need:,.0f} W): "
            f"short by {need - budget:,.0f} W; raise --max-power or serve fewer users",
            binding="power (pipeline)",
        )
    return None
