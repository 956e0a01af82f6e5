"""Calibration against measured decode steps: check the cost model's predictions and fit its coefficients.

A measurement row (CSV, HF config names for the shape) is one decode step of the layers of a dense decoder
(no embedding, LM head or norms) for `users` sequences at `context` tokens on one chip. It is predicted
by planner.cost.pipeline_cost on one chip, one stage, micro-batch = users, weights and KV in the chip's
HBM tier; the token time is the step time and the J/token includes the static power over the step.

`fit` finds the hardware's coefficients in two steps:
1. time: achievable weight / KV bandwidth and compute fractions, the fixed cost per node (s) and the
   attention pull rate per work item (B/s), by nonlinear least squares on the relative step-time error
   (scipy.optimize.least_squares, bounds, several starts), with weak priors from the microbenchmark;
2. energy: the chip's data-path pJ/bit, its extra KV-only data-path pJ/bit, pJ/FLOP and static power (W),
   by nonnegative linear least squares on the relative J/token error given the fitted times. J/token is
   affine in these four, and its coefficients are read from the cost model itself (evaluated with each
   coefficient set to 1, the rest 0). A KV bit costs more than a weight bit (scattered pages, more DRAM
   row activations, the attention kernel's extra on-chip traffic); with one shared pJ/bit the rows that
   move more KV than weight bytes were under-predicted by ~7 % on average.
`calibrate` adds the checks on rows the fit did not use (leave-one-out and a fixed hold-out split).
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import yaml
from pydantic import ValidationError

from planner.core.errors import PlannerInputError, bounded_repr, problems_from_validation
from planner.core.fileio import read_mapping, read_text, write_text_atomic
from planner.cost.pipeline import PipelineCost, pipeline_cost
from planner.hardware.catalog import Hardware, hardware_path, load_hardware
from planner.model.config import HFConfig
from planner.model.graph import Dtypes, build_graph

SHAPE_COLUMNS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
)
INT_COLUMNS = SHAPE_COLUMNS + ("users", "context")
REQUIRED_COLUMNS = INT_COLUMNS + ("dtype_bytes", "step_ms", "joules_per_token")
DTYPE_BY_BYTES = {0.5: "fp4", 1.0: "fp8", 2.0: "bf16", 4.0: "fp32"}
# the stated range of every number column (inclusive); shapes are then checked as an HF config's fields
COLUMN_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(SHAPE_COLUMNS, (1, 10_000_000)),
    "users": (1, 100_000_000),  # WorkloadSpec's limits
    "context": (1, 100_000_000),
    "step_ms": (1e-6, 1e7),  # a nanosecond to about three hours
    "joules_per_token": (1e-9, 1e6),
}
MAX_PROBLEMS = 20
MAX_ROWS = (
    1_000  # rows per measurement file: a campaign has tens; each row is priced (and refit in calibrate)
)

# A prior residual of PRIOR_WEIGHT * (value / prior - 1): a 10 % departure from the microbenchmark figure
# costs as much as a 1 % error on one measured row, so the priors decide only what the rows leave open
# (e.g. the compute fraction when a single row is compute-bound).
PRIOR_WEIGHT = 0.1

# shared/reference/PEERS.md: peer estimators on the same 14 rows (step time only; none predicts energy).
PEERS: tuple[tuple[str, str, str, str], ...] = (
    ("whole-step roofline, datasheet 3.35 TB/s, 989 TFLOP/s", "24.6%", "69%", "38%"),
    ("whole-step roofline, measured 3.02 TB/s, 638 TFLOP/s", "16.4%", "65%", "31%"),
    ("genz-llm 0.0.16, its default H100", "29.5%", "71%", "37%"),
    ("genz-llm, given the measured 3.02 TB/s and 638 TFLOP/s", "14.8%", "65%", "23%"),
    ("llm-analysis 0.2.2, its shipped H100 config", "22.9%", "61%", "45%"),
    ("aiconfigurator 0.12, trtllm / vllm / sglang kernel tables", "5.5% / 3.7% / 3.3%", "56-58%", "8-13%"),
)


# ---------------------------------------------------------------------------------------------- rows


def _g(value: float, digits: int = 4) -> str:
    """`digits` significant digits: fitted values are kept (and written) at this precision."""
    return f"{value:.{digits}g}"


@dataclass(frozen=True)
class Measurement:
    """One measured decode step: shape (HF names), users, context, step time (s) and J per token."""

    source: str  # "file.csv:line"
    shape: tuple[int, ...]  # SHAPE_COLUMNS in order
    dtype_bytes: float
    users: int
    context: int
    step_s: float
    joules_per_token: float


def _number(text: str | None, column: str, where: str, problems: list[str]) -> float | None:
    """The cell as a finite float within COLUMN_RANGES (a whole number for INT_COLUMNS), or None with a
    problem recorded."""
    text = (text or "").strip()
    if not text:
        problems.append(f"{where}, column {column}: empty; give a number")
        return None
    shown = bounded_repr(text)
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{where}, column {column}: {shown} is not a number")
        return None
    low, high = COLUMN_RANGES.get(column, (0, math.inf))
    if not math.isfinite(value):
        problems.append(f"{where}, column {column}: {shown} is not a finite number")
    elif value < 0:
        problems.append(f"{where}, column {column}: {text[:40]} is negative")
    elif column in INT_COLUMNS and (value != int(value) or value == 0):
        problems.append(f"{where}, column {column}: {text[:40]} is not a positive whole number")
    elif column in ("step_ms", "joules_per_token") and value == 0:
        problems.append(f"{where}, column {column}: must be positive")
    elif column == "dtype_bytes" and value not in DTYPE_BY_BYTES:
        problems.append(f"{where}, column dtype_bytes: {text[:40]}; expected one of 0.5, 1, 2, 4")
    elif not low <= value <= high:
        problems.append(f"{where}, column {column}: {value:g} is outside its range, {_g(low)} to {_g(high)}")
    else:
        return value
    return None


def read_measurements_csv(path: str | Path) -> list[Measurement]:
    """Read and validate one measurement CSV; every problem (line and column named) in one error."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        records = [(record, reader.line_num) for record in reader]
    except csv.Error as exc:  # a cell past csv's field size limit, say
        raise PlannerInputError(path, [f"{path.name}:{reader.line_num}: not valid CSV: {exc}"]) from None
    if not header:
        raise PlannerInputError(
            path, [f"empty file: expected a header row with {', '.join(REQUIRED_COLUMNS)}"]
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PlannerInputError(path, [f"missing column {c}" for c in missing])
    if len(records) > MAX_ROWS:
        raise PlannerInputError(
            path, [f"{len(records):,} data rows, over the limit of {MAX_ROWS:,}; split the file or drop rows"]
        )
    problems: list[str] = []
    rows: list[Measurement] = []
    for record, line in records:
        where = f"{path.name}:{line}"
        if None in record:
            problems.append(f"{where}: more cells than header columns")
        values = {c: _number(record.get(c), c, where, problems) for c in REQUIRED_COLUMNS}
        if any(v is None for v in values.values()):
            continue
        shape = tuple(int(values[c]) for c in SHAPE_COLUMNS)
        try:
            _config(shape)
        except ValidationError as exc:
            for p in problems_from_validation(exc):
                top = p.removeprefix("(top level): ")
                problems.append(f"{where}: {top}" if top != p else f"{where}, column {p}")
            continue
        rows.append(
            Measurement(
                source=where,
                shape=shape,
                dtype_bytes=values["dtype_bytes"],
                users=int(values["users"]),
                context=int(values["context"]),
                step_s=values["step_ms"] * 1e-3,
                joules_per_token=values["joules_per_token"],
            )
        )
    if not problems and not rows:
        problems.append("no data rows under the header")
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
        raise PlannerInputError(path, shown)
    return rows


def read_measurements(paths: str | Path | Sequence[str | Path]) -> list[Measurement]:
    """Rows of one or more CSVs ("a.csv,b.csv" or a list), in file order."""
    if isinstance(paths, (str, Path)):
        paths = [p.strip() for p in str(paths).split(",") if p.strip()]
    if not paths:
        raise PlannerInputError("--measurements", ["no CSV given"])
    return [row for p in paths for row in read_measurements_csv(p)]


# ---------------------------------------------------------------------------------------------- predict


def _config(shape: tuple[int, ...]) -> HFConfig:
    return HFConfig.model_validate({**dict(zip(SHAPE_COLUMNS, shape)), "vocab_size": 1})


@lru_cache(maxsize=64)
def layer_graph(shape: tuple[int, ...], dtype: str) -> nx.DiGraph:
    """The decode graph of the measured layers: planner.model's graph without embed and lm_head."""
    graph = build_graph(_config(shape), Dtypes(dtype, dtype, dtype))
    graph.remove_nodes_from(["embed", "lm_head"])
    return graph


def measurement_tier(hw: Hardware) -> str:
    """The chip's HBM: its largest off-chip tier (the largest tier if all are on-chip)."""
    off_chip = [t for t in hw.tiers if not t.on_chip] or list(hw.tiers)
    return max(off_chip, key=lambda t: t.capacity_bytes).name


def predict(row: Measurement, hw: Hardware) -> PipelineCost:
    """Cost of the measured step: one chip, one stage, micro-batch = users, all bytes in the HBM tier."""
    graph = layer_graph(row.shape, DTYPE_BY_BYTES[row.dtype_bytes])
    nodes = list(graph.nodes)
    split = dict.fromkeys(nodes, {measurement_tier(hw): 1.0})
    return pipeline_cost(graph, hw.with_chips_per_group(1), row.users, row.context, [nodes], split, split)


@dataclass(frozen=True)
class RowCheck:
    """Measured and predicted step time (ms) and J/token of one row; errors are (pred - meas) / meas."""

    source: str
    users: int
    context: int
    measured_ms: float
    predicted_ms: float
    measured_j_per_token: float
    predicted_j_per_token: float

    @property
    def err_time(self) -> float:
        return self.predicted_ms / self.measured_ms - 1.0

    @property
    def err_energy(self) -> float:
        return self.predicted_j_per_token / self.measured_j_per_token - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "users": self.users,
            "context": self.context,
            "measured_ms": self.measured_ms,
            "predicted_ms": self.predicted_ms,
            "err_time": self.err_time,
            "measured_j_per_token": self.measured_j_per_token,
            "predicted_j_per_token": self.predicted_j_per_token,
            "err_energy": self.err_energy,
        }


