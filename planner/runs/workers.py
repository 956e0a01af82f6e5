"""Local worker processes: started from a fork server that has the planner imported. Standard library
only, so that a command can start the server (start_fork_server) before its own imports."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import types

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


def quiet_interrupts() -> None:
    """In a worker process: Ctrl-C (sent to the whole process group) ends the worker at once, without a
    traceback; the parent process, which got the same signal, stops the pool and reports the interrupt."""
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))


def start_fork_server() -> None:
    """Start the fork server now (where worker_context uses one), so that it imports the planner while
    the calling command does its own imports and reads its inputs: on 2 cores the two overlap, and the
    first worker forks at once. Does nothing where workers are spawned; harmless if the pool never
    starts (the server ends with this process)."""
    if worker_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()
