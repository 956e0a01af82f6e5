"""The chip group as the seed draws it, each capability checked by hand on a tiny instance, and the
closed-form limits (capacity, KV bandwidth) reached by the optimizer where they bind.

Hand figures come from the hardware YAML (instances/hardware/sram-pipeline.yaml, instances/memory/*.yaml)
and the model's shape, written out here, not from planner.cost.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from planner.cost.pipeline import pipeline_cost
from planner.hardware.catalog import Unit, load_hardware
from planner.model.config import HFConfig
from planner.model.graph import Dtypes, build_graph, load_model
from planner.model.split import KV_PARTS_PER_GROUP, MAX_CORE_PARTS, Granularity, core_parts, split_graph
from planner.problem.instance import spec_from_flags
from planner.runs.cache import solve_case
from planner.studies.capacity import max_users, spec_with_users

# sram-pipeline: 1000 TFLOP/s MAC, 250 TFLOP/s attention unit, compute fraction 0.7, bandwidth 0.9;
# HBM3E 4 stacks x 1.2 TB/s per chip; inter-group link 1 TB/s x 0.9, 0.2 us; intra 2 TB/s x 0.9, 0.5 us
SRAM_PIPE = load_hardware("sram-pipeline", kv_memory="hbm3e")
CFG = HFConfig(
    model_type="llama", hidden_size=256, num_hidden_layers=1, num_attention_heads=8, num_key_value_heads=4,
    intermediate_size=512, vocab_size=1000,
)  # fmt: skip
H, HEADS, KV_HEADS, D = 256, 8, 4, 32  # head_dim = 256 / 8


class Placed:
    """`names` (contiguous) as one group, the nodes before and after it in groups of their own."""

    def __init__(self, graph, hw, users, context, names):
        nodes = list(graph.nodes)
        i, j = nodes.index(names[0]), nodes.index(names[-1]) + 1
        groups = [g for g in (nodes[:i], nodes[i:j], nodes[j:]) if g]
        w = {n: {"sram": 1.0} for n in nodes}
        k = {n: {"hbm3e": 1.0} for n in nodes}
        self.pipeline = pipeline_cost(graph, hw, users, context, groups, w, k)
        self.group = self.pipeline.groups[groups.index(nodes[i:j])]


def one_group(graph, hw, users, context, names):
    return Placed(graph, hw, users, context, names)


def test_split_attention_core_holds_its_heads_kv_and_time():
    """Two cores by KV heads: each holds 2 of the 4 KV heads' cache (2 x 2 heads x 32 x 2 B = 256 B per
    token per user) and does half the attention; its context phase reads half the bytes."""
    whole = build_graph(CFG, Dtypes())
    graph = split_graph(whole, Granularity(core=2))
    assert [n for n in graph.nodes if ".core" in n] == ["L0.core#0", "L0.core#1"]
    part = graph.nodes["L0.core#0"]
    assert part["kv_bytes_per_token"] == 2 * 2 * D * 2 == whole.nodes["L0.attn"]["kv_bytes_per_token"] / 2
    assert part["split_by"] == "heads" and part["weight_bytes"] == 0
    users, context = 64, 1000
    hw = SRAM_PIPE.with_chips_per_group(1)
    placed = one_group(graph, hw, users, context, ["L0.core#0"])
    b, g = placed.pipeline.micro_batch, placed.group
    kv_read = b * (context + 1) * 256  # read the cache, write one token
    hbm = 4 * 1.2e12 * 0.9
    flops = b * context * 4 * (HEADS // 2) * D
    expected = max(kv_read / hbm, flops / (250e12 * 0.7))
    assert g.unit_busy_s["attention"] == pytest.approx(expected, rel=1e-12)
    assert g.resident_bytes["hbm3e"] == pytest.approx(users * context * 256, rel=1e-12)


def test_default_core_split_keeps_each_part_under_a_tenth_of_a_group():
    """split.core_parts by hand. Llama-3.1-70B keeps 2 x 8 KV heads x 128 x 2 B = 4,096 B per token in a
    layer, 4,096 x 4,096 B = 16.78 MB per user at 4,096 context. On groups of 8 sram-pipeline chips with
    HBM4 (144 GB + 256 MB SRAM per chip: 1.154 TB) 100,000 users hold 1.678 TB per layer: ceil(10 x 1.454)
    = 15 parts; the shipped instance's 2,048 users on the novel KV DRAM (16 GB + 256 MB per chip: 130 GB)
    34.4 GB: ceil(2.64) = 3; one user: 1 (whole); a layer of 2 groups' worth: the cap, 16. Every part
    then holds at most a tenth of a group (brute force over layer sizes below the cap)."""
    from planner.model.split import layer_kv_bytes

    llama = load_model("llama-3.1-70b")
    layer = layer_kv_bytes(llama.graph, 1, 4096)
    assert layer == 4096 * 4096
    hbm4_group, dram_group = 8 * (144e9 + 256e6), 8 * (16e9 + 256e6)
    assert core_parts(layer_kv_bytes(llama.graph, 100_000, 4096), hbm4_group) == 15
    assert core_parts(layer_kv_bytes(llama.graph, 2048, 4096), dram_group) == 3
    assert core_parts(layer, dram_group) == 1 and core_parts(2 * hbm4_group, hbm4_group) == MAX_CORE_PARTS
    for tenths in range(1, 10 * MAX_CORE_PARTS // KV_PARTS_PER_GROUP + 1):
        kv = tenths / 10 * hbm4_group * (1 - 1e-6)
        assert kv / core_parts(kv, hbm4_group) <= hbm4_group / KV_PARTS_PER_GROUP, tenths
    # Phi-3-mini: every layer a 2,047-token sliding window of 32 KV heads x 96 x 2 x 2 B = 12,288 B
    assert layer_kv_bytes(load_model("phi-3-mini-4k").graph, 1, 8192) == 12_288 * 2_047


def test_the_automatic_split_sizes_cores_from_the_instance_and_searches_fix_them():
    """Through resolve: the shipped Llama sram-pipeline instance (2,048 users, novel KV DRAM) gets the 3
    core parts computed by hand above; a capacity search fixes the parts of its capacity bound for every
    probe (with_core_parts_fixed), so each probe solves one graph; core_parts with a split by kind is
    refused with the fix."""
    from planner.core.errors import PlannerInputError
    from planner.problem.instance import load_instance
    from planner.problem.problem import resolve
    from planner.studies.capacity import capacity_bound_users, spec_with_users, with_core_parts_fixed

    shipped = load_instance("instances/llama-3.1-70b_sram-pipeline_novel-kv-dram.yaml")
    assert resolve(shipped).granularity.core == 3
    bound = capacity_bound_users(shipped)
    fixed = with_core_parts_fixed(spec_with_users(shipped, bound))
    # the bound's layer KV: bound x 16.78 MB over the group's 130 GB; ceil(10 x that), at most 16
    expected = min(16, math.ceil(10 * bound * 4096 * 4096 / (8 * (16e9 + 256e6))))
    assert fixed.core_parts == expected and resolve(spec_with_users(fixed, 1)).granularity.core == expected
    with pytest.raises(PlannerInputError, match="core_parts"):
        spec_from_flags(
            model="llama-3.1-8b", hardware="sram-pipeline", max_groups=4, users=1, context=64,
            min_tokens_per_s=1, split={"core": 2}, core_parts=4,
        )  # fmt: skip


def test_a_fixed_stage_count_gets_a_split_with_at_least_as_many_nodes():
    """A fixed S puts at least one node on each stage, so the automatic split refines its weight parts
    until it has S nodes (split.auto_granularity). DeepSeek-V3 on one-chip sram-pipeline groups with one
    user keeps whole nodes: embed + 61 layers x (attention + FFN or MoE) + LM head = 124. At S = 160 the
    part size is halved once: the MoE layers (58 of 61; 256 experts of 44 MB at fp8) split in 2, 124 + 58
    = 182 >= 160. At S = 560 more halvings split them in 11: 124 + 58 x 10 = 704 >= 560. Enumerated S
    (none fixed) keeps the 124-node split; node_count matches the split graph's nodes."""
    from planner.model.split import node_count
    from planner.problem.problem import resolve

    def resolved(stages):
        return resolve(spec_from_flags(
            model="deepseek-v3", hardware="sram-pipeline", kv_memory="hbm3e", chips_per_group=1,
            max_groups=560, users=1, context=4096, min_tokens_per_s=20, stages=stages,
        ))  # fmt: skip

    for stages, moe, nodes in ((None, 1, 124), (64, 1, 124), (160, 2, 182), (560, 11, 704)):
        problem = resolved(stages)
        assert (problem.granularity.moe, problem.graph.number_of_nodes()) == (moe, nodes), stages
        assert node_count(load_model("deepseek-v3").graph, problem.granularity) == nodes


