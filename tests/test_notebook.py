"""The Python API as notebooks and plain scripts use it (issue: `planner.solve` failed on its second call;
`compare` and `sweep` died with BrokenProcessPool without a main guard, from `python -` and from Jupyter).

tests/scripts/notebook_session.py is the session (solve twice, plan frames, sol, sweep and compare with
worker pools, no main guard); it runs here as a script file. The other two ways a notebook or a pipe
runs code, standard input and code exec'd in a fresh `__main__` module (what IPython's `%run` and its
kernel do: the user module replaces sys.modules["__main__"], with `__file__` set for %run), run the part
that starts worker processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from planner.core.fileio import project_root

ROOT = project_root()
SESSION = ROOT / "tests" / "scripts" / "notebook_session.py"
POOL_CELL = textwrap.dedent(
    """
    import planner
    from planner.runs.sweep import SweepSpec
    spec = SweepSpec(models=["llama-3.1-8b"], hardware=["sram-pipeline"], memory=["hbm3e", "novel-kv-dram"],
                     users=[16], context=[2048], min_tokens_per_s=[20], chips_per_group=4, max_groups=2)
    frame = planner.sweep(spec, cache=None, workers=2)
    assert list(frame["status"]) == ["optimal", "optimal"], frame
    print("pool ok")
    """
)


def _run(args: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    assert "BrokenProcessPool" not in done.stderr
    return done.stdout


def test_notebook_session_as_a_script_without_main_guard():
    assert _run([str(SESSION), str(ROOT)]).strip().splitlines()[-1] == "notebook session ok"


def test_worker_pool_from_standard_input():
    """`python -`: __main__ has no file a spawned worker could re-run ('<stdin>')."""
    assert _run(["-"], stdin=POOL_CELL).strip() == "pool ok"


def test_worker_pool_from_a_notebook_cell(tmp_path):
    """Code exec'd in a fresh module installed as __main__ whose __file__ is the code's file, as
    IPython's `%run cell.py` does: a spawned worker would run that file again, top level and all."""
    cell_file = tmp_path / "cell.py"
    cell_file.write_text(POOL_CELL)
    kernel = (
        "import sys, types\n"
        "cell = types.ModuleType('__main__')\n"
        f"cell.__file__ = {str(cell_file)!r}\n"
        "sys.modules['__main__'] = cell\n"
        f"exec(compile(open(cell.__file__).read(), cell.__file__, 'exec'), cell.__dict__)\n"
    )
    assert _run(["-c", kernel]).strip() == "pool ok"


def test_api_names_stay_functions_after_use():
    """planner.solve, .capacity and .sweep called twice each in one process: each call finds the function
    (a lazy import once replaced the package attribute by the submodule of the same name)."""
    import planner
    from planner.problem.instance import load_instance
    from planner.runs.sweep import SweepSpec

    tiny = load_instance(ROOT / "instances" / "llama-3.1-8b_tiny.yaml")
    one_group = tiny.model_copy(update={"max_groups": 1})
    spec = SweepSpec(
        models=["llama-3.1-8b"],
        hardware=["sram-pipeline"],
        memory=["hbm3e"],
        users=[16],
        context=[2048],
        min_tokens_per_s=[20],
        chips_per_group=4,
        max_groups=1,
    )
    for _ in range(2):
        assert planner.solve(one_group).stages == 1
        assert planner.capacity(one_group).max_users > 16
        assert list(planner.sweep(spec, workers=1)["status"]) == ["optimal"]
