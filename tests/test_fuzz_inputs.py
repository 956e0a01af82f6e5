"""Fuzzing every input kind through the CLI, each case with a time and a memory bound.

Input kinds: model config.json, hardware YAML, memory YAML, instance YAML, plan YAML/JSON, measurement
CSV (and the microbenchmark JSON), sweep YAML, sweep-cache entries, and command-line flags. Each case runs
in the fuzz worker (tests/fuzz_harness.py: one process, CliRunner in-process, RLIMIT_AS of the imported
planner + 2 GiB, a per-case timeout) and fails on exit 3, a traceback or uncaught exception, a hang, a
worker crash, NaN/Infinity in JSON output, an exit code the case does not allow (0 and 2 for input files;
1 too where an instance may be infeasible or a plan violated), or an exit-2 message longer than 40 lines.

The generators start from the shipped files (or a valid plan, sweep, CSV) and apply, among others, each
class of issue 13: non-finite numbers (.nan, "NaN", 1e999, inf), YAML anchors and aliases (small ones and
"billion laughs"), big inputs (over the 16 MB limit, and plans of 60,000 names under it), integers beyond
float range (10**400, 5,000 digits), structurally wrong plans (empty, split, merged, shuffled groups,
unknown, missing and repeated nodes, bad fractions and tiers, another instance), bad output paths
(/proc, 300-character names, a folder for a file and a file for a folder), names with '..' and slashes,
and cache entries of the wrong shape; then byte-level damage (truncation, inserted bytes, not UTF-8).

The default run is reproducible (derandomize=True): about 1,500 cases in about 100 s on 2 cores. The long
run: PLANNER_FUZZ_SCALE=15 python -m pytest tests/test_fuzz_inputs.py (15x the cases, fresh randomness);
the terminal summary lists cases per input kind, exit codes and failures (README, "Fuzzing").
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzz_harness import ROOT, check_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import CSV_HEADER, CSV_ROWS, MICROBENCH

from planner.core.fileio import MAX_INPUT_BYTES
from planner.hardware.catalog import HARDWARE_DIR, MEMORY_DIR
from planner.model.config import GRAPHS_DIR

SCALE = max(1, int(os.environ.get("PLANNER_FUZZ_SCALE", "1")))
TINY = "instances/llama-3.1-8b_tiny.yaml"
SOLVE_TIMEOUT_S = 120.0  # a solve plus an infeasibility explanation (its budget is 20 s of wall clock)


def fuzz_settings(examples: int) -> settings:
    """`examples` cases in CI (reproducible); SCALE times as many, with fresh randomness, when asked."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())


MODELS = {p.stem: _load(p) for p in sorted(GRAPHS_DIR.glob("*.json"))}
MEMORIES = {p.stem: _load(p) for p in sorted(MEMORY_DIR.glob("*.yaml"))}
HARDWARE = {p.stem: _load(p) for p in sorted(HARDWARE_DIR.glob("*.yaml"))}
INSTANCES = {
    "tiny": _load(ROOT / TINY),
    "h100-one-group": {
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm",
        "chips_per_group": 1,
        "max_groups": 2,
        "workload": {"users": 4, "context": 512, "min_tokens_per_s": 10},
    },
}
SWEEP = {
    "name": "fuzz",
    "models": ["llama-3.1-8b"],
    "hardware": ["sram-pipeline"],
    "memory": ["hbm3e"],
    "users": [1, 10_000_000],  # one quick optimum, one quick capacity verdict
    "context": [2048],
    "min_tokens_per_s": [20],
    "chips_per_group": 4,
    "max_groups": 2,
}

# ------------------------------------------------------------------------------------ values

BIG_INT = 10**400
NAMES = [  # catalog names, paths, and names that try to leave their folder
    "llama-3.1-8b",
    "h100-sxm",
    "sram-pipeline",
    "hbm3e",
    "sram",
    "../hardware/h100-sxm",
    "../memory/hbm3",
    "../graphs/llama-3.1-8b",
    "h100-sxm/../b200",
    "./h100-sxm",
    "H100-SXM",
    "instances/hardware/h100-sxm.yaml",
    "instances/memory/hbm3e.yaml",
    "graphs/llama-3.1-8b.json",
    "instances/hardware/h100-sxm",
    "/etc/passwd",
    "/proc/self/status",
    "/dev/zero",
    "~/x.yaml",
    "graphs",
    "..",
    "n" * 300,
]
NASTY = [
    None,
    True,
    False,
    0,
    -1,
    1,
    3,
    2**31,
    2**63,
    10**30,
    -(10**30),
    BIG_INT,
    -BIG_INT,
    2**1024,
    1e30,
    -1e30,
    1e300,
    1e-300,
    5e-324,
    0.5,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    " ",
    "0",
    "-1",
    "nan",
    "NaN",
    ".nan",
    "inf",
    "-Infinity",
    "1e400",
    "1e30 B",
    "1e400 B",
    "-5 GB",
    "nan GB",
    "80 GB",
    "80 GiB",
    "80 W",
    "3.9 pJ",
    "3.9 pJ/bit",
    "3.35 TB/s",
    "3.35 TB",
    "989 TFLOP/s",
    "989 TFLOPS",
    "0.5 pJ/FLOP",
    "2 us",
    "73 W",
    "1 byte/bit",
    "50 %",
    "9**9**9",
    "10**400 B",
    "(-1)**0.5 W",
    "1/0",
    "[/]",
    "[bold]x[/bold]",
    "line\nbreak",
    "\x00",
    "\x1b[31m",
    "\ud800",
    "caf\xe9",
    "a" * 500,
    "full_attention",
    "sliding_attention",
    "on-chip",
    *NAMES,
    [],
    {},
    [1, 2],
    [-1, 10**9],
    [BIG_INT],
    [float("nan")],
    ["sliding_attention"],
    {"bf16": "1 TFLOP/s"},
    {"bf16": float("nan")},
    {"tech": "hbm3"},
    {"tech": "../hardware/h100-sxm"},
    {"a": 1},
]