def test_a_given_split_with_fewer_nodes_than_a_fixed_s_is_explained():
    """A split the user gives is not refined: Llama-3.1-8B whole is embed + 32 x (attention + FFN) + LM
    head = 66 nodes, so 100 fixed stages cannot each hold one; the explanation names the stages and the
    node count (not capacity) and how to fix it."""
    from planner.core.errors import InfeasibleError
    from planner.placement.solve import solve_problem
    from planner.problem.problem import resolve

    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", chips_per_group=1, max_groups=100, users=1,
        context=64, min_tokens_per_s=1, split="none", stages=100,
    )  # fmt: skip
    problem = resolve(spec)
    assert len(problem.nodes) == 66
    with pytest.raises(InfeasibleError, match="100 stages need at least 100 nodes.*gives 66") as err:
        solve_problem(problem)
    assert err.value.binding == "stages (too few nodes)"


def test_overlapping_units_cycle_is_the_busiest_resource_not_the_sum():
    """One layer in one group: the attention unit runs the attention's context phase, the MAC unit the
    projections and the FFN.
    With overlap the cycle is the largest of the units' busy times (and latency / 2 slots); without, the
    group is one resource and its cycle is the sum (its latency)."""
    graph = build_graph(CFG, Dtypes())
    hw = SRAM_PIPE.with_chips_per_group(1)
    names = ["L0.attn", "L0.ffn"]
    over = one_group(graph, hw, 64, 4096, names).group
    attention, mac = over.unit_busy_s["attention"], over.unit_busy_s["mac"]
    assert attention > 0 and mac > 0
    assert over.cycle_s == pytest.approx(
        max(
            attention,
            mac,
            *over.tier_busy_s.values(),
            over.link_busy_s["intra"],
            over.send_s,
            over.latency_s / 2,
        ),
        rel=1e-12,
    )
    assert over.cycle_s < attention + mac
    serial_hw = dataclasses.replace(hw, units=(Unit("chip", ("weights", "context")),), units_overlap=False)
    serial = one_group(graph, serial_hw, 64, 4096, names).group
    assert serial.cycle_s == pytest.approx(serial.latency_s, rel=1e-12)
    assert serial.latency_s == pytest.approx(serial.busy_s + serial.send_s + serial.hop_latency_s, rel=1e-12)


