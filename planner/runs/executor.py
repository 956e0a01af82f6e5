"""Running many cases: local worker processes or a dask.distributed cluster."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from planner.core.errors import PlannerInputError
from planner.problem.instance import InstanceSpec
from planner.runs.cache import Cache, CaseResult, run_case
from planner.runs.workers import MAX_WORKERS, WorkerPool

# ---------------------------------------------------------------------------------------------- many cases


@contextlib.contextmanager
def executor(workers: int | None = None, scheduler: str | None = None) -> Iterator[cf.Executor]:
    """Local worker processes (WorkerPool), or the concurrent.futures face of a dask.distributed Client
    at `scheduler`."""
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise PlannerInputError("--workers", [f"{workers:,}: give 1 to {MAX_WORKERS} worker processes"])
    if scheduler is None:
        pool = WorkerPool(workers)
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
Job = tuple[
    Callable[..., Any], tuple, Callable[[Any], None]
]  # (function, its arguments, called with its result)


def run_cases(
    cases: Sequence[InstanceSpec],
    cache: Cache | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
    first: Sequence[Job] = (),
) -> list[CaseResult]:
    """Solve every case (cached ones are read, not solved), in parallel; results in the order of `cases`.

    Each finished case is cached at once by this process, so a KeyboardInterrupt loses only the cases in
    flight. With one worker and no scheduler, cases run in this process (no pool to start).

    `first`: other jobs for the same workers (a study's max-users searches, the longest first), submitted
    before the cases, so that the cases fill the workers while the long jobs run instead of waiting for
    a pool of their own; each job's callback gets its result as it finishes (in this process).
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

    if workers == 1 and scheduler is None:
        for fn, args, then in first:
            then(fn(*args))
        for spec in todo.values():
            done(CaseResult.from_json(run_case(spec.model_dump(mode="json"))))
    elif todo or first:
        with executor(workers, scheduler) as pool:
            jobs = {pool.submit(fn, *args): then for fn, args, then in first}
            futures = list(jobs) + [
                pool.submit(run_case, spec.model_dump(mode="json")) for spec in todo.values()
            ]
            try:
                for future in cf.as_completed(futures):
                    if future in jobs:
                        jobs[future](future.result())
                    else:
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