def check_row(row: Measurement, hw: Hardware) -> RowCheck:
    cost = predict(row, hw)
    return RowCheck(
        row.source,
        row.users,
        row.context,
        row.step_s * 1e3,
        cost.token_s * 1e3,
        row.joules_per_token,
        cost.joules_per_token,
    )


@dataclass(frozen=True)
class CheckReport:
    """Per-row checks and their summary (fractions: 0.05 = 5 %)."""

    hardware: str
    rows: tuple[RowCheck, ...]

    def _abs(self, attr: str) -> list[float]:
        return [abs(getattr(r, attr)) for r in self.rows]

    @property
    def median_abs_err_time(self) -> float:
        return statistics.median(self._abs("err_time"))

    @property
    def median_abs_err_energy(self) -> float:
        return statistics.median(self._abs("err_energy"))

    @property
    def max_abs_err_time(self) -> float:
        return max(self._abs("err_time"))

    @property
    def max_abs_err_energy(self) -> float:
        return max(self._abs("err_energy"))

    def summary(self) -> dict[str, float]:
        return {
            "median_abs_err_time": self.median_abs_err_time,
            "median_abs_err_energy": self.median_abs_err_energy,
            "max_abs_err_time": self.max_abs_err_time,
            "max_abs_err_energy": self.max_abs_err_energy,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"hardware": self.hardware, **self.summary(), "rows": [r.to_dict() for r in self.rows]}


