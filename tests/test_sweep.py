"""Sweeps: strict schema with every problem reported, resumable cache (an interrupted sweep gives the same
table as an uninterrupted one), and a dask.distributed LocalCluster on loopback gives the local results."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from planner.core.errors import PlannerInputError
from planner.runs.cache import Cache
from planner.runs.executor import run_cases
from planner.runs.sweep import TIMING_COLUMNS, SweepSpec, load_sweep, sweep, table, write_table

SMALL = {
    "name": "test",
    "models": ["llama-3.1-8b"],
    "hardware": ["sram-pipeline"],
    "memory": ["hbm3e", "novel-kv-dram"],
    "users": [1, 64],
    "context": 2048,
    "min_tokens_per_s": [20],
    "chips_per_group": 4,
    "max_groups": 2,
}


def results_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=list(TIMING_COLUMNS))


def write(tmp_path, data, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_schema_lists_every_problem(tmp_path):
    bad = {**SMALL, "users": [0, 5], "colour": "red", "solver": {"stages": 3}}
    with pytest.raises(PlannerInputError) as info:
        load_sweep(write(tmp_path, bad))
    text = info.value.message()
    assert "colour: unknown field" in text
    assert "users.0" in text
    assert "solver.stages" in text


def test_bad_names_fail_before_any_solve(tmp_path):
    bad = {**SMALL, "models": ["llama-3.1-8b", "no-such-model"], "memory": ["hbm3e", "unobtainium"]}
    with pytest.raises(PlannerInputError) as info:
        load_sweep(write(tmp_path, bad))
    text = info.value.message()
    assert "no-such-model" in text and "unobtainium" in text


def test_scalars_are_lists_of_one_and_cases_are_the_product():
    spec = SweepSpec.model_validate({**SMALL, "min_tokens_per_s": 20})
    cases = spec.cases()
    assert len(cases) == 1 * 1 * 2 * 2 * 1 * 1
    assert [c.workload.users for c in cases] == [1, 64, 1, 64]
    assert len({c.digest() for c in cases}) == len(cases)


def test_sweep_cli_explains_bad_file(cli, input_error, tmp_path):
    path = write(tmp_path, {**SMALL, "hardware": ["nope"]})
    input_error(cli(["sweep", path, "--out", tmp_path / "t.csv"]), "nope")
    input_error(cli(["sweep", write(tmp_path, SMALL), "--out", tmp_path / "t.txt"]), ".csv or .parquet")


def test_interrupted_sweep_resumes_to_the_same_table(tmp_path):
    """Interrupt after two cases (KeyboardInterrupt from the progress callback), rerun with the same
    cache: the finished cases are not solved again and the table equals an uninterrupted run's."""
    spec = SweepSpec.model_validate(SMALL)
    whole = sweep(spec, cache=tmp_path / "a", workers=1)

    seen: list[bool] = []

    def stop_after_two(result, cached):
        seen.append(cached)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(spec, cache=tmp_path / "b", workers=1, progress=stop_after_two)
    assert len(list((tmp_path / "b").glob("*.json"))) == 2
    hits: list[bool] = []
    resumed = sweep(spec, cache=tmp_path / "b", workers=1, progress=lambda r, cached: hits.append(cached))
    assert sorted(hits) == [False, False, True, True]
    pd.testing.assert_frame_equal(results_only(resumed), results_only(whole))
    # a subset first, then the full set in worker processes: the same table again
    sweep(SweepSpec.model_validate({**SMALL, "users": [64]}), cache=tmp_path / "c", workers=1)
    full = sweep(spec, cache=tmp_path / "c", workers=2)
    pd.testing.assert_frame_equal(results_only(full), results_only(whole))


def test_infeasible_cases_are_cached_results(tmp_path):
    spec = SweepSpec.model_validate({**SMALL, "memory": ["hbm3e"], "users": [10**7]})
    frame = sweep(spec, cache=tmp_path, workers=1)
    assert list(frame["status"]) == ["infeasible"]
    assert frame["binding"].iloc[0]
    (cached,) = (tmp_path).glob("*.json")
    assert json.loads(cached.read_text())["row"]["status"] == "infeasible"
    assert Cache(tmp_path).get(spec.cases()[0]).row["binding"] == frame["binding"].iloc[0]


def test_dask_local_cluster_gives_the_local_results(tmp_path):
    from distributed import LocalCluster

    spec = SweepSpec.model_validate(SMALL)
    local = sweep(spec, workers=1)
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        remote = sweep(spec, cache=tmp_path, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(results_only(remote), results_only(local))


def test_tables_round_trip_and_sort(tmp_path):
    spec = SweepSpec.model_validate(SMALL)
    results = run_cases(spec.cases(), Cache(tmp_path / "cache"), workers=1)
    frame = table(list(reversed(results)))
    assert list(frame["memory"]) == ["hbm3e", "hbm3e", "novel-kv-dram", "novel-kv-dram"]
    assert list(frame["users"]) == [1, 64, 1, 64]
    for suffix in (".csv", ".parquet"):
        path = write_table(frame, tmp_path / f"t{suffix}")
        again = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        assert list(again["joules_per_token"]) == pytest.approx(list(frame["joules_per_token"]))


def test_sweep_cli_writes_the_table(cli, tmp_path):
    out = tmp_path / "t.csv"
    result = cli(["sweep", write(tmp_path, SMALL), "--out", out, "--cache", tmp_path / "c", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 4


def test_cache_ignores_results_of_other_code_or_data(tmp_path):
    """A cached file is used only if its inputs fingerprint (code and data files) still matches."""
    from planner.runs.cache import CaseResult, key_row

    spec = SweepSpec.model_validate(SMALL).cases()[0]
    cache = Cache(tmp_path)
    row = {**key_row(spec), "status": "infeasible", "binding": "capacity", "explanation": "", "proven": True}
    cache.put(CaseResult(spec, {**row, "solve_s": 0.1}, None))
    assert cache.get(spec).row["binding"] == "capacity"
    path = cache.path(spec)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "inputs": "0" * 16}))
    assert cache.get(spec) is None
    path.write_text("{ half a file")
    assert cache.get(spec) is None
