"""The shape every constraint family writes its rows in, and the slice they are written for.

A *slice* is the contiguous run of nodes one chip group holds. Its variables (scaled, planner.placement
.stage): for each free item q = (class, kind) present, the tier fractions f[q, t] and the phase-time
epigraph p[q]; and the cycle tau. A Row reads

    sum(coef x column) + tau_coef x tau + const  (<= or ==)  rhs

The slice LP (planner.placement.slicelp) takes rows as they are; the Pyomo MILP (planner.placement.milp)
writes each arc's copy with its own f and p, `const` and `rhs` multiplied by the arc's binary z (the
perspective form) and tau replaced by the pipeline's cycle T (or, for `per_period` rows, by the period
per micro-batch P/m); the fluid lower bound (planner.placement.bounds) writes them for all nodes with
`groups` = S: capacities and times of S groups pooled.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from planner.placement.stage import Item, StageData

Col = tuple  # ("f", (cls, kind), tier index) or ("p", (cls, kind))


@dataclass(slots=True)  # not frozen: rows are built by the hundred thousand, and a frozen init is slower
class Row:
    family: str
    name: str
    terms: tuple[tuple[Col, float], ...]
    tau: float = 0.0
    const: float = 0.0
    rhs: float = 0.0
    eq: bool = False
    per_period: bool = False  # tau is the period per micro-batch (P/m), not the cycle


def f(item: Item, t: int) -> Col:
    return item.f_cols[t]


def p(item: Item) -> Col:
    return item.p_col


@dataclass(frozen=True)
class SliceView:
    """One group's nodes (class counts) with what its position adds: the op constants it pays again when
    it starts inside an op, its outgoing send, hop latency and hop energy. `groups` > 1 pools that many
    groups (the fluid bound), which scales capacities and times."""

    d: StageData
    counts: np.ndarray
    start_class: int | None = None
    send: float = 0.0
    hop: float = 0.0
    link_e: float = 0.0
    groups: float = 1.0
    ops: np.ndarray | None = None  # ops starting in the slice per class, when counts hold fractions of nodes

    @cached_property
    def present(self) -> tuple[int, ...]:
        return tuple(int(c) for c in np.flatnonzero(self.counts))

    @cached_property
    def items(self) -> tuple[tuple[Item, float], ...]:
        """(free item, nodes of its class in the slice)."""
        return tuple((it, float(self._counts[c])) for c in self.present for it in self.d.classes[c].free)

    def _carriers(self) -> list[tuple[int, float]]:
        """(class, times its op constants are paid): first parts, plus the start correction. A slice that
        holds a fraction of a first part (planner.placement.packing) pays its op once (`ops`)."""
        starts = self.counts if self.ops is None else self.ops
        out = [(c, float(starts[c])) for c in self.present if self.d.classes[c].first]
        if self.start_class is not None:
            out.append((self.start_class, 1.0))
        return out

    @cached_property
    def unit_const(self) -> dict[str, float]:
        """Time on each unit besides the free items' phases: fixed items and op overheads."""
        out = dict.fromkeys(self.d.units, 0.0)
        counts = self._counts
        for c in self.present:
            for u, s in self.d.classes[c].fixed_unit.items():
                out[u] += counts[c] * s
        for c, times in self._carriers():
            out[self.d.classes[c].main_unit] += times * self.d.classes[c].op_overhead
        return out

    @cached_property
    def link_const(self) -> dict[str, float]:
        """Collective time on each intra-group link."""
        out = {"intra": 0.0, "a2e": 0.0}
        for c, times in self._carriers():
            out[self.d.classes[c].link] += times * self.d.classes[c].op_collective
        return out

    @cached_property
    def tier_const(self) -> np.ndarray:
        """Each tier's busy time from the fixed items."""
        return self._per_tier("fixed_tier")

    @cached_property
    def share_const(self) -> np.ndarray:
        """Each tier's fill (fraction of one group's) from the fixed items."""
        return self._per_tier("fixed_share")

    def _per_tier(self, field: str) -> np.ndarray:
        """The present classes' `field` (a per-tier tuple of NodeClass) times their counts, summed."""
        out = [0.0] * len(self.d.tiers)
        counts = self._counts
        for c in self.present:
            for t, x in enumerate(getattr(self.d.classes[c], field)):
                out[t] += counts[c] * x
        return np.array(out)

    @cached_property
    def _counts(self) -> list:
        """`counts` as Python numbers: the constants above sum a few of them, where numpy scalars are slow."""
        return self.counts.tolist()

    @cached_property
    def energy_const(self) -> float:
        """J/token (scaled) besides the free items: fixed items, compute, collectives, the outgoing hop."""
        counts = self._counts
        e = sum(counts[c] * (self.d.classes[c].fixed_e + self.d.classes[c].compute_e) for c in self.present)
        e += sum(times * self.d.classes[c].op_collective_e for c, times in self._carriers())
        return float(e) + self.link_e

    @property
    def latency_const(self) -> float:
        """One micro-batch's time through the group besides the free items' phases."""
        return sum(self.unit_const.values()) + sum(self.link_const.values()) + self.send + self.hop