def check(rows: Sequence[Measurement], hw: Hardware) -> CheckReport:
    """Predict every row with `hw` as it is (its achievable fractions and energies)."""
    return CheckReport(hw.name, tuple(check_row(r, hw) for r in rows))


# ---------------------------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class Priors:
    """Microbenchmark figures as coefficients: fractions of the hardware's peaks, pJ/bit, pJ/FLOP, W."""

    weight_bandwidth: float
    kv_bandwidth: float
    compute: float
    data_path_pj_per_bit: float
    pj_per_flop: float
    static_power_w: float


# each figure a microbenchmark file must give, and its stated range (inclusive)
MICROBENCH_KEYS: dict[str, tuple[float, float]] = {
    "idle_power_w": (1e-3, 1e5),
    "hbm_read_tb_per_s": (1e-3, 1e3),
    "hbm_read_whole_gpu_pj_per_bit": (1e-3, 1e4),
    "bf16_dense_matmul_tflops": (1e-3, 1e6),
    "bf16_matmul_whole_gpu_pj_per_flop": (1e-4, 1e4),
}


def priors_from_microbench(path: str | Path, hw: Hardware) -> Priors:
    """Read a device_microbench.json and express it against `hw`'s peaks.

    Whole-GPU energies include idle power: movement pJ/bit = whole - idle / (read rate x 8) - the memory
    device's pJ/bit; pJ/FLOP = whole - idle / FLOP rate.
    """
    data = read_mapping(path)
    problems = []
    for key, (low, high) in MICROBENCH_KEYS.items():
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            problems.append(f"{key}: expected a number from {low:g} to {high:g} (got {bounded_repr(value)})")
    if problems:
        raise PlannerInputError(path, problems)
    tier = hw.tier(measurement_tier(hw))
    read_bytes_per_s = data["hbm_read_tb_per_s"] * 1e12
    flops_per_s = data["bf16_dense_matmul_tflops"] * 1e12
    idle = float(data["idle_power_w"])
    move = data["hbm_read_whole_gpu_pj_per_bit"] - idle / (read_bytes_per_s * 8) * 1e12
    return Priors(
        weight_bandwidth=min(1.0, read_bytes_per_s / tier.bw_bytes_per_s),
        kv_bandwidth=min(1.0, read_bytes_per_s / tier.bw_bytes_per_s),
        compute=min(1.0, flops_per_s / hw.flops_per_s("bf16")),
        data_path_pj_per_bit=max(0.0, move - tier.device_pj_per_bit),
        pj_per_flop=max(0.0, data["bf16_matmul_whole_gpu_pj_per_flop"] - idle / flops_per_s * 1e12),
        static_power_w=idle,
    )


