"""planner model info|graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from planner.cli import options as o
from planner.cli.base import (
    console,
    handle_errors,
    model_app,
    print_json,
)
from planner.core.fileio import check_output

# ---------------------------------------------------------------------------------------------- model


@model_app.command("info")
@handle_errors
def model_info(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="graphs/ name (llama-3.1-70b) or path to an HF config.json")
    ],
    json_out: o.JsonFlag = False,
    weight_dtype: o.WeightDtype = "bf16",
    kv_dtype: o.KvDtype = "bf16",
) -> None:
    """Parameters, bytes, KV per token, layers, nodes and experts of a model."""
    from planner.model.graph import load_model_facts

    info = load_model_facts(model, weight_dtype, kv_dtype)
    if json_out:
        print_json(info)
        return
    table = Table(title=escape(f"{info['model']} ({weight_dtype} weights, {kv_dtype} KV)"), show_header=False)
    rows = [
        ("total parameters", f"{info['total_params'] / 1e9:,.3f} B"),
        ("active parameters per token", f"{info['active_params'] / 1e9:,.3f} B"),
        ("weight bytes", f"{info['weight_bytes'] / 1e9:,.2f} GB"),
        ("KV bytes per token per user", f"{info['kv_bytes_per_token']:,.0f} B"),
        ("layers", f"{info['num_layers']}"),
        ("graph nodes", f"{info['num_nodes']}"),
        (
            "experts (per token)",
            f"{info['experts']} ({info['experts_per_tok']})" if info["experts"] else "dense",
        ),
        ("MoE layers", f"{info['moe_layers']}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@model_app.command("graph")
@handle_errors
def model_graph(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="graphs/ name or path to an HF config.json")],
    out: Annotated[
        Path, o.option("--out", metavar="FILE.graphml", help="FILE.graphml or FILE.json (node-link)")
    ],
    weight_dtype: o.WeightDtype = "bf16",
    kv_dtype: o.KvDtype = "bf16",
) -> None:
    """Write the model's decode graph as GraphML or node-link JSON (chosen by the file suffix)."""
    check_output(out, "--out", suffixes=(".graphml", ".json"))
    from planner.api import write_graph
    from planner.model.graph import load_model

    m = load_model(model, weight_dtype, kv_dtype)
    write_graph(m, out)
    console.print(
        escape(f"wrote {out} ({m.graph.number_of_nodes()} nodes, {m.graph.number_of_edges()} edges)")
    )
