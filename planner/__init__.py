"""LLM inference hardware planner: model graphs, one cost model, placement MILP (Pyomo + HiGHS).

The public API is loaded lazily (PEP 562), so `import planner` is cheap and `planner --help` does not
import Pyomo, pandas or matplotlib. Names resolve to planner.api and the catalog, model and plan modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "calibrate": "planner.api",
    "capacity": "planner.api",
    "check_measurements": "planner.api",
    "compare": "planner.api",
    "evaluate": "planner.api",
    "list_hardware": "planner.api",
    "list_memory": "planner.api",
    "list_models": "planner.api",
    "plan_tables": "planner.api",
    "load_problem": "planner.api",
    "sol": "planner.api",
    "solve": "planner.api",
    "sweep": "planner.api",
    "write_graph": "planner.api",
    "Hardware": "planner.hardware.catalog",
    "load_hardware": "planner.hardware.catalog",
    "load_memory_tech": "planner.hardware.catalog",
    "Model": "planner.model.graph",
    "load_model": "planner.model.graph",
    "Plan": "planner.plans.plan",
    "load_plan": "planner.plans.plan",
    "load_instance": "planner.problem.instance",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from planner.api import (  # noqa: F401
        calibrate,
        capacity,
        check_measurements,
        compare,
        evaluate,
        list_hardware,
        list_memory,
        list_models,
        load_problem,
        plan_tables,
        sol,
        solve,
        sweep,
        write_graph,
    )


def __getattr__(name: str) -> Any:
    """Load a public name on first use and keep it (a submodule never shadows an API function: no
    subpackage of planner is named like one)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'planner' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
