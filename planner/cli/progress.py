"""Progress of long work on stderr, the same for every command (solve, capacity, compare, sweep, studies).

On a terminal: a rich bar (with a total) or a spinner (without), cleared when done. Otherwise (a log file,
a pipe, CI): plain lines, so a log shows that work goes on and how far it is: one when the work starts,
one at every 10% of the total, one every PLANNER_PROGRESS_EVERY_S seconds (default 30) even while
nothing finishes, and one at the end. Each line says done/total, the percentage, the elapsed time and the
ETA (elapsed x remaining / done), and the last step's label:

    compare: 12/30 (40%), elapsed 0:01:23, ETA 0:02:05 (last: max users)

`--quiet` silences both.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType

from planner.cli.base import err_console

EVERY_S = 30.0
STEP_FRACTION = 0.1  # a plain line at every 10% of the total


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressReport:
    """A context manager: `advance(label)` counts a finished step, `note(label)` reports one without
    counting (work of unknown total, such as the stage counts of a solve)."""

    def __init__(self, description: str, total: int | None = None, quiet: bool = False):
        self.description = description
        self.total = total if total and total > 0 else None
        self.quiet = quiet
        self.done = 0
        self.label = ""
        self.started = time.monotonic()
        self.every_s = float(os.environ.get("PLANNER_PROGRESS_EVERY_S", EVERY_S))
        self.terminal = err_console.is_terminal
        self._bar = None
        self._task = None
        self._next_share = STEP_FRACTION
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------------ context

    def __enter__(self) -> ProgressReport:
        self.started = time.monotonic()
        if self.quiet:
            return self
        if self.terminal:
            self._start_bar()
        else:
            self._line("started")
            self._ticker = threading.Thread(target=self._tick, name="planner-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        if self._bar is not None:
            self._bar.stop()
        elif not self.quiet and kind is None:
            self._line("done, " + self.status())

    # ------------------------------------------------------------------ reporting

    def advance(self, label: str = "", steps: int = 1) -> None:
        """`steps` more steps finished; `label` says what the last one was."""
        with self._lock:
            self.done += steps
            self.label = label
            due = self.total is not None and self._next_share * self.total <= self.done < self.total
            while self.total is not None and self.done >= self._next_share * self.total:
                self._next_share += STEP_FRACTION
        self._show(due)

    def note(self, label: str) -> None:
        """Report where the work is without counting a step (shown on the next line or bar refresh)."""
        with self._lock:
            self.label = label
        self._show(False)

    def status(self) -> str:
        """done/total (share), elapsed, ETA and the last label, as a plain line says it."""
        elapsed = time.monotonic() - self.started
        if self.total is None:
            text = f"{self.done} step(s), elapsed {_clock(elapsed)}"
        else:
            text = (
                f"{self.done}/{self.total} ({100 * self.done / self.total:.0f}%), elapsed {_clock(elapsed)}"
            )
            if 0 < self.done < self.total:
                text += f", ETA {_clock(elapsed * (self.total - self.done) / self.done)}"
        return text + (f" (last: {self.label})" if self.label else "")

    # ------------------------------------------------------------------ internals

    def _show(self, line_due: bool) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            description = f"{self.description} {self.label}".strip()
            self._bar.update(self._task, completed=self.done, description=description)
        elif line_due:
            self._line(self.status())

    def _line(self, text: str) -> None:
        with self._lock:
            sys.stderr.write(f"{self.description}: {text}\n")
            sys.stderr.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            self._line(self.status())

    def _start_bar(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self.total is None:
            columns = [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
        else:
            columns = [
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            ]
        self._bar = Progress(*columns, console=err_console, transient=True)
        self._task = self._bar.add_task(self.description, total=self.total)
        self._bar.start()
