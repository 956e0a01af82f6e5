"""The package's layout holds: no import cycle between planner modules (imports inside functions
included: a lazy import is still a dependency), and the light commands import no heavy library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "planner"


def import_graph() -> nx.DiGraph:
    """planner module -> the planner modules it imports (anywhere in its file)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("planner"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    graph.add_edge(name, sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                graph.add_edges_from((name, a.name) for a in node.names if a.name.startswith("planner"))
    graph.remove_edges_from(nx.selfloop_edges(graph))
    return graph


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    cycles = list(nx.simple_cycles(graph))
    assert cycles == [], [" -> ".join(c) for c in cycles[:5]]


def test_help_and_model_info_import_no_heavy_library():
    """`planner --help` and `planner model info` load neither Pyomo nor pandas nor matplotlib, nor
    networkx (model info counts the graph's nodes without building it: planner.model.graph.load_model_facts)."""
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom planner.cli import app\n"
        "r = CliRunner().invoke(app, ['model', 'info', 'llama-3.1-8b']); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('pyomo', 'pandas', 'matplotlib', 'networkx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_a_solve_the_search_places_itself_loads_no_pyomo():
    """Pyomo is loaded only when the MILP is built (planner.placement.milp): the tiny instance's optimum is
    placed by the search itself (its plan reports method milp and the evaluator passes it), so its solve
    never imports Pyomo; `--method pyomo` does, and gives the same J/token."""
    code = (
        "import sys\nfrom planner.api import solve\nfrom planner.problem.instance import load_instance\n"
        "spec = load_instance('instances/llama-3.1-8b_tiny.yaml')\n"
        "a = solve(spec); before = 'pyomo' in sys.modules\n"
        "b = solve(spec.model_copy(update={'solver': spec.solver.model_copy(update={'method': 'pyomo'})}))\n"
        "print(before, 'pyomo' in sys.modules, abs(a.solver.objective / b.solver.objective - 1) < 1e-6)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"], out.stdout
