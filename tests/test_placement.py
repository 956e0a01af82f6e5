"""Placement for a fixed number of stages: the exact search, the Pyomo MILP and the exhaustive reference.

Small random instances (seeded): tiny HF configs (dense, MoE), some split into parts, on sram-pipeline
with HBM3E, capacities shrunk so that both the tier split and the partition matter, random bandwidths,
static power, one shared unit or overlapping attention and MAC units, power limits, speed floors (some
unreachable) and sometimes one micro-batch in flight or a third tier. The exhaustive reference
(planner.placement.reference) enumerates every partition with an LP of its own: the optimum "known by
enumeration" that the optimizer must reach.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from planner.cost.node import node_cost
from planner.cost.pipeline import pipeline_cost
from planner.hardware.catalog import Hardware, MemoryTier, Unit, load_hardware
from planner.model.config import HFConfig
from planner.model.graph import Dtypes, build_graph, load_model
from planner.model.split import Granularity, split_graph
from planner.placement.bounds import lower_bound
from planner.placement.constraints import check
from planner.placement.reference import exhaustive_stages
from planner.placement.search import Pricing, WalkSearch, build_arcs
from planner.placement.solution import placement
from planner.placement.solve import final_placement, milp_placement, solve_stage
from planner.placement.stage import stage_data, walk_data
from planner.problem.problem import Problem, from_graph

BASE = load_hardware("sram-pipeline", kv_memory="hbm3e")
REL = 1e-6
TIGHT = 1e-10  # rel_gap of the search when compared with the reference


def random_problem(seed: int, **force) -> tuple[Problem, int]:
    """One small random instance: (problem, S). `force` fixes overlap, power, in_flight or split."""
    rng = random.Random(seed)
    layers = rng.randint(1, 3)
    heads = rng.choice([2, 4, 8])
    cfg: dict = dict(
        hidden_size=rng.choice([32, 64, 128]),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=rng.choice([h for h in (1, 2, 4, 8) if heads % h == 0]),
        intermediate_size=rng.choice([64, 128, 256, 512]),
        vocab_size=rng.randint(50, 600),
    )
    if rng.random() < 0.35:
        cfg.update(
            n_routed_experts=rng.choice([4, 8]),
            num_experts_per_tok=2,
            moe_intermediate_size=rng.choice([32, 64, 128]),
            first_k_dense_replace=rng.randint(0, 1),
            n_shared_experts=rng.randint(0, 1),
        )
    graph = build_graph(HFConfig(**cfg), Dtypes())
    split = force.get("split", rng.random() < 0.3)
    if split:
        g = Granularity(ffn=rng.choice([1, 2]), core=rng.choice([1, 2]), lm_head=rng.choice([1, 2]))
        graph = split_graph(graph, g)
    users, context = rng.choice([1, 2, 3, 4, 8, 16]), rng.choice([16, 64, 256])
    stages = rng.randint(1, min(4, graph.number_of_nodes()))
    cpg = rng.choice([1, 2])
    size = sum(
        d["weight_bytes"] + users * d["kv_bytes_per_token"] * context for _, d in graph.nodes(data=True)
    )
    per_group = size / stages * rng.uniform(0.9, 2.5)
    sram_share, hbm_bw = rng.uniform(0.05, 0.7), 10 ** rng.uniform(9, 12)
    tiers = [
        dataclasses.replace(
            BASE.tier("sram"),
            capacity_bytes=per_group * sram_share / cpg,
            bw_bytes_per_s=hbm_bw * rng.uniform(1.2, 20),
        ),
        dataclasses.replace(  # no standby: the drawn static power below is the chip's whole static power
            BASE.tier("hbm3e"),
            capacity_bytes=per_group * (1 - sram_share) / cpg,
            bw_bytes_per_s=hbm_bw,
            standby_w=0.0,
        ),
    ]
    if rng.random() < 0.25:
        tiers.append(MemoryTier("ddr5", per_group / cpg, hbm_bw / rng.uniform(2, 8), 8.0, 1.0, False))
    achievable = dataclasses.replace(
        BASE.achievable,
        node_overhead_s=rng.choice([0.0, 0.0, 1e-9, 1e-8]),
        attention_bytes_per_s_per_work_item=rng.choice([None, None, 1e8, 1e9]),
        kv_bandwidth=rng.choice([0.9, 0.6]),
    )
    overlap = force.get("overlap", rng.random() < 0.5)
    units = (
        (Unit("attention", ("context",), {"bf16": 10 ** rng.uniform(10, 13)}), Unit("mac", ("weights",)))
        if overlap
        else (Unit("chip", ("weights", "context")),)
    )
    hw = dataclasses.replace(
        BASE,
        tiers=tuple(tiers),
        chips_per_group=cpg,
        achievable=achievable,
        peak_flops_per_s={"bf16": 10 ** rng.uniform(11, 14)},
        static_power_w=10 ** rng.uniform(-1, 2),
        units=units,
        units_overlap=overlap,
        moe_dispatch=rng.choice(["all-reduce", "all-to-all"]),
    )
    estimate = 0.0
    b = max(1.0, users / stages)
    for v in graph.nodes:
        c = node_cost(v, graph.nodes[v], hw, b, users, context)
        estimate += max(c.weight_compute_s, min(c.weight_read_s.values()))
        estimate += max(c.context_compute_s, min(c.kv_read_s.values())) + c.overhead_s + c.collective_s
    floor = 0.0
    if rng.random() > 0.1:
        floor = min(9e5, 1.0 / (estimate * rng.uniform(0.8, 4.0) + stages * hw.inter_link.latency_s))
    power = force.get("power", rng.random() < 0.4)
    static = hw.static_power_per_chip_w  # the chip's and its memories' standby
    chip = static * rng.uniform(1.0, 3.0) if power else "none"
    budget = (
        static * cpg * stages * rng.uniform(1.0, 3.0) if force.get("budget", rng.random() < 0.2) else None
    )
    in_flight = force.get("in_flight", 1 if rng.random() < 0.15 else None)
    restrict = rng.random()
    weight_tiers = ["sram"] if restrict < 0.1 else None  # weights pinned to SRAM, or KV kept out of it
    kv_tiers = [t.name for t in tiers if t.name != "sram"] if 0.1 <= restrict < 0.35 else None
    problem = from_graph(
        graph, hw, users, context, floor, stages=stages, in_flight=in_flight, max_chip_power=chip,
        max_power=budget, weight_tiers=weight_tiers, kv_tiers=kv_tiers,
    )  # fmt: skip
    return problem, stages


def checked(problem: Problem, sol) -> float:
    """The plan is a valid S-stage placement that no constraint family objects to; returns its J/token."""
    nodes = list(problem.nodes)
    assert sol.groups is not None and all(sol.groups) and [n for g in sol.groups for n in g] == nodes
    for kind, split in (("w", sol.weight_split), ("k", sol.kv_split)):
        assert set(split) == set(nodes)
        for fractions in split.values():
            assert set(fractions) <= set(problem.tiers_for(kind))
            assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-9)
    cost = pipeline_cost(
        problem.graph, problem.hw, problem.users, problem.context, sol.groups, sol.weight_split, sol.kv_split,
        problem.in_flight, sol.cycle_s,
    )  # fmt: skip
    assert check(problem, cost) == []
    assert cost.joules_per_token == pytest.approx(sol.objective, rel=REL)
    return cost.joules_per_token


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_search_and_pyomo_match_exhaustive(seed: int) -> None:
    problem, s = random_problem(seed)
    ref = exhaustive_stages(problem, s)
    fast = solve_stage(problem, s, rel_gap=TIGHT)
    record = solve_stage(problem, s, method="pyomo", rel_gap=1e-9)
    d = stage_data(problem, s)
    bound = lower_bound(d)
    if ref.status == "infeasible":
        assert fast.solution.groups is None and record.solution.groups is None
        return
    assert fast.solution.status == "optimal" and record.solution.status == "optimal"
    assert checked(problem, fast.solution) == pytest.approx(ref.objective, rel=REL)
    assert checked(problem, record.solution) == pytest.approx(ref.objective, rel=REL)
    assert checked(problem, ref) == pytest.approx(ref.objective, rel=REL)
    assert bound is not None and bound * d.energy_unit_j <= ref.objective * (1 + 1e-9)
    if fast.search is not None:  # cycle-bound: the Pyomo MILP's placement at the search's cycle
        assert checked(problem, milp_placement(problem, fast, None)) == pytest.approx(ref.objective, rel=REL)
    # the plan solve_problem reports: the search's own placement (it passes the check) or the MILP's
    assert checked(problem, final_placement(problem, fast, None)) == pytest.approx(ref.objective, rel=REL)


def test_random_instances_cover_every_case() -> None:
    """The generator exercises what the formulation has: feasible and infeasible, overlapping units,
    power limits that bind, one micro-batch in flight (walk-bound), split graphs."""
    seen = dict(feasible=0, infeasible=0, overlap=0, power_binds=0, walk=0, split=0, pinned=0)
    for seed in SEEDS:
        problem, s = random_problem(seed)
        ref = exhaustive_stages(problem, s)
        seen["feasible" if ref.groups else "infeasible"] += 1
        seen["overlap"] += problem.hw.units_overlap
        seen["walk"] += not problem.cycle_bound(s)
        seen["split"] += problem.graph.graph.get("granularity") is not None
        seen["pinned"] += bool(problem.spec.weight_tiers or problem.spec.kv_tiers) and ref.groups is not None
        if ref.groups and problem.max_chip_power_w is not None:
            free = exhaustive_stages(
                dataclasses.replace(problem, spec=problem.spec.model_copy(update={"max_chip_power": "none"})),
                s,
            )
            seen["power_binds"] += free.objective < ref.objective * (1 - 1e-6)
    assert seen["feasible"] >= 15 and seen["infeasible"] >= 5
    assert seen["overlap"] >= 10 and seen["walk"] >= 3 and seen["split"] >= 5 and seen["power_binds"] >= 1
    assert seen["pinned"] >= 2


def tiny(**kw) -> Problem:
    """A 3-layer dense model (8 nodes) on two SRAM-poor HBM chips per group, 3 stages."""
    cfg = HFConfig(
        hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=256, vocab_size=300,
    )  # fmt: skip
    graph = build_graph(cfg, Dtypes())
    size = sum(d["weight_bytes"] + 8 * d["kv_bytes_per_token"] * 128 for _, d in graph.nodes(data=True))
    tiers = (
        dataclasses.replace(BASE.tier("sram"), capacity_bytes=size * 0.05),
        dataclasses.replace(BASE.tier("hbm3e"), capacity_bytes=size * 0.3),
    )
    hw = dataclasses.replace(BASE, tiers=tiers, chips_per_group=2, units=(Unit("chip", ("weights", "context")),),
                             units_overlap=False)  # fmt: skip
    return from_graph(graph, hw, 8, 128, kw.pop("floor", 0.0), stages=kw.pop("stages", 3), **kw)


def test_capacity_binds() -> None:
    """3 groups x 2 chips x 35 % hold the model; one group does not: every solver says infeasible."""
    assert solve_stage(tiny(), 3).solution.status == "optimal"
    one = tiny(stages=1)
    for run in (solve_stage(one, 1), solve_stage(one, 1, method="pyomo")):
        assert run.solution.groups is None and run.solution.status == "infeasible"
    assert exhaustive_stages(one, 1).groups is None
    assert lower_bound(stage_data(one, 1)) is None
    assert solve_stage(tiny(tiers=("sram",)), 3).solution.groups is None


def test_speed_floor_binds() -> None:
    free = solve_stage(tiny(), 3, rel_gap=TIGHT).solution
    period = free.cycle_s * free.micro_batches
    slack = solve_stage(tiny(floor=0.5 / period), 3, rel_gap=TIGHT).solution
    assert slack.objective == pytest.approx(free.objective, rel=REL)
    tight = tiny(floor=1.0 / (period * 0.7))  # faster than the free optimum: costs more, or infeasible
    run, ref = solve_stage(tight, 3, rel_gap=TIGHT).solution, exhaustive_stages(tight, 3)
    assert (run.groups is None) == (ref.groups is None)
    if ref.groups is not None:
        assert run.objective == pytest.approx(ref.objective, rel=REL) and run.objective >= free.objective
    far = tiny(floor=min(1e6, 1e3 / period))
    assert solve_stage(far, 3).solution.groups is None and exhaustive_stages(far, 3).groups is None


def power_problem(limit, budget=None, overlap=True) -> Problem:
    """Llama-3.1-8B-shaped, 2 stages, on a small sram-pipeline group where power can bind."""
    cfg = HFConfig(hidden_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4,
                   intermediate_size=1024, vocab_size=1000)  # fmt: skip
    graph = build_graph(cfg, Dtypes())
    hw = load_hardware("sram-pipeline", kv_memory="hbm3e").with_chips_per_group(1)
    if not overlap:
        hw = dataclasses.replace(hw, units=(Unit("chip", ("weights", "context")),), units_overlap=False)
    return from_graph(graph, hw, 64, 512, 0.0, stages=2, max_chip_power=limit, max_power=budget)


def unconstrained_chip_power(overlap: bool) -> tuple[float, float]:
    p = power_problem("none", overlap=overlap)
    sol = solve_stage(p, 2, rel_gap=TIGHT).solution
    cost = pipeline_cost(
        p.graph, p.hw, p.users, p.context, sol.groups, sol.weight_split, sol.kv_split, None, sol.cycle_s
    )
    return cost.max_chip_power_w, sol.objective


@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "one-unit"])
def test_power_limit(overlap: bool) -> None:
    """A limit above the unconstrained chips' power changes nothing; a tighter limit never lowers J/token
    and is met; the search, the Pyomo MILP and the exhaustive reference agree; below static: infeasible."""
    peak, free = unconstrained_chip_power(overlap)
    static = power_problem("none").hw.static_power_per_chip_w
    above = solve_stage(power_problem(peak * 1.01, overlap=overlap), 2, rel_gap=TIGHT).solution
    assert above.objective == pytest.approx(free, rel=REL)
    previous = free
    for share in (0.9, 0.7, 0.5):
        limit = static + share * (peak - static)
        p = power_problem(limit, overlap=overlap)
        fast, ref = solve_stage(p, 2, rel_gap=TIGHT).solution, exhaustive_stages(p, 2)
        record = solve_stage(p, 2, method="pyomo", rel_gap=1e-9).solution
        assert checked(p, fast) == pytest.approx(ref.objective, rel=REL)
        assert checked(p, record) == pytest.approx(ref.objective, rel=REL)
        assert fast.objective >= previous * (1 - 1e-9)
        previous = fast.objective
    below = power_problem(static * 0.99, overlap=overlap)
    assert solve_stage(below, 2).solution.groups is None


def test_pipeline_power_budget() -> None:
    """The budget of the whole pipeline binds through the cycle: the search's T_b and the MILP agree."""
    p0 = power_problem("none")
    sol = solve_stage(p0, 2, rel_gap=TIGHT).solution
    cost = pipeline_cost(
        p0.graph, p0.hw, p0.users, p0.context, sol.groups, sol.weight_split, sol.kv_split, None, sol.cycle_s
    )
    static = p0.static_power_w(2)
    for share in (1.5, 0.8, 0.5):
        budget = static + share * (cost.power_w - static)
        p = power_problem("none", budget=budget)
        fast, ref = solve_stage(p, 2, rel_gap=TIGHT).solution, exhaustive_stages(p, 2)
        record = solve_stage(p, 2, method="pyomo", rel_gap=1e-9).solution
        assert checked(p, fast) == pytest.approx(ref.objective, rel=REL)
        assert checked(p, record) == pytest.approx(ref.objective, rel=REL)
        if share > 1:
            assert fast.objective == pytest.approx(sol.objective, rel=REL)
        else:
            assert fast.objective > sol.objective