@dataclass(frozen=True)
class FittedParams:
    """Calibrated coefficients, SI units (s, B/s, pJ/bit, pJ/FLOP, W)."""

    weight_bandwidth: float
    kv_bandwidth: float
    compute: float
    node_overhead_s: float
    attention_bytes_per_s_per_work_item: float
    data_path_pj_per_bit: float
    kv_data_path_pj_per_bit: float
    pj_per_flop: float
    static_power_w: float


ENERGY_FIELDS = ("data_path_pj_per_bit", "kv_data_path_pj_per_bit", "pj_per_flop", "static_power_w")


def _with_energy(hw: Hardware, path: float, kv_path: float, pj_per_flop: float, static_w: float) -> Hardware:
    """`hw` with the energy coefficients in ENERGY_FIELDS order (pJ/bit, KV pJ/bit, pJ/FLOP, W)."""
    tier = measurement_tier(hw)
    tiers = tuple(replace(t, path_pj_per_bit=path) if t.name == tier else t for t in hw.tiers)
    return replace(
        hw, tiers=tiers, kv_path_pj_per_bit=kv_path, pj_per_flop=pj_per_flop, static_power_w=static_w
    )


def apply(hw: Hardware, p: FittedParams) -> Hardware:
    """`hw` with the fitted coefficients (the link fraction is kept)."""
    achievable = replace(
        hw.achievable,
        weight_bandwidth=p.weight_bandwidth,
        kv_bandwidth=p.kv_bandwidth,
        compute=p.compute,
        node_overhead_s=p.node_overhead_s,
        attention_bytes_per_s_per_work_item=p.attention_bytes_per_s_per_work_item,
    )
    return _with_energy(replace(hw, achievable=achievable), *(getattr(p, f) for f in ENERGY_FIELDS))


# time vector x: weight, KV, compute fractions; node overhead in us; attention rate per work item in GB/s
_X_LOWER = np.array([0.05, 0.05, 0.05, 0.0, 0.1])
_X_UPPER = np.array([1.0, 1.0, 1.0, 1000.0, 1e5])


def _time_hw(hw: Hardware, x: np.ndarray) -> Hardware:
    achievable = replace(
        hw.achievable,
        weight_bandwidth=float(x[0]),
        kv_bandwidth=float(x[1]),
        compute=float(x[2]),
        node_overhead_s=float(x[3]) * 1e-6,
        attention_bytes_per_s_per_work_item=float(x[4]) * 1e9,
    )
    return replace(hw, achievable=achievable)


def fit_times(rows: Sequence[Measurement], hw: Hardware, priors: Priors) -> np.ndarray:
    """Least squares on relative step-time error (+ weak priors on the fractions); returns x (see _X_*)."""
    from scipy.optimize import least_squares  # scipy loads only when fitting

    prior = np.array([priors.weight_bandwidth, priors.kv_bandwidth, priors.compute])

    def residuals(x: np.ndarray) -> np.ndarray:
        h = _time_hw(hw, x)
        errs = [predict(r, h).token_s / r.step_s - 1.0 for r in rows]
        return np.concatenate([errs, PRIOR_WEIGHT * (x[:3] / prior - 1.0)])

    best = None
    # several starts: the max() of each roofline phase makes the problem piecewise smooth
    for scale, overhead_us, rate_gb_s in ((1.0, 5.0, 10.0), (0.85, 15.0, 30.0), (1.1, 1.0, 3.0)):
        x0 = np.clip(np.concatenate([prior * scale, [overhead_us, rate_gb_s]]), _X_LOWER, _X_UPPER)
        result = least_squares(
            residuals,
            x0,
            bounds=(_X_LOWER, _X_UPPER),
            x_scale=[0.1, 0.1, 0.1, 5.0, 5.0],
            diff_step=1e-4,
            ftol=1e-6,
            xtol=1e-6,
            max_nfev=100,  # a coefficient that no row constrains would otherwise drift for 500 steps
        )
        if best is None or result.cost < best.cost:
            best = result
    return best.x


def energy_terms(row: Measurement, hw: Hardware) -> tuple[np.ndarray, float]:
    """J/token of `row` as a + c . (ENERGY_FIELDS), read from the cost model."""
    a = predict(row, _with_energy(hw, 0.0, 0.0, 0.0, 0.0)).joules_per_token
    unit = [_with_energy(hw, *e) for e in np.eye(len(ENERGY_FIELDS))]
    return np.array([predict(row, u).joules_per_token - a for u in unit]), a