def test_sharded_lm_head_gathers_top_k_candidates_not_logits():
    """A vocabulary-parallel LM head on 8 chips: each chip reports its top-1 candidate (8 B) per user,
    one chip receives the other 7: 7 x b x 8 B over the intra-group link, plus one latency."""
    graph = build_graph(CFG, Dtypes(), sample_top_k=1)
    head = graph.nodes["lm_head"]
    assert head["collective"] == "gather" and head["collective_bytes_per_token"] == 8
    hw = SRAM_PIPE.with_chips_per_group(8)
    placed = one_group(graph, hw, 64, 128, ["lm_head"])
    cost, b = placed.group, placed.pipeline.micro_batch
    expected = 7 * b * 8 / (2e12 * 0.9) + 0.5e-6
    assert cost.link_busy_s["intra"] == pytest.approx(expected, rel=1e-12)
    full_logits = 7 * b * 1000 * 2 / 8 / (2e12 * 0.9)  # what gathering each chip's logit shard would move
    assert expected - 0.5e-6 < full_logits
    top50 = one_group(build_graph(CFG, Dtypes(), sample_top_k=50), hw, 64, 128, ["lm_head"]).group
    assert top50.link_busy_s["intra"] == pytest.approx(7 * b * 50 * 8 / (2e12 * 0.9) + 0.5e-6, rel=1e-12)