def test_time_limit() -> None:
    from planner.problem.instance import load_instance
    from planner.problem.problem import resolve

    p = resolve(load_instance("instances/llama-3.1-8b_tiny.yaml"))
    run = solve_stage(p, 3, time_limit=1e-9).solution
    assert run.status == "time_limit"
    if run.objective is not None:  # an incumbent comes with a proven bound
        assert run.best_bound is not None and run.best_bound <= run.objective


def test_cutoff() -> None:
    best = solve_stage(tiny(), 3, rel_gap=TIGHT).solution
    above = solve_stage(tiny(), 3, rel_gap=TIGHT, cutoff=best.objective * 1.01).solution
    assert above.objective == pytest.approx(best.objective, rel=REL)
    below = solve_stage(tiny(), 3, rel_gap=TIGHT, cutoff=best.objective * 0.99).solution
    assert below.groups is None and below.status == "pruned"
    assert below.best_bound >= best.objective * 0.99 * (1 - 1e-9)


def test_deterministic() -> None:
    problem, s = random_problem(3)
    a, b = solve_stage(problem, s).solution, solve_stage(problem, s).solution
    strip = dict(build_s=0.0, solve_s=0.0)
    assert dataclasses.replace(a, **strip) == dataclasses.replace(b, **strip)


def better_tier(hw: Hardware, name: str, rng: random.Random) -> Hardware:
    """The same hardware with tier `name` faster and cheaper per bit, same capacity."""
    tiers = tuple(
        dataclasses.replace(
            t,
            bw_bytes_per_s=t.bw_bytes_per_s * rng.uniform(1.0, 3.0),
            device_pj_per_bit=t.device_pj_per_bit * rng.uniform(0.3, 1.0),
        )
        if t.name == name
        else t
        for t in hw.tiers
    )
    return dataclasses.replace(hw, tiers=tiers)


