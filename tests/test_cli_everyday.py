"""Everyday use of the CLI: shared options (dtypes, --context 8K, --kv-memory), help text on every option
and no `<bool>` metavar, progress on stderr when it is not a terminal, and tables that fit 100 columns
with one number format per column and warnings before them."""

from __future__ import annotations

import io
import re
import time

import pytest
import typer
from rich.console import Console

from planner.cli import app
from planner.cli import options as o
from planner.cli.base import Column, column_formatter, print_table
from planner.cli.placement import GROUP_COLUMNS, SOL_COLUMNS
from planner.cli.progress import ProgressReport
from planner.cli.studies import COMPARE_COMPACT, SWEEP_COLUMNS
from planner.core.fileio import project_root
from planner.problem.problem import resolve
from planner.runs.sweep import SweepSpec
from planner.studies.compare import COMPARE_COLUMNS

TINY = project_root() / "instances" / "llama-3.1-8b_tiny.yaml"

# ------------------------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("8192", 8192),
        ("8,192", 8192),
        ("8K", 8192),
        ("8k", 8192),
        ("128K", 131_072),
        ("1M", 1_048_576),
        ("0.5k", 512),
    ],
)
def test_context_accepts_k_as_1024_tokens(text: str, tokens: int):
    assert o.parse_tokens(text) == tokens


@pytest.mark.parametrize("text", ["8Q", "K", "1.3K", "0", "-8K", "1000M"])
def test_context_rejects_what_is_not_a_token_count(text: str):
    with pytest.raises(typer.BadParameter):
        o.parse_tokens(text)