def test_walk_with_one_and_with_s_micro_batches():
    """Three groups of one unit (a GPU-like group): with one micro-batch the period is the walk (the
    sum of the groups' latencies, sends and hops included); with S micro-batches it is S x the slowest
    group's cycle when that exceeds the walk."""
    graph = build_graph(CFG, Dtypes())
    hw = dataclasses.replace(
        SRAM_PIPE.with_chips_per_group(1), units=(Unit("chip", ("weights", "context")),), units_overlap=False
    )
    nodes = list(graph.nodes)
    groups = [nodes[:1], nodes[1:3], nodes[3:]]
    w = {n: {"sram": 1.0} for n in nodes}
    k = {n: {"hbm3e": 1.0} for n in nodes}
    one = pipeline_cost(graph, hw, 48, 1024, groups, w, k, in_flight=1)
    assert one.micro_batches == 1
    walk = sum(g.busy_s + g.send_s + g.hop_latency_s for g in one.groups)
    assert one.period_s == pytest.approx(walk, rel=1e-12)
    assert all(g.hop_latency_s == 0.2e-6 for g in one.groups)  # the last returns the sampled tokens
    deep = pipeline_cost(graph, hw, 48, 1024, groups, w, k)
    assert deep.micro_batches == 3
    assert deep.period_s == pytest.approx(
        max(deep.walk_s, 3 * max(g.cycle_s for g in deep.groups)), rel=1e-12
    )
    assert deep.period_s == pytest.approx(3 * max(g.cycle_s for g in deep.groups), rel=1e-12)  # unbalanced
    # idle: 3 chips x (40 W static + 4 HBM3E stacks x 0.4 W standby, instances/*/sram-pipeline and hbm3e)
    assert one.joules_per_token_by["idle"] == pytest.approx(
        3 * (40.0 + 4 * 0.4) * one.period_s / 48, rel=1e-12
    )


def test_capacity_limit_reached_within_half_a_percent():
    """Llama-3.1-8B on sram-pipeline + novel KV DRAM, 64 groups of 8 chips, at a slow floor: KV next to
    every die (cores split 16 ways, split.core_parts, and cut between groups by users, placement.packing)
    fills all of them. Closed form: users <= (dies x 16 GB + SRAM left over) / (context x KV bytes per
    token): 512 dies x 16 GB + 512 x 256 MB - 16.06 GB of weights, over 4,096 x 131,072 B = 536.9 MB per
    user = 15,473. Whole parts alone stop at 15,331 (99.1%): the packing must be what reaches 99.5%."""
    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="novel-kv-dram", chips_per_group=8,
        max_groups=64, users=1, context=4096, min_tokens_per_s=5,
    )  # fmt: skip
    bound = (512 * 16e9 + 512 * 256e6 - 16_060_522_496) / (4096 * 131072)
    found = max_users(spec)
    assert found.exact and found.max_users <= bound
    assert found.max_users >= 0.995 * bound, (found.max_users, bound)
    assert found.summary()["core_cuts"] > 0  # the plan at U* cuts core parts between groups
    assert found.summary()["binding"] == "capacity"  # at U* + 1 the packing's memory is full
    assert found.summary()["explanation"].startswith("With core parts cut between groups")
    # the reason at U* + 1 is computed from the probe's proven verdict: the full solve gives the same row
    full = solve_case(spec_with_users(found.above.spec, found.max_users + 1)).row
    assert {k: v for k, v in found.above.row.items() if k != "solve_s"} == {
        k: v for k, v in full.items() if k != "solve_s"
    }