@pytest.mark.parametrize("seed", range(12))
def test_better_memory_never_costs_more(seed: int) -> None:
    problem, s = random_problem(seed, power=False, budget=False)
    rng = random.Random(1000 + seed)
    name = rng.choice(list(problem.tiers))
    before = solve_stage(problem, s, rel_gap=TIGHT).solution
    better = dataclasses.replace(problem, hw=better_tier(problem.hw, name, rng))
    after = solve_stage(better, s, rel_gap=TIGHT).solution
    if before.groups is not None:
        assert after.groups is not None and after.objective <= before.objective * (1 + 1e-9)


@pytest.mark.parametrize(
    ("hardware", "kv"), [("sram-pipeline", "hbm3e"), ("h100-sxm", None)], ids=["sram", "h100"]
)
def test_llama_8b_every_stage_count(hardware: str, kv: str | None) -> None:
    """A real model: every S solves within the default gap, agrees with pipeline_cost, bounds hold."""
    graph = load_model("llama-3.1-8b").graph
    hw = load_hardware(hardware, kv_memory=kv)
    problem = from_graph(graph, hw, 1024, 4096, 20.0, max_chip_power="tdp")
    feasible = 0
    for s in (1, 2, 3, 5, 8, 16, 33, 66):
        run = solve_stage(problem, s)
        d = stage_data(problem, s)
        if run.solution.groups is not None:
            feasible += 1
            checked(problem, run.solution)
            assert run.solution.gap <= 1e-4
            assert lower_bound(d) * d.energy_unit_j <= run.solution.objective * (1 + 1e-9)
    assert feasible >= 5


