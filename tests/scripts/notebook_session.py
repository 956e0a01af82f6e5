# The Python API used the way a notebook uses it: top-level code, no `if __name__ == "__main__":` guard,
# the same functions called twice in one process, worker pools started from here. tests/test_notebook.py
# runs this file as a script, from standard input (`python -`) and as a notebook cell (exec in a fresh
# `__main__`); any failure raises, and the last line printed is "notebook session ok".
# Cases are tiny (llama-3.1-8b on at most 3 groups of 4 SRAM-pipeline chips): about 12 s on 2 cores, most
# of it the workers' import of the planner.
import math
import sys

import planner
from planner.runs.sweep import SweepSpec

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
TINY = f"{ROOT}/instances/llama-3.1-8b_tiny.yaml"

first = planner.solve(TINY)
second = planner.solve(TINY)  # the second call once found a submodule where the function was
assert callable(planner.solve) and callable(planner.capacity) and callable(planner.sweep)
assert math.isclose(first.solver.objective, second.solver.objective, rel_tol=1e-9)

nodes, groups = first.to_frame(), first.groups_frame()
assert len(nodes) == 66 and set(nodes["group"]) == set(range(first.stages))
assert len(groups) == first.stages and (groups["nodes"].sum() == 66)

sol = planner.sol("llama-3.1-8b", "h100-sxm", users=[1, 8], context=4096)
assert list(sol["users"]) == [1, 8] and (sol["joules_per_token"] > 0).all()

grid = dict(
    models=["llama-3.1-8b"],
    hardware=["sram-pipeline"],
    memory=["hbm3e", "novel-kv-dram"],
    context=[2048],
    min_tokens_per_s=[20],
    chips_per_group=4,
    max_groups=3,
)
table = planner.sweep(SweepSpec(users=[16, 64], **grid), cache=None, workers=2)  # a pool of 2 processes
assert list(table["status"]) == ["optimal"] * 4, table[["memory", "users", "status"]]

comparison = planner.compare(
    "llama-3.1-8b",
    "sram-pipeline",
    ["hbm3e", "novel-kv-dram"],
    users=[16],
    context=2048,
    min_tokens_per_s=20,
    chips_per_group=4,
    max_groups=1,  # one S per solve: the searches stay short
    cache=None,
    workers=2,  # the cases, then two capacity searches, in pools of two processes
)
assert list(comparison.maxima["memory"]) == ["hbm3e", "novel-kv-dram"]
assert (comparison.maxima["max_users"] >= 16).all()

print("notebook session ok")
