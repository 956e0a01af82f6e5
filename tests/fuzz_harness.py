"""Running planner commands for the fuzz tests with a time bound and a memory bound, and counting outcomes.

`FuzzWorker` keeps one worker process (tests/fuzz_worker.py) that has imported the planner once and runs
each case in-process with typer's CliRunner under an address-space limit (RLIMIT_AS); the parent waits at
most `timeout` seconds for each reply and kills the worker when a case hangs (a fresh one starts for the
next case). A case fails on: exit 3 (internal error), any exit code the case does not allow, a traceback
or an uncaught exception, a hang, a crash of the worker, NaN or Infinity in JSON output, or an exit-2
message longer than MAX_LINES or without "error".

`STATS` counts every case per input kind (cases, exit codes, and each kind of failure); the pytest
terminal summary (tests/conftest.py) prints it, and writes it as JSON to $PLANNER_FUZZ_REPORT when set.
"""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("fuzz_worker.py")
MEMORY_MARGIN_MIB = 4096  # address space a case may add to an imported planner (about 650 MB of it); a
# valid solve may need 1.2 GB resident (llama-3.1-8b, --max-groups 4096 splits it into small parts), and HiGHS
# threads reserve address space beyond that: 2 GiB made such a case crash in a 20,000-case run
DEFAULT_TIMEOUT_S = 30.0
MAX_LINES = 40
FAILURES = ("internal error", "hang", "crash", "traceback", "non-finite JSON", "other exit code")

STATS: dict[str, Counter] = defaultdict(Counter)


@dataclass(frozen=True)
class Outcome:
    """What one case did: its exit code (None for a hang or crash) and output, and what went wrong."""

    exit_code: int | None
    output: str  # stdout and stderr
    stdout: str
    failures: tuple[str, ...]
    seconds: float


CASES_PER_WORKER = 500  # a fresh worker after this many cases: the memory bound is per case, not per run


class FuzzWorker:
    """One long-lived worker process; `run` restarts it after a hang or a crash, and every
    CASES_PER_WORKER cases (over a 20,000-case run, a single process's caches and heap fragmentation
    would otherwise eat into the address-space margin each case is given: one MemoryError in such a run
    was of the worker, not of the case, and did not reproduce)."""

    def __init__(self, margin_mib: int = MEMORY_MARGIN_MIB) -> None:
        self.margin_mib = margin_mib
        self.cases = 0
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="fuzz-worker-", suffix=".log", delete=False)

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(self.margin_mib)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=ROOT,
            text=True,
            bufsize=1,
        )
        ready = self._reply(120.0)
        if ready is None or not ready.get("ready"):
            raise RuntimeError(f"the fuzz worker did not start; see {self.log.name}")

    def _reply(self, timeout: float) -> dict | None:
        assert self.proc is not None and self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not readable:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"crash": self.proc.poll()}

    def _cpu_s(self) -> float:
        """CPU seconds the worker has used (user + system, /proc/PID/stat; 0 where /proc is absent)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, AttributeError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def run(
        self,
        args: Sequence[str],
        cwd: str | Path = ROOT,
        timeout: float = DEFAULT_TIMEOUT_S,
        json_files: Sequence[str | Path] = (),
    ) -> dict:
        """The worker's reply for `planner ARGS` run in `cwd`, or {"hang": seconds} / {"crash": code}."""
        if self.cases and self.cases % CASES_PER_WORKER == 0:
            self.stop()
        self.cases += 1
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        request = {
            "args": [str(a) for a in args],
            "cwd": str(cwd),
            "json_files": [str(p) for p in json_files],
        }
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return {"crash": "broken pipe"}
        started = self._cpu_s()
        reply = self._reply(timeout)
        waited = timeout
        # the timeout counts the worker's CPU time, not the wall clock (on a loaded machine a case gets a
        # share of a core): wait on while the case has used less than `timeout` CPU seconds, up to 4x
        while reply is None and waited < 4 * timeout and self._cpu_s() - started < timeout:
            reply = self._reply(timeout / 4)
            waited += timeout / 4
        if reply is None:
            self.stop()
            return {"hang": timeout}
        if "crash" in reply:
            self.stop()
        return reply


def check_case(
    worker: FuzzWorker,
    kind: str | None,
    args: Sequence[str],
    allowed: Sequence[int] = (0, 2),
    cwd: str | Path = ROOT,
    timeout: float = DEFAULT_TIMEOUT_S,
    json_files: Sequence[str | Path] = (),
) -> Outcome:
    """Run one case, count it under `kind` in STATS, and fail (AssertionError) if anything went wrong."""
    started = time.perf_counter()
    reply = worker.run(args, cwd, timeout, json_files)
    seconds = time.perf_counter() - started
    code = reply.get("exit_code")
    output = reply.get("output", "")
    failures = []
    if "hang" in reply:
        failures.append("hang")
    elif "crash" in reply:
        failures.append("crash")
    elif code == 3:
        failures.append("internal error")
    elif code not in allowed:
        failures.append("other exit code")
    if reply.get("uncaught") or "Traceback" in output:
        failures.append("traceback")
    if reply.get("json_problem"):
        failures.append("non-finite JSON" if "non-finite" in reply["json_problem"] else "other exit code")
    if code == 2 and (
        len(output.splitlines()) > MAX_LINES or not any(w in output.lower() for w in ("error", "usage"))
    ):
        failures.append("other exit code")
    stats = STATS[kind] if kind is not None else Counter()  # None: a setup step, not counted
    stats["cases"] += 1
    stats[f"exit {code}" if code is not None else "no exit"] += 1
    for f in failures:
        stats[f] += 1
    stats["seconds"] += seconds
    outcome = Outcome(code, output, reply.get("stdout", ""), tuple(failures), seconds)
    assert not failures, (
        f"{', '.join(failures)}: planner {' '.join(map(str, args))}\n(cwd {cwd}, {seconds:.1f} s)\n"
        f"{reply.get('uncaught', '')}\n{reply.get('json_problem', '')}\n{output[-3000:]}\n"
        f"worker log: {worker.log.name}"
    )
    return outcome


def summary_lines(stats: dict[str, Counter]) -> list[str]:
    """The fuzz summary as text lines: cases and exit codes per input kind, then the failure counts."""
    if not stats:
        return []
    codes = sorted({k for c in stats.values() for k in c if k.startswith("exit ") or k == "no exit"})
    header = f"{'input kind':<22}{'cases':>8}" + "".join(f"{c:>9}" for c in codes) + f"{'seconds':>9}"
    lines = [header]
    total: Counter = Counter()
    for kind in sorted(stats):
        c = stats[kind]
        total.update(c)
        lines.append(
            f"{kind:<22}{c['cases']:>8,}" + "".join(f"{c[k]:>9,}" for k in codes) + f"{c['seconds']:>9.0f}"
        )
    lines.append(
        f"{'all':<22}{total['cases']:>8,}"
        + "".join(f"{total[k]:>9,}" for k in codes)
        + f"{total['seconds']:>9.0f}"
    )
    lines.append("failures: " + ", ".join(f"{f} {total[f]:,}" for f in FAILURES))
    return lines


def limited_run(
    cmd: Sequence[str], timeout: float, memory_bytes: int = 3 * 2**30, **kwargs
) -> subprocess.CompletedProcess:
    """subprocess.run with an address-space limit and a timeout (subprocess.TimeoutExpired past it)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        list(cmd), timeout=timeout, preexec_fn=limit, capture_output=True, text=True, env=env, **kwargs
    )
