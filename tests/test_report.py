"""The interactive HTML reports (`planner report PLAN`, `planner compare --report`): one self-contained
file, opened in a real headless browser (Debian's chromium driven by playwright; scripts/test.sh installs
it), which must load with no console error and no network request and show the plan's groups and figures.
Where no browser can be installed the browser tests skip and say so; the content tests run anyway."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from planner.core.fileio import project_root
from planner.plans.plan import evaluate, figures, load_plan
from planner.problem.problem import resolve
from planner.render.report import comparison_report_html, plan_report_html
from planner.studies.compare import Comparison

DEEP = project_root() / "results" / "plan_llama-3.1-70b_sram-pipeline_novel-kv-dram.yaml"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _plan_parts(path: Path = DEEP):
    plan = load_plan(path)
    problem = resolve(plan.instance)
    return plan, problem, figures(evaluate(problem, plan).cost)


def _comparison() -> Comparison:
    """A two-memory comparison shaped like planner.studies.compare's output (figures from results/)."""
    keys = dict(model="llama-3.1-70b", hardware="sram-pipeline", context=4096, min_tokens_per_s=20.0)
    points = pd.DataFrame(
        [
            {
                **keys,
                "memory": m,
                "users": u,
                "joules_per_token": j,
                "stages": s,
                "chips": 8 * s,
                "power_w": w,
                "point": "users",
            }
            for m, u, j, s, w in [
                ("hbm4", 256, 0.30, 10, 9_000.0),
                ("hbm4", 4096, 0.13, 60, 40_000.0),
                ("novel-kv-dram", 256, 0.21, 10, 8_000.0),
                ("novel-kv-dram", 4096, 0.11, 40, 30_000.0),
            ]
        ]
    )
    maxima = pd.DataFrame(
        [
            {
                **keys,
                "memory": "hbm4",
                "users": 68_684,
                "max_users": 68_684,
                "joules_per_token": 0.115,
                "binding": "capacity (contiguous split)",
                "stages": 120,
                "chips": 960,
                "power_w": 90_000.0,
                "point": "max users",
            },
            {
                **keys,
                "memory": "novel-kv-dram",
                "users": 7_649,
                "max_users": 7_649,
                "joules_per_token": 0.104,
                "binding": "capacity (contiguous split)",
                "stages": 60,
                "chips": 480,
                "power_w": 50_000.0,
                "point": "max users",
            },
        ]
    )
    return Comparison(points=points, maxima=maxima)


# ------------------------------------------------------------------------------------ content


def test_plan_report_is_self_contained_and_reads_new_figures():
    """plotly.js inline (no <script src>); power per chip against TDP and busy time per unit appear when
    the plan's figures carry power_w_per_chip / busy_ms_by_unit (the placement-core and chip-group issues
    add them), and a note says so when they are missing."""
    plan, problem, data = _plan_parts()
    page = plan_report_html(plan, problem, data, tdp_w=400)
    tags = re.findall(r"<script[^>]*>", page)
    assert tags and not any("src=" in t for t in tags)  # every script inline (the browser test: no request)
    assert "Plotly.newPlot" in page and "plotly.js v" in page[:20_000]
    groups = len(
        plan.groups
    )  # the shipped plan's (results/plan_llama-3.1-70b_sram-pipeline_novel-kv-dram.yaml)
    assert f'data-groups="{groups}"' in page and f"Pipeline: {groups} chip groups" in page
    assert all("power_w_per_chip" in g and "busy_ms_by_unit" in g for g in data["groups"])
    assert 'id="power"' in page and "TDP 400 W" in page
    assert 'id="units"' in page and "attention" in page
    older = dict(data)  # a plan written before power and units were reported
    older["groups"] = [
        {k: v for k, v in g.items() if k not in ("power_w_per_chip", "busy_ms_by_unit")}
        for g in data["groups"]
    ]
    page = plan_report_html(plan, problem, older, tdp_w=400)
    assert 'id="power"' not in page and "no per-group <code>power_w_per_chip</code>" in page


def test_report_command_writes_one_html_file(cli, tmp_path):
    out = tmp_path / "plan.html"
    result = cli(["report", DEEP, "--out", out])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1_000_000  # plotly.js is inside
    assert cli(["report", DEEP, "--out", tmp_path / "plan.png"]).exit_code == 2


# ------------------------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip(
            "no chromium: scripts/test.sh installs Debian's chromium (apt-get install chromium); it failed here"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: pip install -e .[test]")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


