"""planner list models|hardware|memory: what ships, with its key figures and where each comes from."""

from __future__ import annotations

from rich.markup import escape

from planner.cli import options as o
from planner.cli.base import Column, PlannerTyper, app, console, handle_errors, print_json, print_table

list_app = PlannerTyper(no_args_is_help=True, help="What ships: models, hardware, memory technologies.")
app.add_typer(list_app, name="list")


def _sources(title: str, lines: list[tuple[str, str]]) -> None:
    console.print(f"[bold]{title}[/]")
    for name, text in lines:
        console.print(f"  {escape(name)}: {escape(text)}", highlight=False, soft_wrap=True)


@list_app.command("models")
@handle_errors
def list_models_command(json_out: o.JsonFlag = False) -> None:
    """Shipped models (graphs/): parameters, KV bytes per token, layers, and the source of each config."""
    from planner.api import list_models

    rows = list_models()
    if json_out:
        print_json(rows)
        return
    for r in rows:
        r |= {"params_b": r["total_params"] / 1e9, "active_b": r["active_params"] / 1e9}
    print_table(
        "models (graphs/; bf16 weights and KV)",
        [
            Column("name", "name"),
            Column("model_type", "model_type"),
            Column("params_b", "params\nB", digits=3),
            Column("active_b", "active\nB", digits=3),
            Column("kv_bytes_per_token", "KV B per\ntoken"),
            Column("layers", "layers"),
            Column("sliding_window_layers", "sliding\nlayers"),
            Column("experts", "experts", zero="-"),
        ],
        rows,
    )
    _sources(
        "sources (graphs/SOURCES.md, with the published parameter counts)",
        [(r["name"], r["source"]) for r in rows],
    )


@list_app.command("hardware")
@handle_errors
def list_hardware_command(json_out: o.JsonFlag = False) -> None:
    """Shipped hardware (instances/hardware/): peak FLOP/s, memory and bandwidth per chip, TDP, sources."""
    from planner.api import list_hardware

    rows = list_hardware()
    if json_out:
        print_json(rows)
        return
    table = [
        {
            "name": r["name"],
            "bf16": r["peak_flops_per_s"].get("bf16", 0) / 1e12,
            "fp8": r["peak_flops_per_s"].get("fp8", 0) / 1e12,
            "memory": ", ".join(f"{t} {v / 1e9:,.4g}" for t, v in r["memory_bytes_per_chip"].items()),
            "bandwidth": ", ".join(
                f"{t} {v / 1e12:,.4g}" for t, v in r["bandwidth_bytes_per_s_per_chip"].items()
            ),
            "tdp": r["tdp_w"],
            "group": r["chips_per_group"],
            "swap": r["kv_memory_replaceable"],
        }
        for r in rows
    ]
    print_table(
        "hardware (instances/hardware/; per chip)",
        [
            Column("name", "name"),
            Column("bf16", "bf16\nTFLOP/s"),
            Column("fp8", "fp8\nTFLOP/s", zero="-"),
            Column("memory", "memory GB"),
            Column("bandwidth", "bandwidth TB/s"),
            Column("tdp", "TDP\nW"),
            Column("group", "chips per\ngroup"),
            Column("swap", "--kv-\nmemory"),
        ],
        table,
    )
    _sources(
        "sources (each YAML's `sources`)",
        [(f"{r['name']} {k}", v) for r in rows for k, v in r["sources"].items()],
    )


@list_app.command("memory")
@handle_errors
def list_memory_command(json_out: o.JsonFlag = False) -> None:
    """Memory technologies (instances/memory/): capacity, bandwidth and pJ/bit per device, sources."""
    from planner.api import list_memory

    rows = list_memory()
    if json_out:
        print_json(rows)
        return
    table = [
        r
        | {
            "capacity_gb": r["capacity_bytes_per_device"] / 1e9,
            "bandwidth_gb_s": r["bandwidth_bytes_per_s_per_device"] / 1e9,
        }
        for r in rows
    ]
    print_table(
        "memory technologies (instances/memory/; per device)",
        [
            Column("name", "name"),
            Column("kind", "kind"),
            Column("capacity_gb", "capacity\nGB"),
            Column("bandwidth_gb_s", "bandwidth\nGB/s"),
            Column("pj_per_bit", "pJ/bit"),
            Column("devices_per_reticle_die", "devices\nper die"),
            Column("bandwidth_per_capacity_per_s", "bandwidth /\ncapacity 1/s"),
        ],
        table,
    )
    _sources(
        "sources (each YAML's `sources`)",
        [
            (f"{r['name']} {k}", v)
            for r in rows
            for k, v in r["sources"].items()
            if k in ("capacity_per_device", "bandwidth_per_device", "energy")
        ],
    )
