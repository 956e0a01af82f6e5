"""Study metrics without the solver: one micro-batch in flight, KV traffic per byte, Pareto front, kv-demand.

Placements are built by hand (balanced contiguous split + greedy tiers from planner.sol), so these check
the study layer on its own; expected values are the definitions of FORMULATION.md §3, not the code.
"""

from __future__ import annotations

import pandas as pd
import pytest

from planner.plans.metrics import kv_traffic, one_batch_max_users, one_micro_batch_cost, pareto_front
from planner.plans.plan import Plan, SolverFacts, evaluate
from planner.problem.instance import load_instance
from planner.problem.problem import resolve
from planner.studies.capacity import spec_with_users
from planner.studies.kv_demand import kv_demand, memory_ratios
from planner.studies.sol import balanced_partition, greedy_tier_split

TINY = "instances/llama-3.1-8b_tiny.yaml"


def placement(problem, stages: int):
    graph = problem.graph
    groups = balanced_partition(graph, stages, problem.users, problem.context)
    w, k = greedy_tier_split(graph, problem.hw, groups, problem.users, problem.context)
    return groups, w, k


def hand_plan(problem, stages: int) -> Plan:
    groups, w, k = placement(problem, stages)
    facts = SolverFacts(method="hand", status="optimal")
    return Plan(instance=problem.spec, stages=stages, groups=groups, weight_split=w, kv_split=k, solver=facts)


@pytest.fixture(scope="module")
def problem():
    return resolve(load_instance(TINY))


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_one_micro_batch_equals_deep_pipeline_for_one_user(problem, stages):
    """One user is one micro-batch either way: same period and J/token as planner.cost."""
    one_user = problem.with_users(1)
    plan = hand_plan(one_user, stages)
    deep = evaluate(one_user, plan).cost
    one = one_micro_batch_cost(one_user, plan)
    assert deep.micro_batches == one.micro_batches == 1
    assert one.token_s == pytest.approx(deep.token_s, rel=1e-12)
    assert one.joules_per_token == pytest.approx(deep.joules_per_token, rel=1e-12)
    for cat, j in deep.joules_per_token_by.items():
        assert one.joules_per_token_by[cat] == pytest.approx(j, rel=1e-12, abs=1e-18)


def test_one_micro_batch_reads_weights_less_often_and_walks(problem):
    """S = 3, U = 48 on groups that hold two micro-batches each (overlapping attention and MAC units):
    the deep pipeline has m = 6 micro-batches of b = 8; one batch walks the 3 stages at b = 48."""
    p = problem.with_users(48)
    plan = hand_plan(p, 3)
    deep = evaluate(p, plan).cost
    one = one_micro_batch_cost(p, plan)
    assert p.hw.slots == 2 and deep.micro_batches == 6 and deep.micro_batch == 8
    # dense weights read once per batch: a sixth per token (the embedding reads one row per user: ~1e-6)
    assert one.joules_per_token_by["weights"] == pytest.approx(
        deep.joules_per_token_by["weights"] / 6, rel=1e-5
    )
    # one micro-batch: its period is the walk, the sum of the groups' latencies
    assert one.period_s == pytest.approx(sum(g.latency_s for g in one.groups), rel=1e-12)


def test_one_batch_max_users_is_exact_for_its_placement(problem):
    plan = hand_plan(problem, 3)
    floor_problem = problem.spec.model_copy(
        update={"workload": problem.spec.workload.model_copy(update={"min_tokens_per_s": 200.0})}
    )
    p = resolve(floor_problem)
    best = one_batch_max_users(p, plan)
    assert best > 1

    def ok(users):
        c = one_micro_batch_cost(p, plan, users)
        return not c.overflow_bytes and c.tokens_per_s_per_user >= 200.0

    assert ok(best) and not ok(best + 1)
    fast = resolve(
        floor_problem.model_copy(
            update={"workload": floor_problem.workload.model_copy(update={"min_tokens_per_s": 1e6})}
        )
    )
    assert one_batch_max_users(fast, plan) == 0