values = st.one_of(
    st.sampled_from(NASTY),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(min_value=-5, max_value=200), max_size=4),
)
keys = st.one_of(
    st.sampled_from(
        ["name", "tech", "extra", "bandwith", "hidden", "n_experts", "kind", "0", "[/]", "\n", "<<"]
    ),
    st.text(max_size=12),
)
# plausible factors (the file stays valid, the numbers get odd) and absurd ones
scales = st.sampled_from([0, -1, 1e-30, 1e-6, 1e-3, 0.1, 0.5, 2, 10, 1000, 1e6, 1e30, 1e300, float("nan")])


def _fresh(value: Any) -> Any:
    """A copy of a drawn value: NASTY's lists and dicts are shared, and a mutation must not alter them."""
    return copy.deepcopy(value)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every position inside a parsed file: a tuple of dict keys and list indices."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            found.append((*prefix, k))
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found.append((*prefix, i))
            found += _paths(v, (*prefix, i))
    return found


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        if abs(value) > 1e300:  # an earlier mutation's huge integer stays huge (int x float would overflow)
            return value * 10
        return int(value * factor) if factor == factor and abs(factor) < 1e20 else value * factor
    if isinstance(value, float):
        return value * factor
    if isinstance(value, str) and value[:1].isdigit():
        number, _, unit = value.partition(" ")
        try:
            return f"{float(number) * factor:g} {unit}".strip()
        except ValueError:
            return value
    return value


RAW = "RAWSENTINEL"  # a value replaced, after serializing, by raw text that no serializer would write
RAW_SNIPPETS = [
    b"9" * 5000,  # an integer past Python's 4,300-digit limit for int(str)
    b"9" * 401,  # an integer past a float's range
    b"[" * 3000 + b"]" * 3000,  # nesting past the recursion limit
    b"1e999",
    b"-0",
    b"NaN",
    b"-Infinity",
    b".nan",
    b".inf",
    b"-.Inf",
    b"2020-13-45",  # a YAML timestamp that is no date
    b"2001-12-14t21:59:43.10-99:00",
    b"!!binary '%%%'",
    b"!!binary aGVsbG8=",
    b"!!python/object/apply:os.system ['true']",
    b"*undefined_alias",
    b"&a [*a, *a]",  # an alias inside its own anchor
    b"&b {x: *b}",
    b"0x1F",
    b"0o17",
    b"1_000",
    b"1:30",
    b"~",
    b"{a: [1, 2}",
    b'"\\ud800"',
    b"!!set {1, 2}",
    b"? [1, 2]\n: 3",
]


def _laughs(depth: int, width: int) -> bytes:
    """A YAML 'billion laughs' prefix: depth levels of width aliases each (width**depth values)."""
    lines = [f"_l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"_l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    return ("\n".join(lines) + "\n").encode()


@st.composite
def mutated(draw: st.DrawFn, bases: dict[str, Any]) -> tuple[str, Any]:
    """A base file's parsed content with 1-3 structural mutations: (base name, data)."""
    name = draw(st.sampled_from(sorted(bases)))
    data = copy.deepcopy(bases[name])
    return name, mutate(draw, data)


def mutate(draw: st.DrawFn, data: Any, rounds: int | None = None) -> Any:
    """1-3 structural mutations of parsed data, in place (returned for convenience)."""
    for _ in range(rounds or draw(st.sampled_from([1, 1, 1, 2, 3]))):
        paths = _paths(data)
        op = draw(
            st.sampled_from(
                [
                    "drop",
                    "drop",
                    "replace",
                    "replace",
                    "scale",
                    "scale",
                    "add",
                    "rename",
                    "wrap",
                    "raw",
                    "share",
                ]
            )
        )
        if not paths or op == "add":
            targets = [p for p in [(), *paths] if isinstance(_get(data, p), dict)]
            if targets:
                _get(data, draw(st.sampled_from(targets)))[draw(keys)] = _fresh(draw(values))
            continue
        # half the time a top-level field (the ones the loaders read most), else anywhere
        top = [p for p in paths if len(p) == 1]
        path = draw(st.sampled_from(top if top and draw(st.booleans()) else paths))
        parent, last = _get(data, path[:-1]), path[-1]
        if op == "drop":
            del parent[last]
        elif op == "replace":
            parent[last] = _fresh(draw(values))
        elif op == "scale":
            parent[last] = _scaled(parent[last], draw(scales))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(keys)] = parent.pop(last)
        elif op == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"value": parent[last]}, str(parent[last])]))
        elif op == "raw":
            parent[last] = RAW
        elif op == "share":  # the same object twice: YAML writes an anchor and an alias
            other = _get(data, draw(st.sampled_from(paths)))
            if isinstance(other, (dict, list)) and not any(x is parent for x in _walk(other)):
                parent[last] = other
    return data