def fit_energy(rows: Sequence[Measurement], hw: Hardware, priors: Priors) -> np.ndarray:
    """Nonnegative least squares on relative J/token error (+ weak priors); hw holds the fitted times."""
    from scipy.optimize import nnls

    # no microbenchmark separates KV from weight reads: the KV-only pJ/bit has no prior
    prior = np.array([getattr(priors, f, 0.0) for f in ENERGY_FIELDS])
    lhs, rhs = [], []
    for r in rows:
        c, a = energy_terms(r, hw)
        lhs.append(c / r.joules_per_token)
        rhs.append(1.0 - a / r.joules_per_token)
    for k, p0 in enumerate(prior):
        if p0 > 0:
            lhs.append(np.eye(len(prior))[k] * PRIOR_WEIGHT / p0)
            rhs.append(PRIOR_WEIGHT)
    solution, _ = nnls(np.array(lhs), np.array(rhs))
    return solution


def fit(rows: Sequence[Measurement], hw: Hardware, priors: Priors) -> FittedParams:
    """Time coefficients first, then energy coefficients given the fitted times."""
    if not rows:
        raise PlannerInputError("--holdout", ["no rows left to fit; hold out fewer rows"])
    x = fit_times(rows, hw, priors)
    energy = fit_energy(rows, _time_hw(hw, x), priors)
    values = (*x[:3], x[3] * 1e-6, x[4] * 1e9, *energy)
    return FittedParams(*(float(_g(v)) for v in values))  # 4 digits, as written to the YAML


# ---------------------------------------------------------------------------------------------- calibrate


def select_rows(rows: Sequence[Measurement], spec: str) -> list[int]:
    """Indices of the rows named by `spec`: items separated by commas, each a 1-based row number in the
    concatenated measurements or `column=value` (users=8, context=2048); an item matches its rows."""
    chosen: set[int] = set()
    problems = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if "=" in item:
            column, _, value = (s.strip() for s in item.partition("="))
            if column not in ("users", "context"):
                problems.append(f"{bounded_repr(item)}: select by users=N or context=N")
                continue
            try:
                number = int(value)
            except ValueError:
                problems.append(f"{bounded_repr(item)}: {bounded_repr(value)} is not a whole number")
                continue
            hits = [i for i, r in enumerate(rows) if getattr(r, column) == number]
        else:
            try:
                hits = [int(item) - 1]
            except ValueError:
                problems.append(f"{bounded_repr(item)}: expected a row number or users=N / context=N")
                continue
            if not 0 <= hits[0] < len(rows):
                problems.append(f"{bounded_repr(item)}: row numbers go from 1 to {len(rows)}")
                continue
        if not hits:
            problems.append(f"{bounded_repr(item)}: matches no row")
        chosen.update(hits)
    if problems:
        raise PlannerInputError("--holdout", problems)
    return sorted(chosen)


@dataclass(frozen=True)
class Calibration:
    """A fit on every row, its in-sample check, leave-one-out and (optionally) a fixed hold-out split."""

    base_path: Path
    microbench_path: Path
    measurement_paths: tuple[Path, ...]
    rows: tuple[Measurement, ...]
    priors: Priors
    params: FittedParams
    hardware: Hardware  # base hardware with params applied
    in_sample: CheckReport
    leave_one_out: CheckReport
    loo_params: tuple[FittedParams, ...]  # the fit without row i, for each i
    holdout_spec: str
    holdout_rows: tuple[int, ...]  # indices into rows
    split_params: FittedParams | None
    split: CheckReport | None  # the held-out rows predicted by the fit on the others

    def summary(self) -> dict[str, float | str]:
        """Flat figures for the hardware YAML's `calibration:` mapping (errors as fractions)."""
        out: dict[str, float | str] = {
            "fit_date": datetime.date.today().isoformat(),
            "microbench": self.microbench_path.name,
            "measurements": ", ".join(p.name for p in self.measurement_paths),
            "rows_used": len(self.rows),
        }
        reports = [("in_sample", self.in_sample), ("leave_one_out", self.leave_one_out)]
        if self.split is not None:
            out["holdout"] = f"{self.holdout_spec} ({len(self.holdout_rows)} rows, fit on the others)"
            reports.append(("holdout", self.split))
        for prefix, report in reports:
            for key, value in report.summary().items():
                out[f"{prefix}_{key}"] = round(value, 4)
        return out


