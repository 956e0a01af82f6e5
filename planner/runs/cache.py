"""One solved case and the cache of case results (one JSON file per instance digest)."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from planner.core.errors import InfeasibleError, PlannerInputError
from planner.core.fileio import json_text, read_text, write_text_atomic
from planner.core.schema import Strict
from planner.placement.explain import UNEXPLAINED
from planner.problem.instance import InstanceSpec
from planner.problem.problem import instance_files, resolve

CACHE_VERSION = 2


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
        """False for an infeasible verdict reached with some S stopped by the time limit, and for an
        error (a solver failure or a bug is no verdict)."""
        return self.row["status"] != "error" and bool(self.row.get("proven", True))

    def to_json(self) -> str:
        return json_text(
            {
                "version": CACHE_VERSION,
                "digest": self.spec.digest(),
                "spec": self.spec.model_dump(mode="json"),
                "row": self.row,
                "plan": self.plan,
                "inputs": inputs_fingerprint(self.spec),
            },
            indent=None,
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
        "memory": spec.kv_memory_name,
        "chips_per_group": (
            ",".join(map(str, spec.chips_per_group))
            if isinstance(spec.chips_per_group, list)
            else spec.chips_per_group or 0
        ),
        "max_groups": spec.max_groups,
        "fixed_stages": spec.solver.stages or 0,
        "in_flight": w.micro_batches or 0,  # 0: min(users, S), the deep pipeline
        "users": w.users,
        "context": w.context,
        "min_tokens_per_s": float(w.min_tokens_per_s),
    }


def run_case(spec_data: dict[str, Any], explain: bool = True, proven_infeasible: bool = False) -> str:
    """Solve one case (a worker's job): JSON of its CaseResult. Infeasible is a result; errors are rows.

    Takes and returns plain JSON-able data so any executor (processes, dask workers) can carry it.
    `proven_infeasible`: a feasibility probe of this instance has proven it has no plan (planner.
    studies.capacity): only its reason is computed (planner.placement.solve.explain_proven_infeasible),
    the row the same as the full solve's (its solve_s aside).
    """
    from planner.placement.solve import explain_proven_infeasible, solve_problem
    from planner.plans.metrics import case_row
    from planner.plans.plan import Plan

    spec = InstanceSpec.model_validate(spec_data)
    row = key_row(spec)
    records: dict[int, Any] = {}
    started = time.perf_counter()
    try:
        problem = resolve(spec)
        if proven_infeasible:
            raise explain_proven_infeasible(problem)
        plan: Plan = solve_problem(problem, lambda s, record: records.__setitem__(s, record), explain)
    except InfeasibleError as exc:
        stopped = sorted(s for s, r in records.items() if r.status in ("time_limit", "error"))
        row |= {
            "status": "infeasible",
            "binding": exc.binding,
            "explanation": exc.explanation,
            "proven": not stopped,
            "explained": exc.binding != UNEXPLAINED,
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
    row |= case_row(problem, plan, one_batch=not spec.solver.any_plan)  # a verdict: its plan is a witness
    row["solve_s"] = time.perf_counter() - started
    placement = plan.model_dump(mode="json", include={"stages", "groups", "weight_split", "kv_split"})
    if plan.instance.core_cuts:  # the parts its groups cut (planner.placement.packing)
        placement["core_cuts"] = plan.instance.core_cuts
    return CaseResult(spec, row, placement).to_json()


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _digest_of(path: Path) -> str:
    stat = path.stat()
    return _file_digest(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of every module of the planner package (relative path and content): any code change, a moved
    module included, invalidates cached results."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(f"{path.relative_to(package).as_posix()}:{_digest_of(path)};".encode())
    return digest.hexdigest()


def inputs_fingerprint(spec: InstanceSpec) -> str:
    """Hash of everything besides the instance that a result depends on: the planner's code and the
    content of every file the instance references (model config, hardware file, and each memory
    technology file its tiers use, shipped or given by path). A cached result whose fingerprint differs is
    solved again."""
    digest = hashlib.sha256(code_fingerprint().encode())
    for path in instance_files(spec):
        digest.update(f"{path.as_posix()}:{_digest_of(path)};".encode())
    return digest.hexdigest()[:16]


class Cache:
    """Case results as DIR/<instance digest>.json. A file is used only if its format version, instance
    and inputs fingerprint (code and data files, see inputs_fingerprint) all match; else it is redone."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, spec: InstanceSpec) -> Path:
        return self.directory / f"{spec.digest()}.json"

    def get(self, spec: InstanceSpec, explained: bool = True) -> CaseResult | None:
        """The cached result of `spec`, or None (a miss: solve it) when there is none or the file is not
        one this code wrote for this spec and these inputs: unreadable, not JSON, JSON of another shape
        (a list, null, a row without status or of wrong types), another version, spec or fingerprint.
        With `explained`, an infeasible result cached without its reason counts as missing."""
        path = self.path(spec)
        try:
            data = json.loads(read_text(path))
        except (PlannerInputError, ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or not _usable_row(data.get("row"), spec):
            return None
        if data.get("version") != CACHE_VERSION or data.get("spec") != spec.model_dump(mode="json"):
            return None
        plan = data.get("plan")  # a placement exactly for the feasible cases
        if (plan is None) != (data["row"]["status"] == "infeasible") or not (
            plan is None or _usable_placement(plan)
        ):
            return None
        if data.get("inputs") != inputs_fingerprint(spec):
            return None
        if explained and not data["row"].get("explained", True):
            return None
        return CaseResult(spec, data["row"], plan)

    def put(self, result: CaseResult) -> None:
        if result.row["status"] != "error":
            write_text_atomic(self.path(result.spec), result.to_json())


CACHED_STATUSES = ("optimal", "time_limit", "infeasible")  # the rows Cache.put keeps (not "error")
_TEXT_COLUMNS = ("status", "binding", "explanation", "tiers", "kv_tier")
_FLAG_COLUMNS = ("proven", "one_mb_meets_floor", "explained")
_OPTIONAL_COLUMNS = ("gap", "memory_usd", "memory_usd_per_user")  # a number or None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _usable_row(row: Any, spec: InstanceSpec) -> bool:
    """Whether `row` has the shape run_case writes for `spec`: its key columns, a cached status, and every
    column of its kind (text, flag or finite number; all of planner.plans.metrics.CASE_COLUMNS for a
    feasible case)."""
    from planner.plans.metrics import CASE_COLUMNS, ONE_BATCH_COLUMNS

    if not isinstance(row, dict) or row.get("status") not in CACHED_STATUSES:
        return False
    keys = key_row(spec)
    if any(row.get(k) != v or type(row.get(k)) is bool for k, v in keys.items()):
        return False
    required = ("binding", "explanation", "proven", "solve_s")
    required += CASE_COLUMNS if row["status"] != "infeasible" else ()
    if any(k not in row for k in required):
        return False
    for k, v in row.items():
        if k in keys or (v is None and k in ONE_BATCH_COLUMNS):  # empty in a verdict's row (case_row)
            continue
        if k in _TEXT_COLUMNS:
            ok = isinstance(v, str)
        elif k in _FLAG_COLUMNS:
            ok = isinstance(v, bool)
        else:
            ok = _is_number(v) or (v is None and k in _OPTIONAL_COLUMNS)
        if not ok:
            return False
    return True


def _usable_placement(plan: Any) -> bool:
    """Whether a cached placement has the shape run_case writes (stages, groups and the two splits)."""
    try:
        _Placement.model_validate(plan)
    except ValidationError:
        return False
    return True


class _Placement(Strict):
    stages: int = Field(gt=0)
    groups: list[list[str]]
    weight_split: dict[str, dict[str, float]]
    kv_split: dict[str, dict[str, float]]
    core_cuts: dict[str, float] | None = None  # the core parts its groups cut (planner.placement.packing)


def solve_case(
    spec: InstanceSpec, cache: Cache | None = None, explain: bool = True, proven_infeasible: bool = False
) -> CaseResult:
    """One case in this process, through the cache (see run_case for `explain` and `proven_infeasible`)."""
    hit = cache.get(spec, explain) if cache is not None else None
    if hit is not None:
        return hit
    result = CaseResult.from_json(run_case(spec.model_dump(mode="json"), explain, proven_infeasible))
    if cache is not None:
        cache.put(result)
    return result