def _walk(node: Any):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for c in children:
        yield from _walk(c)


def _serialize(data: Any, fmt: str) -> bytes:
    if fmt == "json":
        text = json.dumps(data, allow_nan=True)
    else:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes that are not UTF-8


def damaged(draw: st.DrawFn, data: Any, fmt: str) -> bytes:
    """`data` serialized, usually intact, sometimes damaged at the byte level or made huge."""
    content = _serialize(data, fmt)
    quoted = f'"{RAW}"'.encode() if fmt == "json" else RAW.encode()
    while quoted in content:
        content = content.replace(quoted, draw(st.sampled_from(RAW_SNIPPETS)), 1)
    damage = draw(
        st.sampled_from(
            ["none"] * 18 + ["truncate", "insert", "non-utf8", "garbage", "text", "laughs", "laughs", "big"]
        )
    )
    if damage == "truncate":
        content = content[: draw(st.integers(min_value=0, max_value=len(content)))]
    elif damage == "insert":
        at = draw(st.integers(min_value=0, max_value=len(content)))
        content = content[:at] + draw(st.binary(min_size=1, max_size=8)) + content[at:]
    elif damage == "non-utf8":
        at = draw(st.integers(min_value=0, max_value=len(content)))
        content = (
            content[:at]
            + draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80"]))
            + content[at:]
        )
    elif damage == "garbage":
        content = draw(st.binary(max_size=200))
    elif damage == "text":
        content = draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    elif damage == "laughs" and fmt != "json":
        depth, width = draw(st.sampled_from([(2, 3), (3, 10), (6, 10), (9, 9), (20, 2), (40, 2)]))
        content = _laughs(depth, width) + content
    elif damage == "big":  # one byte over the limit (padded with a comment or spaces)
        pad = b"\n#" if fmt != "json" else b" "
        content = content + pad + b" " * max(0, MAX_INPUT_BYTES + 1 - len(content) - len(pad))
    return content