def test_kv_demand_per_byte_is_the_token_rate(problem):
    """Each token reads the whole cache and writes one token: demand = m b (L + 1) / (period U L)
    = (1 + 1/L) / period, since the m micro-batches of b users hold all U users."""
    spec = spec_with_users(problem.spec, 48)
    p = resolve(spec)
    plan = hand_plan(p, 3)
    cost = evaluate(p, plan).cost
    kv = kv_traffic(p, plan, cost)
    L = p.context
    assert kv.demand_per_s == pytest.approx((1 + 1 / L) / cost.period_s, rel=1e-9)
    assert sum(kv.stored_bytes.values()) == pytest.approx(p.users * p.model.kv_bytes_per_user(L), rel=1e-12)


def test_memory_ratios_are_bandwidth_over_capacity():
    techs = memory_ratios().set_index("memory")
    assert techs.loc["hbm3e", "bw_per_capacity_per_s"] == pytest.approx(1.2e12 / 36e9)
    assert techs.loc["lpddr5x", "bw_per_capacity_per_s"] == pytest.approx(154e9 / 128e9)
    assert techs["bw_per_capacity_per_s"].is_monotonic_decreasing


def test_pareto_front_keeps_only_undominated_points():
    frame = pd.DataFrame(
        {
            "memory": ["a", "a", "b", "b", "c"],
            "users": [10, 100, 10, 50, 100],
            "joules_per_token": [1.0, 2.0, 0.5, 3.0, 1.5],
        }
    )
    front = pareto_front(frame)
    assert list(zip(front["memory"], front["users"])) == [("b", 10), ("c", 100)]


def test_kv_demand_reads_tables_and_names_the_limit(tmp_path):
    rows = pd.DataFrame(
        {
            "model": ["m", "m"],
            "hardware": ["h", "h"],
            "memory": ["hbm3e", "lpddr5x"],
            "fixed_stages": [0, 0],
            "users": [8, 8],
            "context": [4096, 4096],
            "min_tokens_per_s": [20.0, 20.0],
            "stages": [4, 4],
            "tokens_per_s_per_user": [20.0, 20.0],
            "joules_per_token": [1.0, 1.0],
            "kv_demand_per_s": [20.0, 20.0],
            "kv_tier": ["hbm3e", "lpddr5x"],
        }
    )
    path = tmp_path / "t.csv"
    rows.to_csv(path, index=False)
    plans, _ = kv_demand([path])
    assert list(plans["kv_limited_by"]) == ["capacity", "bandwidth"]


def test_kv_demand_cli_explains_a_missing_table(cli, input_error, tmp_path):
    input_error(cli(["study", "kv-demand", "--from", str(tmp_path / "none.csv")]), "none.csv")


def test_case_row_columns_are_the_declared_ones(problem):
    from planner.plans.metrics import CASE_COLUMNS, ONE_BATCH_COLUMNS, case_row

    groups, w, k = placement(problem, 2)
    plan = Plan(
        instance=problem.spec,
        stages=2,
        groups=groups,
        weight_split=w,
        kv_split=k,
        solver=SolverFacts(method="hand", status="optimal"),
    )
    row = case_row(problem, plan)
    assert list(row) == ["status", *CASE_COLUMNS]
    assert row["one_mb_max_users"] >= 1 and row["kv_tier"] in ("sram", "hbm3e")
    # a verdict's row (a capacity probe: any plan) has the same columns, the one-micro-batch ones empty
    verdict = case_row(problem, plan, one_batch=False)
    assert list(verdict) == list(row)
    assert all(verdict[c] is None for c in ONE_BATCH_COLUMNS) and verdict["stages"] == row["stages"]


def test_pareto_front_ignores_duplicate_index_labels():
    a = pd.DataFrame({"memory": ["x", "x"], "users": [64, 1024], "joules_per_token": [0.23, 0.1445]})
    b = pd.DataFrame({"memory": ["x"], "users": [60705], "joules_per_token": [0.1413]})
    front = pareto_front(pd.concat([a, b]))
    assert list(front["users"]) == [60705]


