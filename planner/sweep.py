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

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import itertools
import json
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from planner.errors import InfeasibleError, PlannerInputError, problems_from_validation
from planner.fileio import read_mapping, write_bytes_atomic, write_text_atomic
from planner.instance import InstanceSpec, SolverSpec, resolve

CACHE_VERSION = 2
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    chips_per_group: int | None = Field(default=None, gt=0, le=4096)
    max_groups: int = Field(default=128, gt=0, le=100_000)
    stages: list[Annotated[int, Field(gt=0, le=100_000)]] | None = Field(
        default=None, description="fixed S values (null: enumerate S)"
    )
    solver: SolverSpec = SolverSpec()
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"

    _lists = field_validator(
        "models", "hardware", "memory", "users", "context", "min_tokens_per_s", "stages", mode="before"
    )(_listify)

    @field_validator("solver")
    @classmethod
    def _one_way_to_fix_stages(cls, solver: SolverSpec) -> SolverSpec:
        if solver.stages is not None:
            raise ValueError("give the fixed stage counts as the top-level list `stages`, not solver.stages")
        return solver

    def cases(self) -> list[InstanceSpec]:
        """Every combination as a validated instance, in a fixed order; all problems reported at once."""
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
        key = (spec.model, spec.hardware, spec.kv_memory, spec.chips_per_group, spec.workload.weight_dtype)
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


# ---------------------------------------------------------------------------------------------- one case


@dataclass(frozen=True)
class CaseResult:
    """One solved case: the flat table row and the placement (groups and tier splits) when feasible."""

    spec: InstanceSpec
    row: dict[str, Any]
    plan: dict[str, Any] | None

    @property
    def feasible(self) -> bool:
        return self.row["status"] not in ("infeasible", "error")

    @property
    def proven(self) -> bool:
        """False for an infeasible verdict reached with some S stopped by the time limit."""
        return bool(self.row.get("proven", True))

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": CACHE_VERSION,
                "digest": self.spec.digest(),
                "spec": self.spec.model_dump(mode="json"),
                "row": self.row,
                "plan": self.plan,
                "inputs": inputs_fingerprint(self.spec),
            },
            sort_keys=True,
        )

    @staticmethod
    def from_json(text: str) -> CaseResult:
        data = json.loads(text)
        return CaseResult(InstanceSpec.model_validate(data["spec"]), data["row"], data["plan"])


def key_row(spec: InstanceSpec) -> dict[str, Any]:
    """The case's coordinates (the KEY_COLUMNS)."""
    w = spec.workload
    return {
        "model": spec.model,
        "hardware": spec.hardware,
        "memory": spec.kv_memory or "",
        "chips_per_group": spec.chips_per_group or 0,
        "max_groups": spec.max_groups,
        "fixed_stages": spec.solver.stages or 0,
        "in_flight": w.micro_batches or 0,  # 0: min(users, S), the deep pipeline
        "users": w.users,
        "context": w.context,
        "min_tokens_per_s": float(w.min_tokens_per_s),
    }


def run_case(spec_data: dict[str, Any]) -> str:
    """Solve one case (a worker's job): JSON of its CaseResult. Infeasible is a result; errors are rows.

    Takes and returns plain JSON-able data so any executor (processes, dask workers) can carry it.
    """
    from planner.plan import Plan
    from planner.solve import solve_problem
    from planner.studies import case_row

    spec = InstanceSpec.model_validate(spec_data)
    row = key_row(spec)
    records: dict[int, Any] = {}
    started = time.perf_counter()
    try:
        problem = resolve(spec)
        plan: Plan = solve_problem(problem, lambda s, record: records.__setitem__(s, record))
    except InfeasibleError as exc:
        stopped = sorted(s for s, r in records.items() if r.status in ("time_limit", "error"))
        row |= {
            "status": "infeasible",
            "binding": exc.binding,
            "explanation": exc.explanation,
            "proven": not stopped,
            "solve_s": time.perf_counter() - started,
        }
        return CaseResult(spec, row, None).to_json()
    except Exception as exc:  # a bug or a solver failure: report it in the table, do not cache it
        row |= {"status": "error", "binding": "", "explanation": f"{type(exc).__name__}: {exc}"}
        row["solve_s"] = time.perf_counter() - started
        return CaseResult(spec, row, None).to_json()
    if plan.solver.status == "interrupted":  # solve_problem keeps a partial best on Ctrl-C: not a result
        raise KeyboardInterrupt
    row |= {"binding": "", "explanation": "", "proven": True}
    row |= case_row(problem, plan)
    row["solve_s"] = time.perf_counter() - started
    placement = plan.model_dump(mode="json", include={"stages", "groups", "weight_split", "kv_split"})
    return CaseResult(spec, row, placement).to_json()