def test_a_search_placement_that_fails_the_check_is_placed_by_the_pyomo_milp(monkeypatch) -> None:
    """The reported plan is the search's own placement when the evaluator's check passes it (every
    random instance above), else the Pyomo MILP's at the same cycle: with the check made to fail, the
    plan comes from the MILP and still equals the exhaustive reference (planner.placement.reference)."""
    import planner.placement.solve as solve_module

    for seed in SEEDS:
        problem, s = random_problem(seed)
        fast = solve_stage(problem, s, rel_gap=TIGHT)
        if fast.search is not None and fast.solution.groups is not None:
            break
    kept = final_placement(problem, fast, None)
    assert "placement by the search's slice LPs" in kept.message
    assert fast.violations == ()  # checked where the search priced its plan
    placed = final_placement(problem, dataclasses.replace(fast, violations=("forced for the test",)), None)
    assert "Pyomo MILP" in placed.message and "search's slice LPs" not in placed.message
    # a run that did not check its plan is checked here, with the same outcome
    monkeypatch.setattr(solve_module, "check", lambda problem, cost: ["forced for the test"])
    unchecked = final_placement(problem, dataclasses.replace(fast, violations=None), None)
    assert "Pyomo MILP" in unchecked.message and "search's slice LPs" not in unchecked.message
    monkeypatch.undo()
    ref = exhaustive_stages(problem, s)
    assert checked(problem, placed) == pytest.approx(ref.objective, rel=REL)


