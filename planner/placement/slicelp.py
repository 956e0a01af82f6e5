"""The tier-split LP of one slice, on HiGHS, and its exact least-energy-vs-cycle frontier.

The LP's rows are the constraint families' (planner.placement.constraints.slice_rows); its columns the
free items' tier fractions and phase epigraphs, and the cycle tau. E(tau), the least energy of the slice
at cycle tau, is convex, non-increasing and piecewise linear (a parametric right-hand side); the
dichotomic (weighted-sum) method finds all its vertices, with lexicographic end points (least tau, then
least energy; least energy, then least tau). HiGHS is called through highspy directly: slice LPs are
tiny and number in the thousands, where building each through Pyomo would cost milliseconds.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass

import highspy
import numpy as np

from planner.placement.constraints import slice_rows
from planner.placement.objective import energy_terms
from planner.placement.rows import Col, Row, SliceView

INF = highspy.kHighsInf
LEX_TOL = 1e-9  # relative slack of the lexicographic second stage
TAU = -1  # SliceLP.__init__: the cycle column's place in the matrix until its index is known


@contextlib.contextmanager
def quiet_stdout():
    """Silence file descriptor 1 (C-level printf included) so `--json` output stays clean."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def new_highs() -> highspy.Highs:
    with quiet_stdout():  # HiGHS prints its banner on stdout at the first construction in a process
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    # presolve costs more than it saves on LPs of a few dozen rows: off, a slice's least cycle and its
    # frontier take about 40% less time (the same optima to round-off, measured on DeepSeek-V3's slices)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("primal_feasibility_tolerance", 1e-10)
    h.setOptionValue("dual_feasibility_tolerance", 1e-10)
    return h


