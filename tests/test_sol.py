"""Speed of light: one decode token of Llama-3.1-8B on one H100 computed by hand, and the `sol` command.

The time model is that of planner/cost.py (FORMULATION.md section 2): each node runs a weight phase
max(weight bytes / bandwidth, matmul FLOPs / peak) and a context phase max(KV bytes / bandwidth,
attention FLOPs / peak), one after another. Energy = bits moved x (memory device + chip data path) pJ/bit
+ KV bits moved x the chip's extra KV data path pJ/bit + FLOPs x pJ/FLOP + static power x token time / users.

Another engineer calibrates instances/hardware/h100-sxm.yaml, so the energy coefficients are read from
the loaded hardware; the datasheet figures (3.35 TB/s HBM3, 989 TFLOP/s bf16 dense) are fixed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.api import sol
from planner.hardware.catalog import load_hardware

H100_BW = 3.35e12  # B/s, NVIDIA H100 SXM datasheet
H100_BF16 = 989e12  # FLOP/s dense, NVIDIA H100 SXM datasheet

# Llama-3.1-8B per-token figures by hand (derived in tests/test_model.py::test_llama_8b_layer_attributes_by_hand):
LAYERS = 32
ATTN_BYTES = (4096 * 4096 * 2 + 2 * 4096 * 1024 + 4096) * 2  # 83,894,272 B of bf16 weights
ATTN_FLOPS = 2 * (4096 * 4096 * 2 + 2 * 4096 * 1024)  # 83,886,080 matmul FLOPs per token
FFN_BYTES = (3 * 4096 * 14336 + 4096) * 2  # 352,329,728 B
FFN_FLOPS = 2 * 3 * 4096 * 14336  # 352,321,536
KV_PER_TOKEN = 2 * 8 * 128 * 2  # 4,096 B per layer per context token (K and V, 8 heads of 128, bf16)
ATTN_CTX_FLOPS = 4 * 32 * 128  # 16,384 FLOPs per context token: QK^T and PV, 2 d each, 32 heads
EMBED_ROW = 4096 * 2  # 8,192 B: one embedding row read per user
HEAD_BYTES = (128256 * 4096 + 4096) * 2  # 1,050,681,344 B: the output matrix and the final norm
HEAD_FLOPS = 2 * 128256 * 4096  # 1,050,673,152

KEYS = [
    "users",
    "context",
    "weight_ms",
    "kv_ms",
    "compute_ms",
    "time_ms",
    "tokens_per_s_per_user",
    "tokens_per_s",
    "joules_per_token",
    "weight_j",
    "kv_j",
    "compute_j",
    "idle_j",
]


def _by_hand(users: int, context: int) -> dict[str, float]:
    """One H100, one stage, one micro-batch of all `users`: the phases of each node, summed.

    Weights are read once per micro-batch (the embedding: one row per user); KV: each user's cache of
    `context` tokens is read and one token written per layer; FLOPs scale with users. A phase's time is
    charged to its memory ("weights" or "kv") or to "compute", whichever binds."""
    b = users
    phases = []  # (what it reads, seconds, binding resource, bytes read, FLOPs)

    def phase(reads: str, nbytes: float, flops: float) -> None:
        mem_s, flop_s = nbytes / H100_BW, flops / H100_BF16
        phases.append((reads, max(mem_s, flop_s), reads if mem_s >= flop_s else "compute", nbytes, flops))

    phase("weights", b * EMBED_ROW, 0.0)
    for _ in range(LAYERS):
        phase("weights", ATTN_BYTES, b * ATTN_FLOPS)
        phase("kv", b * (context + 1) * KV_PER_TOKEN, b * context * ATTN_CTX_FLOPS)
        phase("weights", FFN_BYTES, b * FFN_FLOPS)
    phase("weights", HEAD_BYTES, b * HEAD_FLOPS)
    return dict(
        seconds=sum(p[1] for p in phases),
        weight_s=sum(p[1] for p in phases if p[2] == "weights"),
        kv_s=sum(p[1] for p in phases if p[2] == "kv"),
        compute_s=sum(p[1] for p in phases if p[2] == "compute"),
        weight_bytes=sum(p[3] for p in phases if p[0] == "weights"),
        kv_bytes=sum(p[3] for p in phases if p[0] == "kv"),
        flops=sum(p[4] for p in phases),
    )


def test_llama_8b_one_h100_one_user_by_hand():
    """users 1, context 4,096, --chips 1, datasheet peaks. Every phase is bandwidth-bound (the attention
    weight phase: 83.9 MB / 3.35 TB/s = 25 us against 83.9 MFLOP / 989 TFLOP/s = 0.085 us), so
    weight bytes = 8,192 + 32 x (83,894,272 + 352,329,728) + 1,050,681,344 = 15,009,857,536 B -> 4.48055 ms;
    KV bytes = 32 x (4,096 + 1) x 4,096 = 537,001,984 B -> 0.16030 ms; token time 4.64085 ms.
    FLOPs = 32 x (83,886,080 + 4,096 x 16,384 + 352,321,536) + 1,050,673,152 = 17,156,800,512.
    Energy: bytes x 8 x (HBM3 5.0 + data path) pJ/bit (+ the KV data path on KV bytes), FLOPs x pJ/FLOP,
    static W x 4.64 ms."""
    hw = load_hardware("h100-sxm")
    (tier,) = hw.tiers
    assert (tier.bw_bytes_per_s, hw.peak_flops_per_s["bf16"]) == (H100_BW, H100_BF16)
    hand = _by_hand(users=1, context=4096)
    assert hand["weight_bytes"] == 15_009_857_536 and hand["kv_bytes"] == 537_001_984
    assert hand["flops"] == 17_156_800_512
    assert hand["compute_s"] == 0.0
    seconds = (15_009_857_536 + 537_001_984) / H100_BW
    assert hand["seconds"] == pytest.approx(seconds, rel=1e-12)

    row = sol("llama-3.1-8b", "h100-sxm", [1], 4096, chips=1).iloc[0]
    pj_bit, pj_flop, static_w = tier.pj_per_bit, hw.pj_per_flop, hw.static_power_w
    kv_pj_bit = pj_bit + hw.kv_path_pj_per_bit
    expected = {
        "time_ms": seconds * 1e3,
        "weight_ms": 15_009_857_536 / H100_BW * 1e3,
        "kv_ms": 537_001_984 / H100_BW * 1e3,
        "weight_j": 15_009_857_536 * 8 * pj_bit * 1e-12,
        "kv_j": 537_001_984 * 8 * kv_pj_bit * 1e-12,
        "compute_j": 17_156_800_512 * pj_flop * 1e-12,
        "idle_j": static_w * seconds,
    }
    expected["joules_per_token"] = sum(expected[k] for k in ("weight_j", "kv_j", "compute_j", "idle_j"))
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-6), key
    assert row["compute_ms"] == 0.0 and row["link_j"] == 0.0 and row["link_ms"] == 0.0
    assert row["tokens_per_s_per_user"] == pytest.approx(1 / seconds, rel=1e-6)
    assert (row["chips"], row["stages"], row["fits"]) == (1, 1, True)


def test_llama_8b_one_h100_512_users_compute_bound():
    """users 512, context 256 (17.2 GB of KV + 16 GB of weights fit in 80 GB), one micro-batch of 512:
    the weight phases become compute-bound (attention: 512 x 83.9 MFLOP / 989 TFLOP/s = 43.4 us against
    25.0 us to read the weights), the context phases stay KV-bound (512 x 257 x 4,096 B per layer = 161 us
    against 2.2 us of attention FLOPs), the embedding reads 512 rows. Static energy is shared by 512 users."""
    hw = load_hardware("h100-sxm")
    (tier,) = hw.tiers
    hand = _by_hand(users=512, context=256)
    assert hand["compute_s"] > 0 and hand["kv_s"] > 0
    row = sol("llama-3.1-8b", hw, [512], 256, chips=1).iloc[0]
    assert row["time_ms"] == pytest.approx(hand["seconds"] * 1e3, rel=1e-6)
    assert row["compute_ms"] == pytest.approx(hand["compute_s"] * 1e3, rel=1e-6)
    assert row["kv_ms"] == pytest.approx(hand["kv_s"] * 1e3, rel=1e-6)
    assert row["weight_ms"] == pytest.approx(hand["weight_s"] * 1e3, rel=1e-6)
    # weights read once for all 512 users, energy per token divided by 512
    weight_bytes = 512 * EMBED_ROW + LAYERS * (ATTN_BYTES + FFN_BYTES) + HEAD_BYTES
    assert row["weight_j"] == pytest.approx(weight_bytes * 8 * tier.pj_per_bit * 1e-12 / 512, rel=1e-6)
    kv_pj_bit = tier.pj_per_bit + hw.kv_path_pj_per_bit
    assert row["kv_j"] == pytest.approx(hand["kv_bytes"] * 8 * kv_pj_bit * 1e-12 / 512, rel=1e-6)
    assert row["compute_j"] == pytest.approx(hand["flops"] * hw.pj_per_flop * 1e-12 / 512, rel=1e-6)
    assert row["idle_j"] == pytest.approx(hw.static_power_w * hand["seconds"] / 512, rel=1e-6)
    assert row["tokens_per_s"] == pytest.approx(512 / hand["seconds"], rel=1e-6)


def test_achievable_is_slower_than_peak():
    """--achievable divides bandwidths and FLOP/s by calibrated fractions <= 1 (and may add per-node
    overheads): a token can only take longer than at the datasheet peak."""
    peak = sol("llama-3.1-8b", "h100-sxm", [1, 64], 4096, chips=1)
    real = sol("llama-3.1-8b", "h100-sxm", [1, 64], 4096, chips=1, achievable=True)
    a = load_hardware("h100-sxm").achievable
    assert min(a.weight_bandwidth, a.kv_bandwidth, a.compute) < 1 or a.node_overhead_s > 0
    assert (real["time_ms"] > peak["time_ms"]).all()
    assert list(real["mode"]) == ["achievable"] * 2 and list(peak["mode"]) == ["sol"] * 2


def test_default_chips_fit_and_too_few_warn():
    """Llama-3.1-70B: 2 x 70,553,706,496 = 141,107,412,992 B of bf16 weights: more than one 80 GB H100, so
    the default is one group of 8. --chips 1 runs but says it does not fit: with one user's KV,
    4,096 x 327,680 = 1,342,177,280 B, the chip is over by 142,449,590,272 - 80e9 = 62.4 GB."""
    fitted = sol("llama-3.1-70b", "h100-sxm", [1], 4096).iloc[0]
    assert fitted["chips"] == 8 and fitted["fits"] and fitted["warning"] == ""
    squeezed = sol("llama-3.1-70b", "h100-sxm", [1], 4096, chips=1).iloc[0]
    assert not squeezed["fits"]
    assert squeezed["warning"] == "does not fit: hbm3 over by 62.4 GB on 1 chips; give more --chips"


def test_warning_when_more_chips_cannot_help():
    """Llama-3.1-70B, 4,096 users at 131,072 tokens: one attention layer holds 4,096 x 131,072 x 4,096 B
    = 2,199.0 GB of KV (+ 0.3 GB of weights), more than a group of 8 x 80 GB: no chip count fits, and the
    warning says so instead of asking for more --chips."""
    row = sol("llama-3.1-70b", "h100-sxm", [4096], 131072, chips=8).iloc[0]
    assert not row["fits"]
    assert row["warning"].startswith("does not fit: L0.attn alone holds 2,199.3 GB")
    assert "more chips do not help" in row["warning"] and "640.0 GB" in row["warning"]


# ------------------------------------------------------------------------------------ the sol command


def test_sol_json_keys(cli):
    result = cli(
        [
            "sol",
            "--model",
            "llama-3.1-8b",
            "--hardware",
            "h100-sxm",
            "--chips",
            "1",
            "--users",
            "1,8",
            "--context",
            "4096",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["users"] for r in rows] == [1, 8]
    for row in rows:
        assert set(KEYS) <= set(row), set(KEYS) - set(row)
        assert row["context"] == 4096
    assert rows[0]["time_ms"] == pytest.approx(_by_hand(1, 4096)["seconds"] * 1e3, rel=1e-6)


def test_sol_warns_when_it_does_not_fit(cli):
    result = cli(
        [
            "sol",
            "--model",
            "llama-3.1-70b",
            "--hardware",
            "h100-sxm",
            "--chips",
            "1",
            "--users",
            "1",
            "--context",
            "4096",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "warning: does not fit" in result.output and "give more --chips" in result.output


def test_sol_plot_writes_a_png(cli, tmp_path: Path):
    out = tmp_path / "sol.png"
    result = cli(
        [
            "sol",
            "--model",
            "llama-3.1-8b",
            "--hardware",
            "h100-sxm",
            "--users",
            "1,64",
            "--context",
            "4096",
            "--plot",
            out,
        ]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sol_table_and_achievable_flag(cli):
    args = [
        "sol",
        "--model",
        "llama-3.1-8b",
        "--hardware",
        "h100-sxm",
        "--chips",
        "1",
        "--users",
        "1",
        "--context",
        "4096",
        "--json",
    ]
    peak, real = cli(args), cli([*args, "--achievable"])
    assert peak.exit_code == 0 and real.exit_code == 0
    assert json.loads(real.stdout)[0]["time_ms"] > json.loads(peak.stdout)[0]["time_ms"]
    table = cli(args[:-1])
    assert table.exit_code == 0 and "speed of light: llama-3.1-8b on 1 x h100-sxm" in table.output


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--users", "0"], ["--users", "positive whole numbers"]),
        (["--users", "1,x"], ["--users", "whole numbers separated by commas"]),
        (["--users", "1" + "0" * 30], ["--users", "at most 1,000,000,000"]),
        (["--users", "1", "--chips", "12"], ["--chips", "not a multiple of the group size 8"]),
    ],
)
def test_sol_bad_flags(cli, input_error, flags: list[str], needles: list[str]):
    result = cli(["sol", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--context", "4096", *flags])
    input_error(result, *needles)


def test_sol_context_out_of_range_is_a_usage_error(cli):
    result = cli(
        ["sol", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--users", "1", "--context", "0"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