def test_a_walk_bound_plan_the_pyomo_milp_placed_is_not_placed_again(monkeypatch) -> None:
    """Random instance 4 is walk-bound at its S (one micro-batch fewer than slots x S); with gap 0 the
    two relaxations leave a gap, which the Pyomo MILP over the priced arcs closes (solve._milp_run). Its
    placement is the formulation of record already, so solve_problem keeps it instead of solving a second
    MILP at its period (that repeat was 69 of 78 s on the shipped DeepSeek-V3 instance). The plan still
    equals the exhaustive reference."""
    import planner.placement.solve as solve_module

    problem, s = random_problem(4)
    assert not problem.cycle_bound(s)
    solver = problem.spec.solver.model_copy(update={"gap": 0.0, "stages": s})
    problem = dataclasses.replace(problem, spec=problem.spec.model_copy(update={"solver": solver}))
    assert solve_stage(problem, s, rel_gap=0.0).by_milp

    def placed_twice(*args, **kwargs):
        raise AssertionError("final_placement ran on a plan the Pyomo MILP had placed")

    monkeypatch.setattr(solve_module, "final_placement", placed_twice)
    plan = solve_module.solve_problem(problem)
    assert plan.solver.objective == pytest.approx(exhaustive_stages(problem, s).objective, rel=REL)


