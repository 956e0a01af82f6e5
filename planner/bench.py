"""Benchmark of the fixed-S placement (planner.milp): time to optimality for every S, real models.

    python -m planner.bench                       # Llama-3.1-8B/70B, DeepSeek-V3 on sram-pipeline+HBM3E, H100
    python -m planner.bench --models deepseek-v3 --hardware sram-pipeline:hbm3e --milp 2,4,8

Per instance (model x hardware) it prints a sample of S with the status, J/token, gap, the lower bound,
the arcs, slice types and slice LPs, the pricing time (slice frontiers by HiGHS) and the search time;
then "all S": every S from 1 to min(nodes, --max-groups) solved to --rel-gap, with the totals.
`--milp` also solves the listed S with the Pyomo MILP of the same path form (build and HiGHS times).
A script that prints figures, not a timed test.
"""

from __future__ import annotations

import argparse
import time

from planner.hardware.catalog import load_hardware
from planner.model.graph import load_model
from planner.placement.search import lower_bound, solve_stages, solve_stages_milp


def _hardware(spec: str) -> tuple[str, str | None]:
    name, _, kv = spec.partition(":")
    return name, kv or None


def _fmt(x: float | None, spec: str = ".6g") -> str:
    return "-" if x is None else format(x, spec)


def bench_instance(
    model_name: str,
    hw_spec: str,
    users: int,
    context: int,
    rate: float,
    rel_gap: float,
    max_groups: int,
    sample: list[int],
    milp: list[int],
    milp_time_limit: float,
) -> None:
    model = load_model(model_name)
    hw_name, kv = _hardware(hw_spec)
    hw = load_hardware(hw_name, kv_memory=kv)
    graph = model.graph
    n = graph.number_of_nodes()
    top = min(n, max_groups)
    tiers = ", ".join(f"{t.name} {t.capacity_bytes * hw.chips_per_group / 1e9:,.1f} GB" for t in hw.tiers)
    print(f"\n== {model_name} ({n} nodes) on {hw_spec} ({hw.chips_per_group} chips/group: {tiers})")
    print(f"   users={users} context={context} min_tokens_per_s={rate:g} rel_gap={rel_gap:g}")
    head = f"{'S':>4} {'status':>10} {'J/token':>10} {'gap':>8} {'bound LB':>10} {'cycle ms':>9}"
    print(head + f" {'arcs':>6} {'types':>6} {'LPs':>6} {'price s':>8} {'search s':>8}")
    for s in [s for s in sample if s <= n]:
        sol = solve_stages(graph, hw, users, context, rate, s, rel_gap=rel_gap)
        lb = lower_bound(graph, hw, users, context, rate, s)
        stats = dict(part.split(" ", 1)[::-1] for part in sol.message.split(", ")[:3]) if sol.groups else {}
        print(
            f"{s:>4} {sol.status:>10} {_fmt(sol.objective, '.5f'):>10} {_fmt(sol.gap, '.1e'):>8} "
            f"{_fmt(lb, '.5f'):>10} {_fmt(sol.cycle_s and sol.cycle_s * 1e3, '.4f'):>9} "
            f"{stats.get('arcs', '-'):>6} {stats.get('slice types', '-'):>6} {stats.get('slice LPs', '-'):>6} "
            f"{sol.build_s:>8.3f} {sol.solve_s:>8.3f}"
        )
    t0 = time.perf_counter()
    price = search = 0.0
    worst, best, feasible = 0.0, None, 0
    for s in range(1, top + 1):
        sol = solve_stages(graph, hw, users, context, rate, s, rel_gap=rel_gap)
        price, search = price + sol.build_s, search + sol.solve_s
        if sol.objective is not None:
            feasible += 1
            worst = max(worst, sol.gap or 0.0)
            if best is None or sol.objective < best[1]:
                best = (s, sol.objective)
        elif sol.status != "infeasible":
            print(f"   S={s}: {sol.status} {sol.message}")
    wall = time.perf_counter() - t0
    if top < 1:
        best = None
    best_txt = "none feasible" if best is None else f"best S={best[0]} at {best[1]:.5f} J/token"
    print(
        "   all S skipped (--max-groups 0)"
        if top < 1
        else f"   all S 1..{top}: {wall:.1f} s wall (pricing {price:.1f} s, search {search:.2f} s), "
        f"{feasible} feasible, worst gap {worst:.1e}, {best_txt}"
    )
    for s in [s for s in milp if s <= n]:
        ref = solve_stages(graph, hw, users, context, rate, s, rel_gap=rel_gap)
        sol = solve_stages_milp(
            graph, hw, users, context, rate, s, time_limit=milp_time_limit, rel_gap=rel_gap
        )
        print(
            f"   Pyomo MILP S={s}: {sol.status}, J/token {_fmt(sol.objective, '.5f')} (search: "
            f"{_fmt(ref.objective, '.5f')}), gap {_fmt(sol.gap, '.1e')}, build {sol.build_s:.2f} s "
            f"(incl. pricing), HiGHS {sol.solve_s:.2f} s; {sol.message}"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m planner.bench", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="llama-3.1-8b,llama-3.1-70b,deepseek-v3")
    p.add_argument("--hardware", default="sram-pipeline:hbm3e,h100-sxm", help="NAME[:KV_MEMORY],...")
    p.add_argument("--users", type=int, default=1024)
    p.add_argument("--context", type=int, default=4096)
    p.add_argument("--rate", type=float, default=20.0, help="min tokens/s per user")
    p.add_argument("--rel-gap", type=float, default=1e-3)
    p.add_argument("--max-groups", type=int, default=128, help="largest S of the all-S run (0: skip it)")
    p.add_argument("--sample", default="1,2,4,8,16,32,64,124")
    p.add_argument("--milp", default="", help="S values to also solve with the Pyomo MILP, e.g. 2,4,8")
    p.add_argument("--milp-time-limit", type=float, default=30.0)
    a = p.parse_args(argv)
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    for model_name in a.models.split(","):
        for hw_spec in a.hardware.split(","):
            bench_instance(
                model_name,
                hw_spec,
                a.users,
                a.context,
                a.rate,
                a.rel_gap,
                a.max_groups,
                ints(a.sample),
                ints(a.milp),
                a.milp_time_limit,
            )


if __name__ == "__main__":
    main()