def test_a_solve_whole_parts_cannot_place_gets_the_packings_cuts_and_evaluates_clean():
    """The same instance at 15,400 users, above where whole parts stop (15,331) and below the bound
    (15,473): `solve` cuts core parts between groups (its plan's instance says where) and the
    evaluator, from the instance and the plan alone, finds no violation and fills the KV tiers to within
    1% of the users the closed form allows."""
    from planner.api import evaluate, solve

    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="novel-kv-dram", chips_per_group=8,
        max_groups=64, users=15_400, context=4096, min_tokens_per_s=5, core_parts=16,
    )  # fmt: skip
    plan = solve(spec)
    assert plan.instance.core_cuts and plan.stages == 64
    assert any(n.endswith(":a") for g in plan.groups for n in g)
    result = evaluate(spec, plan)
    assert result.violations == [] and result.cost.stages == 64


def _kv_in_dram_only_3000_users():
    """Llama-3.1-8B, 3,000 users at 4,096 tokens, cores in 4 parts, KV only in the novel DRAM, weights in
    SRAM, 16 groups of 8 chips at S = 16, a floor of 1 token/s (the packing tests below)."""
    return spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="novel-kv-dram", chips_per_group=8,
        max_groups=16, users=3000, context=4096, min_tokens_per_s=1, core_parts=4, kv_tiers=["novel-kv-dram"],
        weight_tiers=["sram"], stages=16,
    )  # fmt: skip


def test_a_probe_takes_the_packings_groups_as_its_plan_and_agrees_with_the_exact_search():
    """The instance above at 15,400 users solved for its verdict only (gap 1: any plan will do, as the
    capacity searches ask): its plan is the packing's own groups, one slice LP each, and the evaluator
    finds no violation; the exact search of the same cut problem finds a plan too (the verdicts agree),
    with J/token no higher than the probe's."""
    from planner.api import evaluate, solve
    from planner.studies.capacity import feasibility_probe

    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="novel-kv-dram", chips_per_group=8,
        max_groups=64, users=15_400, context=4096, min_tokens_per_s=5, core_parts=16,
    )  # fmt: skip
    probe = solve(feasibility_probe(spec))
    assert "the packing's groups" in probe.solver.message and probe.stages == 64
    assert evaluate(spec, probe).violations == []
    full = solve(spec)
    assert full.instance.core_cuts == probe.instance.core_cuts
    assert full.solver.objective <= probe.solver.objective * (1 + 1e-9)


def test_a_packing_with_fewer_groups_than_its_s_has_its_longest_groups_halved():
    """The 13-group packing of the next test (S = 16 fixed) made a plan: its longest groups are halved
    until there are 16, each cut part still ends one group (its first piece) and starts the next (its
    second), and the evaluator finds no violation in the plan."""
    import time

    from planner.api import evaluate
    from planner.placement.packing import packed_problem
    from planner.placement.solve import _packed_plan
    from planner.problem.problem import resolve

    problem = resolve(_kv_in_dram_only_3000_users())
    cut, packing = packed_problem(problem)
    assert packing.groups == 13 and packing.stages == 16
    plan = _packed_plan(cut, packing, time.perf_counter())
    assert plan is not None and plan.stages == 16 and len(plan.groups) == 16
    for name in packing.cuts:
        g = next(k for k, nodes in enumerate(plan.groups) if f"{name}:a" in nodes)
        assert plan.groups[g][-1] == f"{name}:a" and plan.groups[g + 1][0] == f"{name}:b"
    assert evaluate(cut.spec, plan).violations == []


def test_a_cut_plan_from_a_list_of_group_sizes_keeps_the_instance_and_round_trips(tmp_path):
    """With chips_per_group [4, 8] the plan's instance keeps the list (the size is the plan's decision,
    8: 64 groups of 4 hold half the KV), and the plan saved as YAML and read back evaluates clean against
    the instance as given."""
    from planner.api import evaluate, solve
    from planner.plans.plan import load_plan

    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="novel-kv-dram", chips_per_group=[4, 8],
        max_groups=64, users=15_400, context=4096, min_tokens_per_s=5, core_parts=16,
    )  # fmt: skip
    plan = solve(spec)
    assert plan.chips_per_group == 8 and plan.instance.chips_per_group == [4, 8] and plan.instance.core_cuts
    assert "core parts cut between groups" in plan.solver.message
    again = load_plan(plan.save(tmp_path / "plan.yaml"))
    assert evaluate(spec, again).violations == []


