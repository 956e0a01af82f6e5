"""Solving whole instances: the S enumeration, the final Pyomo placement, interruption, time limits,
determinism, infeasibility explanations, and metamorphic checks that follow from the cost model."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

import planner.placement.solve as solve_module
from planner.api import load_problem
from planner.cli import app
from planner.cost.pipeline import pipeline_cost
from planner.placement.solve import solve_problem
from planner.plans.plan import evaluate
from planner.problem.instance import spec_from_flags

runner = CliRunner()
TINY = "instances/llama-3.1-8b_tiny.yaml"
WALL_CLOCK = ("build_s", "solve_s")


def without_wall_clock(data: dict) -> dict:
    """A plan dict minus its wall-clock fields (the only fields two runs may differ in)."""
    solver = {k: v for k, v in data["solver"].items() if k not in WALL_CLOCK}
    solver["per_stage"] = {
        s: {k: v for k, v in r.items() if k != "solve_s"} for s, r in solver["per_stage"].items()
    }
    return {**data, "solver": solver}


@pytest.fixture(scope="module")
def tiny_plan():
    return solve_problem(load_problem(TINY))


def test_milp_equals_exhaustive_on_the_tiny_instance(tiny_plan):
    """The exhaustive reference enumerates all C(65, S-1) contiguous splits for S <= 3 with an LP per split."""
    spec = load_problem(TINY).spec
    reference = solve_problem(
        load_problem(
            spec.model_copy(update={"solver": spec.solver.model_copy(update={"method": "exhaustive"})})
        )
    )
    assert tiny_plan.solver.objective == pytest.approx(reference.solver.objective, rel=1e-6)
    assert tiny_plan.stages == reference.stages


def test_final_plan_is_the_searchs_checked_placement_and_evaluates_to_its_objective(tiny_plan):
    """The search's own placement passes the evaluator's check, so it is the plan (solve.final_placement;
    the Pyomo MILP places it only when the check fails, tests/test_placement.py)."""
    assert "placement by the search's slice LPs" in tiny_plan.solver.message
    result = evaluate(load_problem(TINY), tiny_plan)
    assert result.feasible
    assert result.cost.joules_per_token == pytest.approx(tiny_plan.solver.objective, rel=1e-6)
    assert set(tiny_plan.solver.per_stage) == {1, 2, 3}


def test_same_instance_same_plan_byte_for_byte(tiny_plan, tmp_path):
    again = solve_problem(load_problem(TINY))
    a = yaml.safe_dump(without_wall_clock(tiny_plan.to_dict()), sort_keys=False)
    b = yaml.safe_dump(without_wall_clock(again.to_dict()), sort_keys=False)
    assert a == b


def test_ctrl_c_keeps_the_best_plan_found(monkeypatch, tmp_path):
    """Ctrl-C while the second S is being solved: the first S's plan is returned (status interrupted)
    and written out."""
    real = solve_module.solve_stage
    calls: list[int] = []

    def interrupt_at_second(problem, stages, *args, **kwargs):
        calls.append(stages)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(problem, stages, *args, **kwargs)

    monkeypatch.setattr(solve_module, "solve_stage", interrupt_at_second)
    monkeypatch.setattr(solve_module, "stage_bounds", lambda problem: {})  # solve every S, no pruning
    out = tmp_path / "plan.yaml"
    result = runner.invoke(app, ["solve", TINY, "--method", "exhaustive", "--out", str(out)])
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output
    saved = yaml.safe_load(out.read_text())
    assert saved["solver"]["status"] == "interrupted" and saved["stages"] == calls[0]


def test_time_limit_without_any_plan_says_so():
    result = runner.invoke(app, ["solve", TINY, "--time-limit", "1e-9"])
    assert result.exit_code == 1, result.output
    assert "time limit" in result.output and "Traceback" not in result.output


def test_an_s_the_relaxations_left_undecided_without_a_time_limit_is_not_called_a_time_limit():
    """Status 'time_limit' on an S with no time limit set means the walk-bound relaxations left a gap
    without a plan (planner.placement.solve._walk_bound, arcs above MILP_FALLBACK_ARCS): the explanation
    names those S and the way to decide one, not a time limit of 'none'."""
    from planner.placement.explain import explain_infeasible
    from planner.plans.plan import StageRecord

    problem = load_problem(TINY)
    assert problem.spec.solver.time_limit is None
    records = {2: StageRecord(status="infeasible"), 3: StageRecord(status="time_limit", best_bound=0.1)}
    error = explain_infeasible(problem, records, search=False)
    assert error.binding == "undecided"
    assert "S = 3:" in error.explanation and "--method pyomo --stages S" in error.explanation
    assert "time limit" not in error.explanation


def test_unreachable_speed_floor_names_the_floor_and_the_shortfall():
    result = runner.invoke(app, ["solve", TINY, "--min-tokens-per-s", "100000"])
    assert result.exit_code == 1
    assert "speed floor" in result.output and "short by" in result.output and "tokens/s" in result.output


@pytest.mark.parametrize("stages", [4, 9, 16])
def test_the_fastest_period_bound_priced_per_node_class_is_the_sum_over_every_node(stages):
    """planner.placement.constraints.timing.fastest_period_s prices one node per class (identical layers
    cost the same) and multiplies by the class's count; here every node of Llama-3.1-8B on sram-pipeline
    with HBM3E (an unequal first and last layer, cores split) is priced on its own and summed, as the
    docstring states the bound: the walk (every node's fastest phases, overheads and collectives, plus
    the hops) and m x the busiest unit's share over S."""
    from planner.cost.node import node_cost
    from planner.placement.constraints.timing import fastest_period_s
    from planner.problem.problem import resolve

    problem = resolve(spec_from_flags(model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="hbm3e",
                                      max_groups=16, users=2048, context=4096, min_tokens_per_s=20))  # fmt: skip
    hw, m = problem.hw, problem.micro_batches(stages)
    on_unit, walk = dict.fromkeys((u.name for u in hw.units), 0.0), 0.0
    for n, d in problem.graph.nodes(data=True):
        c = node_cost(n, d, hw, problem.users / m, problem.users, problem.context)
        kp = max(c.context_compute_s, min(c.kv_read_s[t] for t in problem.tiers))
        wp = max(c.weight_compute_s, min(c.weight_read_s[t] for t in problem.tiers))
        on_unit[c.weight_unit] += wp
        on_unit[c.context_unit] += kp
        walk += wp + kp + c.overhead_s + c.collective_s
    busiest = max(on_unit.values()) if hw.units_overlap else walk
    expected = max(walk + stages * hw.inter_link.latency_s, m * busiest / stages)
    assert (
        hw.units_overlap and len(problem.node_classes[1]) < len(problem.nodes) / 4
    )  # the classes do save work
    assert fastest_period_s(problem, stages) == pytest.approx(expected, rel=1e-12)


