"""Placement for a fixed number of stages: planner.milp against the exhaustive reference and the cost model.

Small random instances (seeded): tiny HF configs (dense, MoE, sliding windows) on sram-pipeline with
HBM3E, capacities shrunk so that both the tier split and the partition matter, random bandwidths,
static power, speed floors (some unreachable) and sometimes a third tier or a restricted tier set.
"""

from __future__ import annotations

import dataclasses
import math
import random

import networkx as nx
import pytest

from planner.cost.node import node_cost
from planner.cost.pipeline import micro_batches, pipeline_cost
from planner.hardware.catalog import Hardware, MemoryTier, load_hardware
from planner.model.config import HFConfig
from planner.model.graph import Dtypes, build_graph, kv_tokens, load_model
from planner.placement.reference import exhaustive_stages
from planner.placement.search import StageSolution, lower_bound, solve_stages, solve_stages_milp

BASE = load_hardware("sram-pipeline", kv_memory="hbm3e")
REL = 1e-6


def resident_bytes(graph: nx.DiGraph, users: int, context: int) -> float:
    return sum(
        d["weight_bytes"] + users * d["kv_bytes_per_token"] * kv_tokens(d, context)
        for _, d in graph.nodes(data=True)
    )


def random_instance(seed: int) -> dict:
    """Keyword arguments of solve_stages for one small random instance."""
    rng = random.Random(seed)
    layers = rng.randint(1, 4)
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
    if rng.random() < 0.3:
        kinds = ["full_attention", "sliding_attention"]
        cfg.update(sliding_window=rng.choice([8, 32]), layer_types=[rng.choice(kinds) for _ in range(layers)])
    graph = build_graph(HFConfig(**cfg), Dtypes())
    users = rng.choice([1, 2, 3, 4, 8, 16])
    context = rng.choice([16, 64, 256])
    stages = rng.randint(1, min(4, graph.number_of_nodes()))
    cpg = rng.choice([1, 2])
    per_group = resident_bytes(graph, users, context) / stages * rng.uniform(0.9, 2.5)
    sram_share = rng.uniform(0.05, 0.7)
    hbm_bw = 10 ** rng.uniform(9, 12)
    sram, hbm = BASE.tier("sram"), BASE.tier("hbm3e")
    tiers = [
        dataclasses.replace(
            sram, capacity_bytes=per_group * sram_share / cpg, bw_bytes_per_s=hbm_bw * rng.uniform(1.2, 20)
        ),
        dataclasses.replace(hbm, capacity_bytes=per_group * (1 - sram_share) / cpg, bw_bytes_per_s=hbm_bw),
    ]
    if rng.random() < 0.25:
        tiers.append(MemoryTier("ddr5", per_group / cpg, hbm_bw / rng.uniform(2, 8), 8.0, 1.0, False))
    achievable = dataclasses.replace(
        BASE.achievable,
        node_overhead_s=rng.choice([0.0, 0.0, 1e-9, 1e-8]),
        attention_bytes_per_s_per_work_item=rng.choice([None, None, 1e8, 1e9]),
        kv_bandwidth=rng.choice([0.9, 0.6]),
    )
    hw = dataclasses.replace(
        BASE,
        tiers=tuple(tiers),
        chips_per_group=cpg,
        achievable=achievable,
        peak_flops_per_s={"bf16": 10 ** rng.uniform(11, 14)},
        static_power_w=10 ** rng.uniform(-1, 2),
    )
    allowed = [t.name for t in tiers if t.name != "sram"] if rng.random() < 0.15 else None
    # speed floor around a capacity-free estimate of the per-token time (some unreachable)
    b = users / micro_batches(users, stages)
    estimate = 0.0
    for v in graph.nodes:
        c = node_cost(v, graph.nodes[v], hw, b, users, context)
        estimate += max(c.weight_compute_s, min(c.weight_read_s.values()))
        estimate += max(c.context_compute_s, min(c.kv_read_s.values())) + c.overhead_s + c.collective_s
    latency = (stages - 1) * hw.inter_link.latency_s
    floor = 0.0 if rng.random() < 0.1 else 1.0 / (estimate * rng.uniform(0.8, 4.0) + latency)
    return dict(
        graph=graph,
        hw=hw,
        users=users,
        context=context,
        min_tokens_per_s=floor,
        stages=stages,
        allowed_tiers=allowed,
    )


