"""`planner list models|hardware|memory` (names, key figures, sources) and flat plan tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from planner.core.fileio import project_root, read_mapping
from planner.model.config import shipped_models

ROOT = project_root()


def test_list_models_json_has_every_config_with_counts_and_source(cli):
    result = cli(["list", "models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == set(shipped_models())
    # published counts (graphs/SOURCES.md): Llama-3.1-8B 8,030,261,248; GQA KV 32 * 2 * 8 * 128 * 2 B
    assert rows["llama-3.1-8b"]["total_params"] == 8_030_261_248
    assert rows["llama-3.1-8b"]["kv_bytes_per_token"] == 32 * 2 * 8 * 128 * 2
    assert rows["gemma-2-9b"]["sliding_window_layers"] == 21
    assert all(r["source"] for r in rows.values()), [n for n, r in rows.items() if not r["source"]]


def test_list_hardware_figures_are_the_yaml_figures(cli):
    """H100: 989 TFLOP/s bf16, 80 GB and 3.35 TB/s of HBM3, 700 W (instances/hardware/h100-sxm.yaml)."""
    result = cli(["list", "hardware", "--json"])
    assert result.exit_code == 0, result.output
    h100 = {r["name"]: r for r in json.loads(result.stdout)}["h100-sxm"]
    assert h100["peak_flops_per_s"]["bf16"] == 989e12
    assert h100["memory_bytes_per_chip"] == {"hbm3": 80e9}
    assert h100["bandwidth_bytes_per_s_per_chip"] == {"hbm3": 3.35e12}
    assert h100["tdp_w"] == 700
    yaml_sources = read_mapping(ROOT / "instances" / "hardware" / "h100-sxm.yaml")["sources"]
    assert h100["sources"]["chip.tdp"] == yaml_sources["chip.tdp"]


def test_list_memory_per_device_and_table(cli):
    """HBM3E: 36 GB and 1.2 TB/s per stack at 3.9 pJ/bit (instances/memory/hbm3e.yaml); bandwidth /
    capacity 1.2e12 / 36e9 = 33.3 per second. The table shows each technology and its sources."""
    rows = {r["name"]: r for r in json.loads(cli(["list", "memory", "--json"]).stdout)}
    hbm3e = rows["hbm3e"]
    assert (hbm3e["capacity_gb_per_device"], hbm3e["bandwidth_gb_per_s_per_device"]) == (36, 1200)
    assert (hbm3e["capacity_gb_per_die"], hbm3e["devices_per_reticle_die"]) == (4 * 36, 4)
    assert hbm3e["pj_per_bit"] == 3.9
    assert hbm3e["bw_per_capacity_per_s"] == pytest.approx(1.2e12 / 36e9)
    table = cli(["list", "memory"])
    assert table.exit_code == 0, table.output
    assert all(name in table.stdout for name in rows)
    assert "hbm3e energy: 3.9 pJ/bit (Samsung, OCP 2025)" in table.stdout
    assert "1.1" in table.stdout and "1.2" in table.stdout  # DDR5 and LPDDR5X bandwidth / capacity


def test_solve_csv_writes_flat_tables(cli, tmp_path):
    """`planner solve --csv DIR`: summary.csv (one row, nested keys flattened), stages.csv (one row per S
    tried), groups.csv, nodes.csv; the summary equals the --json summary without json_normalize."""
    result = cli(["solve", ROOT / "instances" / "llama-3.1-8b_tiny.yaml", "--csv", tmp_path, "--json", "-q"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 1
    assert summary.loc[0, "joules_per_token"] == pytest.approx(facts["joules_per_token"], rel=1e-12)
    assert summary.loc[0, "joules_per_token_by.kv"] == pytest.approx(facts["joules_per_token_by"]["kv"])
    stages = pd.read_csv(tmp_path / "stages.csv")
    assert list(stages["stages"]) == [int(s) for s in facts["per_stage_count"]]
    groups = pd.read_csv(tmp_path / "groups.csv")
    assert len(groups) == facts["stages"]
    nodes = pd.read_csv(tmp_path / "nodes.csv")
    assert len(nodes) == 66 and nodes["group"].between(0, facts["stages"] - 1).all()
