"""Sweeps: the cartesian product models x hardware x KV memories x users x contexts x speed floors.

A sweep file (sweeps/*.yaml) is validated strictly (unknown fields, bad names and bad values are all
reported at once, as PlannerInputError). Each case is an InstanceSpec solved by planner.solve; its
result (a flat row plus the placement) is cached as one small JSON file named by the instance digest,
written atomically by the parent process as each case finishes, so an interrupted sweep resumes where it
stopped and loses nothing it finished. Infeasible cases are results too (status "infeasible" and the
binding limit); unexpected errors are reported in the table but not cached, so a rerun retries them.

Parallelism: local worker processes (concurrent.futures.ProcessPoolExecutor, spawn start method) by
default, or `scheduler=ADDRESS` for an existing dask.distributed cluster through the Client's
concurrent.futures executor, so both paths run exactly the same code. Local processes rather than a dask
LocalCluster: each case is one CPU-bound Pyomo build + HiGHS solve that holds the GIL while building,
there is no data shared between cases, and a process pool starts in a fraction of a second with no
scheduler, nanny or ports; dask is the right tool only when the machines are elsewhere.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import Field, ValidationError, field_validator

from planner.core.errors import PlannerInputError, problems_from_validation
from planner.core.fileio import read_mapping, write_bytes_atomic, write_text_atomic
from planner.core.schema import Strict as _Strict
from planner.problem.instance import InstanceSpec, SolverSpec
from planner.problem.problem import resolve
from planner.runs.cache import Cache, CaseResult
from planner.runs.executor import Progress, run_cases

KEY_COLUMNS = (
    "model",
    "hardware",
    "memory",
    "chips_per_group",
    "max_groups",
    "fixed_stages",
    "in_flight",
    "users",
    "context",
    "min_tokens_per_s",
)
TIMING_COLUMNS = ("solve_s",)  # wall-clock seconds: the only columns that differ between identical runs
OUTCOME_COLUMNS = ("status", "binding", "proven")  # then planner.studies.CASE_COLUMNS, then the rest
MAX_CASES = 100_000  # combinations in one sweep: more is a typo (a list of a million users, say)


def _listify(value: Any) -> Any:
    """A scalar where a list is expected means a list of one."""
    return value if isinstance(value, list) or value is None else [value]


class SweepSpec(_Strict):
    """A sweep: every combination of the lists below is one placement instance."""

    name: str = ""
    models: list[str] = Field(min_length=1, description="graphs/ names or paths to HF config.json")
    hardware: list[str] = Field(min_length=1, description="instances/hardware/ names or paths")
    memory: list[str | None] = Field(
        default=[None], min_length=1, description="technology of the KV tier (null: the hardware's own)"
    )
    users: list[Annotated[int, Field(gt=0, le=100_000_000)]] = Field(min_length=1)
    context: list[Annotated[int, Field(gt=0, le=100_000_000)]] = Field(
        min_length=1, description="KV tokens held per user"
    )
    min_tokens_per_s: list[Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]] = Field(
        min_length=1, description="per-user speed floors"
    )
    chips_per_group: int | list[int] | None = Field(
        default=None, description="chips per group, or group sizes to choose from (the instance field)"
    )
    max_groups: int = Field(default=128, gt=0, le=100_000)
    split: Any = Field(default="auto", description="sub-layer parts (the instance field)")
    max_chip_power: Any = Field(default="tdp", description="per-chip power limit (the instance field)")
    max_power: Any = Field(default=None, description="pipeline power budget (the instance field)")
    stages: list[Annotated[int, Field(gt=0, le=100_000)]] | None = Field(
        default=None, description="fixed S values (null: enumerate S)"
    )
    solver: SolverSpec = SolverSpec()
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"

    _lists = field_validator(
        "models", "hardware", "memory", "users", "context", "min_tokens_per_s", "stages", mode="before"
    )(_listify)

    @classmethod
    def from_arguments(cls, source: str, **fields: Any) -> SweepSpec:
        """A sweep from a study's arguments (its command-line flags); a bad value is a PlannerInputError
        naming `source`, the flag and the field."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise PlannerInputError(source, problems_from_validation(exc, flags=True)) from None

    @field_validator("solver")
    @classmethod
    def _one_way_to_fix_stages(cls, solver: SolverSpec) -> SolverSpec:
        if solver.stages is not None:
            raise ValueError("give the fixed stage counts as the top-level list `stages`, not solver.stages")
        return solver

    def cases(self) -> list[InstanceSpec]:
        """Every combination as a validated instance, in a fixed order; all problems reported at once."""
        lists = {k: getattr(self, k) for k in ("models", "hardware", "memory", "users", "context")}
        lists |= {"min_tokens_per_s": self.min_tokens_per_s, "stages": self.stages or [None]}
        combinations = math.prod(len(v) for v in lists.values())
        if combinations > MAX_CASES:
            sizes = " x ".join(f"{len(v):,} {k}" for k, v in lists.items())
            raise PlannerInputError("sweep", [f"{sizes} make {combinations:,} cases, over {MAX_CASES:,}"])
        problems: list[str] = []
        out: list[InstanceSpec] = []
        solver = self.solver.model_dump(exclude_none=True)
        for model, hw, mem, users, context, speed, stages in itertools.product(
            self.models,
            self.hardware,
            self.memory,
            self.users,
            self.context,
            self.min_tokens_per_s,
            self.stages or [None],
        ):
            data = {
                "name": self.name,
                "model": model,
                "hardware": hw,
                "kv_memory": mem,
                "chips_per_group": self.chips_per_group,
                "max_groups": self.max_groups,
                "split": self.split,
                "max_chip_power": self.max_chip_power,
                "max_power": self.max_power,
                "workload": {
                    "users": users,
                    "context": context,
                    "min_tokens_per_s": speed,
                    "weight_dtype": self.weight_dtype,
                    "kv_dtype": self.kv_dtype,
                },
                "solver": {**solver, "stages": stages},
            }
            try:
                out.append(InstanceSpec.model_validate(data))
            except ValidationError as exc:
                problems += problems_from_validation(exc)
        if problems:
            raise PlannerInputError("sweep", sorted(set(problems)))
        return out


