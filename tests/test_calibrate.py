"""Calibration against the measured H100 decode steps (data/measurements/h100-sxm, shipped in the
repository; see its PROVENANCE.md): fit, check, CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from planner.cli import app
from planner.core.fileio import project_root
from planner.hardware.catalog import load_hardware
from planner.studies.calibration import (
    FittedParams,
    apply,
    check,
    check_row,
    fit,
    priors_from_microbench,
    read_measurements,
)

MEASURED = project_root() / "data" / "measurements" / "h100-sxm"
CSV = MEASURED / "decode_dense_4096x32.csv"
MICROBENCH = MEASURED / "device_microbench.json"
runner = CliRunner()


def test_fit_on_half_predicts_the_other_half():
    """Fit on 7 rows, predict the 7 it did not see: the B=8 series and the context=2048 series.

    The held-out rows sit between fitted ones in both users and context, as a planner's queries do.
    Thresholds: the issue's target is a held-out median |error| <= 10 % for time and energy. Time
    reaches ~2 % here (and 2.3 % leave-one-out), so 5 % leaves room for solver noise while still failing
    if a cost term went missing (the uncalibrated datasheet fractions give 15 %). Energy reaches 2.3 %
    median, 4.5 % max with the KV-only data-path pJ/bit (7.6 % / 13 % without it, as one pJ/bit for weight
    and KV bits alike gave), so it is held to 5 % median and 10 % max. The max time error is held to 10 %.
    """
    rows = read_measurements(CSV)
    base = load_hardware("h100-sxm")
    held = [r for r in rows if r.users == 8 or r.context == 2048]
    used = [r for r in rows if r not in held]
    params = fit(used, base, priors_from_microbench(MICROBENCH, base))
    report = check(held, apply(base, params))
    assert len(held) == 7
    assert report.median_abs_err_time < 0.05
    assert report.max_abs_err_time < 0.10
    assert report.median_abs_err_energy < 0.05
    assert report.max_abs_err_energy < 0.10
    assert params.kv_data_path_pj_per_bit > 0  # a KV bit costs more than a weight bit
    assert 0 < params.weight_bandwidth <= 1 and 0 < params.compute <= 1


def test_check_measurements_json_median_matches_rows():
    result = runner.invoke(app, ["check-measurements", str(CSV), "--hardware", "h100-sxm", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {
        "median_abs_err_time",
        "median_abs_err_energy",
        "max_abs_err_time",
        "max_abs_err_energy",
        "rows",
    } <= set(data)
    rows = data["rows"]
    assert len(rows) == 14
    time_errors = sorted(abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows)
    energy_errors = sorted(
        abs(r["predicted_j_per_token"] - r["measured_j_per_token"]) / r["measured_j_per_token"] for r in rows
    )
    # 14 rows: the median is the mean of the 7th and 8th smallest
    assert data["median_abs_err_time"] == pytest.approx((time_errors[6] + time_errors[7]) / 2, rel=1e-9)
    assert data["median_abs_err_energy"] == pytest.approx((energy_errors[6] + energy_errors[7]) / 2, rel=1e-9)
    assert data["max_abs_err_time"] == pytest.approx(time_errors[-1], rel=1e-9)
    measured_ms = [5.6057, 6.145, 8.4088, 17.3936, 5.6839, 6.2203, 8.513, 17.3896]
    assert [r["measured_ms"] for r in rows[:8]] == pytest.approx(measured_ms)


def test_check_measurements_table_ends_with_medians():
    result = runner.invoke(app, ["check-measurements", str(CSV), "--hardware", "h100-sxm"])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("median |error|: time ") and ", energy " in last and last.endswith("%")


def test_hand_computed_row():
    """Row 1 (users 1, context 512) of the 4096x32 shape with chosen coefficients, by hand.

    Coefficients: HBM 3.35 TB/s x 0.8 = 2.68e12 B/s for weights and KV, compute 0.5 x 989 TFLOP/s,
    10 us per node, attention pull 20 GB/s per (user x head) work item, HBM3 5 pJ/bit + data path
    15 pJ/bit (+ 5 pJ/bit more on KV bits), 1 pJ/FLOP, static 100 W.

    Per layer (bf16, 2 B per parameter; norms counted with their blocks):
      attention weights: q 4096*4096 + k,v 2*4096*1024 + o 4096*4096 + norm 4096 = 41,947,136 params
      FFN weights: 3*4096*14336 + norm 4096 = 176,164,864 params
      -> 436,224,000 B per layer, 13,959,168,000 B for 32 layers
      KV per token per layer: 2 (K, V) * 8 heads * 128 * 2 B = 4096 B;
      moved per layer: read 512 tokens + write 1 = 513 * 4096 = 2,101,248 B
      FLOPs per layer: 2 * (41,943,040 + 176,160,768) matmul + 4 * 32 * 128 * 512 attention
      = 444,596,224 (the CSV's 14,227,079,168 for 32 layers)
    Time: weights are bound by bandwidth (5.2 ms against 0.03 ms of compute);
      KV pull capped at 1 user * 32 heads * 20 GB/s = 640 GB/s (below 2.68 TB/s):
      13,959,168,000 / 2.68e12 + 32 * 2,101,248 / 640e9 + 64 * 10e-6 s.
    Energy per token (one user): weight bytes * 8 * (5 + 15) pJ + KV bytes * 8 * (5 + 15 + 5) pJ
      + FLOPs * 1 pJ + 100 W * time.
    """
    row = read_measurements(CSV)[0]
    assert (row.users, row.context) == (1, 512)
    params = FittedParams(
        weight_bandwidth=0.8,
        kv_bandwidth=0.8,
        compute=0.5,
        node_overhead_s=10e-6,
        attention_bytes_per_s_per_work_item=20e9,
        data_path_pj_per_bit=15.0,
        kv_data_path_pj_per_bit=5.0,
        pj_per_flop=1.0,
        static_power_w=100.0,
    )
    got = check_row(row, apply(load_hardware("h100-sxm"), params))
    time_s = 13_959_168_000 / 2.68e12 + 32 * 2_101_248 / 640e9 + 64 * 10e-6
    assert time_s == pytest.approx(5.95372e-3, rel=1e-5)
    energy_j = 13_959_168_000 * 8 * 20e-12 + 32 * 2_101_248 * 8 * 25e-12 + 32 * 444_596_224 * 1e-12
    energy_j += 100 * time_s
    assert got.predicted_ms == pytest.approx(time_s * 1e3, rel=1e-9)
    assert got.predicted_j_per_token == pytest.approx(energy_j, rel=1e-9)


HEADER = (
    "hidden_size,num_hidden_layers,num_attention_heads,num_key_value_heads,head_dim,intermediate_size,"
    "dtype_bytes,users,context,step_ms,step_joules,joules_per_token"
)
GOOD = "4096,32,32,8,128,14336,2,1,512,5.6057,2.5088,2.50877"


def _cell(line: str, column: str, value: str) -> str:
    cells = line.split(",")
    cells[HEADER.split(",").index(column)] = value
    return ",".join(cells)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (HEADER.replace("users,", "") + "\n" + GOOD + "\n", "missing column users"),
        (HEADER + "\n" + _cell(GOOD, "context", "abc") + "\n", "column context: 'abc' is not a number"),
        (HEADER + "\n" + _cell(GOOD, "step_ms", "-5.6") + "\n", "column step_ms: -5.6 is negative"),
        (HEADER + "\n" + _cell(GOOD, "joules_per_token", "nan") + "\n", "column joules_per_token"),
        (HEADER + "\n" + _cell(GOOD, "users", "2.5") + "\n", "column users: 2.5 is not a positive whole"),
        ("", "empty file"),
        (HEADER + "\n", "no data rows"),
        (b"\xff\xfe\x00h", "not UTF-8"),
    ],
)
def test_bad_csv_exits_2_naming_the_column(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["check-measurements", str(path), "--hardware", "h100-sxm"])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_calibrate_writes_loadable_hardware(tmp_path):
    """The calibrate command on 6 rows (fast): the YAML loads, keeps its sources, records the fit."""
    lines = CSV.read_text(encoding="utf-8").splitlines()
    small = tmp_path / "small.csv"
    small.write_text("\n".join(lines[:2] + lines[4:6] + lines[12:15]) + "\n", encoding="utf-8")
    out, report = tmp_path / "h100-cal.yaml", tmp_path / "cal.md"
    args = ["calibrate", "--microbench", str(MICROBENCH), "--measurements", str(small)]
    args += ["--out", str(out), "--holdout", "users=128", "--report", str(report)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    from planner.core.fileio import read_mapping
    from planner.hardware.catalog import HARDWARE_DIR, HardwareSpec

    spec = HardwareSpec.model_validate(read_mapping(out))
    base = HardwareSpec.model_validate(read_mapping(HARDWARE_DIR / "h100-sxm.yaml"))
    assert set(base.sources) <= set(spec.sources)
    assert spec.calibration["rows_used"] == 6
    assert 0 <= spec.calibration["leave_one_out_median_abs_err_time"] < 1
    assert spec.chip.peak_flops == base.chip.peak_flops and spec.memory == base.memory
    assert load_hardware(out).achievable.attention_bytes_per_s_per_work_item > 0
    text = report.read_text(encoding="utf-8")
    assert "planner calibrate --microbench" in text and "| this planner, leave-one-out" in text
    assert "| `chip.kv_data_path_energy` |" in text
    assert report.with_suffix(".csv").read_text(encoding="utf-8").count("\n") == 7


def test_shipped_measurements_match_their_provenance():
    """data/measurements/h100-sxm/PROVENANCE.md lists the sha256 of each file as copied from the team's
    measurements; the files must be those bytes (a changed row would silently change the calibration)."""
    import hashlib
    import re

    table = dict(
        re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", (MEASURED / "PROVENANCE.md").read_text(), re.M)
    )
    assert set(table) == {"README.md", "decode_dense_4096x32.csv", "device_microbench.json"}
    for name, digest in table.items():
        assert hashlib.sha256((MEASURED / name).read_bytes()).hexdigest() == digest, name