@st.composite
def file_bytes(draw: st.DrawFn, bases: dict[str, Any], fmt: str) -> bytes:
    _, data = draw(mutated(bases))
    return damaged(draw, data, fmt)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def good_plan(workdir: Path) -> dict:
    """A valid 3-stage plan of the tiny instance (balanced split, greedy tiers), as a plan file's dict."""
    from test_plan import hand_plan

    from planner.problem.instance import load_instance
    from planner.problem.problem import resolve

    plan = hand_plan(resolve(load_instance(ROOT / TINY)), 3).to_dict()
    plan["instance"]["model"], plan["instance"]["hardware"] = "llama-3.1-8b", "sram-pipeline"
    (workdir / "good-plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return plan


@pytest.fixture(scope="module")
def sweep_cache(workdir: Path, fuzz_worker) -> Path:
    """SWEEP solved once into a cache (by the fuzz worker, so with the same code fingerprint)."""
    path = workdir / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    cache = workdir / "sweep-cache"
    args = ["sweep", path, "--cache", cache, "--workers", "1", "--out", workdir / "sweep.csv"]
    check_case(fuzz_worker, None, args, allowed=(0,), timeout=SOLVE_TIMEOUT_S)
    return cache


# ------------------------------------------------------------------------------------ model configs

MODEL_COMMANDS = [
    ["model", "info", "{path}", "--json"],
    ["model", "info", "{path}"],
    ["model", "info", "{path}", "--kv-dtype", "fp8"],
    ["model", "graph", "{path}", "--out", "{out}.graphml"],
    ["model", "graph", "{path}", "--out", "{out}.json"],
    ["sol", "--model", "{path}", "--hardware", "h100-sxm", "--users", "1,64", "--context", "4096", "--json"],
]


@fuzz_settings(350)
@given(content=file_bytes(MODELS, "json"), command=st.sampled_from(MODEL_COMMANDS))
def test_fuzz_model_config(fuzz_worker, workdir: Path, content: bytes, command: list[str]):
    path = workdir / "config.json"
    path.write_bytes(content)
    out = workdir / "graph"
    args = [a.format(path=path, out=out) for a in command]
    outcome = check_case(fuzz_worker, "model config.json", args, json_files=[f"{out}.json"])
    if outcome.exit_code == 0 and args[:2] == ["model", "info"] and args[-1] == "--json":
        info = json.loads(outcome.stdout)
        assert info["num_nodes"] == 2 * info["num_layers"] + 2


# ------------------------------------------------------------------------------------ hardware files

SOL_FLAGS = st.sampled_from(
    [
        ["--json"],
        [],
        ["--achievable", "--json"],
        ["--chips", "1", "--json"],
        ["--chips", "16"],
        ["--kv-memory", "novel-kv-dram", "--json"],
        ["--kv-memory", "sram"],
    ]
)


@fuzz_settings(250)
@given(content=file_bytes(HARDWARE, "yaml"), flags=SOL_FLAGS, users=st.sampled_from(["1", "1,64"]))
def test_fuzz_hardware_file(fuzz_worker, workdir: Path, content: bytes, flags: list[str], users: str):
    path = workdir / "hardware.yaml"
    path.write_bytes(content)
    args = [
        "sol",
        "--model",
        "llama-3.1-8b",
        "--hardware",
        path,
        "--users",
        users,
        "--context",
        "4096",
        *flags,
    ]
    check_case(fuzz_worker, "hardware YAML", args)


# ------------------------------------------------------------------------------------ memory files


@fuzz_settings(150)
@given(
    content=file_bytes(MEMORIES, "yaml"), how=st.sampled_from(["kv-memory", "tier", "relative tier", "both"])
)
def test_fuzz_memory_file(fuzz_worker, workdir: Path, content: bytes, how: str):
    memory = workdir / "mem" / "memory.yaml"
    memory.parent.mkdir(exist_ok=True)
    memory.write_bytes(content)
    hardware = "sram-pipeline"
    if how != "kv-memory":  # a hardware file whose first tier is the mutated technology
        data = copy.deepcopy(HARDWARE["sram-pipeline"])
        data["memory"][0] = {"tech": "../mem/memory.yaml" if how == "relative tier" else str(memory)}
        hardware = workdir / "hw" / "memory-hw.yaml"
        hardware.parent.mkdir(exist_ok=True)
        hardware.write_text(yaml.safe_dump(data))
    args = ["sol", "--model", "llama-3.1-8b", "--hardware", hardware, "--users", "1,8", "--context", "4096"]
    if how in ("kv-memory", "both"):
        args += ["--kv-memory", memory]
    check_case(fuzz_worker, "memory YAML", args)


# ------------------------------------------------------------------------------------ instance files


@fuzz_settings(120)
@given(content=file_bytes(INSTANCES, "yaml"), command=st.sampled_from(["evaluate"] * 4 + ["solve"]))
def test_fuzz_instance_file(fuzz_worker, workdir: Path, good_plan, content: bytes, command: str):
    """Through `evaluate` (the instance is loaded and compared with the plan's) and `solve` (1 in 5)."""
    path = workdir / "instance.yaml"
    path.write_bytes(content)
    if command == "evaluate":
        args = ["evaluate", path, workdir / "good-plan.yaml", "--json"]
        check_case(fuzz_worker, "instance YAML", args, allowed=(0, 1, 2))
    else:
        args = ["solve", path, "--json", "--time-limit", "10"]
        check_case(fuzz_worker, "instance YAML", args, allowed=(0, 1, 2), timeout=SOLVE_TIMEOUT_S)


# ------------------------------------------------------------------------------------ plans


def _plan_edit(draw: st.DrawFn, plan: dict) -> None:
    """One structural edit of a plan (in place): the ways a hand-edited plan goes wrong."""
    groups = plan.get("groups")
    if not (isinstance(groups, list) and groups and all(isinstance(g, list) for g in groups)):
        return
    g = draw(st.integers(0, len(groups) - 1))
    nodes = [n for grp in groups for n in grp]
    op = draw(
        st.sampled_from(
            [
                "empty",
                "split",
                "merge",
                "move",
                "swap",
                "duplicate",
                "drop node",
                "unknown node",
                "reverse",
                "stages",
                "fraction",
                "tier",
                "drop entry",
                "extra entry",
                "instance",
                "bloat",
                "figures",
            ]
        )
    )
    if op == "empty":
        groups.insert(draw(st.integers(0, len(groups))), [])
    elif op == "split" and len(groups[g]) > 1:
        at = draw(st.integers(1, len(groups[g]) - 1))
        groups[g : g + 1] = [groups[g][:at], groups[g][at:]]
    elif op == "merge" and g + 1 < len(groups):
        groups[g : g + 2] = [groups[g] + groups[g + 1]]
    elif op == "move" and nodes and groups[g]:
        groups[draw(st.integers(0, len(groups) - 1))].append(groups[g].pop(0))
    elif op == "swap" and len(nodes) > 1 and groups[g]:
        other = draw(st.integers(0, len(groups) - 1))
        if groups[other]:
            groups[g][0], groups[other][-1] = groups[other][-1], groups[g][0]
    elif op == "duplicate" and nodes:
        groups[g].append(draw(st.sampled_from(nodes)))
    elif op == "drop node" and groups[g]:
        groups[g].pop(draw(st.integers(0, len(groups[g]) - 1)))
    elif op == "unknown node":
        groups[g].append(
            draw(st.sampled_from(["L99.attn", "", "embed ", "L0.ATTN", "../x", "\x00", "n" * 300]))
        )
    elif op == "reverse":
        groups.reverse()
    elif op == "stages":
        plan["stages"] = draw(st.sampled_from([0, -1, 1, 2, 4, 100_000, 100_001, BIG_INT, 2.5, "3", None]))
    elif op in ("fraction", "tier", "drop entry", "extra entry"):
        kind = draw(st.sampled_from(["weight_split", "kv_split"]))
        split = plan.get(kind)
        if not isinstance(split, dict) or not split:
            return
        node = draw(st.sampled_from(sorted(split)))
        if op == "fraction" and isinstance(split[node], dict):
            tier = draw(st.sampled_from([*sorted(split[node]), "sram", "hbm3e"]))
            split[node][tier] = _fresh(draw(values))
        elif op == "tier":
            split[node] = {draw(st.sampled_from(["hbm9", "hbm3", "sram", "", "HBM3E", "n" * 300])): 1.0}
        elif op == "drop entry":
            del split[node]
        else:
            for i in range(draw(st.sampled_from([1, 10, 20_000]))):
                split[f"extra{i}"] = {"sram": 1.0}
    elif op == "instance" and isinstance(plan.get("instance"), dict):
        instance = plan["instance"]
        field = draw(
            st.sampled_from(
                [
                    "users",
                    "context",
                    "min_tokens_per_s",
                    "model",
                    "hardware",
                    "kv_memory",
                    "max_groups",
                    "tiers",
                    "name",
                    "solver",
                ]
            )
        )
        if field in ("users", "context", "min_tokens_per_s") and isinstance(instance.get("workload"), dict):
            instance["workload"][field] = _fresh(
                draw(st.sampled_from([1, 16, 100_000, 0, BIG_INT, float("nan"), "NaN"]))
            )
        else:
            instance[field] = _fresh(draw(values))
    elif op == "bloat":  # big but under the size limit: linear checks must stay fast
        groups[g].extend([draw(st.sampled_from(nodes or ["embed"]))] * draw(st.sampled_from([1_000, 60_000])))
    elif op == "figures":
        plan["figures"] = _fresh(draw(values))


@st.composite
def plan_files(draw: st.DrawFn, good: dict) -> tuple[bytes, str]:
    plan = copy.deepcopy(good)
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        _plan_edit(draw, plan)
    if draw(st.integers(0, 3)) == 0:  # sometimes the generic mutations too
        mutate(draw, plan, rounds=1)
    fmt = draw(st.sampled_from(["yaml", "json"]))
    return damaged(draw, plan, fmt), fmt


@fuzz_settings(200)
@given(data=st.data())
def test_fuzz_plan_file(fuzz_worker, workdir: Path, good_plan, data):
    """`evaluate TINY PLAN` exits 0 (feasible), 1 (a violation) or 2 (bad input); `plot PLAN` 0 or 2."""
    content, fmt = data.draw(plan_files(good_plan))
    path = workdir / f"plan.{fmt}"
    path.write_bytes(content)
    if data.draw(st.integers(0, 19)) == 0:
        check_case(
            fuzz_worker, "plan YAML/JSON", ["plot", path, "--out", workdir / "plan.png"], allowed=(0, 2)
        )
    else:
        json_flag = data.draw(st.sampled_from([["--json"], []]))
        check_case(fuzz_worker, "plan YAML/JSON", ["evaluate", TINY, path, *json_flag], allowed=(0, 1, 2))


# ------------------------------------------------------------------------------------ measurement CSVs

CSV_NASTY = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e300",
    "1e-300",
    "1e999",
    "-1",
    "0",
    "1.5",
    "abc",
    "",
    " 5 ",
    "1" + "0" * 400,
    "9" * 5000,
    "0x10",
    "\x00",
    '"5,6"',
    '"',
    "100000001",
    "1e8",
    "3",
    "64",
    "16384",
    "0.001",
]


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    header = CSV_HEADER.split(",")
    rows = [r.split(",") for r in CSV_ROWS]
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        op = draw(
            st.sampled_from(
                ["cell", "cell", "cell", "drop column", "add column", "rename", "rows", "ragged", "long"]
            )
        )
        if op == "cell" and rows:
            row = draw(st.integers(0, len(rows) - 1))
            col = draw(st.integers(0, len(header) - 1))
            if col < len(rows[row]):
                rows[row][col] = draw(st.one_of(st.sampled_from(CSV_NASTY), st.text(max_size=8)))
        elif op == "drop column":
            col = draw(st.integers(0, len(header) - 1))
            header.pop(col)
            rows = [r[:col] + r[col + 1 :] for r in rows]
        elif op == "add column":
            header.append(draw(st.sampled_from(["users", "extra", "", "hidden_size"])))
            rows = [[*r, "1"] for r in rows]
        elif op == "rename":
            header[draw(st.integers(0, len(header) - 1))] = draw(
                st.sampled_from(["user", "USERS", " users ", ""])
            )
        elif op == "rows":
            rows = draw(st.sampled_from([[], rows[:1], rows * 10, rows * 100]))
        elif op == "ragged" and rows:
            rows[0] = rows[0][:-1] if draw(st.booleans()) else [*rows[0], "7"]
        elif op == "long" and rows:
            rows[0][0] = "1" * 200_000  # past csv's field size limit
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    content = text.encode("utf-8", "surrogatepass")
    damage = draw(
        st.sampled_from(["none"] * 12 + ["truncate", "non-utf8", "bom", "crlf", "nul", "garbage", "big"])
    )
    if damage == "truncate":
        content = content[: draw(st.integers(0, len(content)))]
    elif damage == "non-utf8":
        content = content.replace(b",", b",\xff", 1)
    elif damage == "bom":
        content = b"\xef\xbb\xbf" + content
    elif damage == "crlf":
        content = content.replace(b"\n", b"\r\n")
    elif damage == "nul":
        content = content.replace(b",", b",\x00", 1)
    elif damage == "garbage":
        content = draw(st.binary(max_size=200))
    elif damage == "big":
        content = content + b" " * (MAX_INPUT_BYTES + 1 - len(content))
    return content


