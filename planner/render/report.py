"""Interactive reports: one self-contained HTML file per plan or comparison (plotly, its JavaScript inline,
so the file opens in any browser with no network).

A plan report shows the pipeline of chip groups (busy time per micro-batch by resource against the cycle,
with hover details per group: node range and count, tier fill, binding resource, power), tier fill per
group, power per chip against the chip's TDP, time and energy per token by category, J/token for every
number of stages S tried, and every node (hover: kind, group, bytes, tier fractions). It reads the plan's
`figures` (FORMULATION §6); keys that newer plans carry are picked up when present (`power_w_per_chip`,
`busy_ms_by_unit` per group), and their charts say so when a plan lacks them.

The page carries its key figures as data attributes on <body> (`data-groups`, `data-joules-per-token`)
for tests and scripts; the text shows the same values.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planner.core.fileio import write_text_atomic

KIND_COLORS = {
    "weights": "#4C72B0",
    "kv": "#DD8452",
    "compute": "#55A868",
    "links": "#8172B3",
    "overhead": "#937860",
    "idle": "#BBBBBB",
}
TIER_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table.facts { border-collapse: collapse; font-size: 0.9em; }
table.facts td, table.facts th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right; }
table.facts td:first-child, table.facts th:first-child { text-align: left; }
p.note { color: #666; font-size: 0.85em; } code { background: #f4f4f4; padding: 0 3px; }
"""


# ---------------------------------------------------------------------------------------------- page


def _page(title: str, intro: str, sections: Sequence[tuple[str, str]], data: dict[str, Any]) -> str:
    """One HTML document: plotly's JavaScript once, inline; each section a heading and its HTML."""
    import plotly.offline

    attrs = " ".join(f'data-{k}="{html.escape(str(v))}"' for k, v in data.items())
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{content}" for h, content in sections)
    script = plotly.offline.get_plotlyjs()
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"<script type='text/javascript'>{script}</script></head>\n"
        f"<body {attrs}>\n<h1>{html.escape(title)}</h1>\n{intro}\n{body}\n</body></html>\n"
    )


def _chart(fig, name: str) -> str:
    """A plotly figure as a div (the page holds plotly.js once)."""
    import plotly.io as pio

    fig.update_layout(margin=dict(l=60, r=20, t=30, b=50), template="plotly_white", height=380)
    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=name,
        config={"displaylogo": False, "responsive": True},
    )


def _facts_table(rows: Sequence[tuple[str, str]], header: Sequence[str] = ()) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table class='facts'>{head}{cells}</table>"


def _note(text: str) -> str:
    return f"<p class='note'>{text}</p>"


# ---------------------------------------------------------------------------------------------- plan


