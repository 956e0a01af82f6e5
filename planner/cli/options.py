"""The command-line options every command shares, defined once (name, metavar, parser, help text).

A command declares `context: Context` or `json_out: JsonFlag = False` and gets the same spelling, help and
parsing as every other command. Metavars name what to type (MODEL, TOKENS, DIR); flags show none (typer
would print `<bool>`). To add an option used by several commands, add it here.

Token counts (`--context`) accept 8192, 8,192, 8K or 8k: K = 1,024 tokens and M = 1,048,576 tokens, as
context lengths are quoted (a "128K" model holds 131,072 tokens).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from planner.core.errors import bounded_repr
from planner.core.units import DTYPE_BYTES

MAX_TOKENS = 100_000_000  # WorkloadSpec's limit on context
TOKEN_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}


def parse_tokens(text: str | int) -> int:
    """'8K' / '8k' -> 8,192; '1M' -> 1,048,576; '8192' or '8,192' -> 8,192 (K = 1,024 tokens)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9][0-9,_]*(?:\.[0-9]+)?)\s*([kKmM]?)\s*", str(text))
    if not match:
        raise typer.BadParameter(
            f"{bounded_repr(text)}: expected a number of tokens such as 8192, 8K or 128k (K = 1,024)"
        )
    number = float(match.group(1).replace(",", "").replace("_", ""))
    tokens = number * TOKEN_UNITS[match.group(2).lower()]
    if not 1 <= tokens <= MAX_TOKENS or tokens != int(tokens):
        raise typer.BadParameter(
            f"{bounded_repr(text)}: expected a whole number of tokens from 1 to {MAX_TOKENS:,} (K = 1,024 tokens)"
        )
    return int(tokens)


def option(*names: str, metavar: str, help: str, **kwargs: Any) -> Any:
    """A typer option with a metavar and help text (both required: every option says what it takes)."""
    return typer.Option(*names, metavar=metavar, help=help, **kwargs)


def flag(*names: str, help: str, **kwargs: Any) -> Any:
    """An on/off flag: no metavar in the help (typer would show `<bool>`)."""
    return typer.Option(*names, metavar="", help=help, **kwargs)


DTYPES = ", ".join(DTYPE_BYTES)
_CONTEXT_HELP = "KV tokens held per user: 8192, 8,192, 8K or 8k (K = 1,024 tokens, M = 1,048,576)"

# ---------------------------------------------------------------------------------------------- what to plan

Model = Annotated[
    str,
    option(
        "--model",
        metavar="MODEL",
        help="graphs/ name (see `planner list models`) or path to an HF config.json",
    ),
]
Models = Annotated[
    str,
    option(
        "--model", metavar="MODEL[,MODEL]", help="graphs/ names or HF config.json paths, separated by commas"
    ),
]
Hardware = Annotated[
    str,
    option(
        "--hardware",
        metavar="HARDWARE",
        help="instances/hardware/ name (see `planner list hardware`) or path",
    ),
]
KvMemory = Annotated[
    str | None,
    option(
        "--kv-memory",
        metavar="TECH",
        help="memory technology of the hardware's KV tier (see `planner list memory`); default: the hardware's own",
    ),
]
KvMemories = Annotated[
    str,
    option(
        "--kv-memory",
        metavar="TECH[,TECH]",
        help="KV memory technologies to compare, separated by commas (see `planner list memory`)",
    ),
]
MemoryAlias = Annotated[
    str | None, option("--memory", metavar="TECH[,TECH]", help="old name of --kv-memory", hidden=True)
]
UserCounts = Annotated[str, option("--users", metavar="N[,N]", help="user counts, e.g. 1,8,64,512")]
Users = Annotated[int, option("--users", metavar="N", min=1, help="users served at once")]
Context = Annotated[int, option("--context", metavar="TOKENS", parser=parse_tokens, help=_CONTEXT_HELP)]
MinTokensPerS = Annotated[
    float, option("--min-tokens-per-s", metavar="TOKENS/S", help="per-user decode speed floor, tokens/s")
]
WeightDtype = Annotated[str, option("--weight-dtype", metavar="DTYPE", help=f"weights: {DTYPES}")]
KvDtype = Annotated[str, option("--kv-dtype", metavar="DTYPE", help=f"KV cache: {DTYPES}")]