def test_a_probe_of_a_list_of_group_sizes_packs_on_the_sizes_own_split():
    """The [4, 8] instance above as a probe (any plan): the packing completes only with 8 chips, whose
    split has 612 nodes against the 4-chip split's 614 (embed and lm_head in 2 parts, not 3), so its
    boundaries must be read on the 8-chip chain. The packing's plan is taken (not the exact search) and
    evaluates clean against the instance as given."""
    from planner.api import evaluate, solve
    from planner.placement.packing import packed_problem
    from planner.problem.problem import resolve
    from planner.studies.capacity import feasibility_probe

    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="novel-kv-dram", chips_per_group=[4, 8],
        max_groups=64, users=15_400, context=4096, min_tokens_per_s=5, core_parts=16,
    )  # fmt: skip
    base = resolve(spec)
    eight = base.with_chips_per_group(8)
    assert len(base.nodes) == 614 and len(eight.nodes) == 612
    cut, packing = packed_problem(base)
    assert packing.nodes == eight.nodes and packing.boundaries()[-1] == len(cut.nodes)
    probe = solve(feasibility_probe(spec))
    assert "the packing's groups" in probe.solver.message and probe.chips_per_group == 8
    assert evaluate(spec, probe).violations == []


def test_cut_core_parts_keep_their_totals_and_carry_the_parts_activations():
    """A core part cut at share s becomes two pieces holding s and 1 - s of its KV, attention FLOPs and
    work items; the first piece keeps the part's place as its op's first part; the edge between the
    pieces carries what the edge between two parts carries (residual + queries + partial outputs)."""
    from planner.model.split import cut_graph, cuttable

    graph = split_graph(build_graph(CFG, Dtypes()), Granularity(core=4))
    cut = cut_graph(graph, {"L0.core#0": 0.25, "L0.core#3": 0.5})
    names = [n for n in cut.nodes if ".core" in n]
    assert names == ["L0.core#0:a", "L0.core#0:b", "L0.core#1", "L0.core#2", "L0.core#3:a", "L0.core#3:b"]
    for key in ("kv_bytes_per_token", "attn_flops_per_ctx_token", "attention_work_items"):
        total = sum(d[key] for _, d in graph.nodes(data=True))
        assert sum(d[key] for _, d in cut.nodes(data=True)) == pytest.approx(total, rel=1e-12)
    assert (
        cut.nodes["L0.core#0:a"]["kv_bytes_per_token"]
        == 0.25 * graph.nodes["L0.core#0"]["kv_bytes_per_token"]
    )
    assert [cut.nodes[n]["first"] for n in names] == [1, 0, 0, 0, 0, 0]
    between = graph.edges["L0.core#1", "L0.core#2"]["activation_bytes"]
    assert between == (H + (HEADS + 2 * KV_HEADS) * D + HEADS * D) * 2  # residual, q/k/v, partial outputs
    assert cut.edges["L0.core#0:a", "L0.core#0:b"]["activation_bytes"] == between
    assert cut.edges["L0.core#3:a", "L0.core#3:b"]["activation_bytes"] == between  # the last part: same
    assert cut.edges["L0.core#3:b", "L0.o"] == graph.edges["L0.core#3", "L0.o"]
    assert not cuttable(graph, "L0.o") and not cuttable(
        split_graph(build_graph(CFG, Dtypes()), Granularity(core=1, qkv=2)), "L0.core"
    )