def test_deep_pipeline_study_on_a_small_model(tmp_path):
    """On a GPU (one unit: a group holds one micro-batch) with S = 1, one micro-batch is the deep pipeline:
    both maxima agree exactly; deeper S serve more."""
    from planner.runs.sweep import SweepSpec
    from planner.studies.deep_pipeline import deep_pipeline, progress_total, write_deep_pipeline

    spec = SweepSpec(
        name="small deep pipeline",
        models=["llama-3.1-8b"],
        hardware=["h100-sxm"],
        users=[1, 16, 64],
        context=[2048],
        min_tokens_per_s=[50],
        chips_per_group=1,
        max_groups=4,
        stages=[1, 2, 4],
    )
    steps: list[str] = []
    d = deep_pipeline(spec, cache=tmp_path / "cache", workers=1, progress=steps.append)
    assert len(steps) == progress_total(spec)  # the progress bar ends at 100%
    rows = d.summary.set_index("stages")
    assert rows.loc[1, "deep_max_users"] == rows.loc[1, "one_mb_max_users"] > 0
    assert rows.loc[4, "deep_max_users"] > rows.loc[1, "deep_max_users"]
    assert rows.loc[4, "users_ratio"] > 1
    for stages, row in rows.iterrows():  # the solver's one-micro-batch maximum never beats the physics bound
        assert row["one_mb_max_users"] <= row["one_mb_users_bound"], stages
    # S micro-batches at the one-batch users run on the one-batch plan's graph (its search's core parts)
    pts = d.points
    one_max = pts[(pts["point"] == "max users") & (pts["in_flight"] == 1)].set_index("fixed_stages")
    same = pts[pts["point"] == "one-mb max users"].set_index("fixed_stages")
    assert len(same) == 3 and (same["users"] == one_max.loc[same.index, "users"]).all()
    assert (same["graph_nodes"] == one_max.loc[same.index, "graph_nodes"]).all()
    paths = write_deep_pipeline(d, tmp_path / "out", "planner study deep-pipeline --sweep small.yaml")
    assert [p.name for p in paths] == ["deep_pipeline.csv", "deep_pipeline.md", "deep_pipeline.png"]
    assert "planner study deep-pipeline --sweep small.yaml" in paths[1].read_text()


def test_deep_pipeline_table_says_undecided_not_zero():
    """A one-micro-batch search that stopped on its time limit records exact = False and the users it
    proved (0: none); the table shows "undecided" for 0 (results/deep_pipeline.md had printed 0), ">= N"
    for a proven N, and a decided row its number."""
    from planner.render.markdown import markdown_table
    from planner.studies.deep_pipeline import DEEP_COLUMNS, _shown

    rows = pd.DataFrame({c: [1, 2, 3] for c, _ in DEEP_COLUMNS}).assign(
        one_mb_max_users=[0, 5, 7], one_mb_max_users_exact=[False, True, False]
    )
    table = markdown_table(_shown(rows), DEEP_COLUMNS).splitlines()
    header = [h.strip() for h in table[0].strip("|").split("|")]
    column = header.index("max users, 1 micro-batch")
    assert [line.strip("|").split("|")[column].strip() for line in table[2:]] == ["undecided", "5", ">= 7"]


def test_one_micro_batch_users_bound_by_hand():
    """Llama-3.1-70B bf16 on 560 one-chip sram-pipeline groups with HBM3E, 4,096 context, 20 tokens/s.
    By hand, from the files' figures: W = 70,553,706,496 params x 2 B (published count, graphs/SOURCES.md),
    of which the embedding table (128,256 x 8,192 x 2 B = 2,101,346,304 B) is read one 16,384 B row per
    user; KV per user 80 layers x 2 x 8 KV heads x 128 x 2 B x 4,096 = 1,342,177,280 B; HBM3E 4 stacks x
    1.2 TB/s x 0.9 achievable = 4.32 TB/s per chip; SRAM S x 256 MB. U <= (4.32e12 / 20 - W + 2,101,346,304
    + S x 256e6) / (1,342,177,280 + 16,384): 164.2 at S = 560, 69.6 at S = 64 (the summed-bandwidth
    term, (80 + 4.8) TB/s x 0.9, is far looser)."""
    from planner.problem.instance import InstanceSpec
    from planner.problem.problem import resolve
    from planner.studies.deep_pipeline import one_micro_batch_users_bound

    spec = InstanceSpec.model_validate(
        {
            "model": "llama-3.1-70b",
            "hardware": "sram-pipeline",
            "kv_memory": "hbm3e",
            "chips_per_group": 1,
            "max_groups": 560,
            "workload": {"users": 1, "context": 4096, "min_tokens_per_s": 20, "micro_batches": 1},
            "solver": {"stages": 560},
        }
    )

    def by_hand(stages: int) -> float:
        return (4.32e12 / 20 - 70_553_706_496 * 2 + 2_101_346_304 + stages * 256e6) / (1_342_177_280 + 16_384)

    assert by_hand(560) == pytest.approx(164.2, abs=0.05) and by_hand(64) == pytest.approx(69.6, abs=0.05)
    problem = resolve(spec)
    assert one_micro_batch_users_bound(problem, 560) == int(by_hand(560))
    assert one_micro_batch_users_bound(problem, 64) == int(by_hand(64))