def check_placement(sol: StageSolution, inst: dict, overflow_rel: float = 0.0) -> float:
    """The plan is a valid S-stage placement; returns pipeline_cost's J/token (and checks it).

    `overflow_rel`: tier overflow tolerated, relative to a group's tier (the reference LP has no margin).
    """
    graph, hw = inst["graph"], inst["hw"]
    nodes = list(graph.nodes)
    assert sol.groups is not None and len(sol.groups) == inst["stages"]
    assert all(sol.groups) and [n for g in sol.groups for n in g] == nodes
    allowed = inst["allowed_tiers"] or [t.name for t in hw.tiers]
    for split in (sol.weight_split, sol.kv_split):
        assert split is not None and set(split) == set(nodes)
        for fractions in split.values():
            assert set(fractions) <= set(allowed)
            assert all(v >= 0 for v in fractions.values())
            assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-9)
    cost = pipeline_cost(
        graph, hw, inst["users"], inst["context"], sol.groups, sol.weight_split, sol.kv_split
    )
    capacity = {t.name: t.capacity_bytes * hw.chips_per_group for t in hw.tiers}
    assert all(v <= overflow_rel * capacity[t] for t, v in cost.overflow_bytes.items())
    if inst["min_tokens_per_s"] > 0:
        assert cost.token_s <= (1.0 / inst["min_tokens_per_s"]) * (1 + 1e-9)
    assert cost.joules_per_token == pytest.approx(sol.objective, rel=REL)
    assert sol.micro_batches == micro_batches(inst["users"], inst["stages"])
    return cost.joules_per_token


SEEDS = range(48)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_exhaustive(seed: int) -> None:
    inst = random_instance(seed)
    sol = solve_stages(**inst, rel_gap=1e-10)
    ref = exhaustive_stages(**inst)
    bound = lower_bound(**inst)
    assert sol.status == ref.status, (sol.message, ref.message)
    if ref.status == "infeasible":
        assert sol.objective is None and sol.groups is None
        return
    assert sol.status == "optimal" and sol.gap is not None and sol.gap <= 1e-8
    assert sol.objective == pytest.approx(ref.objective, rel=REL)
    assert check_placement(sol, inst) == pytest.approx(ref.objective, rel=REL)
    # the reference agrees with the cost model too
    assert check_placement(ref, inst, overflow_rel=1e-9) == pytest.approx(ref.objective, rel=REL)
    assert sol.best_bound <= sol.objective
    assert bound is not None and bound <= ref.objective * (1 + 1e-9)


def test_instances_exercise_both_outcomes() -> None:
    statuses = [exhaustive_stages(**random_instance(s)).status for s in SEEDS]
    assert statuses.count("optimal") >= 20 and statuses.count("infeasible") >= 10


@pytest.mark.parametrize("seed", [0, 2, 3, 5, 8, 11])
def test_pyomo_milp_matches(seed: int) -> None:
    inst = random_instance(seed)
    sol = solve_stages_milp(**inst, rel_gap=1e-9, time_limit=30)
    ref = exhaustive_stages(**inst)
    assert sol.status == ref.status
    if ref.status == "optimal":
        assert check_placement(sol, inst) == pytest.approx(ref.objective, rel=REL)


def tiny() -> dict:
    """A 3-layer dense model (8 nodes) on two SRAM-poor HBM chips per group."""
    cfg = HFConfig(
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=256,
        vocab_size=300,
    )
    graph = build_graph(cfg, Dtypes())
    size = resident_bytes(graph, 8, 128)
    tiers = (
        dataclasses.replace(BASE.tier("sram"), capacity_bytes=size * 0.05),
        dataclasses.replace(BASE.tier("hbm3e"), capacity_bytes=size * 0.3),
    )
    hw = dataclasses.replace(BASE, tiers=tiers, chips_per_group=2)
    return dict(graph=graph, hw=hw, users=8, context=128, min_tokens_per_s=0.0, stages=3, allowed_tiers=None)


def test_capacity_infeasible() -> None:
    inst = tiny()
    assert solve_stages(**inst).status == "optimal"  # 3 groups x 2 chips x 35 % hold it
    inst["stages"] = 1
    for sol in (solve_stages(**inst), exhaustive_stages(**inst), solve_stages_milp(**inst)):
        assert sol.status == "infeasible" and sol.objective is None and sol.groups is None
    assert lower_bound(**inst) is None
    inst["stages"] = 3
    inst["allowed_tiers"] = ["sram"]
    assert solve_stages(**inst).status == "infeasible"


def test_speed_floor_unreachable() -> None:
    inst = tiny()
    best = solve_stages(**inst)
    inst["min_tokens_per_s"] = 0.5 / (3 * best.cycle_s)  # slack: still feasible
    assert solve_stages(**inst).objective == pytest.approx(best.objective, rel=REL)
    inst["min_tokens_per_s"] = 1e12  # far beyond any cycle
    for sol in (solve_stages(**inst), exhaustive_stages(**inst)):
        assert sol.status == "infeasible" and sol.groups is None
    assert lower_bound(**inst) is None
    inst["min_tokens_per_s"] = 1.0 / (2.5 * inst["hw"].inter_link.latency_s)  # two hops of latency > 1/r
    assert solve_stages(**inst).status == "infeasible"
    assert lower_bound(**inst) is None


