"""The Snakemake report builds on a tiny run and renders in a real browser (headless Chromium).

The report is a JavaScript app, so the test injects tests/report_walkthrough.js into a copy of it: the script
clicks through the rendered menu like a reader (category -> subcategory -> each result's view button), and
`chromium --dump-dom` returns what it saw. Chromium missing is a FAILURE with the fix
(`bash tests/ensure_chromium.sh`), unless GENDISTILL_SKIP_BROWSER=1.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FITTED_CONFIG, REPO, TINY_CONFIG, deep_update, run_snakemake

pytestmark = pytest.mark.workflow

WALKTHROUGH = Path(__file__).with_name("report_walkthrough.js")
ERRORS_HOOK = (
    "<script>window.__gdErrors=[];window.addEventListener('error',"
    "e=>window.__gdErrors.push(String(e.message)));</script>"
)


def chromium() -> str | None:
    if os.environ.get("GENDISTILL_SKIP_BROWSER") == "1":
        pytest.skip("GENDISTILL_SKIP_BROWSER=1: browser rendering not checked")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail(
            "headless Chromium is needed to check that the report renders: run `bash tests/ensure_chromium.sh`"
            " (as root: apt-get update && apt-get install -y chromium), or set GENDISTILL_SKIP_BROWSER=1 "
            "to skip this check.",
            pytrace=False,
        )
    return exe


def build_report(wd: Path, config: dict) -> Path:
    out = wd / "report.html"
    run_snakemake(wd, config, "--report", str(out))
    assert out.stat().st_size > 0
    return out


def render(report: Path, tmp_path: Path) -> dict:
    """Load the report with the walkthrough injected in headless Chromium; return what the walkthrough saw."""
    exe = chromium()
    page = report.read_text()
    assert page.count("<head>") >= 1 and "</body>" in page
    page = page.replace("<head>", "<head>" + ERRORS_HOOK, 1)
    i = page.rfind("</body>")
    page = page[:i] + "<script>" + WALKTHROUGH.read_text() + "</script>" + page[i:]
    probe = tmp_path / "report_probe.html"
    probe.write_text(page)
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = re.findall(r'<pre id="gendistill-walkthrough"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    assert found, "the walkthrough did not run; chromium stderr:\n" + proc.stderr[-3000:]
    seen = json.loads(html.unescape(found[-1]))
    assert seen["done"] and not seen["errors"], seen
    return seen


def test_report_renders_with_samples_prompts_results_and_runtimes(tiny_run, tmp_path):
    cfg = deep_update(TINY_CONFIG, {"evaluation": {"baselines": {"random_subset": True}}})
    wd = tmp_path / "run"
    shutil.copytree(tiny_run, wd, symlinks=True)
    run_snakemake(wd, cfg)  # only the random-subset evaluation and what depends on it run
    seen = render(build_report(wd, cfg), tmp_path)
    assert {"Workflow", "Evaluation", "Samples", "Prompts", "Run times"} <= set(seen["menu"])
    assert "Generative dataset distillation" in seen["description"] and "SDXL-Turbo" in seen["description"]
    pages = seen["pages"]
    # results table and accuracy plot
    acc = pages["Evaluation/Accuracy"]["views"]
    table = acc["results/t/results/results.html"]["html"]
    assert "Test accuracy (%) per training set and model" in table
    assert "distilled" in table and "random_subset" in table and "ConvNet-D3" in table and "+-" in table
    assert acc["results/t/results/accuracy.png"]["img"][0] > 200
    per_class = pages["Evaluation/Per class"]["views"]
    assert per_class["results/t/results/per_class.png"]["img"][0] > 200
    assert all(n in per_class["results/t/results/per_class.html"]["html"] for n in ("zero", "one", "two"))
    assert set(pages["Evaluation/Data (CSV)"]["rows"]) == {
        f"results/t/results/{n}.csv" for n in ("results", "summary", "per_class")
    }
    # one sample grid per class, each an image that loads; the overview grid
    grids = pages["Samples/Per class"]
    assert grids["rows"] == ["000_zero", "001_one", "002_two"]
    assert all(v["img"][0] > 100 and v["img"][1] > 100 for v in grids["views"].values())
    assert pages["Samples/Overview"]["views"]["results/t/report/samples_overview.png"]["img"][1] > 100
    # prompts and run times
    prompts = pages["Prompts/Other"]["views"]["results/t/report/prompts.html"]["html"]
    assert "a handwritten digit one" in prompts
    runtimes = pages["Run times/Other"]["views"]
    assert all(
        stage in runtimes["results/t/report/runtimes.html"]["html"]
        for stage in ("sample", "augment", "evaluate", "package")
    )
    assert runtimes["results/t/report/runtimes.png"]["img"][0] > 200


def test_report_without_evaluation_has_no_evaluation_items(tiny_run, tmp_path):
    cfg = deep_update(TINY_CONFIG, {"evaluation": {"activate": False}})
    wd = tmp_path / "run"
    shutil.copytree(tiny_run, wd, symlinks=True)
    run_snakemake(wd, cfg)  # only the run-time summary reruns (its inputs changed)
    report = build_report(wd, cfg)
    seen = render(report, tmp_path)
    assert "Evaluation" not in seen["menu"] and {"Samples", "Prompts", "Run times"} <= set(seen["menu"])
    assert seen["pages"]["Samples/Per class"]["rows"] == ["000_zero", "001_one", "002_two"]


def test_report_shows_recognition_and_says_the_generator_is_a_stand_in(fitted_run, tmp_path):
    wd = tmp_path / "run"
    shutil.copytree(fitted_run, wd, symlinks=True)
    seen = render(build_report(wd, FITTED_CONFIG), tmp_path)
    assert "Recognition" in seen["menu"] and "Evaluation" not in seen["menu"]
    assert "stand-in" in seen["description"]
    assert "fitted on the demo dataset's own training split" in seen["description"]
    pages = seen["pages"]
    views = pages["Recognition/Per class"]["views"]
    table = views["results/f/results/recognition.html"]["html"]
    assert "recognised as their prompt's class" in table and "overall" in table and "STAND-IN" in table
    assert all(n in table for n in ("zero", "one", "two", "three", "four"))
    assert views["results/f/results/recognition.png"]["img"][0] > 200
    assert set(pages["Recognition/Data (CSV)"]["rows"]) == {
        "results/f/results/recognition.csv",
        "results/f/results/recognition_images.csv",
    }
    runtimes = pages["Run times/Other"]["views"]["results/f/report/runtimes.html"]["html"]
    assert "fit_model" in runtimes and "recognition" in runtimes


def test_ensure_chromium_script_is_idempotent_when_installed():
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed here; test_report_renders_* fail with the fix")
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "ensure_chromium.sh")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "apt-get" not in proc.stdout