RESULT_MODULES = (
    "cost",
    "milp",
    "exhaustive",
    "solve",
    "plan",
    "model",
    "catalog",
    "instance",
    "units",
    "studies",
)


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def inputs_fingerprint(spec: InstanceSpec) -> str:
    """Hash of everything besides the instance that a result depends on: the planner modules that compute
    it, the model config, the hardware file and the memory technologies. A cached result whose
    fingerprint differs (the cost model, the MILP or a datasheet changed) is solved again."""
    from planner.catalog import HARDWARE_DIR, MEMORY_DIR
    from planner.model import resolve_config_path

    package = Path(__file__).resolve().parent
    paths = [package / f"{m}.py" for m in RESULT_MODULES]
    paths.append(resolve_config_path(spec.model))
    hardware = HARDWARE_DIR / f"{spec.hardware}.yaml"
    paths.append(hardware if hardware.is_file() else Path(spec.hardware))
    paths += sorted(MEMORY_DIR.glob("*.yaml"))
    if spec.kv_memory and Path(spec.kv_memory).is_file():
        paths.append(Path(spec.kv_memory))
    digest = hashlib.sha256()
    for path in paths:
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{_file_digest(str(path), stat.st_mtime_ns, stat.st_size)};".encode())
    return digest.hexdigest()[:16]


class Cache:
    """Case results as DIR/<instance digest>.json. A file is used only if its format version, instance
    and inputs fingerprint (code and data files, see inputs_fingerprint) all match; else it is redone."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, spec: InstanceSpec) -> Path:
        return self.directory / f"{spec.digest()}.json"

    def get(self, spec: InstanceSpec) -> CaseResult | None:
        path = self.path(spec)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("version") != CACHE_VERSION or data.get("spec") != spec.model_dump(mode="json"):
            return None
        if data.get("inputs") != inputs_fingerprint(spec):
            return None
        return CaseResult(spec, data["row"], data["plan"])

    def put(self, result: CaseResult) -> None:
        if result.row["status"] != "error":
            write_text_atomic(self.path(result.spec), result.to_json())


def solve_case(spec: InstanceSpec, cache: Cache | None = None) -> CaseResult:
    """One case in this process, through the cache."""
    hit = cache.get(spec) if cache is not None else None
    if hit is not None:
        return hit
    result = CaseResult.from_json(run_case(spec.model_dump(mode="json")))
    if cache is not None:
        cache.put(result)
    return result


# ---------------------------------------------------------------------------------------------- many cases


@contextlib.contextmanager
def executor(workers: int | None = None, scheduler: str | None = None) -> Iterator[cf.Executor]:
    """Local worker processes, or the concurrent.futures face of a dask.distributed Client at `scheduler`."""
    if scheduler is None:
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    from distributed import Client

    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise PlannerInputError(
            "--dask", [f"cannot reach the dask scheduler at {scheduler}: {exc}"]
        ) from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()


Progress = Callable[[CaseResult, bool], None]  # (result, came from the cache)


def run_cases(
    cases: Sequence[InstanceSpec],
    cache: Cache | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> list[CaseResult]:
    """Solve every case (cached ones are read, not solved), in parallel; results in the order of `cases`.

    Each finished case is cached at once by this process, so a KeyboardInterrupt loses only the cases in
    flight. With one worker and no scheduler, cases run in this process (no pool to start).
    """
    results: dict[str, CaseResult] = {}
    todo: dict[str, InstanceSpec] = {}
    for spec in cases:
        digest = spec.digest()
        hit = cache.get(spec) if cache is not None else None
        if hit is not None:
            results[digest] = hit
            if progress:
                progress(hit, True)
        elif digest not in results:
            todo[digest] = spec

    def done(result: CaseResult) -> None:
        if cache is not None:
            cache.put(result)
        results[result.spec.digest()] = result
        if progress:
            progress(result, False)

    if todo and workers == 1 and scheduler is None:
        for spec in todo.values():
            done(CaseResult.from_json(run_case(spec.model_dump(mode="json"))))
    elif todo:
        with executor(workers, scheduler) as pool:
            futures = [pool.submit(run_case, spec.model_dump(mode="json")) for spec in todo.values()]
            try:
                for future in cf.as_completed(futures):
                    done(CaseResult.from_json(future.result()))
            except BaseException as exc:
                for future in futures:
                    future.cancel()
                if scheduler is not None and "deserializ" in str(exc):
                    raise PlannerInputError(
                        "--dask",
                        [
                            f"the workers of {scheduler} cannot load the planner ({str(exc).splitlines()[0]}); "
                            "install this project in the workers' environment (pip install -e .)"
                        ],
                    ) from None
                raise
    return [results[spec.digest()] for spec in cases]


def table(results: Sequence[CaseResult]) -> pd.DataFrame:
    """One tidy row per case, sorted by the key columns (stable: the same cases give the same table)."""
    frame = pd.DataFrame([r.row for r in results])
    if frame.empty:
        return frame
    from planner.studies import CASE_COLUMNS

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