def test_json_output_is_clean_json(tiny_plan):
    result = runner.invoke(app, ["solve", TINY, "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    for key in (
        "status",
        "joules_per_token",
        "stages",
        "chips",
        "users",
        "micro_batch",
        "cycle_ms",
        "tokens_per_s_per_user",
        "tokens_per_s",
        "power_w",
        "gap",
        "best_bound",
        "solve_s",
        "per_stage_count",
    ):
        assert key in data
    assert data["joules_per_token"] == pytest.approx(tiny_plan.solver.objective, rel=1e-9)


def test_more_users_never_raise_the_best_j_per_token_while_the_plan_still_holds():
    """Why this holds in the model: keep the placement that is optimal at U and serve 2U users with it.
    Per token, weight energy falls (read once per micro-batch of twice the size), KV and compute energy
    are unchanged, and the idle share S*T/U falls because the cycle T grows at most linearly in the
    micro-batch while U doubles. So if that placement still fits and meets the floor at 2U, the optimum
    at 2U is at most its cost, which is at most the optimum at U."""
    base = dict(
        model="llama-3.1-8b",
        hardware="sram-pipeline",
        kv_memory="hbm3e",
        chips_per_group=4,
        max_groups=3,
        context=2048,
        min_tokens_per_s=20,
    )
    for users in (4, 16, 64):
        at_u = solve_problem(load_problem(spec_from_flags(**base, users=users)))
        doubled = load_problem(spec_from_flags(**base, users=2 * users))
        kept = pipeline_cost(
            doubled.model.graph,
            doubled.hw,
            2 * users,
            doubled.context,
            at_u.groups,
            at_u.weight_split,
            at_u.kv_split,
        )
        assert kept.joules_per_token <= at_u.solver.objective * (1 + 1e-9)
        if evaluate(doubled, at_u.model_copy(update={"instance": doubled.spec})).feasible:
            best_2u = solve_problem(doubled)
            assert best_2u.solver.objective <= at_u.solver.objective * (1 + 1e-6)


def test_highs_failure_is_reported_as_such(monkeypatch):
    """A solver that fails for every S: exit 3 with HiGHS's own words, not 'infeasible' and no traceback."""
    from planner.placement.solution import empty

    def failing(problem, stages, *args, **kwargs):
        return solve_module.StageRun(empty(stages, 1, "error", "HiGHS: simulated failure"))

    monkeypatch.setattr(solve_module, "solve_stage", failing)
    result = runner.invoke(app, ["solve", TINY])
    assert result.exit_code == 3, result.output
    assert "solver failure" in result.output and "simulated failure" in result.output
    assert "Traceback" not in result.output


def test_one_micro_batch_in_flight_matches_exhaustive_and_the_evaluator():
    """--micro-batches 1: every stage processes all U users as one batch (b = U), the MILP's optimum equals
    the exhaustive enumeration's and the evaluator's recomputation."""
    problem = load_problem(TINY)
    spec = problem.spec
    one = spec.model_copy(update={"workload": spec.workload.model_copy(update={"micro_batches": 1})})
    for stages in (2, 3):
        fixed = one.model_copy(update={"solver": one.solver.model_copy(update={"stages": stages})})
        by_milp = solve_problem(load_problem(fixed))
        exhaustive = fixed.model_copy(
            update={"solver": fixed.solver.model_copy(update={"method": "exhaustive"})}
        )
        by_enumeration = solve_problem(load_problem(exhaustive))
        assert by_milp.solver.objective == pytest.approx(by_enumeration.solver.objective, rel=1e-6)
        assert by_milp.figures["micro_batches"] == 1 and by_milp.figures["micro_batch"] == spec.workload.users
        check = evaluate(load_problem(fixed), by_milp)
        assert check.feasible and check.cost.joules_per_token == pytest.approx(
            by_milp.solver.objective, rel=1e-6
        )
    # every S: the MILP prunes with lower bounds and cutoffs, which must use b = U as well
    all_s = solve_problem(load_problem(one))
    exhaustive = one.model_copy(update={"solver": one.solver.model_copy(update={"method": "exhaustive"})})
    reference = solve_problem(load_problem(exhaustive))
    assert all_s.solver.objective == pytest.approx(reference.solver.objective, rel=1e-6)


def test_time_limit_while_pricing_the_walk_is_a_time_limit_not_an_error(monkeypatch):
    """One micro-batch in flight makes every S walk-bound, so solve_stage prices the walk's slices after
    the cycle search. When the time limit strikes there (build_arcs raises TimeUp on its walk call, as the
    deep-pipeline study's 560-stage one-micro-batch case did), the S ends on its time limit with the
    cycle search's plan, not as an error row ("TimeUp: ")."""
    from planner.placement.search import TimeUp

    problem = load_problem(spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", chips_per_group=4, max_groups=3, users=16,
        context=2048, min_tokens_per_s=20, micro_batches=1, stages=3,
    ))  # fmt: skip
    real = solve_module.build_arcs
    calls = []

    def walk_times_out(pricing, deadline=float("inf")):
        calls.append(pricing)
        if len(calls) > 1:  # the first call prices the cycle search's slices, the second the walk's
            raise TimeUp
        return real(pricing, deadline)

    monkeypatch.setattr(solve_module, "build_arcs", walk_times_out)
    # here the cycle relaxation's own plan is already proven optimal (next test); pretend no plan is proven
    monkeypatch.setattr(solve_module, "_proven", lambda plans, lower, rel_gap: None)
    run = solve_module.solve_stage(problem, 3, "milp", 60.0, 1e-4, None)
    assert len(calls) == 2, "the stage must be walk-bound for this test to reach the walk"
    assert run.solution.status in ("time_limit", "optimal"), run.solution.message
    assert run.solution.status != "error" and run.solution.groups is not None


