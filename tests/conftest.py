"""Shared fixtures: the CLI run in-process, and the check that a bad input gives a clean exit 2."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from planner.cli import app

MAX_ERROR_LINES = 40


@pytest.fixture(scope="session")
def cli() -> Callable[[Sequence[str]], Result]:
    """Run `planner ARGS` in-process; the Result's .output holds stdout and stderr, .stdout stdout only."""
    runner = CliRunner()

    def invoke(args: Sequence[str]) -> Result:
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def check_input_error(result: Result, *needles: str) -> str:
    """A clean input error: exit 2, one short paragraph naming the problem, no traceback; returns it."""
    text = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}, exception {result.exception!r}:\n{text}"
    assert "Traceback" not in text, text
    assert len(text.splitlines()) <= MAX_ERROR_LINES, text
    assert "error:" in text, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text}"
    return text


@pytest.fixture(scope="session")
def input_error() -> Callable[..., str]:
    """`input_error(result, *needles)`: assert a clean exit-2 message containing each needle."""
    return check_input_error


@pytest.fixture(scope="session")
def fuzz_worker():
    """One fuzz worker process for the session (tests/fuzz_harness.py): each case time- and memory-bound."""
    from fuzz_harness import FuzzWorker

    worker = FuzzWorker()
    yield worker
    worker.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    """After a run that fuzzed: cases per input kind, exit codes and failures (written as JSON to
    $PLANNER_FUZZ_REPORT too)."""
    harness = sys.modules.get("fuzz_harness")
    if harness is None or not harness.STATS:
        return
    terminalreporter.section("fuzz summary")
    for line in harness.summary_lines(harness.STATS):
        terminalreporter.write_line(line)
    report = os.environ.get("PLANNER_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({k: dict(v) for k, v in harness.STATS.items()}, indent=1))