# optional forms for commands whose instance file supplies the value when the flag is absent
OptionalModel = Annotated[
    str | None, option("--model", metavar="MODEL", help="graphs/ name or HF config.json path")
]
OptionalHardware = Annotated[
    str | None, option("--hardware", metavar="HARDWARE", help="instances/hardware/ name or path")
]
OptionalUsers = Annotated[int | None, option("--users", metavar="N", min=1, help="users served at once")]
OptionalContext = Annotated[
    int | None, option("--context", metavar="TOKENS", parser=parse_tokens, help=_CONTEXT_HELP)
]
OptionalMinTokensPerS = Annotated[
    float | None,
    option("--min-tokens-per-s", metavar="TOKENS/S", help="per-user decode speed floor, tokens/s"),
]
OptionalWeightDtype = Annotated[
    str | None,
    option("--weight-dtype", metavar="DTYPE", help=f"weights: {DTYPES} (default: the instance's, bf16)"),
]
OptionalKvDtype = Annotated[
    str | None,
    option("--kv-dtype", metavar="DTYPE", help=f"KV cache: {DTYPES} (default: the instance's, bf16)"),
]

# ---------------------------------------------------------------------------------------------- placement space

ChipsPerGroup = Annotated[
    str | None,
    option(
        "--chips-per-group",
        metavar="N[,N]",
        help="chips per group, or group sizes to choose from (1,2,4,8,16; default: the hardware's)",
    ),
]
Split = Annotated[
    str | None,
    option(
        "--split",
        metavar="SPLIT",
        help="sub-layer parts: auto (default), none, the most weight bytes per part ('16 MB'), or parts per "
        "kind (ffn=4,core=8,qkv=2,o=2,embed=4,lm_head=4,moe=8)",
    ),
]
CoreParts = Annotated[
    int | None,
    option(
        "--core-parts",
        metavar="N",
        min=1,
        help="parts of each attention core under an automatic split (default: from the users and the "
        "group's memory; `planner capacity` prints the N its probes used)",
    ),
]
WeightTiers = Annotated[
    str | None,
    option(
        "--weight-tiers", metavar="TIER[,TIER]", help="tiers the weights may use, e.g. sram (default: all)"
    ),
]
KvTiers = Annotated[
    str | None,
    option("--kv-tiers", metavar="TIER[,TIER]", help="tiers the KV cache may use, e.g. hbm3e (default: all)"),
]
MaxChipPower = Annotated[
    str | None,
    option("--max-chip-power", metavar="WATTS", help="per-chip power limit: tdp (default), none, or '350 W'"),
]
MaxPower = Annotated[
    str | None,
    option("--max-power", metavar="WATTS", help="power budget of the whole pipeline, e.g. '1.2 MW'"),
]
MaxGroups = Annotated[
    int, option("--max-groups", metavar="N", min=1, help="largest number of groups (stages)")
]
OptionalMaxGroups = Annotated[
    int | None, option("--max-groups", metavar="N", min=1, help="largest number of groups (default 128)")
]
Stages = Annotated[
    int | None,
    option("--stages", metavar="S", min=1, help="fix the number of stages S instead of enumerating"),
]
TimeLimit = Annotated[
    float | None,
    option("--time-limit", metavar="SECONDS", help="per S (an infeasible verdict may then be unproven)"),
]
_GAP_HELP = "relative optimality gap of each solve; 1: any plan, the first found (a feasibility check)"
Gap = Annotated[float, option("--gap", metavar="REL", help=_GAP_HELP)]
OptionalGap = Annotated[float | None, option("--gap", metavar="REL", help=_GAP_HELP + " (default 1e-4)")]

# ---------------------------------------------------------------------------------------------- running

Workers = Annotated[
    int | None, option("--workers", metavar="N", min=1, help="local worker processes (default: cores)")
]
Dask = Annotated[
    str | None,
    option(
        "--dask", metavar="ADDRESS", help="run on this dask.distributed scheduler instead of local workers"
    ),
]
CacheDir = Annotated[
    Path, option("--cache", metavar="DIR", help="cached case results: a rerun reuses them and resumes")
]
OptionalCacheDir = Annotated[
    Path | None, option("--cache", metavar="DIR", help="keep every solve here (resume, reuse); default: none")
]
Quiet = Annotated[bool, flag("--quiet", "-q", help="no progress on stderr")]

# ---------------------------------------------------------------------------------------------- output

JsonFlag = Annotated[bool, flag("--json", help="print the result as JSON on stdout (tables off)")]
Wide = Annotated[bool, flag("--wide", help="every column (the default fits 100 characters)")]
Csv = Annotated[Path | None, option("--csv", metavar="FILE.csv", help="write the table as CSV")]
Report = Annotated[
    Path | None,
    option(
        "--report", metavar="FILE.html", help="write an interactive report (one self-contained HTML file)"
    ),
]
OutDir = Annotated[
    Path | None, option("--out", metavar="DIR", help="write the tables, report and figure here")
]