def plan_report_html(plan, problem, figures: dict[str, Any], tdp_w: float | None = None) -> str:
    """The plan report (see the module docstring). `figures` are the plan's figures (planner.plans.plan
    .figures of its evaluated cost, or the file's); `tdp_w` the chip's TDP for the power chart."""
    import plotly.graph_objects as go

    groups = figures["groups"]
    n = len(groups)
    tiers = list(problem.tiers)
    x = [g["group"] for g in groups]
    hw = problem.hw
    where = f"{problem.model.name} on {figures['stages']} x {hw.chips_per_group} {hw.name}" + (
        f" + {hw.kv_memory}" if hw.kv_memory else ""
    )
    jpt = figures["joules_per_token"]
    intro = _facts_table(
        [
            ("J/token", f"{jpt:.4g}"),
            (
                "chip groups (stages S)",
                f"{n} groups of {hw.chips_per_group} chips = {figures['chips']:,} chips",
            ),
            ("users", f"{figures['users']:,} at context {figures['context']:,}"),
            ("per-user floor", f"{problem.min_tokens_per_s:g} tokens/s"),
            (
                "tokens/s per user, in all",
                f"{figures['tokens_per_s_per_user']:.4g}, {figures['tokens_per_s']:,.0f}",
            ),
            ("cycle, token time", f"{figures['cycle_ms']:.4g} ms, {figures['token_ms']:.4g} ms"),
            ("micro-batch", f"{figures['micro_batch']:.4g} users, {figures['micro_batches']} in flight"),
            ("power", f"{figures['power_w']:,.0f} W"),
            ("solver", f"{plan.solver.status} ({plan.solver.method}), gap {plan.solver.gap}"),
        ]
    )

    def hover(g: dict) -> str:
        fill = "<br>".join(
            f"{t}: {g['resident_gb'][t]:,.3g} of {g['capacity_gb'][t]:,.3g} GB "
            f"({100 * g['resident_gb'][t] / g['capacity_gb'][t]:.0f}%)"
            for t in tiers
            if g["capacity_gb"].get(t)
        )
        power = g.get("power_w_per_chip")
        return (
            f"<b>group {g['group']}</b>: {html.escape(g['first_node'])} .. {html.escape(g['last_node'])} "
            f"({g['nodes']} nodes)<br>busy {g['busy_ms']:.4g} ms, send {g.get('send_ms', 0):.3g} ms, "
            f"binding: {g['binding']}<br>{fill}"
            + (f"<br>{power:,.0f} W per chip" if power is not None else "")
        )

    texts = [hover(g) for g in groups]
    pipeline = go.Figure()
    for kind in ("weights", "kv", "compute", "links", "overhead"):
        pipeline.add_bar(
            x=x,
            y=[g["time_ms_by"].get(kind, 0.0) for g in groups],
            name=kind,
            marker_color=KIND_COLORS[kind],
            hovertext=texts,
            hoverinfo="text+name",
        )
    pipeline.add_hline(
        y=figures["cycle_ms"], line_dash="dash", annotation_text=f"cycle {figures['cycle_ms']:.4g} ms"
    )
    pipeline.update_layout(
        barmode="stack", xaxis_title="chip group (pipeline stage)", yaxis_title="busy per micro-batch (ms)"
    )
    pipeline.update_xaxes(dtick=1 if n <= 40 else None)
    sections = [
        (
            f"Pipeline: {n} chip groups",
            _note(
                "Busy time of each group per micro-batch by the resource of each phase; hover a bar for the "
                "group's nodes, tier fill, binding resource and power."
            )
            + _chart(pipeline, "pipeline"),
        )
    ]
    if all("busy_ms_by_unit" in g for g in groups):
        units = sorted({u for g in groups for u in g["busy_ms_by_unit"]})
        by_unit = go.Figure()
        for u in units:
            by_unit.add_bar(
                x=x, y=[g["busy_ms_by_unit"].get(u, 0.0) for g in groups], name=u, hovertext=texts
            )
        by_unit.add_hline(y=figures["cycle_ms"], line_dash="dash")
        by_unit.update_layout(barmode="group", xaxis_title="chip group", yaxis_title="busy per unit (ms)")
        sections.append(("Busy time by unit", _chart(by_unit, "units")))

    fill = go.Figure()
    for i, t in enumerate(tiers):
        fill.add_bar(
            x=x,
            y=[
                100 * g["resident_gb"][t] / g["capacity_gb"][t] if g["capacity_gb"].get(t) else 0
                for g in groups
            ],
            name=t,
            marker_color=TIER_COLORS[i % len(TIER_COLORS)],
            hovertext=texts,
            hoverinfo="text+name",
        )
    fill.add_hline(y=100, line_dash="dot")
    fill.update_layout(barmode="group", xaxis_title="chip group", yaxis_title="tier fill (%)")
    fill.update_xaxes(dtick=1 if n <= 40 else None)
    sections.append(("Memory tier fill", _chart(fill, "fill")))

    if all(g.get("power_w_per_chip") is not None for g in groups):
        power = go.Figure()
        power.add_bar(x=x, y=[g["power_w_per_chip"] for g in groups], name="W per chip", hovertext=texts)
        if tdp_w:
            power.add_hline(y=tdp_w, line_dash="dash", annotation_text=f"TDP {tdp_w:,.0f} W")
        power.update_layout(xaxis_title="chip group", yaxis_title="power per chip (W)")
        sections.append(("Power per chip against TDP", _chart(power, "power")))
    else:
        sections.append(
            (
                "Power per chip against TDP",
                _note(
                    f"This plan's figures have no per-group <code>power_w_per_chip</code> (plans written before "
                    f"power limits); the chart appears when they do. Whole pipeline: {figures['power_w']:,.0f} W"
                    + (
                        f", {figures['power_w'] / figures['chips']:,.0f} W per chip on average"
                        if figures["chips"]
                        else ""
                    )
                    + (f" against a TDP of {tdp_w:,.0f} W." if tdp_w else ".")
                ),
            )
        )

    time_by = {k: sum(g["time_ms_by"].get(k, 0.0) for g in groups) for k in KIND_COLORS if k != "idle"}
    energy_by = figures["joules_per_token_by"]
    per_token = go.Figure()
    per_token.add_bar(
        x=list(time_by),
        y=list(time_by.values()),
        name="time (ms, summed over the groups)",
        marker_color=[KIND_COLORS[k] for k in time_by],
        yaxis="y",
    )
    per_token.add_bar(
        x=list(energy_by),
        y=list(energy_by.values()),
        name="energy (J per token)",
        marker_color=[KIND_COLORS.get(k, "#999") for k in energy_by],
        marker_pattern_shape="/",
        yaxis="y2",
        xaxis="x2",
    )
    per_token.update_layout(
        grid=dict(rows=1, columns=2, pattern="independent"),
        yaxis=dict(title="ms per micro-batch, all groups"),
        yaxis2=dict(title="J per token"),
        showlegend=True,
    )
    sections.append(
        (
            "Time and energy per token by category",
            _note(f"J/token {jpt:.4g} = " + " + ".join(f"{k} {v:.3g}" for k, v in energy_by.items()))
            + _chart(per_token, "per-token"),
        )
    )

    per_stage = sorted(plan.solver.per_stage.items())
    ok = [(s, r) for s, r in per_stage if r.joules_per_token is not None]
    by_s = go.Figure()
    by_s.add_scatter(
        x=[s for s, _ in ok],
        y=[r.joules_per_token for _, r in ok],
        mode="lines+markers",
        name="J/token",
        hovertext=[f"S={s}: {r.joules_per_token:.4g} J/token ({r.status})" for s, r in ok],
        hoverinfo="text",
    )
    bounds = [(s, r) for s, r in per_stage if r.joules_per_token is None and r.best_bound is not None]
    if bounds:
        by_s.add_scatter(
            x=[s for s, _ in bounds],
            y=[r.best_bound for _, r in bounds],
            mode="markers",
            name="bound (pruned)",
            marker_symbol="triangle-up",
            hovertext=[f"S={s}: {r.status}, bound {r.best_bound:.4g}" for s, r in bounds],
            hoverinfo="text",
        )
    by_s.update_layout(xaxis_title="stages S", yaxis_title="J per token")
    skipped = [f"S={s}: {r.status}" for s, r in per_stage if r.joules_per_token is None]
    sections.append(
        (
            "J/token by number of stages S",
            _chart(by_s, "by-stages")
            + (_note(f"{len(skipped)} S without a plan: " + ", ".join(skipped[:40])) if skipped else ""),
        )
    )

    nodes = go.Figure()
    group_of = {name: i for i, names in enumerate(plan.groups) for name in names}
    graph = problem.model.graph
    names = list(graph.nodes)
    nodes.add_bar(
        x=list(range(len(names))),
        y=[graph.nodes[m]["weight_bytes"] / 1e9 for m in names],
        marker_color=[TIER_COLORS[group_of.get(m, 0) % len(TIER_COLORS)] for m in names],
        hovertext=[_node_hover(m, graph.nodes[m], group_of.get(m), plan, problem) for m in names],
        hoverinfo="text",
        name="weights",
    )
    nodes.update_layout(xaxis_title="node (execution order; colour: group)", yaxis_title="weights (GB)")
    sections.append(
        ("Nodes", _note("Hover a node for its group, bytes and tier fractions.") + _chart(nodes, "nodes"))
    )
    return _page(
        f"Plan: {where}, {figures['users']:,} users",
        intro,
        sections,
        {"groups": n, "joules-per-token": f"{jpt:.6g}", "report": "plan"},
    )


