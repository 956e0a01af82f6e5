"""The plan figure (`planner plot`): integer group ticks, legends outside the axes, the cycle line in view,
every category in the legends, and readable chain labels for the shipped sram-pipeline plan."""

from __future__ import annotations

import matplotlib
import pytest

from planner.core.fileio import project_root
from planner.plans.plan import evaluate, load_plan
from planner.problem.problem import resolve
from planner.render.plots import BINDING_COLORS, TIME_KINDS, plan_figure, plot_plan

matplotlib.use("Agg")
PLANS = project_root() / "results"


def _figure(name: str):
    plan = load_plan(PLANS / f"plan_{name}.yaml")
    problem = resolve(plan.instance)
    return plan, problem, evaluate(problem, plan).cost


@pytest.fixture(scope="module")
def deep():
    plan, problem, cost = _figure("llama-3.1-70b_sram-pipeline_novel-kv-dram")
    fig = plan_figure(plan, problem, cost)
    fig.canvas.draw()
    yield fig, cost
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_group_axis_has_integer_ticks(deep):
    fig, cost = deep
    for ax in fig.axes[1:]:
        ticks = ax.get_xticks()
        assert all(float(t).is_integer() and 0 <= t < cost.stages for t in ticks)
        step = -(-cost.stages // 30)  # every group labelled up to 30 groups, every step-th beyond
        assert len(ticks) == len(range(0, cost.stages, step))


def test_legends_sit_outside_the_bars(deep):
    fig, _ = deep
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[1:]:
        legend = ax.get_legend()
        assert legend is not None
        assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1 - 1


def test_cycle_line_is_below_the_top_and_every_category_is_in_a_legend(deep):
    fig, cost = deep
    ax_time = fig.axes[2]
    labels = [t.get_text() for t in ax_time.get_legend().get_texts()]
    assert set(TIME_KINDS) <= set(labels)  # 'overhead' never binds in this plan and is still listed
    cycle = [line for line in ax_time.get_lines() if line.get_label().startswith("cycle")]
    assert len(cycle) == 1 and cycle[0].get_ydata()[0] == pytest.approx(cost.cycle_s * 1e3)
    assert cost.cycle_s * 1e3 < 0.95 * ax_time.get_ylim()[1]
    chain_labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert all(f"binds: {k}" in chain_labels for k in BINDING_COLORS)


def test_chain_labels_do_not_overlap(deep):
    """The group boxes (rows of 14) carry their number and node range; no two labels overlap."""
    fig, cost = deep
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    names = [t.get_text() for t in texts]
    assert [f"G{i}" for i in range(cost.stages)] == [n for n in names if n.startswith("G")]
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlaps = [
        (names[i], names[j])
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]
    assert not overlaps, overlaps[:5]


def test_plot_writes_a_png(tmp_path):
    plan, problem, cost = _figure("llama-3.1-70b_h100-sxm")
    path = plot_plan(plan, problem, cost, tmp_path / "plan.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_log_axis_under_a_decade_still_has_numbered_ticks(tmp_path):
    """results/deep_pipeline.png's Llama panel spans 0.17-0.22 J/token: a log axis there has no major
    tick in view, so before this its y axis carried no number at all. Now the minor ticks at 2, 3 and 5
    x a power of ten are labelled: 0.2 here (and 20,000 / 30,000 on an x axis from 15,000 to 40,000),
    every minor tick on an axis from 0.62 to 0.88 (none of 2, 3, 5 there); a wide axis keeps only its
    decades."""
    import matplotlib.pyplot as plt

    from planner.render.plots import save_figure

    fig, (narrow, wide, high) = plt.subplots(1, 3)
    narrow.loglog([15_000, 40_000], [0.17, 0.22])
    wide.loglog([1, 300], [2, 300])
    high.loglog([1, 300], [0.62, 0.88])  # 0.6 .. 0.9 only: no 2, 3 or 5 in view, so all are labelled
    save_figure(fig, tmp_path / "f.png")  # labels are set while saving; the figure is closed after
    fig.canvas.draw()

    def labels(axis):
        return {t.get_text() for t in axis.get_ticklabels(which="both") if t.get_visible()} - {""}

    assert "0.2" in labels(narrow.yaxis)
    assert {"20,000", "30,000"} <= labels(narrow.xaxis)
    assert {"10", "100"} <= labels(wide.yaxis)
    assert not {"3", "20", "30", "50"} & (labels(wide.xaxis) | labels(wide.yaxis))
    assert {"0.7", "0.8"} <= labels(high.yaxis)
