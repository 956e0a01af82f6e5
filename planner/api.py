"""The Python API for notebooks; the CLI calls these functions and nothing else does the work twice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:  # pandas loads only when a table is asked for
    import pandas as pd

from planner.core.errors import PlannerInputError
from planner.core.fileio import write_text_atomic
from planner.hardware.catalog import Hardware, load_hardware
from planner.model.graph import Model, load_model
from planner.plans.plan import Evaluation, Plan, load_plan
from planner.plans.plan import evaluate as evaluate_plan
from planner.problem.instance import InstanceSpec, load_instance
from planner.problem.problem import Problem, resolve
from planner.studies import calibration as _calibrate
from planner.studies import sol as _sol


def _as_model(model: str | Path | Model, weight_dtype: str, kv_dtype: str) -> Model:
    return model if isinstance(model, Model) else load_model(model, weight_dtype, kv_dtype)


def _as_hardware(hardware: str | Path | Hardware, kv_memory: str | None) -> Hardware:
    return hardware if isinstance(hardware, Hardware) else load_hardware(hardware, kv_memory)


def sol(
    model: str | Path | Model,
    hardware: str | Path | Hardware,
    users: Sequence[int],
    context: int,
    chips: int | None = None,
    kv_memory: str | None = None,
    achievable: bool = False,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
) -> pd.DataFrame:
    """Speed-of-light breakdown per decode token, one row per user count (see planner.sol)."""
    m = _as_model(model, weight_dtype, kv_dtype)
    hw = _as_hardware(hardware, kv_memory)
    return _sol.sol(m, hw, list(users), context, chips=chips, achievable=achievable)


def write_graph(model: Model, path: str | Path) -> Path:
    """GraphML for .graphml, node-link JSON for .json."""
    import json

    path = Path(path)
    if path.suffix == ".graphml":
        return write_text_atomic(path, "\n".join(nx.generate_graphml(model.graph)))
    if path.suffix == ".json":
        data = nx.node_link_data(model.graph, edges="edges")
        return write_text_atomic(path, json.dumps(data, indent=1))
    raise PlannerInputError(str(path), ["--out must end in .graphml or .json"])


def load_problem(instance: str | Path | InstanceSpec, source: str | None = None) -> Problem:
    """An instance file path or spec, with its model and hardware loaded; `source` names it in errors."""
    if isinstance(instance, InstanceSpec):
        return resolve(instance, source=source or "instance")
    return resolve(load_instance(instance), source=source or str(instance))


def solve(instance: str | Path | InstanceSpec, progress=None) -> Plan:
    """Best placement of an instance over all stage counts (see planner.solve). Raises InfeasibleError."""
    from planner.placement.solve import solve_problem  # imports the solver stack (Pyomo) only when solving

    return solve_problem(load_problem(instance), progress)


def evaluate(instance: str | Path | InstanceSpec, plan: str | Path | Plan) -> Evaluation:
    """Recompute every figure of a plan from the instance and the placement alone; list violations."""
    p = plan if isinstance(plan, Plan) else load_plan(plan)
    return evaluate_plan(load_problem(instance), p)


def check_measurements(
    measurements: str | Path | Sequence[str | Path], hardware: str | Path | Hardware
) -> _calibrate.CheckReport:
    """Predict measured decode steps (CSV rows) with `hardware` as it is (see planner.calibrate.check).

    Returns a planner.calibrate.CheckReport: per-row step ms and J/token, measured and predicted."""
    return _calibrate.check(_calibrate.read_measurements(measurements), _as_hardware(hardware, None))


def calibrate(
    microbench: str | Path,
    measurements: str | Path | Sequence[str | Path],
    hardware: str | Path = "h100-sxm",
    out: str | Path | None = None,
    holdout: str = "",
    report: str | Path | None = None,
    progress=None,
) -> _calibrate.Calibration:
    """Fit `hardware`'s achievable fractions and energy coefficients to measured decode steps.

    Writes the calibrated hardware YAML to `out` and, with `report` (FILE.md), the report and FILE.csv.
    Returns a planner.calibrate.Calibration (fit, in-sample, leave-one-out and hold-out checks)."""
    result = _calibrate.calibrate(microbench, measurements, hardware, holdout, progress)
    if out is not None:
        _calibrate.write_hardware(result, out)
    if report is not None:
        paths = measurements if isinstance(measurements, (str, Path)) else ",".join(map(str, measurements))
        command = f"planner calibrate --microbench {microbench} --measurements {paths} --hardware {hardware}"
        command += (f" --out {out}" if out else "") + (f" --holdout {holdout}" if holdout else "")
        command += f" --report {report}"
        report = Path(report)
        write_text_atomic(report, _calibrate.report_markdown(result, command))
        write_text_atomic(report.with_suffix(".csv"), _calibrate.report_csv(result))
    return result


def capacity(instance: str | Path | InstanceSpec, cache: str | Path | None = None, progress=None):
    """Most users an instance (its users ignored) serves at its floor: exact search with the solver as
    oracle (see planner.capacity). Returns a planner.capacity.CapacityResult (.max_users, .summary())."""
    from planner.studies.capacity import max_users

    spec = instance if isinstance(instance, InstanceSpec) else load_instance(instance)
    return max_users(spec, cache=cache, progress=progress)


def size_memory(instance: str | Path | InstanceSpec, like: str = "novel-kv-dram", **options):
    """The smallest KV memory (capacity and bandwidth per die) that serves an instance's users at its
    floor (see planner.studies.memory_design): a MemorySize (.summary() has the --json keys)."""
    from planner.studies.memory_design import size_memory as _size_memory

    spec = instance if isinstance(instance, InstanceSpec) else load_instance(instance)
    return _size_memory(spec, like=like, **options)


def memory_space(
    instances: str | Path | InstanceSpec | Sequence[str | Path | InstanceSpec],
    floors: Sequence[float],
    **options,
):
    """Max users and J/token over a grid of KV-memory capacity x bandwidth per die, per speed floor, for
    each instance (users and floor ignored; `reference_users=N` adds J/token at N users; see
    planner.studies.memory_design): a MemorySpace
    (.points, .catalog, .crossings)."""
    from planner.studies.memory_design import run_memory_space

    many = instances if isinstance(instances, (list, tuple)) else [instances]
    specs = [i if isinstance(i, InstanceSpec) else load_instance(i) for i in many]
    return run_memory_space(specs, list(floors), **options)


def compare(
    models: str | Sequence[str],
    hardware: str,
    memories: Sequence[str],
    users: Sequence[int],
    context: int,
    min_tokens_per_s: float,
    **options,
):
    """KV memory technologies side by side (see planner.studies.compare): a Comparison with `points`
    (model x memory x users rows) and `maxima` (max users per model x memory)."""
    from planner.studies.compare import compare as _compare

    models = [models] if isinstance(models, str) else list(models)
    return _compare(models, hardware, list(memories), list(users), context, min_tokens_per_s, **options)


def sweep(
    spec,
    cache: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress=None,
) -> pd.DataFrame:
    """Run a sweep (a sweep YAML path or planner.sweep.SweepSpec) in parallel, cached per case; one tidy
    table sorted by the case keys (see planner.sweep)."""
    from planner.runs.sweep import sweep as _sweep

    return _sweep(spec, cache=cache, workers=workers, scheduler=scheduler, progress=progress)


# ---------------------------------------------------------------------------------------------- catalog


def list_models() -> list[dict]:
    """The shipped models (graphs/): architecture, parameters, KV bytes per token (bf16), layers and
    sliding-window layers, and where each config comes from (graphs/SOURCES.md)."""
    from planner.model.config import model_sources, shipped_models

    sources = model_sources()
    rows = []
    for name in shipped_models():
        m = load_model(name)
        c = m.config
        rows.append(
            {
                "name": name,
                "model_type": c.model_type,
                "total_params": m.total_params,
                "active_params": m.active_params,
                "kv_bytes_per_token": m.kv_bytes_per_token,
                "layers": c.num_hidden_layers,
                "sliding_window_layers": sum(c.window(i) is not None for i in range(c.num_hidden_layers)),
                "experts": c.experts,
                "source": sources.get(name, ""),
            }
        )
    return rows


def list_hardware() -> list[dict]:
    """The shipped hardware (instances/hardware/): peak FLOP/s, memory per chip (each tier), TDP, group
    size, and the source of each figure (the YAML's `sources`)."""
    from planner.hardware.catalog import hardware_names, load_hardware_spec

    rows = []
    for name in hardware_names():
        spec = load_hardware_spec(name)
        hw = load_hardware(name)
        rows.append(
            {
                "name": name,
                "chip": spec.chip.name,
                "peak_flops_per_s": dict(spec.chip.peak_flops),
                "memory_bytes_per_chip": {t.name: t.capacity_bytes for t in hw.tiers},
                "bandwidth_bytes_per_s_per_chip": {t.name: t.bw_bytes_per_s for t in hw.tiers},
                "tdp_w": spec.chip.tdp,
                "static_power_w": spec.chip.static_power,
                "chips_per_group": spec.chips_per_group,
                "kv_memory_replaceable": spec.kv_memory_tier is not None,
                "sources": {
                    k: v for k, v in spec.sources.items() if k in ("chip.peak_flops", "chip.tdp", "memory")
                },
            }
        )
    return rows


def list_memory() -> list[dict]:
    """The memory technologies (instances/memory/): capacity, bandwidth and energy per device and per
    reticle die (planner.studies.kv_demand.memory_ratios), devices per die, standby W per device and $ per
    GB where sourced (None otherwise), and each figure's source."""
    from planner.hardware.catalog import load_memory_tech, memory_tech_names
    from planner.studies.kv_demand import memory_ratios

    figures = memory_ratios().set_index("memory")
    rows = []
    for name in memory_tech_names():
        t = load_memory_tech(name)
        rows.append(
            {
                "name": name,
                **figures.loc[name].to_dict(),
                "devices_per_reticle_die": t.devices_per_reticle_die,
                "standby_w_per_device": t.standby_power_per_device,
                "cost_per_gb_usd": t.cost_per_gb_usd,
                "sources": dict(t.sources),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------- flat plans


def plan_tables(plan: str | Path | Plan) -> dict[str, pd.DataFrame]:
    """A plan as flat tables (no json_normalize needed): `summary` (one row: the keys of `planner solve
    --json`, nested ones as "joules_per_token_by.weights"), `stages` (one row per S tried: status,
    J/token, bound), `groups` (one row per chip group) and `nodes` (one row per node with its group and
    tier fractions). Every figure is recomputed from the plan's instance and placement."""
    import pandas as pd

    from planner.plans.plan import group_frame, node_frame, plan_problem, summary

    p = plan if isinstance(plan, Plan) else load_plan(plan)
    base = resolve(p.instance)
    result = evaluate_plan(base, p)
    if result.cost is None:
        raise PlannerInputError("plan", result.violations)
    cost, problem = result.cost, plan_problem(base, p)[0]
    facts = {k: v for k, v in summary(p, cost).items() if k != "per_stage_count"}  # that is `stages`
    flat = pd.json_normalize(facts, sep=".")
    stages = pd.DataFrame(
        [{"stages": int(s), **r.model_dump()} for s, r in sorted(p.solver.per_stage.items())],
        columns=["stages", "status", "joules_per_token", "best_bound", "solve_s", "message"],
    )
    return {
        "summary": flat,
        "stages": stages,
        "groups": group_frame(cost, problem),
        "nodes": node_frame(p, problem),
    }


PLAN_TABLE_FILES = ("summary.csv", "stages.csv", "groups.csv", "nodes.csv")  # what write_plan_tables writes


def write_plan_tables(plan: str | Path | Plan, directory: str | Path) -> list[Path]:
    """plan_tables as summary.csv, stages.csv, groups.csv and nodes.csv (PLAN_TABLE_FILES) in `directory`."""
    directory = Path(directory)
    tables = plan_tables(plan)
    return [
        write_text_atomic(directory / name, tables[name.removesuffix(".csv")].to_csv(index=False))
        for name in PLAN_TABLE_FILES
    ]