def test_a_cycle_relaxation_plan_that_meets_the_walk_ends_a_walk_bound_stage(monkeypatch):
    """One micro-batch in flight, S = 3: walk-bound. The cycle search's plan (walk left out) already
    meets the walk and its cost is within the gap of the proven bound, so the walk's slices are not
    priced (build_arcs called once) and the S is optimal; its J/token equals the exhaustive reference's,
    which enumerates every cut and split independently of the search (planner.placement.reference)."""
    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", chips_per_group=4, max_groups=3, users=16,
        context=2048, min_tokens_per_s=20, micro_batches=1, stages=3,
    )  # fmt: skip
    problem = load_problem(spec)
    assert not problem.cycle_bound(3)
    real = solve_module.build_arcs
    calls = []
    monkeypatch.setattr(
        solve_module, "build_arcs", lambda p, deadline=float("inf"): calls.append(p) or real(p, deadline)
    )
    run = solve_module.solve_stage(problem, 3, "milp", 60.0, 1e-4, None)
    assert len(calls) == 1 and run.solution.status == "optimal", run.solution.message
    assert "meets the walk" in run.solution.message
    reference = solve_module.solve_stage(problem, 3, "exhaustive", 60.0, 1e-4, None)
    assert run.solution.objective == pytest.approx(reference.solution.objective, rel=1e-4)
    assert run.solution.objective >= reference.solution.objective * (1 - 1e-9)


def test_a_tiny_speed_shortfall_is_shown_with_its_digits(monkeypatch):
    """The explanation's speed and shortfall carry enough decimals to show a shortfall of 9e-5 tokens/s
    (a fastest period of 1 / 19.99991 s against a 20 tokens/s floor: 'short by 0.000090', not 0.00)."""
    from planner.placement import constraints, explain
    from planner.problem.problem import resolve

    problem = resolve(spec_from_flags(model="llama-3.1-8b", hardware="sram-pipeline", users=64, context=2048,
                                      min_tokens_per_s=20, chips_per_group=4, max_groups=4))  # fmt: skip
    monkeypatch.setattr(constraints, "explain", lambda problem: None)
    monkeypatch.setattr(explain, "fastest_period", lambda problem, stages, below=None: (1 / 19.99991, 1))
    error = explain.explain_infeasible(problem, {}, True)
    assert error.binding == "speed floor (within capacity)"
    assert (
        "gives 19.999910 tokens/s" in error.explanation and "short by 0.000090 tokens/s" in error.explanation
    )