def calibrate_rows(
    rows: Sequence[Measurement],
    base: Hardware,
    priors: Priors,
    holdout: Sequence[int] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fit on all rows; leave-one-out over all rows; fit without `holdout` rows and check those.

    Returns the keyword arguments of Calibration that depend on the rows (params ... split).
    """
    params = fit(rows, base, priors)
    loo, loo_params = [], []
    for i, row in enumerate(rows):
        if progress:
            progress(f"leave-one-out {i + 1}/{len(rows)}")
        loo_params.append(fit([r for j, r in enumerate(rows) if j != i], base, priors))
        loo.append(check_row(row, apply(base, loo_params[-1])))
    split_params = split = None
    if holdout:
        split_params = fit([r for j, r in enumerate(rows) if j not in holdout], base, priors)
        split = check([rows[j] for j in holdout], apply(base, split_params))
    return dict(
        params=params,
        in_sample=check(rows, apply(base, params)),
        leave_one_out=CheckReport(base.name, tuple(loo)),
        loo_params=tuple(loo_params),
        split_params=split_params,
        split=split,
    )


def calibrate(
    microbench: str | Path,
    measurements: str | Path | Sequence[str | Path],
    hardware: str | Path = "h100-sxm",
    holdout: str = "",
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Fit `hardware`'s achievable fractions and energy coefficients to measured decode steps."""
    base_path = hardware_path(hardware)
    base = load_hardware(base_path)
    rows = read_measurements(measurements)
    priors = priors_from_microbench(microbench, base)
    held = select_rows(rows, holdout) if holdout else []
    if len(held) >= len(rows):
        raise PlannerInputError("--holdout", ["holds out every row; leave some to fit on"])
    fitted = calibrate_rows(rows, base, priors, held, progress)
    if isinstance(measurements, (str, Path)):
        measurements = [p.strip() for p in str(measurements).split(",") if p.strip()]
    return Calibration(
        base_path=base_path,
        microbench_path=Path(microbench),
        measurement_paths=tuple(Path(p) for p in measurements),
        rows=tuple(rows),
        priors=priors,
        hardware=apply(base, fitted["params"]),
        holdout_spec=holdout,
        holdout_rows=tuple(held),
        **fitted,
    )


# ---------------------------------------------------------------------------------------------- write


def hardware_yaml(cal: Calibration) -> str:
    """The base hardware YAML with the fitted fields replaced and a `calibration:` mapping added."""
    data = yaml.safe_load(cal.base_path.read_text(encoding="utf-8"))
    p = cal.params
    chip = data["chip"]
    chip["energy_per_flop"] = f"{_g(p.pj_per_flop)} pJ/FLOP"
    chip["static_power"] = f"{_g(p.static_power_w)} W"
    chip["data_path_energy"] = f"{_g(p.data_path_pj_per_bit)} pJ/bit"
    chip["kv_data_path_energy"] = f"{_g(p.kv_data_path_pj_per_bit)} pJ/bit"
    achievable = data.setdefault("achievable", {})
    achievable["weight_bandwidth"] = p.weight_bandwidth
    achievable["kv_bandwidth"] = p.kv_bandwidth
    achievable["compute"] = p.compute
    achievable["node_overhead"] = f"{_g(p.node_overhead_s * 1e6)} us"
    achievable["attention_bytes_per_s_per_work_item"] = (
        f"{_g(p.attention_bytes_per_s_per_work_item / 1e9)} GB/s"
    )
    data["calibration"] = cal.summary()
    fitted = "fit by planner calibrate to the rows named under calibration (results/calibration.md)"
    sources = data.setdefault("sources", {})
    pr = cal.priors
    sources["chip.energy_per_flop"] = (
        f"{fitted}; microbenchmark prior {pr.pj_per_flop:.3g} pJ/FLOP above idle"
    )
    sources["chip.static_power"] = (
        f"{fitted}: power drawn while steps run, beyond pJ/bit and pJ/FLOP; idle at rest {pr.static_power_w:.3g} W"
    )
    sources["chip.data_path_energy"] = (
        f"{fitted}; microbenchmark prior {pr.data_path_pj_per_bit:.3g} pJ/bit above idle and the device's own"
    )
    sources["chip.kv_data_path_energy"] = (
        f"{fitted}: KV bits cost more than weight bits (scattered pages, DRAM row activations, the attention "
        "kernel's on-chip traffic); no microbenchmark prior"
    )
    sources["achievable"] = (
        f"{fitted}; microbenchmark priors: HBM read {pr.weight_bandwidth:.3g}, bf16 matmul {pr.compute:.3g} of peak"
    )
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=200)


def write_hardware(cal: Calibration, out: str | Path) -> Path:
    """Write the calibrated hardware YAML atomically and check that it loads."""
    path = write_text_atomic(out, hardware_yaml(cal))
    load_hardware(path)
    return path


