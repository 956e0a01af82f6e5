"""Designing the KV memory (planner.studies.memory_design): inverse sizing against the closed forms where
one limit binds, the bisection's tolerance, monotonicity in capacity, bandwidth, pJ/bit and standby
power, inline technologies, standby power and memory cost.

Closed forms (issue 12): with the weights in SRAM and the KV only in the KV memory, every die holding an
equal share of the KV,
- capacity-bound: C >= U x L x KV bytes / dies;
- bandwidth-bound: B >= U x (L + 1) x KV bytes x r / (dies x f) (a token reads the user's cache and
  writes one token's KV; r = the per-user token rate, f = the achievable KV bandwidth fraction, 0.9 on
  sram-pipeline).
Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 (K and V) x 2 B = 131,072 B of KV per token.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml

from planner.hardware.catalog import MemoryTechSpec, hardware_files, load_hardware, load_memory_tech
from planner.problem.instance import load_instance, spec_from_flags
from planner.runs.cache import solve_case
from planner.studies.capacity import max_users
from planner.studies.memory_design import (
    Axis,
    design_memory,
    memory_space,
    size_memory,
    smallest_feasible,
    space_specs,
    with_memory,
)

KV_PER_TOKEN = 131_072  # Llama-3.1-8B, bf16 (module docstring)
DIES = 16 * 8  # 16 groups of 8 one-die chips


def pinned(**workload):
    """Llama-3.1-8B on 16 groups of 8 sram-pipeline chips, weights pinned to SRAM and KV to the KV tier."""
    fields = dict(
        model="llama-3.1-8b", hardware="sram-pipeline", chips_per_group=8, max_groups=16, stages=16,
        weight_tiers=["sram"], kv_tiers=["hbm3e"], context=4096,
    )  # fmt: skip
    return spec_from_flags(**(fields | workload))


@pytest.mark.parametrize("threshold", [1e6, 3.3e7, 1e9, 2.5e10, 1e13])
@pytest.mark.parametrize("guess", [1e6, 1e9, 1e12])
def test_smallest_feasible_is_exact_to_the_tolerance(threshold, guess):
    """A monotone oracle (feasible from `threshold` on): the answer is feasible, the value below it is
    not, and the two are within 1 %."""
    axis = smallest_feasible(Axis("x"), lambda v: v >= threshold, guess, 1e6, 1e13, 0.01)
    assert axis.hi is not None and axis.hi >= threshold
    if threshold > 1e6:
        assert axis.lo < threshold and axis.hi <= axis.lo * 1.01
    else:
        assert axis.lo is None and axis.hi == 1e6  # feasible at the floor
    assert len(axis.probes) == len({v for v, _ in axis.probes}) <= 40


def test_smallest_feasible_reports_infeasible_at_the_ceiling():
    axis = smallest_feasible(Axis("x"), lambda v: False, 1e9, 1e6, 1e13)
    assert axis.hi is None and axis.lo == 1e13


def test_capacity_bound_size_matches_the_closed_form():
    """At 5 tokens/s the KV bandwidth is far from binding: the smallest capacity per die is the closed
    form 512 x 4,096 x 131,072 B / 128 dies = 2.147 GB, reached within 5 % (plus the 1 % tolerance)."""
    size = size_memory(pinned(users=512, min_tokens_per_s=5))
    closed = 512 * 4096 * KV_PER_TOKEN / DIES
    assert size.capacity_per_die_bytes >= closed / 1.01
    assert size.capacity_per_die_bytes <= 1.05 * closed, (size.capacity_per_die_bytes, closed)
    facts = size.summary()
    assert facts["dies"] == DIES and "capacity" in facts["binding_capacity"]
    assert facts["closed_form_capacity_per_die_bytes"] == pytest.approx(closed, rel=1e-12)


def test_bandwidth_bound_size_matches_the_closed_form():
    """At 200 tokens/s: the smallest bandwidth per die is U x (L + 1) x KV bytes x r / (dies x 0.9) =
    512 x 4,097 x 131,072 x 200 / (128 x 0.9) = 477 GB/s, reached within 5 %; the balance ratio B / C
    then sits near the balance line r / f = 222 per s."""
    size = size_memory(pinned(users=512, min_tokens_per_s=200))
    closed = 512 * 4097 * KV_PER_TOKEN * 200 / (DIES * 0.9)
    assert size.bandwidth_per_die_bytes_per_s >= closed / 1.01
    assert size.bandwidth_per_die_bytes_per_s <= 1.05 * closed, (size.bandwidth_per_die_bytes_per_s, closed)
    facts = size.summary()
    assert facts["demand_per_s"] == pytest.approx(200, rel=1e-6)
    assert facts["balance_line_per_s"] == pytest.approx(200 / 0.9, rel=1e-6)
    assert facts["balance_per_s"] == pytest.approx(200 / 0.9, rel=0.07)


def test_the_reported_size_is_feasible_and_just_below_is_not():
    spec = pinned(users=256, min_tokens_per_s=50)
    size = size_memory(spec, tolerance=0.02)
    assert size.at_size.feasible
    assert not size.below_capacity.feasible and not size.below_bandwidth.feasible
    c, b = size.capacity_per_die_bytes, size.bandwidth_per_die_bytes_per_s
    assert c / 1.02 <= size.capacity_below < c and b / 1.02 <= size.bandwidth_below < b
    # the below-solves are the ones named: capacity with unlimited bandwidth, bandwidth at the capacity
    memory = size.below_bandwidth.spec.kv_memory
    assert memory.capacity_per_device == c and memory.bandwidth_per_device == size.bandwidth_below
    assert size.below_capacity.spec.kv_memory.capacity_per_device == size.capacity_below


def test_json_keys_of_size_memory(cli):
    result = cli(
        ["size-memory", "--model", "llama-3.1-8b", "--hardware", "sram-pipeline", "--users", "128",
         "--context", "4096", "--min-tokens-per-s", "20", "--max-groups", "8", "--json", "--quiet"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    for key in ("capacity_per_die_bytes", "bandwidth_per_die_bytes_per_s", "joules_per_token",
                "binding_capacity", "binding_bandwidth", "dies"):  # fmt: skip
        assert key in facts
    assert facts["capacity_per_die_bytes"] > 0 and facts["dies"] > 0


def test_more_capacity_or_bandwidth_never_fewer_users():
    """Max users over a 2 x 2 grid is non-decreasing along each axis (monotone feasibility)."""
    base = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", max_groups=8, users=1, context=4096,
        min_tokens_per_s=50,
    )  # fmt: skip
    users = {
        (c, b): max_users(with_memory(base, design_memory(c, b))).max_users
        for c in (1e9, 4e9)
        for b in (0.1e12, 1e12)
    }
    assert users[(4e9, 0.1e12)] >= users[(1e9, 0.1e12)] and users[(4e9, 1e12)] >= users[(1e9, 1e12)]
    assert users[(1e9, 1e12)] >= users[(1e9, 0.1e12)] and users[(4e9, 1e12)] >= users[(4e9, 0.1e12)]
    assert users[(4e9, 1e12)] > users[(1e9, 0.1e12)]  # the grid is not flat


def test_lower_energy_or_standby_never_raises_joules_per_token():
    """Same instance, KV memory at 2.5 vs 1.2 pJ/bit, and with 1 W vs 0 W standby per device: the cheaper
    memory never costs more per token. Without a power limit (with the TDP, some chips sit at 400 W and
    1 W more moves the plan) the plan is unchanged, and 1 W more per die costs exactly dies x 1 W /
    tokens per s more (idle energy, the period unchanged)."""
    spec = pinned(users=256, min_tokens_per_s=20, max_chip_power="none")
    j = {
        e: solve_case(with_memory(spec, design_memory(4e9, 2e12, energy_pj_per_bit=e))).row
        for e in (1.2, 2.5)
    }
    assert j[1.2]["joules_per_token"] <= j[2.5]["joules_per_token"]
    tech = load_memory_tech("novel-kv-dram")
    rows = {}
    for watts in (0.0, 1.0):
        memory = tech.model_copy(update={"name": "kv", "standby_power_per_device": watts or None})
        rows[watts] = solve_case(with_memory(spec, memory)).row
    assert rows[0.0]["joules_per_token"] <= rows[1.0]["joules_per_token"]
    assert rows[0.0]["cycle_ms"] == rows[1.0]["cycle_ms"] and rows[0.0]["stages"] == rows[1.0]["stages"]
    extra = rows[1.0]["chips"] * 1.0 / rows[1.0]["tokens_per_s"]
    assert rows[1.0]["joules_per_token"] - rows[0.0]["joules_per_token"] == pytest.approx(extra, rel=1e-6)


def test_an_inline_kv_memory_equals_the_same_figures_in_a_file(tmp_path):
    """An instance may give its KV memory inline; the result equals the same technology read from a
    file, the inline one adds no file to the cache key, and its figures are in the instance digest."""
    figures = {
        "name": "my-kv", "kind": "off-chip", "capacity_per_device": "8 GB", "bandwidth_per_device": "4 TB/s",
        "energy": "1.5 pJ/bit", "devices_per_reticle_die": 1, "sources": {
            k: "test" for k in ("capacity_per_device", "bandwidth_per_device", "energy", "devices_per_reticle_die")
        },
    }  # fmt: skip
    (tmp_path / "my-kv.yaml").write_text(yaml.safe_dump(figures))
    common = {"model": "llama-3.1-8b", "hardware": "sram-pipeline", "max_groups": 8,
              "workload": {"users": 64, "context": 4096, "min_tokens_per_s": 20}}  # fmt: skip
    (tmp_path / "inline.yaml").write_text(yaml.safe_dump(common | {"kv_memory": figures}))
    (tmp_path / "file.yaml").write_text(yaml.safe_dump(common | {"kv_memory": "my-kv.yaml"}))
    inline, by_file = load_instance(tmp_path / "inline.yaml"), load_instance(tmp_path / "file.yaml")
    assert isinstance(inline.kv_memory, MemoryTechSpec) and inline.kv_memory_name == "my-kv"
    a, b = solve_case(inline).row, solve_case(by_file).row
    assert (
        a["joules_per_token"] == pytest.approx(b["joules_per_token"], rel=1e-9) and a["stages"] == b["stages"]
    )
    assert len(hardware_files("sram-pipeline", inline.kv_memory)) == 2  # hardware + sram, no KV file
    bigger = inline.model_copy(
        update={"kv_memory": inline.kv_memory.model_copy(update={"capacity_per_device": 9e9})}
    )
    assert bigger.digest() != inline.digest()


def test_standby_power_is_counted_once():
    """sram-pipeline's static power is the die's alone (40 W): the KV memory's standby adds to it
    (novel-kv-dram 0.178 W per die, one device; HBM3E 4 x 0.40 W). H100's static power was measured
    for the whole board (HBM included): the HBM3 standby is not added again."""
    assert load_hardware("sram-pipeline", "novel-kv-dram").static_power_per_chip_w == pytest.approx(40.178)
    assert load_hardware("sram-pipeline").static_power_per_chip_w == pytest.approx(40 + 4 * 0.40)
    assert load_hardware("h100-sxm").static_power_per_chip_w == 106.5


def test_memory_cost_per_user():
    """novel-kv-dram at 15.6 $/GB (design assumption, its file): one 16 GB device per die, so a plan on
    n chips holds n x 16 x 15.6 $ of KV memory; per user that over the users."""
    spec = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", kv_memory="novel-kv-dram", max_groups=8, users=512,
        context=4096, min_tokens_per_s=20,
    )  # fmt: skip
    row = solve_case(spec).row
    assert row["memory_usd"] == pytest.approx(row["chips"] * 16 * 15.6, rel=1e-9)
    assert row["memory_usd_per_user"] == pytest.approx(row["memory_usd"] / 512, rel=1e-12)


def test_design_points_take_the_figures_per_gb_of_their_technology():
    """A 32 GB design point like novel-kv-dram (16 GB, 0.178 W, 15.6 $/GB): 0.356 W, 15.6 $/GB, 1.2
    pJ/bit unless given."""
    m = design_memory(32e9, 10e12)
    assert m.standby_power_per_device == pytest.approx(0.356) and m.cost_per_gb_usd == 15.6
    assert m.energy == 1.2 and design_memory(32e9, 10e12, energy_pj_per_bit=2.5).energy == 2.5
    assert m.devices_per_reticle_die == 1 and m.kind == "off-chip"


def test_with_memory_keeps_a_pin_to_the_kv_tier():
    spec = pinned(users=1, min_tokens_per_s=1)
    moved = with_memory(spec, design_memory(1e9, 1e12))
    assert moved.kv_tiers == [moved.kv_memory.name] and moved.weight_tiers == ["sram"]


def test_memory_space_resumes_from_its_cache(tmp_path):
    """A 2 x 1 grid: the first run solves every point, the second replays every point from the cache
    (no worker, same rows)."""
    base = spec_from_flags(
        model="llama-3.1-8b", hardware="sram-pipeline", max_groups=4, users=64, context=4096,
        min_tokens_per_s=20,
    )  # fmt: skip
    specs = space_specs(base, [20], capacities=[1e9, 4e9], bandwidths=[1e12])
    hits: list[bool] = []
    first = memory_space(specs, 64, tmp_path, workers=1, progress=lambda row, hit: hits.append(hit))
    again = memory_space(specs, 64, tmp_path, workers=1, progress=lambda row, hit: hits.append(hit))
    assert hits == [False, False, True, True] and first == again
    assert first[1]["max_users"] >= first[0]["max_users"] > 0
    assert all(math.isfinite(r["joules_per_token_at_max"]) for r in first)


def test_the_bandwidth_floor_is_at_most_the_corner_bandwidth():
    """More capacity never needs more bandwidth (monotone feasibility): the floor, sought with 16x the
    minimal capacity, is at most the bandwidth at the capacity corner, and still no less than the
    closed form U x (L + 1) x KV bytes x r / (dies x f) / 1.01."""
    size = size_memory(pinned(users=512, min_tokens_per_s=200))
    closed = 512 * 4097 * KV_PER_TOKEN * 200 / (DIES * 0.9)
    assert closed / 1.01 <= size.bandwidth_floor <= size.bandwidth_per_die_bytes_per_s