def test_the_latency_views_plans_keep_every_groups_cycle_within_the_floor() -> None:
    """The walk relaxation (planner.placement.search.WalkSearch on planner.placement.stage.walk_data)
    of walk-bound pipelines, m = S micro-batches on two overlapping units (slots x S = 2S). Every feasible
    plan has each group's cycle at most period / m, so the latency view caps each resource there: its
    plans must keep that cap (before the cap, seed 15's plan ran a group past it, and a DeepSeek-V3 probe
    of the memory comparison was left undecided that way), its bound must stay below the exhaustive
    optimum (planner.placement.reference, by enumeration), and when it finds no path within the walk's
    budget the exhaustive reference must find no plan either."""
    seen = dict(plans=0, infeasible=0)
    for seed in range(60):
        problem, s = random_problem(seed, overlap=True)
        if s < 2 or problem.users < s:
            continue
        problem = problem.with_micro_batches(s)
        d = stage_data(problem, s)
        if d.t_max <= 0:
            continue
        walk = Pricing(walk_data(d))
        arcs = build_arcs(walk)
        path, lats, dual = [], [], math.inf
        if len(arcs):
            path, lats, _, dual = WalkSearch(walk, arcs).run(walk.d.static_e, walk.d.walk_max, 1e-9)
        ref = exhaustive_stages(problem, s)
        if ref.groups is not None:
            assert dual * d.energy_unit_j <= ref.objective * (1 + 1e-7), seed
        if not math.isfinite(dual):
            seen["infeasible"] += 1
            assert ref.groups is None, seed
        if path:
            seen["plans"] += 1
            slices = [
                (
                    int(arcs.starts[a]),
                    int(arcs.ends[a]),
                    walk.frontier(int(arcs.types[a])).fractions(lat, len(d.tiers)),
                )
                for a, lat in zip(path, lats)
            ]
            groups, w_split, k_split = placement(d, slices)
            clock = sum(lats) * d.time_unit_s / d.micro_batches
            cost = pipeline_cost(
                problem.graph, problem.hw, problem.users, problem.context, groups, w_split, k_split,
                problem.in_flight, clock,
            )  # fmt: skip
            assert max(g.cycle_s for g in cost.groups) <= d.t_max * d.time_unit_s * (1 + 1e-7), seed
    assert seen["plans"] >= 10 and seen["infeasible"] >= 5  # both sides exercised