@fuzz_settings(150)
@given(content=csv_files(), command=st.sampled_from(["check"] * 4 + ["check --json"] * 4 + ["calibrate"]))
def test_fuzz_measurement_csv(fuzz_worker, workdir: Path, content: bytes, command: str):
    """check-measurements and calibrate (1 in 9; its microbenchmark JSON fuzzed too) exit 0 or 2."""
    path = workdir / "measurements.csv"
    path.write_bytes(content)
    if command.startswith("check") or content.count(b"\n") > 4:  # calibrate: at most 3 rows (seconds each)
        args = ["check-measurements", path, "--hardware", "h100-sxm", *command.split()[1:]]
        check_case(fuzz_worker, "measurement CSV", args)
        return
    bench = workdir / "bench.json"
    bench.write_text(json.dumps(MICROBENCH))
    args = ["calibrate", "--microbench", bench, "--measurements", path, "--out", workdir / "cal.yaml"]
    check_case(fuzz_worker, "measurement CSV", [*args, "--json"], timeout=SOLVE_TIMEOUT_S)


@fuzz_settings(12)
@given(content=file_bytes({"microbench": MICROBENCH}, "json"))
def test_fuzz_microbench_json(fuzz_worker, workdir: Path, content: bytes):
    bench = workdir / "bench-fuzz.json"
    bench.write_bytes(content)
    csv = workdir / "bench-rows.csv"
    csv.write_text("\n".join([CSV_HEADER, CSV_ROWS[0], CSV_ROWS[1]]) + "\n")
    args = [
        "calibrate",
        "--microbench",
        bench,
        "--measurements",
        csv,
        "--out",
        workdir / "cal2.yaml",
        "--json",
    ]
    check_case(fuzz_worker, "measurement CSV", args, timeout=SOLVE_TIMEOUT_S)