def test_speed_floor_binds_at_its_limit() -> None:
    """At exactly the fastest feasible cycle the floor is met; a hair faster is infeasible."""
    inst = random_instance(1)
    inst["min_tokens_per_s"] = 0.0
    free = solve_stages(**inst, rel_gap=1e-10)
    assert free.status == "optimal"
    lat = (inst["stages"] - 1) * inst["hw"].inter_link.latency_s
    inst["min_tokens_per_s"] = 1.0 / (inst["stages"] * free.cycle_s * 0.999 + lat)
    tighter = solve_stages(**inst, rel_gap=1e-10)
    ref = exhaustive_stages(**inst)
    assert tighter.status == ref.status
    if ref.status == "optimal":
        assert tighter.objective == pytest.approx(ref.objective, rel=REL)
        assert tighter.objective >= free.objective * (1 - 1e-9)


def test_bad_inputs_do_not_raise() -> None:
    inst = tiny()
    assert solve_stages(**{**inst, "stages": 99}).status == "infeasible"
    assert solve_stages(**{**inst, "stages": 0}).status == "infeasible"
    assert solve_stages(**{**inst, "allowed_tiers": ["nonesuch"]}).status == "error"
    assert lower_bound(**{**inst, "stages": 99}) is None


def test_time_limit() -> None:
    model = load_model("llama-3.1-8b")
    hw = load_hardware("sram-pipeline", kv_memory="hbm3e")
    sol = solve_stages(model.graph, hw, 1024, 4096, 20, 4, time_limit=1e-6)
    assert sol.status == "time_limit"
    if sol.objective is not None:  # an incumbent comes with a proven bound
        assert sol.best_bound is not None and sol.best_bound <= sol.objective
    full = solve_stages(model.graph, hw, 1024, 4096, 20, 4, time_limit=600)
    assert full.status == "optimal" and full.gap <= 1e-4


def test_cutoff() -> None:
    inst = tiny()
    best = solve_stages(**inst, rel_gap=1e-10)
    above = solve_stages(**inst, rel_gap=1e-10, cutoff=best.objective * 1.01)
    assert above.status == "optimal" and above.objective == pytest.approx(best.objective, rel=REL)
    below = solve_stages(**inst, rel_gap=1e-10, cutoff=best.objective * 0.99)
    assert below.status == "infeasible" and below.best_bound >= best.objective * 0.99 * (1 - 1e-9)


def test_deterministic() -> None:
    inst = random_instance(3)
    a, b = solve_stages(**inst), solve_stages(**inst)
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
    inst = random_instance(seed)
    rng = random.Random(1000 + seed)
    name = rng.choice([t.name for t in inst["hw"].tiers])
    before = solve_stages(**inst, rel_gap=1e-10)
    after = solve_stages(**{**inst, "hw": better_tier(inst["hw"], name, rng)}, rel_gap=1e-10)
    if before.status == "optimal":
        assert after.status == "optimal"
        assert after.objective <= before.objective * (1 + 1e-9)
    else:
        assert before.status == "infeasible"


@pytest.mark.parametrize(
    ("hardware", "kv_memory"), [("sram-pipeline", "hbm3e"), ("h100-sxm", None)], ids=["sram", "h100"]
)
def test_llama_8b_every_stage_count(hardware: str, kv_memory: str | None) -> None:
    """A real model: every S solves within the default gap, agrees with pipeline_cost, bounds hold."""
    graph = load_model("llama-3.1-8b").graph
    hw = load_hardware(hardware, kv_memory=kv_memory)
    inst = dict(graph=graph, hw=hw, users=1024, context=4096, min_tokens_per_s=20.0, allowed_tiers=None)
    feasible = 0
    for s in (1, 2, 3, 5, 8, 16, 33, 66):
        sol = solve_stages(**inst, stages=s)
        bound = lower_bound(**inst, stages=s)
        assert sol.status in ("optimal", "infeasible")
        if sol.status == "optimal":
            feasible += 1
            check_placement(sol, {**inst, "stages": s})
            assert sol.gap <= 1e-4
            assert bound is not None and bound <= sol.objective * (1 + 1e-9)
    assert feasible >= 5


@pytest.mark.slow
def test_deepseek_all_stage_counts_within_gap() -> None:
    """The benchmark's goal: DeepSeek-V3 on sram-pipeline+HBM3E, every S proven within 0.1 %."""
    graph = load_model("deepseek-v3").graph
    hw = load_hardware("sram-pipeline", kv_memory="hbm3e")
    for s in range(1, graph.number_of_nodes() + 1):
        sol = solve_stages(graph, hw, 1024, 4096, 20.0, s, rel_gap=1e-3)
        assert sol.status in ("optimal", "infeasible")
        if sol.status == "optimal":
            assert sol.gap <= 1e-3
            cost = pipeline_cost(graph, hw, 1024, 4096, sol.groups, sol.weight_split, sol.kv_split)
            assert cost.joules_per_token == pytest.approx(sol.objective, rel=REL)
            assert not cost.overflow_bytes and math.isfinite(sol.objective)
