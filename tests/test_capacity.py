"""Capacity search: exact on a monotone oracle (stub), and with the real solver the answer U* is feasible
while U* + 1 is not, checked by independent solves; a plan feasible at U stays feasible at fewer users."""

from __future__ import annotations

import math

import pytest

from planner.problem.instance import spec_from_flags
from planner.runs.cache import CaseResult
from planner.studies.capacity import capacity_bound_users, search_max_users, spec_with_users

SMALL = dict(
    model="llama-3.1-8b",
    hardware="sram-pipeline",
    chips_per_group=4,
    max_groups=2,
    users=1,
    context=2048,
    min_tokens_per_s=20,
)


def threshold_oracle(threshold: int, calls: list[int]):
    """Feasible exactly for U <= threshold (a monotone oracle), recording each call."""
    spec = spec_from_flags(**SMALL)

    def oracle(users: int) -> CaseResult:
        calls.append(users)
        status = "optimal" if users <= threshold else "infeasible"
        return CaseResult(spec_with_users(spec, users), {"status": status, "binding": "stub"}, None)

    return oracle


@pytest.mark.parametrize("threshold", [0, 1, 2, 3, 7, 100, 1000, 12345])
@pytest.mark.parametrize("start", [1, 5, 1000, 20000])
def test_search_is_exact_on_a_monotone_oracle(threshold, start):
    calls: list[int] = []
    result = search_max_users(threshold_oracle(threshold, calls), start=start)
    assert result.max_users == threshold
    assert len(calls) == len(set(calls)), "each U is asked once"
    assert result.above is not None and result.above.spec.workload.users == threshold + 1
    assert not result.above.feasible
    if threshold:
        assert result.at_max.feasible and result.at_max.spec.workload.users == threshold
    distance = abs(threshold - start) + 2
    assert len(calls) <= 2 * math.log2(distance) + 3
    assert result.exact


def test_a_solver_error_above_the_answer_leaves_the_search_inexact():
    """An error row (a HiGHS failure or a bug, run_case) is no verdict: a search whose only 'no' above
    U* is an error must not call its answer exact (it was counted as a proven infeasible)."""
    spec = spec_from_flags(**SMALL)

    def oracle(users: int) -> CaseResult:
        status = "optimal" if users <= 7 else ("error" if users == 8 else "infeasible")
        return CaseResult(spec_with_users(spec, users), {"status": status, "binding": "stub"}, None)

    result = search_max_users(oracle, start=1)
    assert result.max_users == 7 and result.above.spec.workload.users == 8
    assert not result.exact


def test_search_stops_at_the_limit():
    calls: list[int] = []
    result = search_max_users(threshold_oracle(10**9, calls), start=1, limit=1000)
    assert result.max_users == 1000 and result.above is None
    assert result.summary()["binding"] == "max_users limit"