# ------------------------------------------------------------------------------------ sweeps and the cache


@fuzz_settings(60)
@given(content=file_bytes({"sweep": SWEEP}, "yaml"))
def test_fuzz_sweep_file(fuzz_worker, workdir: Path, sweep_cache: Path, content: bytes):
    path = workdir / "sweep-fuzz.yaml"
    path.write_bytes(content)
    args = ["sweep", path, "--cache", sweep_cache, "--workers", "1", "--out", workdir / "sweep-fuzz.csv"]
    check_case(fuzz_worker, "sweep YAML", args, timeout=SOLVE_TIMEOUT_S)


WRONG_SHAPES = [[], None, {}, 1, "x", True, [1, 2], {"version": 2}, {"row": None}, {"row": []}]


@st.composite
def cache_entries(draw: st.DrawFn, entry: dict) -> bytes:
    """A cache entry of the wrong shape: another JSON value, the entry with parts dropped or replaced,
    its row or placement mutated, or damaged bytes."""
    how = draw(st.sampled_from(["shape", "mutate", "mutate row", "mutate plan", "bytes"]))
    data = copy.deepcopy(entry)
    if how == "shape":
        data = _fresh(draw(st.sampled_from(WRONG_SHAPES)))
    elif how == "mutate":
        mutate(draw, data)
    elif how == "mutate row":
        mutate(draw, data["row"])
    elif how == "mutate plan" and isinstance(data.get("plan"), dict):
        mutate(draw, data["plan"])
    if how == "bytes":
        return damaged(draw, data, "json")
    return _serialize(data, "json")


@fuzz_settings(25)
@given(data=st.data())
def test_fuzz_cache_entries(fuzz_worker, workdir: Path, sweep_cache: Path, data):
    """A sweep resumed from a cache with one entry replaced: exit 0 (the entry used, or solved again)."""
    cache = workdir / "cache-fuzz"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(sweep_cache, cache)
    entries = sorted(cache.glob("*.json"))
    target = data.draw(st.sampled_from(entries))
    target.write_bytes(data.draw(cache_entries(json.loads(target.read_text()))))
    args = ["sweep", workdir / "sweep.yaml", "--cache", cache, "--workers", "1", "--out", workdir / "c.csv"]
    check_case(fuzz_worker, "cache entry", args, allowed=(0,), timeout=SOLVE_TIMEOUT_S)


# ------------------------------------------------------------------------------------ command-line flags

INTS = ["1", "2", "3", "16", "0", "-1", "1" + "0" * 400, "9" * 5000, "1e3", "nan", "abc", "", "1.5", "4096"]
GOOD_GAPS = {"1e-4", "0", "1e-320"}  # SolverSpec.gap is in [0, 1]: 0 and a denormal ask for exact optimality
FLOATS = ["20", "10", "1e-4", "0", "-1", "nan", "NaN", "inf", "-inf", "1e400", "1e300", "1e-320", "x", ""]
GOOD_INTS, GOOD_FLOATS = {"1", "2", "3", "16", "4096"}, {"20", "10", "1e-4"}


