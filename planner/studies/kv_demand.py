"""KV bandwidth demand per byte of KV stored against each technology's bandwidth / capacity."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from planner.core.errors import PlannerInputError
from planner.hardware.catalog import load_memory_tech, memory_tech_names
from planner.render.markdown import markdown_table, require_columns, write_markdown


def memory_ratios() -> pd.DataFrame:
    """Per memory technology (instances/memory): bandwidth / capacity per device (1/s) and its parts."""
    rows = []
    for name in memory_tech_names():
        t = load_memory_tech(name)
        rows.append(
            {
                "memory": name,
                "kind": t.kind,
                "capacity_gb_per_device": t.capacity_per_device / 1e9,
                "bandwidth_gb_per_s_per_device": t.bandwidth_per_device / 1e9,
                "capacity_gb_per_die": t.capacity_per_die / 1e9,
                "bandwidth_gb_per_s_per_die": t.bandwidth_per_die / 1e9,
                "bw_per_capacity_per_s": t.bandwidth_per_device / t.capacity_per_device,
                "pj_per_bit": t.energy,
            }
        )
    return pd.DataFrame(rows).sort_values("bw_per_capacity_per_s", ascending=False, ignore_index=True)


# ---------------------------------------------------------------------------------------------- KV demand


KV_SOURCES = ("results/memory_comparison.csv", "results/deep_pipeline.csv")
KV_COLUMNS = ("model", "memory", "users", "stages", "tokens_per_s_per_user", "kv_demand_per_s", "kv_tier")


def kv_demand(tables: Sequence[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per feasible plan of the given sweep tables: KV demand per byte stored against the bandwidth /
    capacity ratio of the tier holding it. Returns (plans, technologies)."""
    if not tables:
        raise PlannerInputError(
            "--from", ["no table given; name sweep tables (CSV or Parquet), separated by commas"]
        )
    frames = []
    for path in tables:
        path = Path(path)
        if not path.is_file():
            raise PlannerInputError(str(path), ["no such table; run the study that writes it first"])
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        require_columns(frame, KV_COLUMNS, str(path))
        frames.append(frame[frame["joules_per_token"].notna()].assign(source=path.stem))
    plans = pd.concat(frames, ignore_index=True).drop_duplicates(subset=["source", *KV_KEYS], keep="first")
    techs = memory_ratios()
    ratio = dict(zip(techs["memory"], techs["bw_per_capacity_per_s"]))
    plans["tech_bw_per_capacity_per_s"] = plans["kv_tier"].map(ratio)
    plans["demand_over_ratio"] = plans["kv_demand_per_s"] / plans["tech_bw_per_capacity_per_s"]
    plans["kv_limited_by"] = [
        "bandwidth" if x > 1 else "capacity" for x in plans["demand_over_ratio"].fillna(0)
    ]
    return plans.reset_index(drop=True), techs


KV_KEYS = ("model", "hardware", "memory", "fixed_stages", "users", "context", "min_tokens_per_s")


def kv_demand_markdown(plans: pd.DataFrame, techs: pd.DataFrame, command: str) -> str:
    """results/kv_demand.md: the technologies' bandwidth/capacity, each plan's demand, the verdict."""
    techs = techs.copy()
    tech_columns = [
        ("memory", "memory"),
        ("kind", "kind"),
        ("capacity_gb_per_die", "GB per die"),
        ("bandwidth_gb_per_s_per_die", "GB/s per die"),
        ("bw_per_capacity_per_s", "bandwidth/capacity (1/s)"),
        ("pj_per_bit", "pJ/bit"),
    ]
    for r in sorted(plans["min_tokens_per_s"].unique()):
        ratio = techs["bw_per_capacity_per_s"] / r
        techs[f"limit_{r:g}"] = ["capacity" if x > 1 else "bandwidth" for x in ratio]
        techs[f"usable_{r:g}"] = [f"{min(1.0, x):.0%}" for x in ratio]
        tech_columns += [
            (f"limit_{r:g}", f"KV at {r:g} tok/s limited by"),
            (f"usable_{r:g}", f"usable for KV at {r:g}"),
        ]
    lines = [
        "# KV bandwidth demand per byte of KV stored",
        "",
        f"Regenerate: `{command}` (reads the tables of `planner compare` and `planner study deep-pipeline`).",
        "",
        "A decode step reads every user's whole KV cache once per token, so a plan's KV traffic per byte "
        "of KV stored (bytes/s per byte = 1/s) is about its per-user token rate (plus the new token's "
        "write). A technology whose bandwidth/capacity ratio is above that demand fills up before its "
        "bandwidth is used: it is **capacity-limited** for KV; below it, the bandwidth runs out first "
        "(**bandwidth-limited**), and capacity is wasted. Ratios per device from instances/memory/*.yaml "
        "(datasheet peaks; the hardware's achievable fraction lowers usable bandwidth by ~10%).",
        "",
        "## Technologies",
        "",
        "At a per-user floor of r tokens/s the KV demand is r (1 + 1/L) per second per byte stored. "
        "`usable for KV at r` is the share of a technology's capacity its bandwidth can serve at that "
        "rate, min(1, bandwidth/capacity / r), with KV alone in the tier.",
        "",
        markdown_table(techs, tech_columns),
        "",
        "## Plans",
        "",
        "Demand per byte: KV bytes moved per second / KV bytes stored, over the plan. `fill` and `bw use`: "
        "the KV tier's capacity filled and bandwidth used by the plan (weights and KV together).",
    ]
    columns = [
        ("model", "model"),
        ("memory", "KV memory"),
        ("users", "users"),
        ("stages", "S"),
        ("tokens_per_s_per_user", "tok/s/user"),
        ("kv_tier", "KV tier"),
        ("kv_demand_per_s", "KV demand (1/s)"),
        ("tech_bw_per_capacity_per_s", "tier bw/cap (1/s)"),
        ("kv_tier_fill", "fill"),
        ("kv_tier_bw_use", "bw use"),
        ("kv_limited_by", "KV limited by"),
    ]
    for source, frame in plans.groupby("source", sort=False):
        lines += ["", f"### {source}", "", markdown_table(frame, columns)]
    summary = plans.groupby("kv_tier").agg(
        plans=("kv_demand_per_s", "size"),
        demand_min=("kv_demand_per_s", "min"),
        demand_max=("kv_demand_per_s", "max"),
        ratio=("tech_bw_per_capacity_per_s", "first"),
        bandwidth_limited=("kv_limited_by", lambda s: int((s == "bandwidth").sum())),
    )
    lines += [
        "",
        "## Summary by KV tier",
        "",
        markdown_table(
            summary.reset_index(),
            [
                ("kv_tier", "KV tier"),
                ("plans", "plans"),
                ("demand_min", "demand min (1/s)"),
                ("demand_max", "demand max (1/s)"),
                ("ratio", "bw/cap (1/s)"),
                ("bandwidth_limited", "bandwidth-limited plans"),
            ],
        ),
    ]
    return "\n".join(lines)


def write_kv_demand(tables: Sequence[str | Path], out: str | Path, command: str) -> Path:
    plans, techs = kv_demand(tables)
    return write_markdown(Path(out) / "kv_demand.md", kv_demand_markdown(plans, techs, command))
