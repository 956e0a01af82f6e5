"""The formulation of record for one S: the path-form MILP in Pyomo, solved by HiGHS
(pyomo.contrib.solver "highs").

Variables: binary z[a] per arc (a slice that can be a stage, planner.placement.search.build_arcs); per
arc, its type's continuous columns (tier fractions f, phase epigraphs p; planner.placement.rows); the
cycle T and the period per micro-batch Q = period / m. Constraints: each arc's copy of every family's
slice rows in perspective form (constants and right-hand sides times z[a]; tau is T, or Q for rows of the
period such as power); flow from position 0 to N with exactly S arcs; the walk (the chosen slices'
latencies sum to at most m Q); Q >= T; Q at most the speed floor's limit; the pipeline power budget (the
chosen slices' energies at most K Q). Objective: the chosen slices' energies plus static power x Q
(scaled J/token, planner.placement.stage). It is exact for every S and every number of micro-batches in
flight. The min-max coupling through T makes its relaxation weak when T binds, so cycle-bound pipelines
are solved by the exact search (planner.placement.search) and then placed by this MILP with T fixed at
the optimum, over the arcs the search already priced that can lie on an optimal path; there its
relaxation is nearly integral.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.placement.constraints import slice_rows
from planner.placement.constraints.timing import walk_row
from planner.placement.objective import energy_terms
from planner.placement.rows import Col
from planner.placement.search import Arcs, Pricing
from planner.placement.solution import StageSolution, empty, placement

if TYPE_CHECKING:
    import pyomo.core as pyo
    from pyomo.core.expr.numeric_expr import LinearExpression

# Pyomo is imported by the functions that build or solve the model, not with this module: a solve whose
# search places the optimum itself (every shipped instance) never loads it (~0.1 s of a 0.7 s command).
# pyomo.core is the modelling layer only (pyomo.environ would load every plugin, ~0.5 s more), and Highs
# is what SolverFactory("highs") gives, without the plugins.

MILP_FALLBACK_ARCS = 3_000  # a walk-bound S whose relaxations leave a gap goes to this MILP when this small


@dataclass(frozen=True)
class _TypeRows:
    """A slice type's rows with local column indices: what each arc of that type copies."""

    cols: tuple[Col, ...]
    rows: tuple[tuple[tuple[int, ...], tuple[float, ...], float, bool, float, float, bool], ...]
    energy: tuple[tuple[int, ...], tuple[float, ...], float]
    walk: tuple[tuple[int, ...], tuple[float, ...], float]


def _type_rows(pricing: Pricing, k: int) -> _TypeRows:
    view = pricing.views[k]
    rows = slice_rows(view)
    e_terms, e_const = energy_terms(view)
    w = walk_row(view)
    cols: dict[Col, int] = {}
    for r in [*rows, w]:
        for c, _ in r.terms:
            cols.setdefault(c, len(cols))
    for c, _ in e_terms:
        cols.setdefault(c, len(cols))

    def local(terms):
        return tuple(cols[c] for c, _ in terms), tuple(v for _, v in terms)

    return _TypeRows(
        cols=tuple(cols),
        rows=tuple((*local(r.terms), r.tau, r.per_period, r.const, r.rhs, r.eq) for r in rows),
        energy=(*local(e_terms), e_const),
        walk=(*local(w.terms), w.const),
    )


def _lin(coefs, variables) -> LinearExpression:
    from pyomo.core.expr.numeric_expr import LinearExpression

    return LinearExpression(constant=0.0, linear_coefs=list(coefs), linear_vars=list(variables))


