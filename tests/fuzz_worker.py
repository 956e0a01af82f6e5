"""The process the fuzz tests run planner commands in: one JSON request per line on stdin, one JSON reply per
line on stdout (see fuzz_harness.FuzzWorker). Everything a command may import is imported first; then the
address space is capped at what that takes plus a margin (argv[1], in MiB), so a case that allocates more
fails with MemoryError (an internal error, exit 3) instead of exhausting the machine.
"""

from __future__ import annotations

import json
import os
import resource
import sys


def _vm_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _json_problem(text: str) -> str:
    """'' if `text` is empty or valid JSON with finite numbers only; else what is wrong with it."""
    if not text.strip():
        return ""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-finite number {constant} in JSON output")

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError as exc:
        return str(exc)[:200]
    return ""


def main() -> None:
    margin = int(sys.argv[1]) * 2**20
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # replies; the commands' output is captured
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # a stray write to fd 1 cannot corrupt the channel
    import matplotlib

    matplotlib.use("Agg")
    from typer.testing import CliRunner

    import planner.api  # noqa: F401
    import planner.placement.solve  # noqa: F401
    import planner.render.plots  # noqa: F401
    import planner.runs.sweep  # noqa: F401
    import planner.studies.calibration  # noqa: F401
    import planner.studies.compare  # noqa: F401
    import planner.studies.deep_pipeline  # noqa: F401
    import planner.studies.kv_demand  # noqa: F401
    from planner.cli import app
    from planner.cli.base import STATE

    limit = _vm_bytes() + margin
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    runner = CliRunner()
    channel.write(json.dumps({"ready": True, "limit_bytes": limit}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        os.chdir(request["cwd"])
        STATE.clear()
        STATE["debug"] = False
        result = runner.invoke(app, request["args"])
        exception = result.exception
        uncaught = exception is not None and not isinstance(exception, SystemExit)
        problems = [_json_problem(result.stdout)] if "--json" in request["args"] else []
        problems += [
            _json_problem(open(p).read()) for p in request.get("json_files", []) if os.path.isfile(p)
        ]
        output = result.output
        reply = {
            "exit_code": result.exit_code,
            "output": output if len(output) <= 20_000 else output[:2_000] + "\n[...]\n" + output[-10_000:],
            "stdout": result.stdout[:20_000],
            "uncaught": f"{type(exception).__name__}: {exception}"[:2_000] if uncaught else "",
            "json_problem": "; ".join(p for p in problems if p),
        }
        channel.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
