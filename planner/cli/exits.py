"""How the `planner` process ends: its exit codes, and the exit without the interpreter's teardown.
Standard library only (planner.cli imports it before anything else)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

INTERRUPTED = 130  # 128 + SIGINT, what shells report for a process stopped by Ctrl-C
BROKEN_PIPE = 141  # 128 + SIGPIPE: what shells report for a command whose reader went away (`| head`)


def exit_now(code: object) -> NoReturn:
    """End the process with `code` (as SystemExit reads it: None is 0, an int is itself, anything else
    is printed on stderr and gives 1), skipping the interpreter's teardown of every module and object:
    ~0.2 s after a solve with Pyomo, pandas and HiGHS loaded, about a fifth of a small command's wall time
    (measured by python -m planner.bench). Everything a normal exit does that a user could see is still
    done: stdout and stderr are flushed and the atexit handlers run (logging, multiprocessing's shutdown of
    the fork server). Every file the planner writes is closed by then (written inside `with` blocks). While
    a non-daemon thread is still running, the ordinary exit is taken instead, which waits for it."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away after the command's last write
        code = BROKEN_PIPE
    except (OSError, ValueError):  # stdout closed or unwritable: nothing more to lose
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    atexit._run_exitfuncs()
    os._exit(code)
