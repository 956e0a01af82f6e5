"""Reliability, round 2 (issue 13): one reproducer per class of fault the outside attack found, each failing
on the code before the fix (f70c310), plus the rule of each class checked on every input kind it touches.

Classes: 1 non-finite numbers, 2 YAML alias expansion, 3 quadratic work and the input size limit,
4 structurally wrong plans and instance mismatches, 5 integers beyond float range, 6 output paths checked
before work, 7 the sweep cache, 8 interrupts, 10 names that escape their folder. Exit codes are the README's
contract: 0 ok, 1 infeasible or a violated plan, 2 bad input (file, field, fix), 3 internal error, 130 Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fuzz_harness import ROOT, limited_run
from samples import CSV_HEADER, CSV_ROWS, MICROBENCH
from test_plan import TINY, hand_plan

from planner.core.errors import bounded_repr, problems_from_validation
from planner.core.fileio import MAX_ALIAS_VALUES, MAX_INPUT_BYTES, json_text, read_mapping
from planner.hardware.catalog import HARDWARE_DIR, MEMORY_DIR
from planner.problem.instance import load_instance
from planner.problem.problem import resolve


@pytest.fixture(scope="module")
def problem():
    return resolve(load_instance(TINY))


@pytest.fixture(scope="module")
def plan_data(problem) -> dict:
    """A valid 3-stage plan of the tiny instance, as the dict a plan file holds."""
    return hand_plan(problem, 3).to_dict()


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False))
    return path


def _csv(tmp_path: Path, rows: list[str], name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([CSV_HEADER, *rows]) + "\n")
    return path


def _finite_json(text: str):
    """json.loads that refuses NaN and Infinity (Python's json accepts them; JSON does not)."""

    def refuse(constant: str):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------------------------------------- 1 non-finite


@pytest.mark.parametrize("value", [float("nan"), "NaN", float("inf"), "-Infinity"])
def test_nan_tier_fraction_is_bad_input(cli, input_error, tmp_path, plan_data, value):
    """Was: `"feasible": true` and `"joules_per_token": NaN` (not JSON). Now exit 2 naming the fraction."""
    data = json.loads(json.dumps(plan_data))
    data["weight_split"]["L0.attn"] = {"hbm3e": value}
    path = _write(tmp_path / "plan.yaml", data)
    input_error(cli(["evaluate", TINY, path, "--json"]), "weight_split.L0.attn.hbm3e", "finite")


def test_nan_objective_is_bad_input(cli, input_error, tmp_path, plan_data):
    """Was: objective_rel_diff NaN in --json. Every float of a plan file must be finite."""
    data = json.loads(json.dumps(plan_data))
    data["solver"]["objective"] = float("nan")
    input_error(cli(["evaluate", TINY, _write(tmp_path / "p.yaml", data), "--json"]), "solver.objective")


def test_tiny_objective_gives_a_finite_relative_difference(cli, tmp_path, plan_data):
    """|recomputed - objective| / max(|recomputed|, |objective|): an objective of 5e-324 gives 1 - 5e-324/x,
    i.e. 1.0, where dividing by the objective alone overflowed to Infinity."""
    data = json.loads(json.dumps(plan_data))
    data["solver"]["objective"] = 5e-324
    result = cli(["evaluate", TINY, _write(tmp_path / "p.json", data), "--json"])
    assert result.exit_code == 0, result.output
    assert _finite_json(result.stdout)["objective_rel_diff"] == 1.0


@pytest.mark.parametrize("cell", ["1e300", "nan", "inf", "1e-300"])
def test_absurd_measurement_rows_name_file_line_and_column(cli, input_error, tmp_path, cell):
    """Was: users=1e300 predicted Infinity (in --json) and calibrate exited 3. Every column has a stated
    range (planner.studies.calibration.COLUMN_RANGES); the message names file:line and the column."""
    rows = [CSV_ROWS[0], CSV_ROWS[1].replace(",2,1,2048,", f",2,{cell},2048,")]
    path = _csv(tmp_path, rows, "bad.csv")
    input_error(
        cli(["check-measurements", path, "--hardware", "h100-sxm", "--json"]), "bad.csv:3, column users"
    )
    bench = _write(tmp_path / "bench.json", MICROBENCH)
    args = ["calibrate", "--microbench", bench, "--measurements", path, "--out", tmp_path / "hw.yaml"]
    input_error(cli(args), "bad.csv:3, column users")


def test_step_time_below_its_range(cli, input_error, tmp_path):
    rows = [CSV_ROWS[0].replace(",5.6057,", ",1e-300,")]
    input_error(cli(["check-measurements", _csv(tmp_path, rows), "--hardware", "h100-sxm"]), "column step_ms")


def test_microbench_figures_have_ranges(cli, input_error, tmp_path):
    bench = _write(tmp_path / "bench.json", {**MICROBENCH, "hbm_read_tb_per_s": 1e-300})
    args = ["calibrate", "--microbench", bench, "--measurements", _csv(tmp_path, CSV_ROWS)]
    input_error(cli([*args, "--out", tmp_path / "hw.yaml"]), "hbm_read_tb_per_s", "1e-300")


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--gap", "nan"),
        ("--min-tokens-per-s", "inf"),
        ("--time-limit", "nan"),
        ("--min-tokens-per-s", "1e400"),
    ],
)
def test_non_finite_flags_are_bad_input(cli, input_error, flag, value):
    """Was: compare --gap nan built its SweepSpec unchecked and exited 3 (a pydantic ValidationError)."""
    common = ["--model", "llama-3.1-8b", "--hardware", "sram-pipeline", "--context", "2048"]
    args = {"--gap": "1e-4", "--min-tokens-per-s": "20", "--time-limit": "5", flag: value}
    flags = [x for k, v in args.items() for x in (k, v)]
    input_error(cli(["compare", *common, "--users", "1", "--memory", "hbm3e", *flags]), flag)
    input_error(cli(["solve", *common, "--users", "1", *flags]), flag)