def test_compare_on_a_small_model(tmp_path):
    from planner.problem.instance import spec_from_flags
    from planner.studies.capacity import max_users
    from planner.studies.compare import compare, write_comparison

    c = compare(
        ["llama-3.1-8b"],
        "sram-pipeline",
        ["hbm3e", "novel-kv-dram"],
        [1, 16],
        2048,
        20,
        chips_per_group=4,
        max_groups=2,
        cache=tmp_path / "cache",
        workers=1,
    )
    assert len(c.points) == 4 and len(c.maxima) == 2
    parts = c.points[["weight_j", "kv_j", "compute_j", "link_j", "idle_j"]].sum(axis=1)
    assert list(parts) == pytest.approx(list(c.points["joules_per_token"]), rel=1e-9)
    alone = max_users(
        spec_from_flags(
            model="llama-3.1-8b",
            hardware="sram-pipeline",
            kv_memory="novel-kv-dram",
            chips_per_group=4,
            max_groups=2,
            users=1,
            context=2048,
            min_tokens_per_s=20,
        )
    )
    assert c.maxima.set_index("memory").loc["novel-kv-dram", "max_users"] == alone.max_users
    # two workers (the searches and the cases on one pool, the searches first): the same tables
    two = compare(
        ["llama-3.1-8b"], "sram-pipeline", ["hbm3e", "novel-kv-dram"], [1, 16], 2048, 20,
        chips_per_group=4, max_groups=2, cache=tmp_path / "cache2", workers=2,
    )  # fmt: skip
    for one_frame, two_frame in ((c.points, two.points), (c.maxima, two.maxima)):
        pd.testing.assert_frame_equal(one_frame.drop(columns="solve_s"), two_frame.drop(columns="solve_s"))
    paths = write_comparison(c, tmp_path / "out", "planner compare ...", "sram-pipeline", 2048, 20)
    assert all(p.is_file() for p in paths)


def test_deep_pipeline_progress_ends_at_100_percent_when_a_one_batch_maximum_is_missing(
    tmp_path, monkeypatch
):
    """Where one micro-batch has no maximum (0 users, or undecided), the deep pipeline at that maximum is
    not run; its progress step is still counted, so the bar ends at progress_total."""
    import planner.studies.capacity as capacity
    from planner.runs.sweep import SweepSpec
    from planner.studies.deep_pipeline import deep_pipeline, progress_total

    real = capacity.max_users_many

    def none_for_one_batch(specs, cache=None, workers=None, progress=None, tolerance=0.0):
        if not all(s.workload.micro_batches == 1 for s in specs):
            return real(specs, cache, workers, progress, tolerance)
        out = [capacity.CapacityResult(0, None, None, (), False) for _ in specs]
        for s, r in zip(specs, out):
            progress(s, r)
        return out

    monkeypatch.setattr(capacity, "max_users_many", none_for_one_batch)
    spec = SweepSpec(
        name="no one-batch maximum", models=["llama-3.1-8b"], hardware=["h100-sxm"], users=[1],
        context=[2048], min_tokens_per_s=[50], chips_per_group=1, max_groups=2, stages=[1, 2],
    )  # fmt: skip
    steps: list[str] = []
    d = deep_pipeline(spec, cache=tmp_path / "cache", workers=1, progress=steps.append)
    assert len(steps) == progress_total(spec)
    assert d.summary["deep_joules_per_token_at_one_mb_users"].isna().all()