def test_the_fastest_period_within_capped_cycles_is_the_uncapped_bottleneck() -> None:
    """planner.placement.explain.fastest_period prices only slices within a cycle cap it raises until a
    path exists; the answer must be the bottleneck path over every slice (all slices priced, no cap:
    the reference), and with `below` it must give that period when it is below and None otherwise."""
    from planner.placement.explain import fastest_period
    from planner.placement.search import bottleneck_cycle

    compared = 0
    for seed in SEEDS:
        problem, s = random_problem(seed)
        d = dataclasses.replace(stage_data(problem, s), t_max=math.inf)
        pricing = Pricing(d, keep_lps=False)
        cycle = bottleneck_cycle(pricing, build_arcs(pricing))
        period, _ = fastest_period(problem, s)
        if cycle is None:
            assert period is None, seed
            continue
        reference = d.micro_batches * cycle * d.time_unit_s
        assert period == pytest.approx(reference, rel=1e-12), seed
        assert fastest_period(problem, s, below=reference * 1.001)[0] == pytest.approx(reference, rel=1e-12)
        assert fastest_period(problem, s, below=reference * 0.999)[0] is None, seed
        compared += 1
    assert compared >= 20


def _least_cycles(d) -> dict[tuple[int, int], float]:
    """Every slice's least cycle (inf: it does not fit), priced with no cycle limit."""
    pricing = Pricing(dataclasses.replace(d, t_max=math.inf), keep_lps=False)
    out = {}
    for a in range(d.n):
        for b in range(a + 1, d.n + 1):
            k, _ = pricing.type_of(a, b)
            out[(a, b)] = pricing.t_min[k] if k >= 0 else math.inf
    return out


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_dropping_a_slices_leading_nodes_never_slows_it(seed: int) -> None:
    """What planner.placement.search.greedy_reach's proof rests on, checked by brute force over every
    slice a..b-1 and every later start g of the same end, in the cycle view and the latency view of
    the random instances (power limits, split graphs, one unit or two): g..b-1's least cycle is at most
    a..b-1's (LP round-off aside)."""
    problem, s = random_problem(seed)
    d = stage_data(problem, s)
    for view in (d, walk_data(d)):
        least = _least_cycles(view)
        for (a, b), t in least.items():
            for g in range(a + 1, b):
                assert least[(g, b)] <= t * (1 + 1e-9) + 1e-12, (seed, view.walk, a, g, b)


def test_the_greedy_cover_decides_exactly_when_the_enumeration_finds_no_arc(monkeypatch) -> None:
    """build_arcs returns no arcs at once when greedy_reach falls short of the chain; with the test
    disabled (the full enumeration, the reference) the arcs must be none too, and where the greedy
    reaches the end the arcs are the enumeration's. Every random instance at every S from 1 to N, at
    cycle limits scaled by 1/4, 1/2 and 1 (many speed floors out of reach)."""
    from planner.placement import search

    decided = compared = 0
    for seed in SEEDS:
        problem, _ = random_problem(seed)
        for s in range(1, len(problem.nodes) + 1):
            base = stage_data(problem, s)
            for scale in (0.25, 0.5, 1.0):
                d = dataclasses.replace(base, t_max=base.t_max * scale)
                fast = build_arcs(Pricing(d))
                short = search.greedy_reach(Pricing(d)) < d.n
                with monkeypatch.context() as patched:
                    patched.setattr(search, "greedy_reach", lambda pricing, deadline=math.inf: pricing.d.n)
                    full = build_arcs(Pricing(d))
                got = sorted(zip(fast.starts.tolist(), fast.ends.tolist(), fast.t_feas.tolist()))
                want = sorted(zip(full.starts.tolist(), full.ends.tolist(), full.t_feas.tolist()))
                assert got == want, (seed, s, scale)
                assert not short or len(full) == 0, (seed, s, scale)
                decided += short
                compared += len(full) > 0
    assert decided >= 100 and compared >= 100  # both sides exercised
