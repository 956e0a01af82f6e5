"""The objective of the formulation: joules per token. A group's dynamic energy per token is linear in
its tier split (planner.cost.node); the static energy, chips x static power x period / U, is added by the
solvers as `StageData.static_e` x cycle (the period is m x cycle when the pipeline is cycle-bound)."""

from __future__ import annotations

from planner.placement.rows import Col, SliceView, f


def energy_terms(v: SliceView) -> tuple[list[tuple[Col, float]], float]:
    """(terms, constant) of a slice's dynamic J/token, scaled: each free item's energy per tier, plus its
    fixed items, compute, collectives and outgoing hop."""
    terms = [(f(it, t), mult * it.energy[t]) for it, mult in v.items for t in it.allowed if it.energy[t]]
    return terms, v.energy_const
