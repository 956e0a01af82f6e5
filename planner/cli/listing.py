"""planner list models|hardware|memory: what ships, with its key figures and where each comes from."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape

from planner.cli import options as o
from planner.cli.base import Column, PlannerTyper, app, console, handle_errors, print_json, print_table

list_app = PlannerTyper(no_args_is_help=True, help="What ships: models, hardware, memory technologies.")
app.add_typer(list_app, name="list")


def _show(
    rows: list[dict],
    json_out: bool,
    title: str,
    columns: Sequence[Column],
    table: list[dict],
    sources: tuple[str, list[tuple[str, str]]],
) -> None:
    """The rows as JSON, or the table and then one line per source."""
    if json_out:
        print_json(rows)
        return
    print_table(title, columns, table)
    console.print(f"[bold]{sources[0]}[/]")
    for name, text in sources[1]:
        console.print(f"  {escape(name)}: {escape(text)}", highlight=False, soft_wrap=True)


@list_app.command("models")
@handle_errors
def list_models_command(json_out: o.JsonFlag = False) -> None:
    """Shipped models (graphs/): parameters, KV bytes per token, layers, and the source of each config."""
    from planner.api import list_models

    rows = list_models()
    _show(
        rows,
        json_out,
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
        [r | {"params_b": r["total_params"] / 1e9, "active_b": r["active_params"] / 1e9} for r in rows],
        (
            "sources (graphs/SOURCES.md, with the published parameter counts)",
            [(r["name"], r["source"]) for r in rows],
        ),
    )


@list_app.command("hardware")
@handle_errors
def list_hardware_command(json_out: o.JsonFlag = False) -> None:
    """Shipped hardware (instances/hardware/): peak FLOP/s, memory and bandwidth per chip, TDP, sources."""
    from planner.api import list_hardware

    rows = list_hardware()
    per_tier = lambda d, scale: ", ".join(f"{t} {v / scale:,.4g}" for t, v in d.items())  # noqa: E731
    _show(
        rows,
        json_out,
        "hardware (instances/hardware/; per chip)",
        [
            Column("name", "name"),
            Column("bf16", "bf16\nTFLOP/s"),
            Column("fp8", "fp8\nTFLOP/s", zero="-"),
            Column("memory", "memory GB"),
            Column("bandwidth", "bandwidth TB/s"),
            Column("tdp_w", "TDP\nW"),
            Column("chips_per_group", "chips per\ngroup"),
            Column("kv_memory_replaceable", "--kv-\nmemory"),
        ],
        [
            r
            | {
                "bf16": r["peak_flops_per_s"].get("bf16", 0) / 1e12,
                "fp8": r["peak_flops_per_s"].get("fp8", 0) / 1e12,
                "memory": per_tier(r["memory_bytes_per_chip"], 1e9),
                "bandwidth": per_tier(r["bandwidth_bytes_per_s_per_chip"], 1e12),
            }
            for r in rows
        ],
        (
            "sources (each YAML's `sources`)",
            [(f"{r['name']} {k}", v) for r in rows for k, v in r["sources"].items()],
        ),
    )


@list_app.command("memory")
@handle_errors
def list_memory_command(json_out: o.JsonFlag = False) -> None:
    """Memory technologies (instances/memory/): capacity, bandwidth and pJ/bit per device, sources."""
    from planner.api import list_memory

    rows = list_memory()
    _show(
        rows,
        json_out,
        "memory technologies (instances/memory/; per device)",
        [
            Column("name", "name"),
            Column("kind", "kind"),
            Column("capacity_gb_per_device", "capacity\nGB"),
            Column("bandwidth_gb_per_s_per_device", "bandwidth\nGB/s"),
            Column("pj_per_bit", "pJ/bit"),
            Column("devices_per_reticle_die", "devices\nper die"),
            Column("bw_per_capacity_per_s", "bandwidth /\ncapacity 1/s"),
            Column("standby_w_per_device", "standby\nW"),
            Column("cost_per_gb_usd", "$/GB"),
        ],
        rows,
        (
            "sources (each YAML's `sources`)",
            [
                (f"{r['name']} {k}", v)
                for r in rows
                for k, v in r["sources"].items()
                if k
                in (
                    "capacity_per_device",
                    "bandwidth_per_device",
                    "energy",
                    "standby_power_per_device",
                    "cost_per_gb_usd",
                )
            ],
        ),
    )