def build_milp(
    pricing: Pricing, arcs: Arcs, cycle: float | None = None, period: float | None = None
) -> tuple[pyo.ConcreteModel, list]:
    """The path-form MILP over `arcs` (scaled units). With `cycle` given, T and Q are fixed to it (the
    final placement of a cycle-bound pipeline); with `period`, Q alone (of a walk-bound one). Returns the
    model and per arc (type rows, first column)."""
    import pyomo.core as pyo

    d = pricing.d
    types = {int(k): _type_rows(pricing, int(k)) for k in np.unique(arcs.types)}
    na = len(arcs)
    offsets, total = [], 0
    for a in range(na):
        offsets.append(total)
        total += len(types[int(arcs.types[a])].cols)
    m = pyo.ConcreteModel(name=f"placement_S{d.stages}")
    m.z = pyo.Var(range(na), domain=pyo.Binary)
    m.x = pyo.Var(range(total), bounds=(0.0, None))
    m.T = pyo.Var(bounds=(0.0, d.t_max if math.isfinite(d.t_max) else None))
    m.Q = pyo.Var(bounds=(0.0, d.t_max if math.isfinite(d.t_max) else None))
    if cycle is not None:  # the search met the floor at this cycle; round-off above it is not a reason
        m.T.setub(None)  # to fail (the evaluator checks the plan itself)
        m.Q.setub(None)
        m.T.fix(cycle)
        m.Q.fix(cycle)
    elif period is not None:
        m.Q.setub(None)
        m.Q.fix(period)
    m.cons = pyo.ConstraintList()
    add = m.cons.add
    z = [m.z[a] for a in range(na)]
    x = m.x
    obj_c, obj_v = [d.static_e], [m.Q]
    walk_c, walk_v = [-float(d.micro_batches)], [m.Q]
    budget_c, budget_v = ([-d.pipeline_power], [m.Q]) if d.pipeline_power is not None else (None, None)
    per_arc = []
    for a in range(na):
        tr = types[int(arcs.types[a])]
        o = offsets[a]
        per_arc.append((tr, o))
        for j, col in enumerate(tr.cols):
            if col[0] == "f":
                x[o + j].setub(1.0)
        for idx, val, tau, per_period, const, rhs, eq in tr.rows:
            coefs, variables = list(val), [x[o + j] for j in idx]
            if tau:
                coefs.append(tau)
                variables.append(m.Q if per_period else m.T)
            coefs.append(const - rhs)
            variables.append(z[a])
            expr = _lin(coefs, variables)
            add(expr == 0 if eq else expr <= 0)
        idx, val, const = tr.energy
        obj_c += list(val) + [const]
        obj_v += [x[o + j] for j in idx] + [z[a]]
        if budget_c is not None:
            budget_c += list(val) + [const]
            budget_v += [x[o + j] for j in idx] + [z[a]]
        idx, val, const = tr.walk
        walk_c += list(val) + [const]
        walk_v += [x[o + j] for j in idx] + [z[a]]
    add(_lin(walk_c, walk_v) <= 0)
    if budget_c is not None:
        add(_lin(budget_c, budget_v) <= 0)
    add(_lin([1.0, -1.0], [m.T, m.Q]) <= 0)
    out_of: dict[int, list[int]] = {}
    into: dict[int, list[int]] = {}
    for a in range(na):
        out_of.setdefault(int(arcs.starts[a]), []).append(a)
        into.setdefault(int(arcs.ends[a]), []).append(a)
    for pos in range(d.n + 1):
        outs, ins = out_of.get(pos, []), into.get(pos, [])
        if not outs and not ins:
            continue
        rhs = 1.0 if pos == 0 else (-1.0 if pos == d.n else 0.0)
        add(_lin([1.0] * len(outs) + [-1.0] * len(ins), [z[b] for b in outs + ins]) == rhs)
    add(_lin([1.0] * na, z) == float(d.stages))
    m.obj = pyo.Objective(expr=_lin(obj_c, obj_v), sense=pyo.minimize)
    return m, per_arc


def solve_milp(
    pricing: Pricing,
    arcs: Arcs,
    cycle: float | None = None,
    time_limit: float | None = None,
    rel_gap: float = 1e-4,
    threads: int | None = None,
    period: float | None = None,
) -> tuple[StageSolution, float | None]:
    """Solve the MILP; returns the solution (objective in scaled units, placement from the fractions)
    and the plan's clock (scaled Q = period / m), None when no plan was found."""
    import pyomo.core as pyo
    from pyomo.contrib.solver.common.results import TerminationCondition
    from pyomo.contrib.solver.solvers.highs import Highs

    d = pricing.d
    t0 = time.perf_counter()
    if not len(arcs):
        return empty(
            d.stages, d.micro_batches, "infeasible", "no slice fits a group within the speed floor"
        ), None
    model, per_arc = build_milp(pricing, arcs, cycle, period)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        res = Highs().solve(
            model,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            time_limit=None if time_limit is None else float(time_limit),
            rel_gap=rel_gap,
            threads=threads,
        )
    except Exception as exc:  # HiGHS or the interface failed: report, do not raise
        msg = f"{type(exc).__name__}: {exc}"
        return empty(d.stages, d.micro_batches, "error", msg, build_s=build_s), None
    solve_s = time.perf_counter() - t1
    tc = res.termination_condition
    if tc in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
        msg = "HiGHS: infeasible"
        return empty(d.stages, d.micro_batches, "infeasible", msg, build_s=build_s, solve_s=solve_s), None
    ok = (TerminationCondition.convergenceCriteriaSatisfied, TerminationCondition.maxTimeLimit)
    if tc not in ok or res.incumbent_objective is None:
        status = "time_limit" if tc == TerminationCondition.maxTimeLimit else "error"
        msg = f"HiGHS ended with {tc.name}"
        return empty(d.stages, d.micro_batches, status, msg, build_s=build_s, solve_s=solve_s), None
    res.solution_loader.load_vars()
    chosen = sorted(
        (a for a in range(len(arcs)) if pyo.value(model.z[a]) > 0.5), key=lambda a: arcs.starts[a]
    )
    slices = []
    for a in chosen:
        tr, o = per_arc[a]
        rows: dict[tuple, np.ndarray] = {}  # fractions over the allowed tiers, 0 where an item may not go
        for j, col in enumerate(tr.cols):
            if col[0] == "f":
                rows.setdefault(col[1], np.zeros(len(d.tiers)))[col[2]] = pyo.value(model.x[o + j])
        slices.append((int(arcs.starts[a]), int(arcs.ends[a]), rows))
    groups, w_split, k_split = placement(d, slices)
    bound = res.objective_bound
    status = "optimal" if tc == TerminationCondition.convergenceCriteriaSatisfied else "time_limit"
    sol = StageSolution(
        stages=d.stages,
        micro_batches=d.micro_batches,
        status=status,
        objective=float(res.incumbent_objective),
        best_bound=float(bound) if bound is not None and math.isfinite(bound) else None,
        gap=None,
        groups=groups,
        weight_split=w_split,
        kv_split=k_split,
        cycle_s=None,
        build_s=build_s,
        solve_s=solve_s,
        message=f"Pyomo MILP: {len(arcs)} arcs, {len(model.x)} continuous columns",
    )
    # the clock of the plan is the period per micro-batch: a slower clock than the slowest group is a
    # decision (a power limit may want it), and the walk may set the period (planner.cost.pipeline)
    return sol, float(pyo.value(model.Q))