def test_capacity_bound_is_an_upper_bound_by_bytes():
    spec = spec_from_flags(**SMALL)
    bound = capacity_bound_users(spec)
    # 2 groups x 4 chips x (256 MB SRAM + 4 x 36 GB HBM3E) = 1154.048 GB; weights 16.06 GB; KV 268 MB/user
    per_user = 131072 * 2048
    assert bound == int((2 * 4 * (0.256e9 + 144e9) - 16.060522496e9) // per_user)


@pytest.mark.parametrize("floor", [20, 300])  # capacity binds at 20 tokens/s, the speed floor at 300
def test_max_users_agrees_with_independent_solves(tmp_path, floor):
    """U* from the search; then a fresh solve (no cache) at U* is feasible and at U* + 1 infeasible."""
    from planner.api import solve
    from planner.core.errors import InfeasibleError
    from planner.plans.plan import evaluate
    from planner.problem.problem import resolve
    from planner.studies.capacity import max_users

    spec = spec_from_flags(**{**SMALL, "min_tokens_per_s": floor})
    result = max_users(spec, cache=tmp_path)
    assert result.exact and result.max_users > 0
    u = result.max_users
    plan = solve(spec_with_users(spec, u))
    assert plan.figures["users"] == u
    assert plan.figures["joules_per_token"] == pytest.approx(result.summary()["joules_per_token"], rel=1e-6)
    with pytest.raises(InfeasibleError) as info:
        solve(spec_with_users(spec, u + 1))
    assert info.value.binding == result.summary()["binding"]
    # the monotonicity argument on a real plan (planner.studies.capacity): the placement at U* stays
    # feasible with fewer users, at m' = min(m, U) micro-batches and the clock that keeps the period
    period = plan.figures["period_ms"]
    for fewer in (1, 2, u // 3, u - 1):
        m = min(plan.micro_batches, fewer)
        update = {"instance": spec_with_users(spec, fewer), "micro_batches": m, "cycle_ms": period / m}
        assert evaluate(resolve(spec_with_users(spec, fewer)), plan.model_copy(update=update)).feasible


def test_capacity_cli_json(cli, tmp_path):
    import json

    args = ["capacity", "--model", "llama-3.1-8b", "--hardware", "sram-pipeline", "--chips-per-group", "4"]
    args += [
        "--max-groups",
        "2",
        "--context",
        "2048",
        "--min-tokens-per-s",
        "20",
        "--json",
        "--cache",
        tmp_path,
    ]
    result = cli(args)
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert {"max_users", "stages", "chips", "joules_per_token", "binding"} <= set(facts)


@pytest.mark.parametrize("threshold", [0, 5, 999, 12345, 80000])
def test_search_to_a_tolerance_brackets_the_answer(threshold):
    """With a 1% tolerance: feasible at the answer, infeasible at `above`, at most 1% (or 1 user) apart,
    so the answer is within 1% of the threshold, in fewer calls than the exact search."""
    calls: list[int] = []
    result = search_max_users(threshold_oracle(threshold, calls), start=threshold + 500, tolerance=0.01)
    upper = result.above.spec.workload.users
    assert result.max_users <= threshold < upper <= result.max_users + max(1, int(0.01 * result.max_users))
    exact_calls: list[int] = []
    search_max_users(threshold_oracle(threshold, exact_calls), start=threshold + 500)
    assert len(calls) <= len(exact_calls)


@pytest.mark.parametrize(
    "flags",
    [
        {"min_tokens_per_s": 20},  # capacity binds
        {"min_tokens_per_s": 300},  # the speed floor binds
        {"min_tokens_per_s": 20, "max_chip_power": "60 W"},  # a per-chip power limit below the tdp
    ],
)
def test_a_feasibility_probe_has_the_full_solves_verdict(flags):
    """The capacity search's probes stop at their first plan (gap 1, planner.studies.capacity's docstring
    says why the verdict is unchanged). Checked against full solves (the instance's own gap 1e-4) at users
    around and below U*: the same verdict at each, and the probe never cheaper than the optimum (its plan
    is a plan of the same instance)."""
    from planner.api import solve
    from planner.plans.plan import evaluate
    from planner.problem.problem import resolve
    from planner.runs.cache import solve_case
    from planner.studies.capacity import feasibility_probe, max_users

    spec = spec_from_flags(**{**SMALL, **flags})
    found = max_users(spec)
    u = found.max_users
    assert u > 0 and found.at_max.spec.solver.gap == spec.solver.gap  # U*'s row is the optimum's
    for users in sorted({1, u // 2, u - 1, u, u + 1, u + 2}):
        at = spec_with_users(found.at_max.spec, users)
        full, probe = solve_case(at, explain=False), solve_case(feasibility_probe(at), explain=False)
        assert probe.feasible == full.feasible == (users <= u), users
        if full.feasible:
            assert probe.row["joules_per_token"] >= full.row["joules_per_token"] * (1 - 1e-4)
    # the probe's plan (the search's own placement, no Pyomo placement at gap 1) meets every constraint
    at_max = spec_with_users(found.at_max.spec, u)
    plan = solve(feasibility_probe(at_max))
    assert evaluate(resolve(at_max), plan.model_copy(update={"instance": at_max})).feasible
    # at U* + 1 the search keeps the probe's proven verdict and computes only its reason: the row is the
    # full solve's, every column but the seconds
    full = solve_case(spec_with_users(found.at_max.spec, u + 1)).row
    assert found.above.row["explained"] and found.above.row["binding"] == full["binding"] != "not explained"
    assert {k: v for k, v in found.above.row.items() if k != "solve_s"} == {
        k: v for k, v in full.items() if k != "solve_s"
    }
