"""Figures: stacked bars of time per token (speed of light). Matplotlib with the Agg backend."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # names like "a$b" are text, not TeX
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from planner.core.fileio import write_bytes_atomic  # noqa: E402

SOL_PARTS = [
    ("weight_ms", "weights", "#4C72B0"),
    ("kv_ms", "KV cache", "#DD8452"),
    ("compute_ms", "compute", "#55A868"),
    ("link_ms", "links", "#8172B3"),
    ("overhead_ms", "fixed overhead", "#937860"),
    ("wait_ms", "pipeline wait", "#BBBBBB"),
]

ENERGY_PARTS = [
    ("weight_j", "weights", "#4C72B0"),
    ("kv_j", "KV cache", "#DD8452"),
    ("compute_j", "compute", "#55A868"),
    ("link_j", "links", "#8172B3"),
    ("idle_j", "static (idle)", "#BBBBBB"),
]


def _plain_number(v: float, _=None) -> str:
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def _mantissa(v: float) -> float:
    return round(v / 10 ** math.floor(math.log10(v)), 6)


def _label_235(v: float, _=None) -> str:
    """Minor ticks 2, 3 and 5 x a power of ten, labelled (the others blank)."""
    return _plain_number(v) if v > 0 and _mantissa(v) in (2.0, 3.0, 5.0) else ""


def _any_in_view(lo: float, hi: float, mantissas: Sequence[int]) -> bool:
    """Whether a log axis from lo to hi shows a tick at one of `mantissas` x a power of ten."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return any(lo <= m * 10.0**e <= hi for e in range(first, last + 1) for m in mantissas)