PARAM_ROWS = (
    ("achievable.weight_bandwidth", "weight_bandwidth", 1.0, "fraction of the HBM tier bandwidth"),
    ("achievable.kv_bandwidth", "kv_bandwidth", 1.0, "fraction of the HBM tier bandwidth"),
    ("achievable.compute", "compute", 1.0, "fraction of peak bf16 FLOP/s"),
    ("achievable.node_overhead", "node_overhead_s", 1e6, "us per node (attention or FFN) per step"),
    (
        "achievable.attention_bytes_per_s_per_work_item",
        "attention_bytes_per_s_per_work_item",
        1e-9,
        "GB/s per (user x head) work item",
    ),
    ("chip.data_path_energy", "data_path_pj_per_bit", 1.0, "pJ/bit on top of the HBM device's"),
    ("chip.kv_data_path_energy", "kv_data_path_pj_per_bit", 1.0, "pJ/bit more on KV bits only"),
    ("chip.energy_per_flop", "pj_per_flop", 1.0, "pJ/FLOP"),
    ("chip.static_power", "static_power_w", 1.0, "W"),
)


def report_frame_rows(cal: Calibration) -> list[dict[str, Any]]:
    """One record per measured row: measured, in-sample, leave-one-out and hold-out predictions."""
    held = dict(zip(cal.holdout_rows, cal.split.rows)) if cal.split else {}
    out = []
    for i, (row, fit_in, loo) in enumerate(zip(cal.rows, cal.in_sample.rows, cal.leave_one_out.rows)):
        record: dict[str, Any] = {
            "row": i + 1,
            "source": row.source,
            "users": row.users,
            "context": row.context,
            "measured_ms": fit_in.measured_ms,
            "fit_ms": fit_in.predicted_ms,
            "fit_err_time": fit_in.err_time,
            "loo_ms": loo.predicted_ms,
            "loo_err_time": loo.err_time,
            "measured_j_per_token": fit_in.measured_j_per_token,
            "fit_j_per_token": fit_in.predicted_j_per_token,
            "fit_err_energy": fit_in.err_energy,
            "loo_j_per_token": loo.predicted_j_per_token,
            "loo_err_energy": loo.err_energy,
            "held_out": i in held,
            "holdout_err_time": held[i].err_time if i in held else None,
            "holdout_err_energy": held[i].err_energy if i in held else None,
        }
        out.append(record)
    return out


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:+.1f}%"


def worst_rows(cal: Calibration, count: int = 3) -> list[str]:
    """Why the worst held-out rows miss: where their predicted time goes and what their absence moves."""
    hw = cal.hardware
    order = sorted(
        range(len(cal.rows)),
        key=lambda i: (
            -max(abs(cal.leave_one_out.rows[i].err_time), abs(cal.leave_one_out.rows[i].err_energy))
        ),
    )
    lines = []
    for i in order[:count]:
        row, loo = cal.rows[i], cal.leave_one_out.rows[i]
        cost = predict(row, hw)
        busy = cost.groups[0].busy_s
        shares = ", ".join(
            f"{k} {100 * v / busy:.0f}%" for k, v in cost.groups[0].time_by_kind_s.items() if v > 0.01 * busy
        )
        moves = []
        for name, attr, scale, unit in PARAM_ROWS:
            full, without = getattr(cal.params, attr), getattr(cal.loo_params[i], attr)
            if full and abs(without / full - 1) > 0.1:
                change = f"{name} {_g(full * scale, 3)} -> {_g(without * scale, 3)} {unit.split()[0]}"
                moves.append((abs(without / full - 1), change))
        moved = "; ".join(m for _, m in sorted(moves, reverse=True)[:3]) or "no coefficient by more than 10%"
        lines.append(
            f"- row {i + 1} (users {row.users}, context {row.context}): leave-one-out error time "
            f"{_pct(loo.err_time)}, energy {_pct(loo.err_energy)}. Predicted time: {shares}. "
            f"Fit without it: {moved}."
        )
    heavy = [r.err_energy for row, r in zip(cal.rows, cal.in_sample.rows) if kv_share(row, hw) > 0.5]
    light = [r.err_energy for row, r in zip(cal.rows, cal.in_sample.rows) if kv_share(row, hw) <= 0.5]
    if heavy and light:
        lines.append(
            f"- Energy by traffic: rows that move more KV than weight bytes are predicted "
            f"{_pct(statistics.mean(heavy))} on average in-sample ({len(heavy)} rows), the others "
            f"{_pct(statistics.mean(light))} ({len(light)} rows). KV bits carry chip.kv_data_path_energy "
            "on top of the data path that weight bits pay; a signed pattern left here says it is off."
        )
    return lines


def kv_share(row: Measurement, hw: Hardware) -> float:
    """Fraction of the step's HBM bytes that are KV: the cost model's KV / (KV + weight) movement energy,
    with the KV-only pJ/bit removed so that both are charged at the same pJ/bit."""
    by = predict(row, replace(hw, kv_path_pj_per_bit=0.0)).joules_per_token_by
    return by["kv"] / (by["kv"] + by["weights"])


