"""Plans: lossless export/import, the independent evaluator, violated constraints, instance errors.

Plans here are built without the solver (balanced contiguous split + greedy tiers from planner.sol),
so these tests check the plan layer on its own.
"""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from planner.cli import app
from planner.cost.pipeline import pipeline_cost
from planner.plans.plan import Plan, SolverFacts, evaluate, figures, load_plan
from planner.problem.instance import load_instance, spec_from_flags
from planner.problem.problem import resolve
from planner.studies.sol import balanced_partition, greedy_tier_split

runner = CliRunner()
TINY = "instances/llama-3.1-8b_tiny.yaml"


def hand_plan(problem, stages: int) -> Plan:
    groups = balanced_partition(problem.model.graph, stages, problem.users, problem.context)
    w, k = greedy_tier_split(problem.model.graph, problem.hw, groups, problem.users, problem.context)
    cost = pipeline_cost(problem.model.graph, problem.hw, problem.users, problem.context, groups, w, k)
    return Plan(
        instance=problem.spec,
        stages=stages,
        groups=groups,
        weight_split=w,
        kv_split=k,
        solver=SolverFacts(method="hand", status="optimal", objective=cost.joules_per_token),
        figures=figures(cost),
    )


@pytest.fixture(scope="module")
def problem():
    return resolve(load_instance(TINY))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_is_lossless(problem, tmp_path, suffix):
    plan = hand_plan(problem, 3)
    path = plan.save(tmp_path / f"plan{suffix}")
    again = load_plan(path)
    assert again == plan
    # and byte-identical when written again (stable ordering)
    assert again.save(tmp_path / f"again{suffix}").read_text() == path.read_text()


def test_evaluator_matches_objective_and_feasible(problem):
    plan = hand_plan(problem, 3)
    result = evaluate(problem, plan)
    assert result.feasible, result.violations
    assert result.cost.joules_per_token == pytest.approx(plan.solver.objective, rel=1e-12)


def test_evaluator_reports_each_violation(problem):
    plan = hand_plan(problem, 3)
    groups = [list(g) for g in plan.groups]
    # move the first node of group 1 to the end of group 2: no longer contiguous
    groups[2].append(groups[1].pop(0))
    broken = plan.model_copy(update={"groups": groups})
    assert any("contiguous" in v for v in evaluate(problem, broken).violations)

    w = {n: dict(f) for n, f in plan.weight_split.items()}
    w["L0.attn"] = {"sram": 0.5}
    bad_split = plan.model_copy(update={"weight_split": w})
    assert (
        "weight_split: fractions that do not sum to 1 at L0.attn (sum 0.5)"
        in evaluate(problem, bad_split).violations
    )

    # everything into SRAM: a 4-chip group holds 4 x 256 MB = 1.024 GB of SRAM, the weights are 16 GB
    all_sram = {n: {"sram": 1.0} for n in plan.weight_split}
    over = plan.model_copy(update={"weight_split": all_sram})
    violations = evaluate(problem, over).violations
    assert any(v.startswith("capacity: group 0") and "sram" in v for v in violations)


def test_evaluator_flags_speed_floor(problem):
    slow_spec = problem.spec.model_copy(
        update={"workload": problem.spec.workload.model_copy(update={"min_tokens_per_s": 1e5})}
    )
    slow = resolve(slow_spec)
    violations = evaluate(slow, hand_plan(slow, 3)).violations
    assert any(v.startswith("speed:") for v in violations)


