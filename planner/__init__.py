"""LLM inference hardware planner: model graphs, one cost model, placement MILP (Pyomo + HiGHS)."""

from planner.api import sol, write_graph
from planner.catalog import Hardware, load_hardware, load_memory_tech
from planner.model import Model, load_model

__all__ = ["Hardware", "Model", "load_hardware", "load_memory_tech", "load_model", "sol", "write_graph"]