def report_markdown(cal: Calibration, command: str) -> str:
    """results/calibration.md: the command, fitted values, errors per row and in summary, peers."""
    p, pr = cal.params, cal.priors
    lines = [
        f"# Calibration of {cal.hardware.name} against measured decode steps",
        "",
        "Generated by (from the repository root; do not edit by hand):",
        "",
        "```",
        command,
        "```",
        "",
        f"Base hardware `{cal.base_path.name}`, microbenchmark `{cal.microbench_path.name}`, "
        f"measurements {', '.join(f'`{x.name}`' for x in cal.measurement_paths)} ({len(cal.rows)} rows). "
        "Each row is predicted by `planner.cost.pipeline_cost` (one chip, one stage, micro-batch = users, "
        "weights and KV in HBM; the layers only, as measured). Errors are (predicted - measured) / measured.",
        "",
        "## Errors",
        "",
        "| rows | used by the fit? | median abs. time | max abs. time | median abs. energy | max abs. energy |",
        "|---|---|---|---|---|---|",
    ]
    reports = [
        (f"all {len(cal.rows)}, fit on all", "yes (in-sample)", cal.in_sample),
        (
            f"each of {len(cal.rows)}, fit on the other {len(cal.rows) - 1}",
            "no (leave-one-out)",
            cal.leave_one_out,
        ),
    ]
    if cal.split is not None:
        reports.append(
            (
                f"{len(cal.holdout_rows)} held out ({cal.holdout_spec}), fit on the other "
                f"{len(cal.rows) - len(cal.holdout_rows)}",
                "no (fixed split)",
                cal.split,
            )
        )
    for name, used, r in reports:
        lines.append(
            f"| {name} | {used} | {100 * r.median_abs_err_time:.1f}% | {100 * r.max_abs_err_time:.1f}% "
            f"| {100 * r.median_abs_err_energy:.1f}% | {100 * r.max_abs_err_energy:.1f}% |"
        )
    lines += [
        "",
        "## Fitted coefficients (written to the hardware YAML)",
        "",
        "| field | value | unit | microbenchmark prior | fit without the hold-out rows |",
        "|---|---|---|---|---|",
    ]
    for field_name, attr, scale, unit in PARAM_ROWS:
        prior = getattr(pr, attr) * scale if hasattr(pr, attr) else None
        split = getattr(cal.split_params, attr) * scale if cal.split_params else None
        lines.append(
            f"| `{field_name}` | {_g(getattr(p, attr) * scale)} | {unit} | "
            f"{'' if prior is None else _g(prior)} | {'' if split is None else _g(split)} |"
        )
    lines += [
        "",
        "## Per row",
        "",
        "| row | users | context | measured ms | fit ms | fit err | LOO ms | LOO err | measured J/tok | fit J/tok "
        "| fit err | LOO J/tok | LOO err | hold-out err time / energy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report_frame_rows(cal):
        held = f"{_pct(r['holdout_err_time'])} / {_pct(r['holdout_err_energy'])}" if r["held_out"] else ""
        lines.append(
            f"| {r['row']} | {r['users']} | {r['context']} | {r['measured_ms']:.3f} | {r['fit_ms']:.3f} "
            f"| {_pct(r['fit_err_time'])} | {r['loo_ms']:.3f} | {_pct(r['loo_err_time'])} "
            f"| {r['measured_j_per_token']:.4g} | {r['fit_j_per_token']:.4g} | {_pct(r['fit_err_energy'])} "
            f"| {r['loo_j_per_token']:.4g} | {_pct(r['loo_err_energy'])} | {held} |"
        )
    lines += ["", "## The worst held-out rows", "", *worst_rows(cal)]
    lines += [
        "",
        "## Peers on the same rows (time only; from shared/reference/PEERS.md)",
        "",
        "| estimator | median abs. error | max abs. error | max without the B=1, ctx>=8K rows |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {med} | {mx} | {mx2} |" for name, med, mx, mx2 in PEERS]
    loo = cal.leave_one_out
    no_long_b1 = [r for r in loo.rows if not (r.users == 1 and r.context >= 8192)]
    lines.append(
        f"| this planner, leave-one-out (energy too: {100 * loo.median_abs_err_energy:.1f}% / "
        f"{100 * loo.max_abs_err_energy:.1f}%) | {100 * loo.median_abs_err_time:.1f}% "
        f"| {100 * loo.max_abs_err_time:.1f}% | {100 * max(abs(r.err_time) for r in no_long_b1):.0f}% |"
    )
    return "\n".join(lines) + "\n"


def report_csv(cal: Calibration) -> str:
    """results/calibration.csv: report_frame_rows as CSV."""
    records = report_frame_rows(cal)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buffer.getvalue()