def test_packing_cuts_where_a_groups_kv_memory_fills():
    """Llama-3.1-8B, 3,000 users at 4,096 tokens, cores in 4 parts, KV only in the novel DRAM (8 x 16 GB =
    128 GB per group), weights in SRAM, a floor of 1 token/s (time never binds). A core part holds 3,000 x
    4,096 x 1,024 B (a quarter of a layer's 4,096 B per token) = 12.58 GB, so a group holds 128 / 12.58 =
    10.1725 parts: the first group ends 0.1725 into layer 2's third part (11/64 of its users, rounded
    down to the 1/64 steps), the second holds the rest of it, layer 2's last part, layers 3 and 4 and
    0.3444 of layer 5's first part (22/64)."""
    from planner.placement.packing import pack
    from planner.problem.problem import resolve

    problem = resolve(_kv_in_dram_only_3000_users())
    assert problem.tier_capacity_bytes("novel-kv-dram") == 8 * 16e9
    parts = 128e9 / (3000 * 4096 * 1024)
    assert math.floor(64 * (parts - 10)) == 11 and math.floor(64 * (parts - (1 - 11 / 64) - 9)) == 22
    packing = pack(problem, 16)
    assert packing.complete and packing.groups == 13  # 32 layers x 4 parts / 10.17 = 12.6 groups
    assert list(packing.cuts.items())[:2] == [("L2.core#2", 11 / 64), ("L5.core#0", 22 / 64)]
    assert not pack(problem, 12).complete  # 12 groups hold 122 of the 128 parts


def test_core_cuts_naming_no_core_part_is_refused_with_the_field():
    from planner.core.errors import PlannerInputError
    from planner.problem.problem import resolve

    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", max_groups=4, users=1, context=64, min_tokens_per_s=1,
        core_parts=2,
    )  # fmt: skip
    with pytest.raises(
        PlannerInputError, match=r"core_cuts: \['L0.ffn'\] is not a part of an attention core"
    ):
        resolve(spec.model_copy(update={"core_cuts": {"L0.ffn": 0.5}}))
    with pytest.raises(PlannerInputError, match="between 0 and 1"):
        spec_from_flags(
            model="llama-3.1-8b", hardware="sram-pipeline", max_groups=4, users=1, context=64,
            min_tokens_per_s=1, core_cuts={"L0.core#1": 1.5},
        )  # fmt: skip


def test_kv_bandwidth_limit_reached_within_5_percent():
    """Llama-3.1-8B with its KV held in LPDDR5X only (bandwidth / capacity 1.2/s, below the demand of 20
    tokens/s): the KV bandwidth binds. Closed form: users x (context + 1) x KV bytes x r <= dies x 4 x
    154 GB/s x 0.9 (every token reads the user's cache and writes one token), 32 groups x 8 dies."""
    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="lpddr5x", chips_per_group=8, max_groups=32,
        users=1, context=4096, min_tokens_per_s=20, kv_tiers=["lpddr5x"],
    )  # fmt: skip
    bound = 256 * 4 * 154e9 * 0.9 / (4097 * 131072 * 20)
    found = max_users(spec)
    assert found.exact and found.max_users <= bound
    assert found.max_users >= 0.95 * bound, (found.max_users, bound)


@pytest.mark.parametrize("status", ["time_limit", "error"])
def test_a_cut_search_that_did_not_finish_proves_nothing(monkeypatch, status):
    """The instance above (whole parts cannot place 15,400 users; the cuts can) with the cut problem's
    search made to end on a time limit or a HiGHS error at its one S: the verdict must not claim a proof
    (a capacity search would take it as one), and a solver failure is reported as one (SolverFailure),
    not as infeasibility."""
    from planner.core.errors import InfeasibleError, SolverFailure
    from planner.placement import solve as solving
    from planner.plans.plan import StageRecord
    from planner.problem.problem import resolve

    real = solving._search_group_sizes
    searched = []

    def cut_search_unfinished(problem, progress, started=None):
        searched.append(problem.spec.core_cuts)
        if not problem.spec.core_cuts:
            return real(problem, progress, started)
        record = StageRecord(status=status, message="stopped (test)")
        return solving.GroupSizeSearch(problem, [(problem, None, {64: record})], False, 0.0)

    monkeypatch.setattr(solving, "_search_group_sizes", cut_search_unfinished)
    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="novel-kv-dram", chips_per_group=8,
        max_groups=64, users=15_400, context=4096, min_tokens_per_s=5, core_parts=16,
    )  # fmt: skip
    expected = InfeasibleError if status == "time_limit" else SolverFailure
    with pytest.raises(expected) as caught:
        solving.solve_problem(resolve(spec), explain=False)
    assert len(searched) == 2 and searched[1]  # the whole-node search, then the cut one
    if status == "time_limit":
        assert caught.value.proven is False