def test_the_json_writer_refuses_non_finite_numbers():
    with pytest.raises(ValueError, match=r"rows\.1\.j"):
        json_text({"rows": [{"j": 1.0}, {"j": float("nan")}]})
    assert json.loads(json_text({"a": [1, None]})) == {"a": [1, None]}


def test_json_output_is_one_document(cli, tmp_path):
    """Was: `sol --plot F --json` printed "wrote F" after the JSON on stdout (found by fuzzing)."""
    args = ["sol", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--users", "1,8", "--context", "64"]
    result = cli([*args, "--plot", tmp_path / "s.png", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["users"] for r in _finite_json(result.stdout)] == [1, 8]


def test_missing_cells_of_a_frame_print_as_null():
    from planner.cli.base import records

    frame = pd.DataFrame([{"a": 1.0, "b": "x"}, {"a": float("nan"), "b": None}])
    assert records(frame) == [{"a": 1.0, "b": "x"}, {"a": None, "b": None}]


@pytest.mark.parametrize(
    "where, text",
    [
        ("hardware", "achievable: {compute: .nan}"),
        ("memory", "cost_per_gb_usd: .inf"),
        ("instance", "solver: {gap: .nan}"),
    ],
)
def test_non_finite_yaml_numbers_anywhere(tmp_path, where, text):
    """read_mapping refuses NaN and infinity anywhere in a file, naming the field."""
    path = tmp_path / f"{where}.yaml"
    path.write_text(text + "\n")
    with pytest.raises(Exception) as info:
        read_mapping(path)
    assert "is not a finite number" in str(info.value) and text.split(":")[0] in str(info.value)


# ---------------------------------------------------------------------------------------------- 2 aliases

LAUGHS = "\n".join(
    ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
)  # 9 levels of 9: 9**9 = 387,420,489 strings once expanded, from about 340 bytes


@pytest.mark.parametrize("kind", ["instance", "plan", "hardware", "sweep"])
def test_billion_laughs_is_refused_quickly(tmp_path, kind):
    """Was: minutes and more than 700 MB (the error path formatted the expanded value). In a subprocess
    capped at 3 GB and 60 s: exit 2 in a few seconds, naming the alias bound."""
    path = tmp_path / f"{kind}.yaml"
    path.write_text(LAUGHS + "\n")
    args = {
        "instance": ["solve", path],
        "plan": ["evaluate", TINY, path],
        "hardware": ["sol", "--model", "llama-3.1-8b", "--hardware", path, "--users", "1", "--context", "8"],
        "sweep": ["sweep", path, "--cache", tmp_path / "cache"],
    }[kind]
    started = time.perf_counter()
    done = limited_run([sys.executable, "-m", "planner.cli", *map(str, args)], timeout=60, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert f"expand to more than {MAX_ALIAS_VALUES:,} values" in done.stderr
    assert time.perf_counter() - started < 30


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: &a [*a]\n")
    with pytest.raises(Exception, match="refers to a value that contains it"):
        read_mapping(path)


def test_small_aliases_still_load(tmp_path):
    """Anchors are fine where they expand to little: one link spec used for both links."""
    data = yaml.safe_load((HARDWARE_DIR / "h100-sxm.yaml").read_text())
    text = yaml.safe_dump({**data, "intra_group_link": data["inter_group_link"]}, sort_keys=False)
    assert "&id" in text  # safe_dump writes the shared mapping once, as an anchor and an alias
    path = tmp_path / "hw.yaml"
    path.write_text(text)
    assert read_mapping(path)["intra_group_link"] == data["inter_group_link"]


def test_bounded_repr_never_builds_the_value():
    """A list of 10**9 strings (shared sublists, like an alias expansion) and a 5,000-digit integer (whose
    repr() raises) print in well under a second, at most 60 characters."""
    value: list = ["lol"] * 10
    for _ in range(8):
        value = [value] * 10
    started = time.perf_counter()
    for v in (value, 10**5000, "x" * 10**7, b"y" * 10**7):
        assert len(bounded_repr(v)) <= 60
    assert time.perf_counter() - started < 0.1
    assert bounded_repr(10**400) == "<an integer of about 401 digits>"


def test_validation_messages_quote_values_briefly():
    from pydantic import TypeAdapter, ValidationError

    value: list = [1] * 10
    for _ in range(8):
        value = [value] * 10
    with pytest.raises(ValidationError) as info:
        TypeAdapter(dict[str, int]).validate_python({"a": value})
    (problem,) = problems_from_validation(info.value)
    assert len(problem) < 150


def test_a_value_that_fits_no_member_of_a_union_is_one_problem_without_pydantic_tags():
    """Was: two lines per bad value, located at pydantic's member tags ("max_chip_power.literal['tdp',
    'none']", "chips_per_group.int"). Expected by hand: one line per field, the list member's deeper
    error (the bad item) where the value is a list."""
    from pydantic import ValidationError

    from planner.problem.instance import InstanceSpec

    data = read_mapping(ROOT / TINY)
    for update, field, says in (
        ({"max_chip_power": None}, "max_chip_power", ("'tdp' or 'none'", "'73 W'")),
        ({"chips_per_group": [8, "x"]}, "chips_per_group.1", ("valid integer", "(got 'x')")),
        ({"chips_per_group": "eight"}, "chips_per_group", ("valid integer", "valid list")),
    ):
        with pytest.raises(ValidationError) as info:
            InstanceSpec.model_validate({**data, **update})
        (problem,) = problems_from_validation(info.value)
        assert problem.startswith(f"{field}: "), problem
        assert all(s in problem for s in says), problem
        assert "literal[" not in problem and "function-" not in problem and ".int" not in problem


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_reader_that_goes_away_is_exit_141_not_infeasible(json_flag):
    """Was: `planner solve ... | head -1` exited 1, the planner's code for an infeasible instance (rich's
    broken-pipe exit). Expected: 141 (128 + SIGPIPE, what shells report for such a command) and nothing on
    stderr. The read end is closed before the solve prints anything."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "planner.cli", "solve", TINY, "-q", *json_flag],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert err == b""


EXIT_NOW = """
import atexit, sys, threading, time
from planner.cli.exits import exit_now
atexit.register(lambda: sys.stdout.write(" atexit-ran"))
if sys.argv[1] == "thread":  # a non-daemon thread still running: the ordinary exit waits for it
    threading.Thread(target=lambda: (time.sleep(0.3), sys.stdout.write(" thread-done"))).start()
sys.stdout.write("printed")  # buffered (stdout is a pipe): lost unless exit_now flushes it
exit_now({"none": None, "int": 7, "text": "some message", "thread": 5}[sys.argv[1]])
"""


@pytest.mark.parametrize(
    ("code", "rc", "out", "err"),
    [
        ("none", 0, "printed atexit-ran", ""),
        ("int", 7, "printed atexit-ran", ""),
        ("text", 1, "printed atexit-ran", "some message\n"),
        ("thread", 5, "printed thread-done atexit-ran", ""),
    ],
)
def test_the_fast_exit_keeps_what_an_ordinary_exit_gives(code, rc, out, err):
    """planner.cli.exits.exit_now skips the interpreter's teardown; what a user sees must be what `sys.exit(code)`
    gives (Python's documented SystemExit rules: None is 0, an int is the status, any other object is
    printed on stderr and the status is 1): buffered output, atexit handlers, a running thread's work."""
    done = limited_run([sys.executable, "-c", EXIT_NOW, code], timeout=60, cwd=ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (rc, out, err)


def test_a_solve_written_to_a_file_is_whole_after_the_fast_exit(tmp_path):
    """The plan file and the printed table of `planner solve --out` are complete although the process ends
    by os._exit: the plan loads and evaluates to the J/token the table printed."""
    from planner.plans.plan import load_plan

    out = tmp_path / "plan.yaml"
    done = limited_run(
        [sys.executable, "-m", "planner.cli", "solve", TINY, "-q", "--out", str(out)], timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    printed = float(done.stdout.splitlines()[2].split(" J/token")[0])
    assert load_plan(out).solver.objective == pytest.approx(printed, rel=1e-3)


# ---------------------------------------------------------------------------------------------- 3 linear work


def test_evaluate_is_linear_in_the_plan(tmp_path, plan_data):
    """Was: list.count in a loop, 52 s for a 548 KB plan. 60,000 duplicate names (about 700 KB) took
    60,000**2 / 2 = 1.8e9 comparisons; now one pass. Exit 1 (a violation) within the 30 s bound."""
    data = json.loads(json.dumps(plan_data))
    data["groups"][0] = data["groups"][0] * 3 + ["L0.attn"] * 60_000
    path = _write(tmp_path / "big.json", data)
    assert 500_000 < path.stat().st_size < MAX_INPUT_BYTES
    started = time.perf_counter()
    done = limited_run(
        [sys.executable, "-m", "planner.cli", "evaluate", TINY, str(path)], timeout=30, cwd=ROOT
    )
    assert done.returncode == 1, done.stderr
    assert "nodes placed more than once" in done.stderr
    assert time.perf_counter() - started < 20


def test_measurement_files_have_a_row_limit(cli, input_error, tmp_path):
    """Each row is priced (and refit by calibrate's leave-one-out): 30,000 rows (1.6 MB) took minutes."""
    from planner.studies.calibration import MAX_ROWS

    path = _csv(tmp_path, CSV_ROWS * 10_000)
    started = time.perf_counter()
    input_error(
        cli(["check-measurements", path, "--hardware", "h100-sxm"]),
        f"30,000 data rows, over the limit of {MAX_ROWS:,}",
    )
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".csv"])
def test_files_over_the_size_limit_are_refused(cli, input_error, tmp_path, suffix):
    path = tmp_path / f"big{suffix}"
    with path.open("wb") as f:  # sparse: no 16 MB written
        f.truncate(MAX_INPUT_BYTES + 1)
    if suffix == ".csv":
        result = cli(["check-measurements", path, "--hardware", "h100-sxm"])
    else:
        result = cli(["evaluate", TINY, path])
    input_error(result, str(path), f"larger than {MAX_INPUT_BYTES:,} bytes")


# ---------------------------------------------------------------------------------------------- 4 structure


STRUCTURE = {  # edit of a valid 3-group plan -> the violation evaluate reports (exit 1)
    "empty group": (lambda d: d["groups"].append([]), "empty groups (no node): 3"),
    "unknown node": (lambda d: d["groups"][0].append("L99.attn"), "nodes not in the model: L99.attn"),
    "node twice": (lambda d: d["groups"][1].append(d["groups"][0][0]), "nodes placed more than once: embed"),
    "node missing": (lambda d: d["groups"][2].pop(), "nodes placed nowhere: lm_head"),
    "not contiguous": (
        lambda d: d["groups"][2].append(d["groups"][1].pop(0)),
        "groups are not contiguous slices",
    ),
    "tier not on the hardware": (
        lambda d: d["kv_split"].update({"L3.attn": {"hbm9": 1.0}}),
        "kv_split: tiers not on sram-pipeline at L3.attn (hbm9)",
    ),
    "fraction out of range": (
        lambda d: d["kv_split"].update({"L3.attn": {"hbm3e": 1e300}}),
        "kv_split: fractions outside [0, 1] at L3.attn",
    ),
    "no split entry": (lambda d: d["weight_split"].pop("lm_head"), "weight_split: no entry for lm_head"),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE))
def test_structurally_wrong_plans_are_violations(cli, tmp_path, plan_data, case):
    """Was: an empty group reached pipeline_cost (IndexError, exit 3), and a tier the hardware lacks or a
    fraction of 1e300 too. Now a violation (exit 1) and no figures; the JSON stays finite."""
    edit, expected = STRUCTURE[case]
    data = json.loads(json.dumps(plan_data))
    edit(data)
    data["stages"] = len(data["groups"])
    result = cli(["evaluate", TINY, _write(tmp_path / "p.yaml", data), "--json"])
    assert result.exit_code == 1, result.output
    report = _finite_json(result.stdout)
    assert not report["feasible"] and any(v.startswith(expected) for v in report["violations"]), report
    assert "joules_per_token" not in report  # not priced


def test_plot_of_a_broken_plan_is_bad_input(cli, input_error, tmp_path, plan_data):
    data = json.loads(json.dumps(plan_data))
    data["groups"].append([])
    input_error(cli(["plot", _write(tmp_path / "p.yaml", data), "--out", tmp_path / "p.png"]), "empty groups")


def test_a_plan_made_for_another_instance_is_bad_input(cli, input_error, tmp_path, plan_data):
    """Was: 100,000 users in the plan against 16 in INSTANCE reported feasible. Now exit 2, naming each
    field that differs with both values."""
    data = json.loads(json.dumps(plan_data))
    data["instance"]["workload"]["users"] = 100_000
    data["instance"]["max_groups"] = 7
    path = _write(tmp_path / "p.yaml", data)
    text = input_error(cli(["evaluate", TINY, path]), str(path))
    assert "workload.users: plan 100000, instance 16" in text and "max_groups: plan 7, instance 3" in text


def test_the_same_instance_by_path_or_name_matches(cli, tmp_path, plan_data):
    """An instance naming its model by path (graphs/llama-3.1-8b.json) is the one whose plan says
    `llama-3.1-8b`; so is one with another name or solver settings (they do not change the figures)."""
    spec = yaml.safe_load(Path(ROOT / TINY).read_text())
    spec["model"] = str(ROOT / "graphs" / "llama-3.1-8b.json")
    spec["name"] = "renamed"
    spec["solver"] = {"time_limit": "5 s"}
    instance = _write(tmp_path / "i.yaml", spec)
    plan = _write(tmp_path / "p.yaml", plan_data)
    result = cli(["evaluate", instance, plan, "--json"])
    assert result.exit_code == 0, result.output
    assert _finite_json(result.stdout)["feasible"]


# ---------------------------------------------------------------------------------------------- 5 big integers


@pytest.mark.parametrize(
    "kind, edit, field",
    [
        ("memory", lambda d: d.update(capacity_per_device=10**400), "capacity_per_device"),
        ("instance", lambda d: d.update(solver={"time_limit": 10**400}), "solver.time_limit"),
        ("instance", lambda d: d["workload"].update(users=10**400), "workload.users"),
        ("model", lambda d: d.update(hidden_size=10**400), "hidden_size"),
        ("sweep", lambda d: d.update(users=[1, 10**400]), "users.1"),
    ],
)
def test_integers_beyond_float_range_name_the_field(cli, input_error, tmp_path, kind, edit, field):
    """Was: OverflowError (exit 3) for a 401-digit capacity and time_limit: 10**400."""
    base = {
        "memory": MEMORY_DIR / "hbm3e.yaml",
        "instance": ROOT / TINY,
        "model": ROOT / "graphs" / "llama-3.1-8b.json",
        "sweep": ROOT / "sweeps" / "example.yaml",
    }[kind]
    data = json.loads(base.read_text()) if base.suffix == ".json" else yaml.safe_load(base.read_text())
    edit(data)
    path = _write(tmp_path / f"x{base.suffix}", data)
    args = {
        "memory": ["sol", "--model", "llama-3.1-8b", "--hardware", "sram-pipeline", "--kv-memory", path],
        "instance": ["solve", path],
        "model": ["model", "info", path],
        "sweep": ["sweep", path, "--cache", tmp_path / "c"],
    }[kind]
    if kind == "memory":
        args += ["--users", "1", "--context", "8"]
    input_error(cli(args), field)


def test_integer_flags_beyond_their_range(cli, input_error):
    big = "1" + "0" * 400
    input_error(cli(["solve", TINY, "--users", big]), "--users")
    input_error(
        cli(["sol", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--users", big, "--context", "8"]),
        "--users",
    )


def test_a_sweep_of_too_many_cases(cli, input_error, tmp_path):
    """2,000 users x 1,000 contexts = 2,000,000 cases: refused before any is built (MAX_CASES 100,000)."""
    data = yaml.safe_load((ROOT / "sweeps" / "example.yaml").read_text())
    data.update(users=list(range(1, 2001)), context=list(range(1, 1001)), models=["llama-3.1-8b"])
    data.update(hardware=["sram-pipeline"], memory=["hbm3e"], min_tokens_per_s=[20])
    text = input_error(cli(["sweep", _write(tmp_path / "s.yaml", data), "--cache", tmp_path / "c"]))
    assert "2,000,000 cases, over 100,000" in text


# ---------------------------------------------------------------------------------------------- 6 output paths


def _bad_output(tmp_path: Path, fault: str, folder: bool, suffix: str) -> Path:
    """A target of an output flag that cannot be written, named with the suffix the flag wants."""
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    if fault == "/proc":
        return Path("/proc/planner-test") if folder else Path(f"/proc/planner-test/x{suffix}")
    if fault == "300-character name":
        return tmp_path / ("n" * 300 + ("" if folder else suffix))
    if fault == "folder for a file":  # or a file for a folder
        if folder:
            return a_file
        (tmp_path / f"a_dir{suffix}").mkdir()
        return tmp_path / f"a_dir{suffix}"
    return a_file / ("sub" if folder else f"x{suffix}")  # under a file


STUDY = "--model llama-3.1-8b --hardware sram-pipeline --context 8 --min-tokens-per-s 20"
COMMANDS = {  # command -> (its arguments before the output flag, the flag, True if it takes a folder, suffix)
    "solve --out": (f"solve {TINY}", "--out", False, ".yaml"),
    "solve --csv": (f"solve {TINY}", "--csv", True, ""),
    "sol --csv": (
        "sol --model llama-3.1-8b --hardware h100-sxm --users 1 --context 8",
        "--csv",
        False,
        ".csv",
    ),
    "model graph --out": ("model graph llama-3.1-8b", "--out", False, ".json"),
    "capacity --cache": (f"capacity {STUDY}", "--cache", True, ""),
    "sweep --out": ("sweep sweeps/example.yaml", "--out", False, ".csv"),
    "sweep --cache": ("sweep sweeps/example.yaml", "--cache", True, ""),
    "compare --out": (f"compare {STUDY} --users 1", "--out", True, ""),
    "study kv-demand --out": ("study kv-demand", "--out", True, ""),
    "study deep-pipeline --out": ("study deep-pipeline", "--out", True, ""),
}


@pytest.fixture
def no_solving(monkeypatch):
    """Any solve or calibration fit fails the test: output paths must be refused before the work."""
    import planner.placement.solve
    import planner.studies.calibration

    def forbidden(*args, **kwargs):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(planner.placement.solve, "solve_problem", forbidden)
    monkeypatch.setattr(planner.studies.calibration, "calibrate_rows", forbidden)


@pytest.mark.parametrize("fault", ["/proc", "300-character name", "folder for a file", "under a file"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_output_paths_exit_2_before_any_work(cli, input_error, tmp_path, no_solving, command, fault):
    """Was: exit 3 after the solve (minutes). Now exit 2 naming the flag and the path, and no solve ran."""
    args, flag, folder, suffix = COMMANDS[command]
    target = _bad_output(tmp_path, fault, folder, suffix)
    extra = (
        ["--cache", tmp_path / "cache"]
        if flag != "--cache" and command.split()[0] in ("sweep", "compare")
        else []
    )
    input_error(cli([*args.split(), flag, target, *extra]), flag, str(target)[:40])


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("form", ["separate", "inline"])
def test_empty_flag_values_exit_2_before_any_work(cli, no_solving, command, form):
    """Was: `--cache ''` (an unset shell variable) read as the current folder, so a study ran for minutes
    and cached where it was started (found by the long fuzz run). Every flag refuses an empty value."""
    args, flag, _, _ = COMMANDS[command]
    result = cli([*args.split(), *([flag, ""] if form == "separate" else [f"{flag}="])])
    assert result.exit_code == 2, result.output
    assert flag in result.output and "empty value" in result.output and "Traceback" not in result.output


def test_calibrate_checks_out_and_report_first(cli, input_error, tmp_path, no_solving):
    bench = _write(tmp_path / "bench.json", MICROBENCH)
    args = ["calibrate", "--microbench", bench, "--measurements", _csv(tmp_path, CSV_ROWS)]
    input_error(cli([*args, "--out", "/proc/x/hw.yaml"]), "--out", "/proc/x/hw.yaml")
    input_error(cli([*args, "--out", tmp_path / "hw.yaml", "--report", tmp_path]), "--report")


def test_good_output_paths_pass_and_folders_are_made(tmp_path):
    from planner.core.fileio import check_output

    check_output(tmp_path / "new" / "deeper" / "plan.yaml", "--out", suffixes=(".yaml",))
    check_output(tmp_path / "new-dir", "--csv", directory=True, files=("nodes.csv",))
    assert not (tmp_path / "new").exists()  # checking creates nothing


# ---------------------------------------------------------------------------------------------- 7 the cache

SMALL_SWEEP = {
    "name": "cache test",
    "models": ["llama-3.1-8b"],
    "hardware": ["sram-pipeline"],
    "memory": ["hbm3e"],
    "users": [1, 16],
    "context": 2048,
    "min_tokens_per_s": [20],
    "chips_per_group": 4,
    "max_groups": 2,
}


@pytest.fixture(scope="module")
def solved_cache(tmp_path_factory):
    """A cache holding the two cases of SMALL_SWEEP, and the table of a fresh run."""
    from planner.runs.sweep import SweepSpec, sweep

    directory = tmp_path_factory.mktemp("cache")
    frame = sweep(SweepSpec.model_validate(SMALL_SWEEP), cache=directory, workers=1)
    return directory, frame


WRONG_SHAPES = {
    "a list": lambda e: [],
    "null": lambda e: None,
    "a number": lambda e: 3,
    "row without status": lambda e: {**e, "row": {k: v for k, v in e["row"].items() if k != "status"}},
    "row is a list": lambda e: {**e, "row": []},
    "status of another kind": lambda e: {**e, "row": {**e["row"], "status": ["optimal"]}},
    "J/token as text": lambda e: {**e, "row": {**e["row"], "joules_per_token": "0.1"}},
    "a column missing": lambda e: {**e, "row": {k: v for k, v in e["row"].items() if k != "stages"}},
    "another case's keys": lambda e: {**e, "row": {**e["row"], "users": 999}},
    "plan is a list": lambda e: {**e, "plan": []},
    "no plan": lambda e: {k: v for k, v in e.items() if k != "plan"},  # was KeyError (found by fuzzing)
    "no placement for a feasible row": lambda e: {**e, "plan": None},
    "plan groups as text": lambda e: {**e, "plan": {**e["plan"], "groups": "embed"}},
    "spec is a list": lambda e: {**e, "spec": []},
}


@pytest.mark.parametrize("shape", sorted(WRONG_SHAPES))
def test_cache_entries_of_the_wrong_shape_are_solved_again(tmp_path, solved_cache, shape):
    """Was: `[]`, `null` or a row without status killed the sweep (exit 3). Now a miss: the case is solved
    again and the table equals a fresh run's (timings aside)."""
    from planner.runs.sweep import SweepSpec, sweep

    source, fresh = solved_cache
    directory = tmp_path / "cache"
    shutil.copytree(source, directory)
    entries = sorted(directory.glob("*.json"))
    entry = json.loads(entries[0].read_text())
    entries[0].write_text(json.dumps(WRONG_SHAPES[shape](entry)))
    hits: list[bool] = []
    again = sweep(
        SweepSpec.model_validate(SMALL_SWEEP),
        cache=directory,
        workers=1,
        progress=lambda r, h: hits.append(h),
    )
    assert sorted(hits) == [False, True]
    pd.testing.assert_frame_equal(again.drop(columns="solve_s"), fresh.drop(columns="solve_s"))
    assert json.loads(entries[0].read_text())["row"]["status"] in ("optimal", "time_limit")


@pytest.mark.parametrize("content", [b"\xff\xfe", b"[" * 100_000, b'{"version": 2'])
def test_unreadable_cache_entries_are_misses(solved_cache, tmp_path, content):
    from planner.runs.cache import Cache
    from planner.runs.sweep import SweepSpec

    source, _ = solved_cache
    directory = tmp_path / "cache"
    shutil.copytree(source, directory)
    spec = SweepSpec.model_validate(SMALL_SWEEP).cases()[0]
    Cache(directory).path(spec).write_bytes(content)
    assert Cache(directory).get(spec) is None


def _hardware_with_kv_file(tmp_path: Path, memory: dict) -> tuple[Path, dict]:
    """hw/chip.yaml: sram-pipeline with its off-chip tier `tech: ../mem/kv.yaml`, and mem/kv.yaml holding
    `memory`; returns the hardware file and its content."""
    for folder in ("hw", "mem"):
        (tmp_path / folder).mkdir(exist_ok=True)
    _write(tmp_path / "mem" / "kv.yaml", memory)
    hardware = yaml.safe_load((HARDWARE_DIR / "sram-pipeline.yaml").read_text())
    hardware["memory"] = [
        t if t["tech"] == "sram" else {**t, "tech": "../mem/kv.yaml"} for t in hardware["memory"]
    ]
    return _write(tmp_path / "hw" / "chip.yaml", hardware), hardware


def test_a_memory_file_referenced_from_a_hardware_file_is_in_the_cache_key(tmp_path):
    """The issue's case: the KV memory is a file given by (relative) path in the hardware file. With its
    bandwidth at 1 GB/s per device instead of 1.2 TB/s, 2 groups x 4 chips x 4 devices give 32 GB/s, and
    the 14 GB of bf16 weights beyond the 2 GB of SRAM alone take 0.44 s per token: far below 20 tokens/s.
    A resumed sweep must say infeasible, as a fresh one does, instead of the cached optimum."""
    from planner.runs.sweep import SweepSpec, sweep

    memory = yaml.safe_load((MEMORY_DIR / "hbm3e.yaml").read_text())
    memory["bandwidth_per_device"] = "1.2 TB/s"
    hw_path, _ = _hardware_with_kv_file(tmp_path, memory)
    spec = SweepSpec.model_validate(
        {**SMALL_SWEEP, "hardware": [str(hw_path)], "memory": [None], "users": [16]}
    )
    first = sweep(spec, cache=tmp_path / "cache", workers=1)
    assert list(first["status"]) == ["optimal"]
    memory["bandwidth_per_device"] = "1 GB/s"
    _write(tmp_path / "mem" / "kv.yaml", memory)
    resumed = sweep(spec, cache=tmp_path / "cache", workers=1)
    fresh = sweep(spec, cache=tmp_path / "fresh", workers=1)
    assert list(resumed["status"]) == list(fresh["status"]) == ["infeasible"]


# ---------------------------------------------------------------------------------------------- 8 interrupts


def _interrupt_when(module: str, then_wait: float = 0.0) -> subprocess.CompletedProcess:
    """Run `planner solve` on the shipped Llama-70B deep-pipeline instance (about 2 s of solving) with
    import timings on; send SIGINT once stderr shows that `module` is imported (the imports after it are
    under way), then `then_wait` s later.

    It runs the `planner` console script, as users do, not `python -m planner.cli`: under -m, CPython 3.11
    re-kills itself with SIGINT after a clean exit 130 when the interrupt landed inside an exec'd string
    (a dataclass or named tuple being created by an import), which a parent sees as -2 (a shell shows 130
    either way); a script's exit status is the one the program chose."""
    script = Path(sys.executable).parent / "planner"
    script = str(script) if script.exists() else shutil.which("planner")
    assert script, "no `planner` console script: pip install -e . (scripts/test.sh does)"
    cmd = [
        script,
        "solve",
        "instances/llama-3.1-70b_sram-pipeline_novel-kv-dram.yaml",
    ]
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.split("|")[-1].strip() == module:
            break
    time.sleep(then_wait)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "".join(lines) + err)


@pytest.mark.parametrize(
    "module, then_wait",
    [
        ("rich.console", 0.0),  # typer and rich load
        ("typer", 0.0),  # the command modules load
        ("planner.cli.base", 0.0),
        ("planner.model.graph", 0.0),  # the planner's API loads, then the instance is read
        ("highspy", 0.0),  # the solver stack loads
        ("planner.placement.solve", 0.0),  # the solve starts
        ("planner.placement.solve", 0.3),  # solving
    ],
)
def test_ctrl_c_at_any_moment_prints_one_line_and_exits_130(module, then_wait):
    """Was: a KeyboardInterrupt traceback when Ctrl-C came during the imports (the first seconds)."""
    done = _interrupt_when(module, then_wait)
    said = [  # what the user reads: not the import timings, not the progress report's "started" line
        ln
        for ln in done.stderr.splitlines()
        if ln.strip() and not ln.startswith("import time:") and not ln.endswith(": started")
    ]
    assert done.returncode == 130, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(said) == 1 and said[0].startswith("interrupted"), said


def test_worker_processes_stop_quietly():
    """A sweep's worker gets the same Ctrl-C as the parent: it ends at once, printing nothing."""
    code = "import os, signal, time; from planner.runs.workers import quiet_interrupts as q; q(); os.kill(os.getpid(), signal.SIGINT); time.sleep(5)"
    done = limited_run([sys.executable, "-c", code], timeout=30, cwd=ROOT)
    assert done.returncode == 130 and done.stderr == ""


# ---------------------------------------------------------------------------------------------- 10 names


@pytest.mark.parametrize(
    "field, value",
    [
        ("kv_memory", "../hardware/h100-sxm"),
        ("hardware", "../memory/hbm3"),
        ("model", "../graphs/llama-3.1-8b"),
        ("hardware", "instances/hardware/h100-sxm"),  # a path must end in .yaml
        ("kv_memory", "HBM3E"),
        ("model", "llama-3.1-8b/"),
    ],
)
def test_names_do_not_escape_their_folder(cli, input_error, tmp_path, field, value):
    """Was: `kv_memory: ../hardware/h100-sxm` read instances/memory/../hardware/h100-sxm.yaml. A catalog
    name matches [a-z0-9][a-z0-9._-]* and is looked up only in its folder; anything else is a path, which
    must end in .yaml/.yml (.json for models) and exist."""
    spec = yaml.safe_load(Path(ROOT / TINY).read_text())
    spec[field] = value
    text = input_error(cli(["solve", _write(tmp_path / "i.yaml", spec)]), f"{field}: {value}", "no such")
    assert "a path must end in" in text or "no such" in text


def test_catalog_names_and_paths_still_work(tmp_path):
    spec = yaml.safe_load(Path(ROOT / TINY).read_text())
    spec.update(
        model=str(ROOT / "graphs" / "llama-3.1-8b.json"),
        hardware="sram-pipeline",
        kv_memory="instances/memory/hbm3e.yaml",
    )
    problem = resolve(load_instance(_write(tmp_path / "i.yaml", spec)))
    assert problem.hw.kv_memory == "instances/memory/hbm3e.yaml" and problem.model.name == "llama-3.1-8b"


def test_tech_paths_in_a_hardware_file_are_relative_to_that_file(tmp_path, monkeypatch):
    """`tech: ../mem/kv.yaml` in hw/chip.yaml means mem/kv.yaml next to hw/, whatever the working folder."""
    from planner.hardware.catalog import load_hardware

    path, hardware = _hardware_with_kv_file(tmp_path, yaml.safe_load((MEMORY_DIR / "hbm3e.yaml").read_text()))
    monkeypatch.chdir(tmp_path / "mem")
    hw = load_hardware(path)
    assert [t.name for t in hw.tiers] == [t.name for t in load_hardware("sram-pipeline").tiers]
    hardware["memory"][-1]["tech"] = "../hardware/h100-sxm"
    _write(path, hardware)
    with pytest.raises(
        Exception, match=r"memory\.\d\.tech: \.\./hardware/h100-sxm: no such memory technology"
    ):
        load_hardware(path)
