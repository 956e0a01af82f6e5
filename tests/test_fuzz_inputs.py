"""Fuzzing the input files through the CLI: every mutated model config, memory or hardware file must give
exit 0 (the mutation stayed valid) or exit 2 with one short paragraph naming the problems; never a
traceback, never another exit code (3 is the CLI's "internal error", 1 an infeasible instance).

Mutations start from the shipped files (graphs/*.json, instances/memory/*.yaml, instances/hardware/*.yaml):
dropped, renamed and unknown fields; values of the wrong type or unit; huge, tiny, negative, NaN and
infinite numbers; then, at the byte level, truncation, inserted bytes (often not UTF-8) and garbage.

The default run is reproducible (derandomize=True) and takes well under a minute, over 1,000 cases in all.
For a longer, randomized run: PLANNER_FUZZ_SCALE=20 pytest tests/test_fuzz_inputs.py (20x the cases).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from planner.hardware.catalog import HARDWARE_DIR, MEMORY_DIR
from planner.model.config import GRAPHS_DIR

SCALE = max(1, int(os.environ.get("PLANNER_FUZZ_SCALE", "1")))
MAX_LINES = 40


def fuzz_settings(examples: int) -> settings:
    """`examples` cases in CI (reproducible); SCALE times as many, with fresh randomness, when asked."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


MODELS = {p.stem: json.loads(p.read_text()) for p in sorted(GRAPHS_DIR.glob("*.json"))}
MEMORIES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(MEMORY_DIR.glob("*.yaml"))}
HARDWARE = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(HARDWARE_DIR.glob("*.yaml"))}

# ------------------------------------------------------------------------------------ strategies

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
    1e30,
    -1e30,
    1e-300,
    0.5,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    " ",
    "0",
    "-1",
    "nan",
    "inf",
    "1e400",
    "1e30 B",
    "-5 GB",
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
    "hbm3",
    "sram",
    "on-chip",
    "../hardware/h100-sxm",
    [],
    {},
    [1, 2],
    [-1, 10**9],
    ["sliding_attention"],
    {"bf16": "1 TFLOP/s"},
    {"tech": "hbm3"},
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
    st.sampled_from(["name", "tech", "extra", "bandwith", "hidden", "n_experts", "kind", "0", "[/]", "\n"]),
    st.text(max_size=12),
)
# plausible factors (the file stays valid, the numbers get odd) and absurd ones
scales = st.sampled_from([0, -1, 1e-30, 1e-6, 1e-3, 0.1, 0.5, 2, 10, 1000, 1e6, 1e30, float("nan")])


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
    b"[" * 3000 + b"]" * 3000,  # nesting past the recursion limit
    b"1e999",
    b"-0",
    b"NaN",
    b"-Infinity",
    b"2020-13-45",  # a YAML timestamp that is no date
    b"2001-12-14t21:59:43.10-99:00",
    b"!!binary '%%%'",
    b"!!python/object/apply:os.system ['true']",
    b"*undefined_alias",
    b"&a [*a, *a]",
    b"0x1F",
    b"0o17",
    b"1_000",
    b"1:30",
    b".inf",
    b"~",
    b"{a: [1, 2}",
    b'"\\ud800"',
    b"!!set {1, 2}",
    b"? [1, 2]\n: 3",
]