def _plain_log_ticks(fig) -> None:
    """Tick labels of log axes as plain numbers (mathtext is off so that names with '$' stay text). An
    axis spanning less than a decade shows at most one major tick, so its minor ticks at 2, 3 and 5 x a
    power of ten are labelled too."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_major_formatter(FuncFormatter(_plain_number))
                lo, hi = sorted(axis.get_view_interval())
                if not (lo > 0 and hi / lo < 10):
                    axis.set_minor_formatter(NullFormatter())
                    continue
                some_235 = _any_in_view(lo, hi, (2, 3, 5))  # a narrow axis: label 2, 3 and 5, or all
                axis.set_minor_formatter(FuncFormatter(_label_235 if some_235 else _plain_number))


def save_figure(fig, path: str | Path) -> Path:
    _plain_log_ticks(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def plot_sol(frames: Sequence[pd.DataFrame], path: str | Path) -> Path:
    """One column per frame (model x hardware). Top: stacked time per token by category over the user
    counts, J/token above each bar. Bottom: where the joules go, as shares of J/token."""
    fig, axes = plt.subplots(
        2, len(frames), figsize=(6 * len(frames), 8), squeeze=False, gridspec_kw={"height_ratios": [3, 2]}
    )
    for ax, ax_e, frame in zip(axes[0], axes[1], frames):
        labels = [f"{u:,}" for u in frame["users"]]
        bottom = [0.0] * len(frame)
        for col, name, color in SOL_PARTS:
            values = list(frame[col])
            ax.bar(labels, values, bottom=bottom, label=name, color=color)
            bottom = [b + v for b, v in zip(bottom, values)]
        for x, (top, j) in enumerate(zip(bottom, frame["joules_per_token"])):
            ax.text(x, top, f"{j:.3g} J/tok", ha="center", va="bottom", fontsize=8)
        first = frame.iloc[0]
        ax.set_title(
            f"{first['model']} on {first['chips']} x {first['hardware']} ({first['mode']}), ctx {first['context']:,}",
            fontsize=9,
        )
        ax.set_ylabel("time per output token per user (ms)")
        ax.set_ylim(0, max(bottom) * 1.15)
        bottom = [0.0] * len(frame)
        for col, name, color in ENERGY_PARTS:
            values = list(100 * frame[col] / frame["joules_per_token"])
            ax_e.bar(labels, values, bottom=bottom, label=name, color=color)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax_e.set_ylabel("share of J/token (%)")
        ax_e.set_xlabel("concurrent users")
    axes[0][0].legend(fontsize=8, loc="upper left")
    axes[1][0].legend(fontsize=8, loc="lower left")
    return save_figure(fig, path)


TIER_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]
BINDING_COLORS = {
    "weights": "#4C72B0",
    "kv": "#DD8452",
    "compute": "#55A868",
    "links": "#8172B3",
    "overhead": "#937860",
    "inter-group link": "#C44E52",
}


TIME_KINDS = ("weights", "kv", "compute", "links", "overhead")
CHAIN_COLUMNS = 14  # groups per row of the chain; longer pipelines wrap onto further rows


def _node_label(name: str) -> str:
    return name.replace(".attn", " attn").replace(".ffn", " ffn").replace(".moe", " moe")


def plot_plan(plan, problem, cost, path: str | Path) -> Path:
    """plan_figure written as a PNG."""
    return save_figure(plan_figure(plan, problem, cost), path)


def plan_figure(plan, problem, cost):
    """A plan as the seed draws a pipeline: a chain of chip groups, each box with its number, chips, node
    range and one fill bar per memory tier, its edge coloured by the resource that binds it (rows of
    CHAIN_COLUMNS groups for long pipelines). Below, per group: tier fill (%) and busy time per
    micro-batch by resource with the cycle as a line; power per chip against the chip's TDP when the
    plan's figures carry `power_w_per_chip`. Every category is in the legends, bound or not; legends sit
    outside the axes; group axes have integer ticks, thinned to at most ~30 labels."""
    from matplotlib.patches import FancyBboxPatch, Patch
    from matplotlib.ticker import MaxNLocator

    groups = cost.groups
    n = len(groups)
    tiers = list(problem.tiers)
    tier_color = {t: TIER_COLORS[i % len(TIER_COLORS)] for i, t in enumerate(tiers)}
    power = [g.get("power_w_per_chip") for g in plan.figures.get("groups", [])]
    has_power = len(power) == n and all(p is not None for p in power)
    cols = min(n, CHAIN_COLUMNS)
    rows = -(-n // cols)
    panels = 3 + has_power
    ratios = [1.25 * rows, 2, 2] + ([1.6] if has_power else [])
    fig, axes = plt.subplots(
        panels,
        1,
        figsize=(max(9, 1.05 * cols + 3), 1.6 * rows + 2.3 * (panels - 1) + 1),
        gridspec_kw={"height_ratios": ratios},
    )
    ax_chain, ax_fill, ax_time = axes[:3]

    # the chain of groups
    for g in groups:
        r, c = divmod(g.index, cols)
        x, y = c, -r
        color = BINDING_COLORS.get(g.binding, "#999999")
        ax_chain.add_patch(
            FancyBboxPatch(
                (x - 0.42, y - 0.4), 0.84, 0.8, boxstyle="round,pad=0.02", fc="white", ec=color, lw=2.2
            )
        )
        ax_chain.text(x, y + 0.3, f"G{g.index}", ha="center", va="center", fontsize=8, weight="bold")
        first, last = _node_label(g.nodes[0]), _node_label(g.nodes[-1])
        span = first if len(g.nodes) == 1 else f"{first}\n..{last}"
        ax_chain.text(x, y + 0.08, span, ha="center", va="center", fontsize=6, linespacing=1.1)
        ax_chain.text(
            x,
            y - 0.13,
            f"{len(g.nodes)} nodes, {problem.hw.chips_per_group} chips",
            ha="center",
            fontsize=5.5,
        )
        for k, t in enumerate(tiers):  # one fill bar per tier
            fill = min(1.0, g.resident_bytes[t] / g.capacity_bytes[t]) if g.capacity_bytes[t] else 0.0
            yb = y - 0.25 - 0.09 * k
            ax_chain.add_patch(plt.Rectangle((x - 0.34, yb), 0.68, 0.06, fc="#EEEEEE", ec="none"))
            ax_chain.add_patch(plt.Rectangle((x - 0.34, yb), 0.68 * fill, 0.06, fc=tier_color[t], ec="none"))
        if g.index < n - 1:  # to the next group; at the end of a row the chain goes on below, from the left
            ax_chain.annotate(
                "", xy=(x + 0.58, y), xytext=(x + 0.42, y), arrowprops=dict(arrowstyle="->", lw=0.9)
            )
        if g.index and c == 0:
            ax_chain.annotate(
                "", xy=(x - 0.42, y), xytext=(x - 0.58, y), arrowprops=dict(arrowstyle="->", lw=0.9)
            )
    span_x = (-0.6, max(cols, 4) - 0.4)  # a short pipeline keeps boxes and bars group-sized
    ax_chain.set_xlim(*span_x)
    ax_chain.set_ylim(-rows + 0.45, 0.55)
    ax_chain.set_aspect("auto")
    ax_chain.axis("off")
    handles = [Patch(fc="white", ec=c, lw=2.2, label=f"binds: {k}") for k, c in BINDING_COLORS.items()]
    handles += [Patch(fc=tier_color[t], label=f"{t} fill") for t in tiers]
    ax_chain.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)

    # tier fill per group
    x = list(range(n))
    width = 0.8 / max(1, len(tiers))
    for i, t in enumerate(tiers):
        fill = [
            100 * g.resident_bytes[t] / g.capacity_bytes[t] if g.capacity_bytes[t] else 0.0 for g in groups
        ]
        ax_fill.bar(
            [xi - 0.4 + width * (i + 0.5) for xi in x], fill, width=width, label=t, color=tier_color[t]
        )
    ax_fill.axhline(100, color="black", lw=0.6, ls="--", label="capacity")
    ax_fill.set_ylim(0, 112)
    ax_fill.set_ylabel("tier fill (%)")

    # busy time per group by resource, and the cycle
    bottom = [0.0] * n
    for kind in TIME_KINDS:
        values = [g.time_by_kind_s.get(kind, 0.0) * 1e3 for g in groups]
        ax_time.bar(x, values, bottom=bottom, label=kind, color=BINDING_COLORS[kind], width=0.8)
        bottom = [b + v for b, v in zip(bottom, values)]
    cycle_ms = cost.cycle_s * 1e3
    ax_time.axhline(cycle_ms, color="black", lw=1.2, ls="--", label=f"cycle {cycle_ms:.3g} ms")
    ax_time.set_ylim(0, 1.15 * max([cycle_ms, *bottom]))
    ax_time.set_ylabel("busy per micro-batch (ms)")

    last = ax_time
    if has_power:
        ax_power = axes[3]
        ax_power.bar(x, power, color="#C44E52", width=0.8, label="W per chip")
        tdp = getattr(problem.hw, "tdp_w", None) or plan.figures.get("tdp_w")
        if tdp:
            ax_power.axhline(tdp, color="black", lw=1.0, ls=":", label=f"TDP {tdp:,.0f} W")
        ax_power.set_ylabel("power per chip (W)")
        last = ax_power
    step = max(1, -(-n // 30))
    for ax in axes[1:]:
        ax.set_xlim(-0.6, max(n, 4) - 0.4)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(n, 30)))
        ax.set_xticks(range(0, n, step))
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.grid(axis="y", lw=0.3)
    for ax in axes[1:-1]:
        ax.tick_params(labelbottom=False)
    last.set_xlabel("chip group (pipeline stage)")
    fig.suptitle(
        f"{problem.model.name} on {cost.stages} x {problem.hw.chips_per_group} {problem.hw.name}"
        + (f" + {problem.hw.kv_memory}" if problem.hw.kv_memory else "")
        + f": {cost.users:,} users, {cost.joules_per_token:.3g} J/token, {cost.tokens_per_s_per_user:.3g} tok/s/user",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_memory_comparison(points: pd.DataFrame, maxima: pd.DataFrame, path: str | Path) -> Path:
    """Pareto plot, one panel per model: J/token against users (log-log), one line per KV memory
    technology through its feasible points, a star at its max users; the black steps join the points no
    other technology beats on both axes (more users and fewer J/token)."""
    from planner.plans.metrics import pareto_front

    models = list(dict.fromkeys(maxima["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        both = pd.concat([points[points["model"] == model], maxima[maxima["model"] == model]])
        for i, (memory, frame) in enumerate(both.groupby("memory", sort=False)):
            ok = frame[frame["joules_per_token"].notna() & (frame["users"] > 0)].sort_values("users")
            color = TIER_COLORS[i % len(TIER_COLORS)] if i < len(TIER_COLORS) else f"C{i}"
            label = (memory or "default") + ("" if len(ok) else ": no feasible plan")
            ax.plot(ok["users"], ok["joules_per_token"], marker="o", ms=3, color=color, label=label)
            top = ok[ok["point"] == "max users"]
            ax.plot(top["users"], top["joules_per_token"], marker="*", ms=12, ls="none", color=color)
        front = pareto_front(both)
        ax.step(
            front["users"],
            front["joules_per_token"],
            where="pre",
            color="black",
            lw=0.8,
            label="Pareto front",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent users")
        ax.set_ylabel("J per token")
        first = both.iloc[0]
        ax.set_title(
            f"{model} on {first['hardware']}\ncontext {int(first['context']):,}, "
            f">= {first['min_tokens_per_s']:g} tokens/s per user (star: max users)",
            fontsize=9,
        )
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_deep_pipeline(points: pd.DataFrame, summary: pd.DataFrame, path: str | Path) -> Path:
    """J/token against users, one panel per model, one colour per S: solid = S micro-batches in flight
    (the deep pipeline), dashed = one micro-batch in flight (solved for it); stars mark max users."""
    models = list(dict.fromkeys(summary["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        frame = points[(points["model"] == model) & points["joules_per_token"].notna()]
        for i, (stages, rows) in enumerate(frame.groupby("fixed_stages")):
            color = f"C{i}"
            rows = rows[rows["users"] > 0].sort_values("users")
            deep, one = rows[rows["in_flight"] == 0], rows[rows["in_flight"] == 1]
            ax.plot(
                deep["users"], deep["joules_per_token"], marker="o", ms=3, color=color, label=f"S={stages}"
            )
            ax.plot(one["users"], one["joules_per_token"], marker="x", ms=4, ls="--", color=color)
            s = summary[(summary["model"] == model) & (summary["stages"] == stages)].iloc[0]
            if s["deep_max_users"]:
                ax.plot(s["deep_max_users"], s["deep_joules_per_token"], marker="*", ms=12, color=color)
            if s["one_mb_max_users"]:
                ax.plot(
                    s["one_mb_max_users"],
                    s["one_mb_joules_per_token"],
                    marker="*",
                    ms=10,
                    color=color,
                    mfc="none",
                )
        ax.plot([], [], color="gray", label="S micro-batches")
        ax.plot([], [], color="gray", ls="--", label="1 micro-batch")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent users")
        ax.set_ylabel("J per token")
        first = summary[summary["model"] == model].iloc[0]
        ax.set_title(
            f"{model} on {first['hardware']}"
            + (f" + {first['memory']}" if first["memory"] else "")
            + f"\ncontext {int(first['context']):,}, >= {first['min_tokens_per_s']:g} tokens/s per user (stars: max users)",
            fontsize=9,
        )
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


def _log_edges(centres):
    """Cell edges halfway (in log space) between log-spaced cell centres."""
    import numpy as np

    logs = np.log(np.asarray(centres, float))
    step = np.diff(logs) if len(logs) > 1 else np.array([1.0])
    return np.exp(np.concatenate([[logs[0] - step[0] / 2], logs[:-1] + step / 2, [logs[-1] + step[-1] / 2]]))


def plot_memory_space(space, path: str | Path) -> Path:
    """Heat maps of max users (log colour, exact values printed) over KV-memory capacity x bandwidth per
    die: one row per model and pJ/bit, one column per speed floor. Catalog technologies are marked at
    their per-die figures; the dashed line is the balance line bandwidth = r x capacity / f."""
    import numpy as np
    from matplotlib.colors import LogNorm

    from planner.hardware.catalog import load_hardware_spec

    points, catalog = space.points, space.catalog
    panels = list(dict.fromkeys(zip(points["model"], points["energy_pj_per_bit"])))
    floors = list(dict.fromkeys(points["min_tokens_per_s"]))
    fig, axes = plt.subplots(
        len(panels), len(floors), figsize=(5.2 * len(floors), 4.4 * len(panels)), squeeze=False
    )
    top = max(1, int(points["max_users"].max()))
    norm = LogNorm(vmin=1, vmax=top)
    image = None
    for r, (model, energy) in enumerate(panels):
        for c, floor in enumerate(floors):
            ax = axes[r][c]
            frame = points[
                (points["model"] == model)
                & (points["energy_pj_per_bit"] == energy)
                & (points["min_tokens_per_s"] == floor)
            ]
            wide = frame.pivot_table(
                index="capacity_per_die_gb", columns="bandwidth_per_die_tb_per_s", values="max_users"
            )
            caps, bws = wide.index.to_numpy(float), wide.columns.to_numpy(float)
            values = np.where(wide.to_numpy(float) > 0, wide.to_numpy(float), np.nan)
            image = ax.pcolormesh(
                _log_edges(caps), _log_edges(bws), values.T, norm=norm, cmap="viridis", shading="flat"
            )
            for i, cap in enumerate(caps):
                for j, bw in enumerate(bws):
                    v = wide.iloc[i, j]
                    ax.text(
                        cap,
                        bw,
                        f"{int(v):,}" if v == v else "",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if v == v and v < top**0.5 else "black",
                    )
            fraction = load_hardware_spec(frame["hardware"].iloc[0]).achievable.kv_bandwidth
            line = np.array([caps[0] / 2, caps[-1] * 2])
            ax.plot(line, line * 1e9 * floor / fraction / 1e12, "w--", lw=1, label="balance: B = r C / f")
            for t in catalog.itertuples():
                ax.plot(
                    t.capacity_per_die_gb,
                    t.bandwidth_per_die_tb_per_s,
                    marker="o",
                    ms=5,
                    mfc="red",
                    mec="white",
                    ls="none",
                )
                ax.annotate(
                    t.memory,
                    (t.capacity_per_die_gb, t.bandwidth_per_die_tb_per_s),
                    fontsize=6,
                    color="red",
                    xytext=(3, 3),
                    textcoords="offset points",
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            cat_c, cat_b = catalog["capacity_per_die_gb"], catalog["bandwidth_per_die_tb_per_s"]
            ax.set_xlim(
                min(_log_edges(caps)[0], cat_c.min() / 1.5), max(_log_edges(caps)[-1], cat_c.max() * 1.5)
            )
            ax.set_ylim(
                min(_log_edges(bws)[0], cat_b.min() / 1.5), max(_log_edges(bws)[-1], cat_b.max() * 1.5)
            )
            ax.set_xlabel("KV capacity per die (GB)")
            ax.set_ylabel("KV bandwidth per die (TB/s)")
            ax.set_title(f"{model}, {floor:g} tokens/s/user, {energy:g} pJ/bit: max users", fontsize=9)
            ax.legend(fontsize=6, loc="lower right")
    fig.colorbar(image, ax=axes, shrink=0.8, label="max users (to 1%)")
    return save_figure(fig, path)