def _node_hover(name: str, d: dict, group: int | None, plan, problem) -> str:
    from planner.model.graph import kv_tokens

    kv_gb = problem.users * d["kv_bytes_per_token"] * kv_tokens(d, problem.context) / 1e9
    split = lambda s: ", ".join(f"{t} {100 * f:.0f}%" for t, f in s.get(name, {}).items()) or "-"  # noqa: E731
    return (
        f"<b>{html.escape(name)}</b> ({d['kind']}), group {group}<br>weights {d['weight_bytes'] / 1e9:,.3g} GB: "
        f"{split(plan.weight_split)}<br>KV of all users {kv_gb:,.3g} GB: {split(plan.kv_split)}"
    )


def write_plan_report(
    plan, problem, figures: dict[str, Any], path: str | Path, tdp_w: float | None = None
) -> Path:
    return write_text_atomic(Path(path), plan_report_html(plan, problem, figures, tdp_w))


# ---------------------------------------------------------------------------------------------- comparison


def comparison_report_html(c, command: str) -> str:
    """A memory comparison (planner.studies.compare.Comparison): per model, J/token against users for each
    KV memory (log-log, hover: S, chips, power, limit) and max users per memory, with the maxima table."""
    import pandas as pd
    import plotly.graph_objects as go

    from planner.plans.metrics import pareto_front

    sections = []
    for model, maxima in c.maxima.groupby("model", sort=False):
        points = c.points[c.points["model"] == model]
        fig = go.Figure()
        both = pd.concat([points, maxima])
        for i, (memory, frame) in enumerate(both.groupby("memory", sort=False)):
            ok = frame[frame["joules_per_token"].notna() & (frame["users"] > 0)].sort_values("users")
            fig.add_scatter(
                x=ok["users"],
                y=ok["joules_per_token"],
                mode="lines+markers",
                name=memory or "default",
                marker_color=TIER_COLORS[i % len(TIER_COLORS)],
                hovertext=[
                    f"{memory}: {int(r.users):,} users, {r.joules_per_token:.4g} J/token, S={_int(r.stages)}, "
                    f"{_int(r.chips)} chips, {r.power_w:,.0f} W ({r.point})"
                    for r in ok.itertuples()
                ],
                hoverinfo="text",
            )
        front = pareto_front(both)
        fig.add_scatter(
            x=front["users"],
            y=front["joules_per_token"],
            mode="lines",
            name="Pareto front",
            line=dict(color="black", width=1, shape="hv"),
        )
        fig.update_layout(
            xaxis_type="log", yaxis_type="log", xaxis_title="concurrent users", yaxis_title="J per token"
        )
        top = go.Figure()
        top.add_bar(
            x=list(maxima["memory"]),
            y=list(maxima["max_users"]),
            hovertext=[
                f"{r.memory}: {int(r.max_users):,} users; limit at max+1: {r.binding}"
                for r in maxima.itertuples()
            ],
            hoverinfo="text",
        )
        top.update_layout(yaxis_type="log", yaxis_title="max users", xaxis_title="KV memory")
        rows = [
            (
                r.memory,
                f"{int(r.max_users):,}",
                r.binding,
                _int(r.stages),
                _int(r.chips),
                "-" if _missing(r.joules_per_token) else f"{r.joules_per_token:.4g}",
            )
            for r in maxima.itertuples()
        ]
        table = _facts_table(rows, ("KV memory", "max users", "limit at max+1", "S", "chips", "J/token"))
        sections.append((f"{model}: J/token against users", _chart(fig, f"pareto-{model}")))
        sections.append((f"{model}: max users per KV memory", table + _chart(top, f"max-{model}")))
    first = c.maxima.iloc[0]
    intro = _note(
        f"Regenerate: <code>{html.escape(command)}</code><br>Hardware {html.escape(str(first['hardware']))}, "
        f"context {int(first['context']):,}, per-user floor {first['min_tokens_per_s']:g} tokens/s."
    )
    return _page(
        "Memory technologies for the KV tier",
        intro,
        sections,
        {
            "report": "comparison",
            "models": c.maxima["model"].nunique(),
            "memories": c.maxima["memory"].nunique(),
        },
    )


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _int(v: Any) -> str:
    return "-" if _missing(v) else f"{int(v):,}"


