"""Running many cases: local worker processes or a dask.distributed cluster."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import sys
import types
from collections.abc import Callable, Iterator, Sequence

from planner.core.errors import PlannerInputError
from planner.problem.instance import InstanceSpec
from planner.runs.cache import Cache, CaseResult, run_case

# ---------------------------------------------------------------------------------------------- many cases

MAX_WORKERS = 256  # local processes; each holds a planner (~250 MB), so more would exhaust memory


PRELOAD = ("planner.runs.preload",)  # what the fork server imports once for every worker


def worker_context() -> multiprocessing.context.BaseContext:
    """How worker processes start: from a fork server where the platform has one (Linux, macOS), else
    spawned (Windows).

    The fork server is a fresh interpreter (started by spawning, so it has none of the caller's threads)
    that imports the planner once (PRELOAD: the solver, the cost model, the unit registry) and forks each
    worker from itself: a worker starts in milliseconds with the planner loaded, instead of importing it
    for ~1.5 s. Plain fork from the caller is not used: the caller may already run threads (HiGHS'
    scheduler after an earlier solve in a notebook, rich's refresh thread), and a forked child inherits
    their locks but not the threads (Python 3.12 warns about it, 3.14 no longer forks by default).

    The server lives as long as the calling process and keeps the planner code it imported: a notebook
    that reloads an edited planner module (autoreload) must restart its kernel before workers see the
    edit (the parent's cache key would already name the new code)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        return context
    return multiprocessing.get_context("spawn")


class WorkerPool(cf.ProcessPoolExecutor):
    """Worker processes (worker_context) that import the planner and never the caller's `__main__`.

    A new worker normally re-runs the parent's `__main__` (its file, or its module under -m) before it
    takes a job. That breaks every way of calling the planner except a guarded script: a script without
    `if __name__ == "__main__":` calls compare() again inside each worker, which dies, and the pool reports
    BrokenProcessPool; `python -` has no file to re-run ('<stdin>'); a notebook's `__main__` is the
    kernel's. Workers only run planner functions on plain data (run_case, max_users), so they need nothing
    from `__main__`: while a process is started (in `submit`, the only place ProcessPoolExecutor starts
    them without max_tasks_per_child), `__main__` is a module with no file and no spec, so the worker's
    bootstrap imports nothing of the caller's.
    """

    def __init__(self, max_workers: int | None = None):
        super().__init__(max_workers=max_workers, mp_context=worker_context(), initializer=quiet_interrupts)

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__, no __spec__
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            sys.modules["__main__"] = main


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


def quiet_interrupts() -> None:
    """In a worker process: Ctrl-C (sent to the whole process group) ends the worker at once, without a
    traceback; the parent process, which got the same signal, stops the pool and reports the interrupt."""
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))


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