def check_names(cases: Sequence[InstanceSpec], source: str) -> None:
    """Load each distinct model x hardware x memory once so a bad name fails before any solve."""
    problems: list[str] = []
    seen: set[tuple] = set()
    for spec in cases:
        key = (
            spec.model,
            spec.hardware,
            spec.kv_memory_name,
            str(spec.chips_per_group),
            spec.workload.weight_dtype,
        )
        if key in seen:
            continue
        seen.add(key)
        try:
            resolve(spec, source=source)
        except PlannerInputError as exc:
            problems += [f"{exc.source}: {p}" for p in exc.problems]
    if problems:
        raise PlannerInputError(source, sorted(set(problems)))


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML (names of models, hardware and memories are checked too)."""
    path = Path(path)
    try:
        spec = SweepSpec.model_validate(read_mapping(path))
    except ValidationError as exc:
        raise PlannerInputError(path, problems_from_validation(exc)) from None
    try:
        check_names(spec.cases(), str(path))
    except PlannerInputError as exc:
        raise PlannerInputError(path, exc.problems) from None
    return spec


def table(results: Sequence[CaseResult]) -> pd.DataFrame:
    """One tidy row per case, sorted by the key columns (stable: the same cases give the same table)."""
    frame = pd.DataFrame([r.row for r in results])
    if frame.empty:
        return frame
    from planner.plans.metrics import CASE_COLUMNS

    frame = frame.drop_duplicates(subset=list(KEY_COLUMNS), keep="first")
    first = [*KEY_COLUMNS, *OUTCOME_COLUMNS, *CASE_COLUMNS]
    rest = sorted(c for c in frame.columns if c not in first and c not in TIMING_COLUMNS)
    columns = (
        [c for c in first if c in frame.columns] + rest + [c for c in TIMING_COLUMNS if c in frame.columns]
    )
    return frame[columns].sort_values(list(KEY_COLUMNS), kind="mergesort").reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """CSV for .csv, Parquet for .parquet (pyarrow), written atomically."""
    path = Path(path)
    if path.suffix == ".csv":
        return write_text_atomic(path, frame.to_csv(index=False))
    if path.suffix == ".parquet":
        import io

        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return write_bytes_atomic(path, buffer.getvalue())
    raise PlannerInputError(str(path), ["--out must end in .csv or .parquet"])


def sweep(
    spec: SweepSpec | str | Path,
    cache: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Run a sweep (a SweepSpec or a sweep YAML path) and return its table."""
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    else:
        check_names(spec.cases(), "sweep")
    results = run_cases(spec.cases(), Cache(cache) if cache else None, workers, scheduler, progress)
    return table(results)