def test_evaluate_cli_exit_codes(problem, tmp_path):
    plan = hand_plan(problem, 3)
    good = plan.save(tmp_path / "good.yaml")
    result = runner.invoke(app, ["evaluate", TINY, str(good), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["feasible"] and data["objective_rel_diff"] < 1e-9
    edited = yaml.safe_load(good.read_text())
    edited["kv_split"]["L3.attn"] = {"sram": 2.0}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(edited))
    result = runner.invoke(app, ["evaluate", TINY, str(bad)])
    assert result.exit_code == 1
    assert "L3.attn" in result.output and "Traceback" not in result.output


def test_plot_writes_png(problem, tmp_path):
    path = hand_plan(problem, 3).save(tmp_path / "p.yaml")
    result = runner.invoke(app, ["plot", str(path), "--out", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d.pop("model"), "model"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["workload"].update(users=-3), "workload.users"),
        (lambda d: d["workload"].update(kv_dtype="fp7"), "workload.kv_dtype"),
        (lambda d: d.update(tiers=["hbm9"]), "tiers"),
        (lambda d: d["solver"].update(time_limit="5 GB"), "solver.time_limit"),
    ],
)
def test_bad_instances_exit_2_naming_the_field(tmp_path, edit, field):
    data = yaml.safe_load(open(TINY))
    data.setdefault("solver", {})
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["solve", str(path)])
    assert result.exit_code == 2, result.output
    assert field in result.output and str(path) in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_infeasible_capacity_names_the_shortfall():
    """Llama-3.1-70B: 141.1 GB of bf16 weights; 4,096 users x 4,096 tokens x 327,680 B = 5,497.6 GB of KV
    (80 layers x 2 x 8 heads x 128 x 2 B per token). One group of 8 H100s holds 8 x 80 GB = 640 GB, so the
    shortfall is 141.1 + 5,497.6 - 640 = 4,998.7 GB = 5.0 TB."""
    result = runner.invoke(
        app,
        [
            "solve",
            "--model",
            "llama-3.1-70b",
            "--hardware",
            "h100-sxm",
            "--max-groups",
            "1",
            "--users",
            "4096",
            "--context",
            "4096",
            "--min-tokens-per-s",
            "10",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "capacity" in result.output and "short by 5 TB" in result.output
    assert "5.5 TB" in result.output and "640 GB" in result.output


def test_flags_equal_file():
    spec = spec_from_flags(
        model="llama-3.1-8b",
        hardware="sram-pipeline",
        kv_memory="hbm3e",
        chips_per_group=4,
        max_groups=3,
        users=16,
        context=2048,
        min_tokens_per_s=20,
        name="llama-3.1-8b tiny",
    )
    assert spec == load_instance(TINY)


def test_a_plan_made_with_other_sub_layer_parts_says_so(problem, tmp_path):
    """A plan made when the automatic split gave other parts (here: the tiny instance solved with its
    attention core in 2 parts, then read as `split: auto`, which keeps the core whole) names both splits
    and the fix, instead of only listing the nodes it does not know; with the plan's parts given back it
    evaluates again."""
    from planner.placement.solve import solve_problem

    split = problem.spec.model_copy(update={"split": {"core": 2}})
    plan = solve_problem(resolve(split))
    assert plan.figures["granularity"]["core"] == 2 and problem.granularity.core == 1
    auto = plan.model_copy(update={"instance": problem.spec})
    result = runner.invoke(
        app, ["plot", str(auto.save(tmp_path / "auto.yaml")), "--out", str(tmp_path / "a.png")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "made with sub-layer parts core=2 (figures.granularity)" in " ".join(result.output.split())
    assert "instance.split to {core: 2}" in " ".join(result.output.split())
    whole = solve_problem(problem)  # the other way round: made whole, read with the cores in 2 parts
    assert set(whole.figures["granularity"].values()) == {1}
    cores = whole.model_copy(update={"instance": problem.spec.model_copy(update={"core_parts": 2})})
    result = runner.invoke(
        app, ["plot", str(cores.save(tmp_path / "c.yaml")), "--out", str(tmp_path / "c.png")]
    )
    assert result.exit_code == 2 and "instance.split to none" in " ".join(result.output.split())
    given_back = runner.invoke(
        app, ["plot", str(plan.save(tmp_path / "p.yaml")), "--out", str(tmp_path / "p.png")]
    )
    assert given_back.exit_code == 0, given_back.output