def write_comparison_report(c, path: str | Path, command: str) -> Path:
    return write_text_atomic(Path(path), comparison_report_html(c, command))


# ---------------------------------------------------------------------------------------------- deep pipeline


def deep_pipeline_report_html(result, command: str) -> str:
    """The deep-pipeline study (planner.studies.deep_pipeline.DeepPipeline): per model, J/token against
    users for each S with S micro-batches in flight (solid) and one (dashed), and the max-users table."""
    import plotly.graph_objects as go

    points, summary = result.points, result.summary
    sections = []
    for model, rows in summary.groupby("model", sort=False):
        fig = go.Figure()
        frame = points[
            (points["model"] == model) & points["joules_per_token"].notna() & (points["users"] > 0)
        ]
        for i, (stages, by_s) in enumerate(frame.groupby("fixed_stages")):
            color = TIER_COLORS[i % len(TIER_COLORS)]
            for one, dash, label in ((0, "solid", "S micro-batches"), (1, "dash", "1 micro-batch")):
                part = by_s[by_s["in_flight"] == one].sort_values("users")
                fig.add_scatter(
                    x=part["users"],
                    y=part["joules_per_token"],
                    mode="lines+markers",
                    name=f"S={stages}, {label}",
                    line=dict(color=color, dash=dash),
                    hovertext=[
                        f"S={stages}, {label}: {int(u):,} users, {j:.4g} J/token"
                        for u, j in zip(part["users"], part["joules_per_token"])
                    ],
                    hoverinfo="text",
                )
        fig.update_layout(
            xaxis_type="log", yaxis_type="log", xaxis_title="concurrent users", yaxis_title="J per token"
        )
        table = _facts_table(
            [
                (
                    _int(r.stages),
                    _int(r.deep_max_users),
                    _int(r.one_mb_max_users),
                    "-" if _missing(r.users_ratio) else f"{r.users_ratio:.3g}x",
                )
                for r in rows.itertuples()
            ],
            ("S", "max users, S micro-batches", "max users, 1 micro-batch", "ratio"),
        )
        sections.append((f"{model}: S micro-batches against one", table + _chart(fig, f"deep-{model}")))
    intro = _note(f"Regenerate: <code>{html.escape(command)}</code>")
    return _page(
        "Deep pipeline against one micro-batch in flight",
        intro,
        sections,
        {"report": "deep-pipeline", "models": summary["model"].nunique()},
    )


def write_deep_pipeline_report(result, path: str | Path, command: str) -> Path:
    return write_text_atomic(Path(path), deep_pipeline_report_html(result, command))