def _open(browser, path: Path):
    """Open a file in a new page; return (page, console errors, requests that left the file)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None,
    )
    page.goto(path.as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=20_000)
    return page, errors, outside


def test_plan_report_in_a_browser(browser, tmp_path):
    """The page loads with no console error and no network request; it shows the plan's groups and its
    J/token (read from results/plan_llama-3.1-70b_sram-pipeline_novel-kv-dram.yaml), and hovering group 3
    shows that group's nodes."""
    plan, problem, data = _plan_parts()
    path = tmp_path / "plan.html"
    path.write_text(plan_report_html(plan, problem, data, tdp_w=400), encoding="utf-8")
    page, errors, outside = _open(browser, path)
    assert not errors, errors
    assert not outside, outside
    groups = len(plan.groups)
    assert page.get_attribute("body", "data-groups") == str(groups)
    assert f"{data['joules_per_token']:.4g}" in page.inner_text("table.facts")
    assert page.locator(".plotly-graph-div").count() >= 5
    traces = page.evaluate("document.getElementById('pipeline').data.map(t => [t.name, t.x.length])")
    assert traces == [[k, groups] for k in ("weights", "kv", "compute", "links", "overhead")]
    first, last = data["groups"][3]["first_node"], data["groups"][3]["last_node"]
    page.evaluate("Plotly.Fx.hover('pipeline', [{curveNumber: 2, pointNumber: 3}])")
    hover = page.text_content("#pipeline .hoverlayer")
    assert "group 3" in hover and first in hover and last in hover
    page.close()


def test_comparison_report_in_a_browser(browser, tmp_path):
    path = tmp_path / "compare.html"
    path.write_text(comparison_report_html(_comparison(), "planner compare ..."), encoding="utf-8")
    page, errors, outside = _open(browser, path)
    assert not errors and not outside, (errors, outside)
    assert page.get_attribute("body", "data-memories") == "2"
    text = page.inner_text("body")
    assert "68,684" in text and "7,649" in text
    names = page.evaluate("document.getElementById('pareto-llama-3.1-70b').data.map(t => t.name)")
    assert names == ["hbm4", "novel-kv-dram", "Pareto front"]
    page.close()


def test_compare_report_flag_writes_the_comparison_report(cli, monkeypatch, tmp_path):
    """`planner compare ... --report FILE.html` writes the comparison report (the study itself replaced by
    a fixed Comparison so that this test solves nothing)."""
    import planner.api

    monkeypatch.setattr(planner.api, "compare", lambda *args, **kwargs: _comparison())
    out = tmp_path / "compare.html"
    args = ["compare", "--model", "llama-3.1-70b", "--hardware", "sram-pipeline", "--users", "256"]
    result = cli([*args, "--context", "4K", "--min-tokens-per-s", "20", "--report", out, "-q"])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert 'data-report="comparison"' in page and "68,684" in page


def _deep_pipeline():
    """Two S of a deep-pipeline study (figures from results/deep_pipeline.md, Llama-3.1-70B)."""
    from planner.studies.deep_pipeline import DeepPipeline

    points = pd.DataFrame(
        [
            {"model": "llama-3.1-70b", "fixed_stages": s, "in_flight": f, "users": u, "joules_per_token": j}
            for s, f, u, j in [
                (8, 0, 256, 0.2),
                (8, 0, 4096, 0.15),
                (8, 1, 256, 0.4),
                (120, 0, 4096, 0.2),
                (120, 0, 60_649, 0.24),
                (120, 1, 576, 3.43),
            ]
        ]
    )
    summary = pd.DataFrame(
        [
            {
                "model": "llama-3.1-70b",
                "stages": 120,
                "deep_max_users": 60_649,
                "one_mb_max_users": 576,
                "users_ratio": 105.3,
            },
            {
                "model": "llama-3.1-70b",
                "stages": 8,
                "deep_max_users": 5_000,
                "one_mb_max_users": 700,
                "users_ratio": 7.1,
            },
        ]
    )
    return DeepPipeline(points=points, summary=summary)


def test_deep_pipeline_report_in_a_browser(browser, tmp_path):
    from planner.render.report import deep_pipeline_report_html

    path = tmp_path / "deep.html"
    path.write_text(
        deep_pipeline_report_html(_deep_pipeline(), "planner study deep-pipeline"), encoding="utf-8"
    )
    page, errors, outside = _open(browser, path)
    assert not errors and not outside, (errors, outside)
    assert "60,649" in page.inner_text("body") and "105x" in page.inner_text("body")
    names = page.evaluate("document.querySelector('.plotly-graph-div').data.map(t => t.name)")
    assert names == [
        "S=8, S micro-batches",
        "S=8, 1 micro-batch",
        "S=120, S micro-batches",
        "S=120, 1 micro-batch",
    ]
    page.close()