def test_sol_context_8k_is_8192(cli):
    """`--context 8K` gives the same rows as `--context 8192` (it was rejected before)."""
    args = ["sol", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--users", "1,8", "--json"]
    k = cli([*args, "--context", "8K"])
    plain = cli([*args, "--context", "8192"])
    assert k.exit_code == 0, k.output
    assert k.stdout == plain.stdout
    assert '"context": 8192' in k.stdout


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_option_has_help_and_no_bool_metavar(cli):
    """Every option of every command has help text; no help screen shows `<bool>` (flags show no metavar)."""
    import typer.main

    root = typer.main.get_command(app)
    missing = [
        f"planner {' '.join(path)} {param.opts[0]}"
        for path, command in _commands(root)
        for param in command.params
        if param.param_type_name == "option" and not getattr(param, "hidden", False) and not param.help
    ]
    assert not missing, missing
    for path, _ in [((), None), *_commands(root)]:
        result = cli([*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, (path, result.output)


def test_kv_memory_flag_is_the_same_everywhere():
    """sol, solve, capacity and compare all take --kv-memory (compare said --memory)."""
    import typer.main

    commands = dict(_commands(typer.main.get_command(app)))
    for name in ("sol", "solve", "capacity", "compare"):
        opts = {opt for p in commands[(name,)].params for opt in p.opts}
        assert {"--kv-memory", "--weight-dtype", "--kv-dtype", "--context"} <= opts, name


def test_dtype_and_memory_flags_reach_the_studies(cli, monkeypatch, tmp_path):
    """--weight-dtype/--kv-dtype reach the instance of capacity, the comparison and every sweep case; the
    old --memory still works for compare (with a warning)."""
    import planner.api

    seen = {}

    def fake_capacity(spec, cache=None, progress=None):
        seen["capacity"] = spec
        raise typer.Exit(0)

    def fake_compare(models, hardware, memories, users, context, floor, **options):
        seen["compare"] = (memories, context, options)
        raise typer.Exit(0)

    def fake_sweep(spec, **options):
        seen["sweep"] = spec
        raise typer.Exit(0)

    monkeypatch.setattr(planner.api, "capacity", fake_capacity)
    monkeypatch.setattr(planner.api, "compare", fake_compare)
    monkeypatch.setattr(planner.api, "sweep", fake_sweep)
    common = ["--model", "llama-3.1-8b", "--hardware", "sram-pipeline", "--context", "2k"]
    dtypes = ["--weight-dtype", "fp8", "--kv-dtype", "fp4"]
    assert cli(["capacity", *common, "--min-tokens-per-s", "20", *dtypes]).exit_code == 0
    workload = seen["capacity"].workload
    assert (workload.weight_dtype, workload.kv_dtype, workload.context) == ("fp8", "fp4", 2048)
    result = cli(
        ["compare", *common, "--users", "16", "--min-tokens-per-s", "20", "--memory", "hbm3e", *dtypes]
    )
    assert result.exit_code == 0, result.output
    assert "--memory is now --kv-memory" in result.output
    memories, context, options = seen["compare"]
    assert memories == ["hbm3e"] and context == 2048
    assert (options["weight_dtype"], options["kv_dtype"]) == ("fp8", "fp4")
    sweep_file = project_root() / "sweeps" / "example.yaml"
    assert cli(["sweep", sweep_file, "--kv-dtype", "fp8"]).exit_code == 0
    assert {c.workload.kv_dtype for c in seen["sweep"].cases()} == {"fp8"}


def test_sweep_file_dtypes_reach_the_model():
    """A sweep file's weight_dtype / kv_dtype go into every case and its model: fp8 KV halves the KV bytes
    of llama-3.1-8b (32 layers * 2 * 8 heads * 128 * 1 B = 65,536 B per token)."""
    spec = SweepSpec(
        models=["llama-3.1-8b"],
        hardware=["sram-pipeline"],
        users=[16],
        context=[2048],
        min_tokens_per_s=[20],
        weight_dtype="fp8",
        kv_dtype="fp8",
    )
    (case,) = spec.cases()
    model = resolve(case).model
    assert (model.dtypes.weight, model.dtypes.kv) == ("fp8", "fp8")
    assert model.kv_bytes_per_token == 32 * 2 * 8 * 128 * 1


# ------------------------------------------------------------------------------------ progress


def test_progress_lines_when_not_a_terminal(capsys):
    """Off a terminal: a line at the start, at every 10% (done/total, elapsed, ETA, last label), at the end."""
    with ProgressReport("work", total=20) as progress:
        for i in range(20):
            progress.advance(f"case {i}")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "work: started"
    assert re.fullmatch(r"work: 2/20 \(10%\), elapsed 0:00:00, ETA 0:00:00 \(last: case 1\)", lines[1])
    assert len(lines) == 1 + 9 + 1  # 10%, ..., 90%; the end line says 100%
    assert lines[-1].startswith("work: done, 20/20 (100%)")


def test_progress_heartbeat_while_nothing_finishes(capsys, monkeypatch):
    """A long step still shows up in a log: a line every PLANNER_PROGRESS_EVERY_S seconds."""
    monkeypatch.setenv("PLANNER_PROGRESS_EVERY_S", "0.05")
    with ProgressReport("slow", total=3):
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("slow: 0/3 (0%)") for line in lines) >= 3


def test_progress_quiet(capsys):
    with ProgressReport("work", total=5, quiet=True) as progress:
        progress.advance()
    assert capsys.readouterr().err == ""


def test_solve_reports_progress_and_quiet_silences_it(cli):
    result = cli(["solve", TINY, "--json"])
    assert result.exit_code == 0, result.output
    assert "solve llama-3.1-8b on sram-pipeline: started" in result.stderr
    assert re.search(r"solve llama-3\.1-8b on sram-pipeline: done, \d+ step\(s\)", result.stderr)
    quiet = cli(["solve", TINY, "--json", "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


# ------------------------------------------------------------------------------------ tables


def test_one_format_per_column():
    """The README's SOL columns: no e-notation under thousands, one number of decimals per column."""
    fmt = column_formatter([171.9, 1332.0, 8259.0, 23590.0])
    assert fmt([171.9, 1332.0, 8259.0, 23590.0]) == ["172", "1,332", "8,259", "23,590"]
    kv = [0.05009, 0.2004, 1.603, 12.82]
    assert column_formatter(kv)(kv) == ["0.050", "0.200", "1.603", "12.820"]
    tiny = [0.0754, 0.000001, 0.267]
    assert column_formatter(tiny)(tiny) == ["0.0754", "<0.0001", "0.2670"]
    gaps = [2e-15, 9.9e-4]
    assert column_formatter(gaps)(gaps) == ["2.00e-15", "9.90e-04"]
    assert column_formatter([0.0, 1.5], zero="-")([0.0, 1.5]) == ["-", "1.50"]
    assert column_formatter([None, 3])([None, 3]) == ["-", "3"]


# the widest values each column takes in the shipped instances and README studies
WIDEST = {
    "users": [1, 1_048_576],
    "stages": [1, 128],
    "chips": [8, 1024],
    "max_users": [0, 85_787],
    "binding": ["one node", "speed floor (within capacity)"],
    "memory": ["sram", "novel-kv-dram"],
    "model": ["llama-3.1-8b", "qwen3-235b-a22b"],
    "hardware": ["b200", "sram-pipeline"],
    "status": ["optimal", "infeasible"],
    "group": [0, 127],
    "nodes": ["embed .. L2.attn", "L100.ffn .. L103.attn"],
    "count": [1, 162],
    "fill": ["hbm3 76%", "sram 100%, novel-kv-dram 83%"],
    "context": [512, 131_072],
    "min_tokens_per_s": [10.0, 400.0],
    "tokens_per_s": [171.9, 765_871.3],
    "tokens_per_s_per_user": [18.1, 374.0],
    "joules_per_token": [0.0334, 29.58],
    "power_w": [5_083.0, 89_717.0],
    "busy": [0.0752, 27.59],
    "send": [0.0001, 0.9],
}
MS_LIKE = [0.011, 49.8]  # times in ms, energies in J, shares in %


def _widest_rows(columns) -> list[dict]:
    keys = [c.key if isinstance(c, Column) else c[0] for c in columns]
    return [{k: WIDEST.get(k, MS_LIKE)[i] for k in keys} for i in range(2)]


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("sol", SOL_COLUMNS),
        ("groups", GROUP_COLUMNS),
        ("sweep", SWEEP_COLUMNS),
        (
            "compare",
            [Column(k, h.replace(" ", "\n", 1), wide=k not in COMPARE_COMPACT) for k, h in COMPARE_COLUMNS],
        ),
    ],
)
def test_compact_tables_fit_100_columns_uncut(name: str, columns):
    """With rich at 100 columns no line is wider and no cell is cut with an ellipsis (they were 150+
    wide and collapsed into '85,...' and 'spe...' at 80-100 columns); --wide keeps every column."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=False, color_system=None)
    print_table(name, columns, _widest_rows(columns), wide=False, out=console)
    text = buffer.getvalue()
    assert "…" not in text and "..." not in text, text
    assert max(len(line) for line in text.splitlines()) <= 100, text
    wide = io.StringIO()
    print_table(name, columns, _widest_rows(columns), wide=True, out=Console(file=wide, width=300))
    assert "…" not in wide.getvalue()
    headers = [c.header.split("\n")[0] for c in columns]
    assert all(h in wide.getvalue() for h in headers)


def test_sol_warning_before_the_table_and_compute_footnote(cli):
    """The --chips warning comes before the table (it printed after it, where it was missed); compute ms
    shows '-' where compute never binds, with a footnote saying so (it showed an ambiguous 0)."""
    result = cli(
        [
            "sol",
            "--model",
            "llama-3.1-70b",
            "--hardware",
            "h100-sxm",
            "--users",
            "1,512",
            "--context",
            "8K",
            "--chips",
            "8",
        ]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("warning: does not fit") < out.index("speed of light")
    assert "'-' = compute never binds" in out
    assert "e+" not in out