@st.composite
def mutated(draw: st.DrawFn, bases: dict[str, dict]) -> tuple[str, Any]:
    """A shipped file's parsed content with 1-3 structural mutations: (base name, data)."""
    name = draw(st.sampled_from(sorted(bases)))
    data = copy.deepcopy(bases[name])
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        paths = _paths(data)
        op = draw(
            st.sampled_from(
                ["drop", "drop", "replace", "replace", "scale", "scale", "add", "rename", "wrap", "raw"]
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
    return name, data


def _serialize(data: Any, fmt: str) -> bytes:
    if fmt == "json":
        text = json.dumps(data, allow_nan=True)
    else:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes that are not UTF-8


@st.composite
def file_bytes(draw: st.DrawFn, bases: dict[str, dict], fmt: str) -> bytes:
    """A mutated file as bytes: usually structurally mutated, sometimes damaged at the byte level."""
    _, data = draw(mutated(bases))
    content = _serialize(data, fmt)
    quoted = f'"{RAW}"'.encode() if fmt == "json" else RAW.encode()
    while quoted in content:
        content = content.replace(quoted, draw(st.sampled_from(RAW_SNIPPETS)), 1)
    damage = draw(st.sampled_from(["none"] * 15 + ["truncate", "insert", "non-utf8", "garbage", "text"]))
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
    return content


# ------------------------------------------------------------------------------------ the check


def check_clean(result, args: list[str]) -> None:
    """Exit 0, or exit 2 with a short message; anything else fails with the command and its output."""
    text = result.output
    where = (
        f"planner {' '.join(args)}\nexit {result.exit_code}, exception {result.exception!r}\n{text[-3000:]}"
    )
    event(f"exit {result.exit_code}")
    assert result.exit_code in (0, 2), where
    assert "Traceback" not in text, where
    if result.exit_code == 2:
        assert len(text.splitlines()) <= MAX_LINES, where
        assert "error" in text.lower() or "usage" in text.lower(), where


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ------------------------------------------------------------------------------------ model configs

MODEL_COMMANDS = [
    ["model", "info", "{path}", "--json"],
    ["model", "info", "{path}"],
    ["model", "info", "{path}", "--kv-dtype", "fp8"],
    ["model", "graph", "{path}", "--out", "{out}.graphml"],
    ["model", "graph", "{path}", "--out", "{out}.json"],
]


@fuzz_settings(600)
@given(content=file_bytes(MODELS, "json"), command=st.sampled_from(MODEL_COMMANDS))
def test_fuzz_model_config(cli, workdir: Path, content: bytes, command: list[str]):
    path = workdir / "config.json"
    path.write_bytes(content)
    args = [a.format(path=path, out=workdir / "graph") for a in command]
    result = cli(args)
    check_clean(result, args)
    if result.exit_code == 0 and args[-1] == "--json":
        info = json.loads(result.stdout)
        assert info["num_nodes"] == 2 * info["num_layers"] + 2


@fuzz_settings(150)
@given(content=file_bytes(MODELS, "json"), users=st.sampled_from(["1", "1,64", "4096"]))
def test_fuzz_model_config_through_sol(cli, workdir: Path, content: bytes, users: str):
    path = workdir / "sol-config.json"
    path.write_bytes(content)
    args = [
        "sol",
        "--model",
        str(path),
        "--hardware",
        "h100-sxm",
        "--users",
        users,
        "--context",
        "4096",
        "--json",
    ]
    check_clean(cli(args), args)


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


@fuzz_settings(400)
@given(content=file_bytes(HARDWARE, "yaml"), flags=SOL_FLAGS, users=st.sampled_from(["1", "1,64"]))
def test_fuzz_hardware_file(cli, workdir: Path, content: bytes, flags: list[str], users: str):
    path = workdir / "hardware.yaml"
    path.write_bytes(content)
    args = [
        "sol",
        "--model",
        "llama-3.1-8b",
        "--hardware",
        str(path),
        "--users",
        users,
        "--context",
        "4096",
        *flags,
    ]
    result = cli(args)
    check_clean(result, args)
    if result.exit_code == 0 and "--json" in flags:
        assert len(json.loads(result.stdout)) == len(users.split(","))


# ------------------------------------------------------------------------------------ memory files


@fuzz_settings(250)
@given(content=file_bytes(MEMORIES, "yaml"), how=st.sampled_from(["kv-memory", "tier", "both"]))
def test_fuzz_memory_file(cli, workdir: Path, content: bytes, how: str):
    memory = workdir / "memory.yaml"
    memory.write_bytes(content)
    hardware = "sram-pipeline"
    if how in ("tier", "both"):  # a hardware file whose first tier is the mutated technology
        data = copy.deepcopy(HARDWARE["sram-pipeline"])
        data["memory"][0] = {"tech": str(memory)}
        hardware = str(workdir / "memory-hw.yaml")
        Path(hardware).write_text(yaml.safe_dump(data))
    args = ["sol", "--model", "llama-3.1-8b", "--hardware", hardware, "--users", "1,8", "--context", "4096"]
    if how in ("kv-memory", "both"):
        args += ["--kv-memory", str(memory)]
    check_clean(cli(args), args)
