"""LLM inference hardware planner: model graphs, one cost model, placement MILP (Pyomo + HiGHS)."""

from planner.api import (
    calibrate,
    capacity,
    check_measurements,
    compare,
    evaluate,
    load_problem,
    sol,
    solve,
    sweep,
    write_graph,
)
from planner.catalog import Hardware, load_hardware, load_memory_tech
from planner.instance import load_instance
from planner.model import Model, load_model
from planner.plan import Plan, load_plan

__all__ = [
    "Hardware",
    "Model",
    "Plan",
    "calibrate",
    "capacity",
    "check_measurements",
    "compare",
    "evaluate",
    "load_hardware",
    "load_instance",
    "load_memory_tech",
    "load_model",
    "load_plan",
    "load_problem",
    "sol",
    "solve",
    "sweep",
    "write_graph",
]