def pass_lp(h: highspy.Highs, cost, lo, hi, rows: list[tuple[list[int], list[float], float, float]]) -> None:
    """Give HiGHS the LP min cost.x, lo <= x <= hi, row_lo <= A x <= row_hi (rows as index/value lists)."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(cost), len(rows)
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = (
        np.asarray(cost, float),
        np.asarray(lo, float),
        np.asarray(hi, float),
    )
    lp.row_lower_ = np.array([r[2] for r in rows], dtype=float)
    lp.row_upper_ = np.array([r[3] for r in rows], dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.cumsum([0] + [len(r[0]) for r in rows]).astype(np.int32)
    lp.a_matrix_.index_ = np.array([i for r in rows for i in r[0]], dtype=np.int32)
    lp.a_matrix_.value_ = np.array([v for r in rows for v in r[1]], dtype=float)
    h.passModel(lp)


def row_bounds(row: Row) -> tuple[float, float]:
    b = row.rhs - row.const
    return (b, b) if row.eq else (-INF, b)


@dataclass(frozen=True)
class Frontier:
    """Least energy (scaled J/token) of a slice type against its cycle tau (scaled), and the fractions.

    Vertices ascend in tau and descend in energy; beyond the last vertex the energy stays flat, before
    the first the slice cannot run. `x[v]` is the LP solution at vertex v (columns as `cols`)."""

    times: np.ndarray
    energies: np.ndarray
    x: tuple[np.ndarray, ...]
    cols: tuple[Col, ...]

    @property
    def t_min(self) -> float:
        return float(self.times[0])

    def x_at(self, tau: float) -> np.ndarray:
        """The solution at cycle tau >= t_min: the convex combination of the adjacent vertices."""
        k = int(np.searchsorted(self.times, tau, side="right")) - 1
        if k >= len(self.times) - 1:
            return self.x[-1]
        k = max(k, 0)
        t0, t1 = self.times[k], self.times[k + 1]
        theta = min(1.0, max(0.0, (tau - t0) / (t1 - t0)))
        return (1 - theta) * self.x[k] + theta * self.x[k + 1]

    def fractions(self, tau: float, tiers: int) -> dict[tuple, np.ndarray]:
        """{(class, kind): fractions over the `tiers` allowed tiers (0 where it may not go)} at cycle tau."""
        return tier_fractions(self.cols, self.x_at(tau), tiers)


def tier_fractions(cols: tuple[Col, ...], x: np.ndarray, tiers: int) -> dict[tuple, np.ndarray]:
    """{(class, kind): fractions over the `tiers` allowed tiers (0 where it may not go)} of a slice LP
    solution x (columns as `cols`)."""
    out: dict[tuple, np.ndarray] = {}
    for j, col in enumerate(cols):
        if col[0] == "f":
            out.setdefault(col[1], np.zeros(tiers))[col[2]] = x[j]
    return out


class SliceLP:
    """One slice's LP on a reusable HiGHS object: min over the fractions of energy or tau."""

    def __init__(self, view: SliceView, highs: highspy.Highs):
        self.view, self.h = view, highs
        self.rows = slice_rows(view)
        terms, self.energy_const = energy_terms(view)
        # one pass over the rows: columns numbered as they first appear (then the energy's), the matrix
        # row by row, flat (HiGHS' row-wise format); TAU stands for the cycle column until it is known
        cols: dict[Col, int] = {}
        number = cols.setdefault
        index: list[int] = []
        value: list[float] = []
        start, row_lo, row_hi = [0], [], []
        self._time_rows = []  # for point(): the time rows (tau < 0) by column index
        for row in self.rows:
            if not row.terms and not row.tau:
                lo_r, hi_r = row_bounds(row)
                if not lo_r - 1e-12 <= 0.0 <= hi_r + 1e-12:
                    self.feasible = False
                    return
                continue
            ids = [number(c, len(cols)) for c, _ in row.terms]
            vals = [v for _, v in row.terms]
            if row.tau < 0:
                self._time_rows.append((list(zip(vals, ids)), row.const, row.rhs, -row.tau))
            index += ids
            value += vals
            if row.tau:
                index.append(TAU)
                value.append(row.tau)
            start.append(len(index))
            lo_r, hi_r = row_bounds(row)
            row_lo.append(lo_r)
            row_hi.append(hi_r)
        for col, _ in terms:
            number(col, len(cols))
        self.cols = tuple(cols)
        self.tau = tau = len(cols)
        n = tau + 1
        self.energy_cost = np.zeros(n)
        for col, v in terms:
            self.energy_cost[cols[col]] += v
        self.time_cost = np.zeros(n)
        self.time_cost[tau] = 1.0
        hi = np.full(n, INF)
        hi[[j for col, j in cols.items() if col[0] == "f"]] = 1.0
        self.feasible = True
        # point(): each item's epigraph column, floor and (read time, f column) per tier
        self._epigraphs = [
            (cols.get(it.p_col), it.floor, [(r, cols.get(c)) for r, c in zip(it.read, it.f_cols)])
            for it, _ in view.items
        ]
        ecols = np.flatnonzero(self.energy_cost)
        self.row_energy = len(row_lo)  # the energy row, bounded by the lexicographic second stage
        index += ecols.tolist()
        value += self.energy_cost[ecols].tolist()
        start.append(len(index))
        row_lo.append(-INF)
        row_hi.append(INF)
        index_array = np.array(index, dtype=np.int32)
        index_array[index_array == TAU] = tau
        lp = highspy.HighsLp()  # built once: (re)loading it is one passModel
        lp.num_col_, lp.num_row_ = n, len(row_lo)
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = self.time_cost, np.zeros(n), hi
        lp.row_lower_, lp.row_upper_ = np.array(row_lo), np.array(row_hi)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.array(start, dtype=np.int32)
        lp.a_matrix_.index_ = index_array
        lp.a_matrix_.value_ = np.array(value, dtype=float)
        self._lp = lp
        self._all = np.arange(n, dtype=np.int32)
        self.load()

    def load(self, basis: highspy.HighsBasis | None = None) -> None:
        """(Re)pass this LP to its HiGHS object, which other slices' LPs share, optionally from a basis
        saved with `basis()` (the solver then resumes where this LP's last solve left off)."""
        self.h.passModel(self._lp)
        if basis is not None:
            self.h.setBasis(basis)

    def basis(self) -> highspy.HighsBasis:
        return self.h.getBasis()

    def _solve(self, cost: np.ndarray) -> np.ndarray | None:
        h = self.h
        h.changeColsCost(len(cost), self._all, cost)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            h.clearSolver()  # a warm start can end in a spurious status: retry from scratch
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return None
        return np.array(h.getSolution().col_value)

    def point(self, x: np.ndarray) -> tuple[float, float]:
        """(the least tau the fractions of x allow, their energy): epigraphs recomputed from the
        fractions, so slack in the LP's epigraphs does not count."""
        vals = x[: self.tau].tolist() + [0.0]  # index -1 (a column the slice does not have): 0
        for j, floor, reads in self._epigraphs:
            value = max([floor] + [r * vals[-1 if i is None else i] for r, i in reads])
            if j is not None:
                vals[j] = value
        tau = 0.0
        for terms, const, rhs, rate in self._time_rows:
            lhs = sum(v * vals[i] for v, i in terms) + const - rhs
            tau = max(tau, lhs / rate)
        return tau, self.energy_const + float(self.energy_cost[: self.tau] @ x[: self.tau])

    def _lexicographic(self, first: np.ndarray, second: np.ndarray, on_time: bool) -> np.ndarray | None:
        x = self._solve(first)
        if x is None:
            return None
        best = float(first @ x)
        slack = best + LEX_TOL * max(1.0, abs(best))
        if on_time:
            self.h.changeColBounds(self.tau, 0.0, slack)
        else:
            self.h.changeRowBounds(self.row_energy, -INF, slack)
        y = self._solve(second)
        if on_time:
            self.h.changeColBounds(self.tau, 0.0, INF)
        else:
            self.h.changeRowBounds(self.row_energy, -INF, INF)
        return x if y is None else y

    def min_time(self) -> tuple[float, np.ndarray | None]:
        """Least tau over all fractions that fit, then least energy; inf if none fits."""
        if not self.feasible:
            return math.inf, None
        x = self._lexicographic(self.time_cost, self.energy_cost, on_time=True)
        return (math.inf, None) if x is None else (self.point(x)[0], x)

    def frontier(self, x_fast: np.ndarray) -> Frontier:
        """All vertices of E(tau), from the fastest solution `x_fast` (min_time's) to the cheapest."""
        x_cheap = self._lexicographic(self.energy_cost, self.time_cost, on_time=False)
        if x_cheap is None:
            raise RuntimeError(f"HiGHS: {self.h.modelStatusToString(self.h.getModelStatus())}")
        fast, cheap = (*self.point(x_fast), x_fast), (*self.point(x_cheap), x_cheap)
        if fast[1] <= cheap[1] * (1 + 1e-12) + 1e-15:  # the fastest solution is also the cheapest
            verts = [fast]
        elif cheap[0] <= fast[0] * (1 + 1e-12):
            verts = [cheap]
        else:
            found = [fast, cheap]
            stack = [(0, 1)]
            while stack:  # dichotomic: each step either finds a new vertex or proves a frontier edge
                i, j = stack.pop()
                (ti, ei, _), (tj, ej, _) = found[i], found[j]
                lam = (ei - ej) / (tj - ti)
                x = self._solve(self.energy_cost + lam * self.time_cost)
                if x is None:
                    continue
                t, e = self.point(x)
                if ti < t < tj and e + lam * t < ei + lam * ti - 1e-9 * max(1.0, abs(ei + lam * ti)):
                    found.append((t, e, x))
                    stack += [(i, len(found) - 1), (len(found) - 1, j)]
            verts = sorted(found, key=lambda v: v[0])
        return Frontier(
            times=np.array([v[0] for v in verts]),
            energies=np.array([v[1] for v in verts]),
            x=tuple(v[2][: self.tau] for v in verts),
            cols=self.cols,
        )