def _outputs(workdir: Path, suffix: str, folder: bool) -> list[tuple[str, bool]]:
    """(path, good) choices for an output flag: good ones inside workdir, and each kind of bad path."""
    a_file = workdir / "flags-a-file"
    a_file.write_text("x")
    a_dir = workdir / f"flags-a-dir{suffix}"
    a_dir.mkdir(exist_ok=True)
    good = str(workdir / ("flags-out-dir" if folder else f"flags-out{suffix}"))
    return [
        (good, True),
        (good, True),
        ("/proc/fuzz" if folder else f"/proc/fuzz/x{suffix}", False),
        ("/sys/fuzz" if folder else f"/sys/fuzz{suffix}", False),
        (str(workdir / ("n" * 300 + ("" if folder else suffix))), False),
        (str(a_file if folder else a_dir), False),
        (str(a_file / ("sub" if folder else f"x{suffix}")), False),
        ("", False),
        *([] if folder or not suffix else [(str(workdir / "flags-out.txt"), False)]),
    ]


@st.composite
def command_lines(
    draw: st.DrawFn, workdir: Path, plan: Path, csv: Path, bench: Path, sweep: Path
) -> tuple[list[str], bool]:
    """A command line with each flag drawn from good and bad values: (args, all good). An expensive
    command (capacity, compare, calibrate, a study) always gets at least one bad value."""
    command = draw(
        st.sampled_from(
            [
                "sol",
                "solve",
                "solve",
                "model",
                "evaluate",
                "plot",
                "check",
                "sweep",
                "capacity",
                "compare",
                "calibrate",
                "deep",
                "kv-demand",
            ]
        )
    )
    flags: list[tuple[str, list[tuple[str, bool]]]] = []

    def pool(items: list[str], good: set[str]) -> list[tuple[str, bool]]:
        return [(v, v in good) for v in items]

    name = lambda good: [(good, True), *((n, n == good) for n in NAMES), ("", False)]  # noqa: E731
    if command == "sol":
        flags = [
            ("--model", name("llama-3.1-8b")),
            ("--hardware", name("h100-sxm")),
            ("--users", pool(["1", "1,64", "0", "1,x", ",", "1e9", "2000000000", "9" * 400], {"1", "1,64"})),
            ("--context", pool(INTS, GOOD_INTS)),
            ("?--chips", pool(INTS, GOOD_INTS)),
            ("?--kv-memory", name("hbm3e")),
            ("?--csv", _outputs(workdir, ".csv", False)),
            ("?--plot", _outputs(workdir, ".png", False)),
            ("?--json", [("", True)]),
        ]
    elif command == "solve":
        flags = [
            ("--model", name("llama-3.1-8b")),
            ("--hardware", name("sram-pipeline")),
            ("--kv-memory", name("hbm3e")),
            ("--chips-per-group", pool(INTS, {"1", "2"})),
            ("--max-groups", pool(INTS, {"1", "2", "3"})),
            ("--users", pool(INTS, {"1", "2", "16"})),
            ("--context", pool(INTS, GOOD_INTS)),
            ("--min-tokens-per-s", pool(FLOATS, GOOD_FLOATS)),
            ("?--stages", pool(INTS, {"1", "2"})),
            ("?--micro-batches", pool(INTS, {"1", "2"})),
            ("?--time-limit", pool(FLOATS, {"20", "10"})),
            ("?--gap", pool(FLOATS, GOOD_GAPS)),
            ("?--method", pool(["milp", "pyomo", "exhaustive", "x", ""], {"milp"})),
            ("?--out", _outputs(workdir, ".yaml", False)),
            ("?--csv", _outputs(workdir, "", True)),
            ("?--json", [("", True)]),
        ]
    elif command == "model":
        sub = draw(st.sampled_from(["info", "graph"]))
        flags = [
            (f"={sub}", [("", True)]),
            ("=", name("llama-3.1-8b")),
            ("?--weight-dtype", pool(["bf16", "fp8", "fp7", ""], {"bf16", "fp8"})),
            ("?--kv-dtype", pool(["bf16", "fp4", "x"], {"bf16", "fp4"})),
        ]
        flags += (
            [("--out", _outputs(workdir, ".json", False))] if sub == "graph" else [("?--json", [("", True)])]
        )
    elif command == "evaluate":
        flags = [
            (
                "=",
                [
                    (str(ROOT / TINY), True),
                    ("instances/nope.yaml", False),
                    ("", False),
                    ("/proc/self/status", False),
                ],
            ),
            ("=", [(str(plan), True), (str(workdir), False), ("x.yaml", False)]),
            ("?--json", [("", True)]),
        ]
    elif command == "plot":
        flags = [
            ("=", [(str(plan), True), (str(ROOT / TINY), False), ("/dev/zero", False)]),
            ("--out", _outputs(workdir, ".png", False)),
        ]
    elif command == "check":
        flags = [
            (
                "=",
                [
                    (str(csv), True),
                    (f"{csv},{csv}", True),
                    (",", False),
                    ("/dev/zero", False),
                    (str(workdir), False),
                ],
            ),
            ("--hardware", name("h100-sxm")),
            ("?--json", [("", True)]),
        ]
    elif command == "sweep":
        flags = [
            ("=", [(str(sweep), True), (str(csv), False), ("", False)]),
            ("--cache", [(str(workdir / "sweep-cache"), True), *_outputs(workdir, "", True)[2:]]),
            ("--workers", pool(["1", "0", "-1", "257", "100000", "x"], {"1"})),
            ("?--out", _outputs(workdir, ".csv", False)),
        ]
    elif command == "capacity":
        flags = [
            ("--model", name("llama-3.1-8b")),
            ("--hardware", name("sram-pipeline")),
            ("--context", pool(INTS, GOOD_INTS)),
            ("--min-tokens-per-s", pool(FLOATS, GOOD_FLOATS)),
            ("--max-groups", pool(INTS, {"1", "2"})),
            ("?--time-limit", pool(FLOATS, {"20"})),
            ("?--gap", pool(FLOATS, GOOD_GAPS)),
            ("--cache", _outputs(workdir, "", True)),
            ("?--json", [("", True)]),
        ]
    elif command == "compare":
        flags = [
            ("--model", name("llama-3.1-8b")),
            ("--hardware", name("sram-pipeline")),
            ("--users", pool(["1", "1,64", "0", "x"], {"1", "1,64"})),
            ("--context", pool(INTS, GOOD_INTS)),
            ("--min-tokens-per-s", pool(FLOATS, GOOD_FLOATS)),
            ("--memory", name("hbm3e")),
            ("?--gap", pool(FLOATS, GOOD_GAPS)),
            ("--workers", pool(["1", "0", "300", "x"], {"1"})),
            ("--cache", _outputs(workdir, "", True)),
            ("?--out", _outputs(workdir, "", True)),
            ("?--json", [("", True)]),
        ]
    elif command == "calibrate":
        flags = [
            ("--microbench", [(str(bench), True), (str(csv), False), ("", False)]),
            ("--measurements", [(str(csv), True), ("", False), (",", False)]),
            ("--out", _outputs(workdir, ".yaml", False)),
            ("?--report", _outputs(workdir, ".md", False)),
            (
                "?--holdout",
                pool(["users=1", "1", "0", "users=x", "rows=1", "9" * 5000, "1,2,3,4"], {"users=1"}),
            ),
            ("?--hardware", name("h100-sxm")),
        ]
    elif command == "deep":
        flags = [
            ("=deep-pipeline", [("", True)]),
            (
                "--sweep",
                [(str(sweep), True), (str(ROOT / "sweeps" / "deep_pipeline.yaml"), True), ("x.yaml", False)],
            ),
            ("--out", _outputs(workdir, "", True)),
            ("--cache", _outputs(workdir, "", True)),
            ("?--workers", pool(["1", "0", "x"], {"1"})),
        ]
    else:
        flags = [
            ("=kv-demand", [("", True)]),
            (
                "?--from",
                [
                    (str(ROOT / "results" / "memory_comparison.csv"), True),
                    (str(csv), False),
                    ("results/nope.csv", False),
                    (",", False),
                ],
            ),
            ("--out", _outputs(workdir, "", True)),
        ]
    prefix = {"check": ["check-measurements"], "deep": ["study"], "kv-demand": ["study"]}.get(
        command, [command]
    )
    present = []
    for flag, choices in flags:
        if flag.startswith("?"):
            if not draw(st.booleans()):
                continue
            flag = flag[1:]
        present.append((flag, choices))
    # how many flags get a bad value: none for a third of the cases (but at least one for the commands
    # that run for minutes: capacity, compare, calibrate, a study)
    expensive = command in ("capacity", "compare", "calibrate", "deep")
    wrong = draw(st.sampled_from([1, 1, 2, 3] if expensive else [0, 0, 1, 1, 2, 3]))
    can_be_wrong = [i for i, (_, cs) in enumerate(present) if any(not good for _, good in cs)]
    bad = set(draw(st.permutations(can_be_wrong))[:wrong])
    chosen = []
    for i, (flag, choices) in enumerate(present):
        pick = [c for c in choices if c[1] != (i in bad)] or choices
        chosen.append((flag, draw(st.sampled_from(pick))))
    args = list(prefix)
    for flag, (value, _) in chosen:
        if flag.startswith("="):  # a positional argument (or the subcommand)
            args += [flag[1:] or value] if flag != "=" else [value]
        elif flag == "--json":
            args.append(flag)
        else:
            args += [flag, value]
    return args, not bad


@fuzz_settings(150)
@given(data=st.data())
def test_fuzz_cli_flags(fuzz_worker, workdir: Path, good_plan, sweep_cache, data):
    """Every command with flags drawn from good and bad numbers (NaN, inf, 1e400, 400-digit integers),
    names (.., slashes, paths) and output paths (/proc, /sys, 300-character names, a folder for a file,
    a file for a folder). Exit 0, 1 (an infeasible instance) or 2; never 3, never a traceback."""
    csv = workdir / "flags.csv"
    csv.write_text("\n".join([CSV_HEADER, *CSV_ROWS]) + "\n")
    bench = workdir / "flags-bench.json"
    bench.write_text(json.dumps(MICROBENCH))
    args, _ = data.draw(
        command_lines(workdir, workdir / "good-plan.yaml", csv, bench, workdir / "sweep.yaml")
    )
    out = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--out" and args[i + 1].endswith(".json")]
    run = workdir / "flags-cwd"  # an empty --cache or --csv means the working folder: keep it a scratch one
    run.mkdir(exist_ok=True)
    check_case(fuzz_worker, "CLI flags", args, (0, 1, 2), cwd=run, timeout=SOLVE_TIMEOUT_S, json_files=out)
