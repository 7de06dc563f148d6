"""Generation methods compared in one run (ablation.methods): plan-time errors naming the method, the results
table's rows and make times, the methods table, and on a copy of the tiny run a method's own jobs, set and rows
(its images differ from the run's; a method without overrides makes the run's own images; editing one method reruns
only its jobs; the run's own jobs are never rerun). The plan's counts are in tests/test_plan.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CONFIG, deep_update, eval_record, job_counts, run_snakemake

from gendistill.config import ConfigError
from gendistill.plan import build_plan

PROTOTYPES = {"name": "proto", "generation": {"init": "prototypes", "strength": 0.5, "steps": 4}}


def problems_of(*methods, **patch) -> str:
    cfg = deep_update(TINY_CONFIG, {"ablation": {"methods": list(methods)}, **patch})
    with pytest.raises(ConfigError) as e:
        build_plan(cfg)
    return str(e.value)


# --- plan-time errors, before any job -----------------------------------------------------------------------


def test_bad_method_names_are_refused():
    msg = problems_of({"name": "a b"}, {"name": "x"}, {"name": "x"}, {"name": "distilled"})
    assert "ablation.methods[0].name: 'a b' is not a method name" in msg and "Fix: letters, digits" in msg
    assert "ablation.methods[2].name: 'x' is the name of another method too" in msg
    assert "ablation.methods[3].name: 'distilled' is the name of one of the run's own sets" in msg


def test_keys_a_method_cannot_set_are_refused_with_the_allowed_ones():
    msg = problems_of({"name": "m", "generation": {"n_generated": 4, "stength": 0.3}, "selection": {"band": 1}})
    assert "ablation.methods 'm': generation.n_generated is not a key a method sets" in msg
    assert "generation.stength is not a key a method sets (did you mean strength?" in msg
    assert "Fix: one of init, strength, steps, guidance_scale, real_guidance" in msg
    assert "ablation.methods 'm': selection.band is not a key a method sets" in msg
    msg = problems_of({"name": "m", "colour": "red"})  # the schema's own check of a method's keys
    assert "ablation.methods.0.colour: unknown key" in msg


def test_each_methods_keys_get_the_runs_checks_naming_the_method():
    msg = problems_of(
        {"name": "big", "generation": {"init": "prototypes", "strength": 1.5, "steps": 4}},
        {"name": "few", "generation": {"init": "prototypes", "strength": 0.3, "steps": 3}},
        {"name": "one", "generation": {"real_guidance": {"weight": 0.3}}},
        {"name": "waste", "selection": {"oversample": 3}},
    )
    assert "ablation.methods 'big': generation.strength: 1.5 is greater than the maximum of 1" in msg
    assert "ablation.methods 'few': generation.strength 0.3 x steps 3 < 1" in msg and "steps >= 4" in msg
    assert "ablation.methods 'one': generation.real_guidance guides multi-step sampling" in msg
    assert "ablation.methods 'waste': selection.oversample is 3 but selection.criterion is none" in msg


def test_a_family_without_img2img_and_a_run_without_evaluation_are_refused():
    msg = problems_of(PROTOTYPES, model={"tiny": {"family": "pixart"}})
    assert "ablation.methods 'proto': generation.init: prototypes needs an img2img pipeline" in msg
    msg = problems_of(PROTOTYPES, evaluation={"activate": False})
    assert "ablation.methods: each method's set is evaluated like the distilled set" in msg
    assert "Fix: enable evaluation" in msg


def test_the_runs_own_problem_is_reported_once_as_the_runs():
    msg = problems_of({"name": "m", "generation": {"steps": 4}}, generation={"init": "prototypes", "strength": 0.5})
    assert "  - generation.strength 0.5 x steps 1 < 1" in msg and "ablation.methods 'm'" not in msg


def test_a_method_reading_real_data_needs_a_dataset_with_it():
    no_data = {"name": "classlist", "class_names": ["cat", "dog"], "classes": None}
    msg = problems_of(PROTOTYPES, dataset=no_data)
    assert "ablation.methods 'proto': generation.init: prototypes starts from" in msg


# --- the results table and the methods table ------------------------------------------------------------------


def test_method_rows_are_ordered_scored_and_timed(tmp_path):
    from gendistill.evaluation.table import write_tables
    from gendistill.report.runtimes import wall_seconds

    accs = {
        "random_subset": [0.80, 0.82, 0.84],
        "distilled": [0.70, 0.71, 0.72],
        "method:b": [0.86, 0.88, 0.87],
        "method:a": [0.75, 0.74, 0.73],
        "full": [0.95] * 3,
    }
    paths = []
    for s, v in accs.items():
        for i, a in enumerate(v):
            paths.append(tmp_path / f"{s}-{i}.json")
            paths[-1].write_text(json.dumps(eval_record(s, i, a)))
    for name, secs in (("x", 2.5), ("y", 4.0)):
        (tmp_path / f"{name}.tsv").write_text(f"s\th:m:s\tmax_rss\n{secs}\t0:00:02\t100\n")
    bench = [str(tmp_path / "x.tsv"), str(tmp_path / "y.tsv")]
    assert wall_seconds(bench) == 6.5 and math.isnan(wall_seconds([*bench, str(tmp_path / "none.tsv")]))
    out = tmp_path / "out"
    making = {"distilled": 1.0, "method:b": wall_seconds(bench)}
    s = write_tables([str(p) for p in paths], str(out / "r.csv"), str(out / "s.csv"), protocol="p", making=making)
    # the methods right after the distilled set, in the order they come
    assert list(s["set"]) == ["distilled", "method:b", "method:a", "random_subset", "full"]
    s = s.set_index("set")
    assert s.loc["method:b", "minus_random_subset_points"] == pytest.approx(5.0, abs=0.01)
    assert s.loc["method:b", "vs_random"] == "higher" and s.loc["method:a", "vs_random"] == "lower"
    assert s.loc["method:b", "hlr"] == pytest.approx(0.95 - 0.87, abs=1e-3) and np.isfinite(s.loc["method:a", "lrs"])
    assert s.loc["method:b", "make_wall_seconds"] == 6.5 and s.loc["distilled", "make_wall_seconds"] == 1.0
    assert math.isnan(s.loc["method:a", "make_wall_seconds"])
    assert math.isnan(s.loc["random_subset", "make_wall_seconds"])
    # the report: the plot's bars (methods after the distilled set) and the table's make-time column
    from gendistill.evaluation.table import display_frame
    from gendistill.report.plots import _runs, accuracy_plot

    summary = pd.read_csv(out / "s.csv")
    assert [r[0] for r in _runs(summary)] == ["distilled", "method:b", "method:a", "random_subset", "full"]
    accuracy_plot(summary, str(out / "accuracy.png"))
    assert (out / "accuracy.png").stat().st_size > 0
    assert display_frame(summary)["made in (s)"].tolist() == ["1", "6", "", "", ""]


def test_the_methods_table_of_a_run(tmp_path):
    from gendistill.evaluation.table import write_tables
    from gendistill.report.summary import main, methods_text

    run = tmp_path / "demo-methods-ipc10"
    res = run / "results"
    paths = []
    for s, v in {"distilled": [0.7, 0.72], "method:proto_s0.1": [0.9, 0.92], "random_subset": [0.8, 0.83]}.items():
        for i, a in enumerate(v):
            paths.append(tmp_path / f"{s}-{i}.json")
            paths[-1].write_text(json.dumps(eval_record(s, i, a)))
    write_tables([str(p) for p in paths], str(res / "results.csv"), str(res / "summary.csv"), making={"distilled": 12})
    fid = pd.DataFrame(
        [
            {
                "set": "distilled",
                "precision": 0.5,
                "recall": 0.6,
                "density": 0.7,
                "coverage": 0.4,
                "frechet_distance": 90,
            },
            {"set": "method:proto_s0.1", "precision": 0.9, "recall": 0.8, "density": 1.1, "coverage": 0.7},
        ]
    )
    fid.assign(frechet_distance=[90.0, 30.25]).to_csv(res / "fidelity.csv", index=False)
    text = methods_text([run])
    lines = text.splitlines()
    assert lines[0].startswith("demo-methods-ipc10: test accuracy over 2 training seeds")
    row = next(line for line in lines if line.startswith("proto_s0.1"))
    assert "91.0" in row and "+9.5" in row and "0.900" in row and "30.2" in row
    assert next(line for line in lines if line.startswith("distilled (the run's own)")).rstrip().endswith("12")
    md = methods_text([run], markdown=True).splitlines()
    assert md[1].startswith("| set | labels | accuracy (%) [95% CI]") and md[2].startswith("|---|")
    assert main(["--methods", "--markdown", str(run)]) == 0 and main(["--methods"]) == 2


# --- the workflow ------------------------------------------------------------------------------------------------

# On the tiny run (hard labels, no teacher): a method the same as the run (no key overridden), and one that samples
# 2 steps instead of 1 (no prototypes: the cheapest change of pixels)
SAME, STEPS = {"name": "same"}, {"name": "steps2", "generation": {"steps": 2}}


def test_methods_in_the_workflow_share_the_runs_jobs_and_rerun_alone(tiny_run, tmp_path):
    from test_workflow import copy_run

    from gendistill.distilled.package import load_distilled

    wd = copy_run(tiny_run, tmp_path / "run")
    out = wd / "results" / "t"
    cfg = deep_update(TINY_CONFIG, {"ablation": {"methods": [SAME, STEPS]}})
    summary = ("results/t/results/summary.csv",)
    counts = job_counts(run_snakemake(wd, cfg, "--dag", targets=summary).stdout)
    # each method's own jobs; none of the run's (its sample, package, evaluation are cached)
    assert counts == {
        "ablation/methods/same/sample": 3,
        "ablation/methods/steps2/sample": 3,
        "methods_package": 2,
        "ablation/methods/same/evaluate": 1,
        "ablation/methods/steps2/evaluate": 1,
        "results_table": 1,
    }, counts
    run_snakemake(wd, cfg, targets=summary)
    own = load_distilled(str(out / "dataset" / "distilled.pt"))
    same = load_distilled(str(out / "ablation" / "methods" / "same" / "set.pt"))
    steps = load_distilled(str(out / "ablation" / "methods" / "steps2" / "set.pt"))
    # made like the run's own set: without overrides, its very images (sampled in its scope, augmented, packaged)
    assert torch_equal(same["images_uint8"], own["images_uint8"]) and same["labels"].tolist() == own["labels"].tolist()
    assert not torch_equal(steps["images_uint8"], own["images_uint8"])  # 2 steps: other pixels
    assert steps["provenance"]["ablation_variant"]["generation"]["steps"] == 2
    records = json.loads(
        (out / "ablation" / "methods" / "steps2" / "generated" / "000_zero" / "records.json").read_text()
    )
    assert records["meta"]["generation"]["steps"] == 2
    # their rows, with their own evaluations' numbers and the time their jobs took
    s = pd.read_csv(out / "results" / "summary.csv").set_index("set")
    assert list(s.index) == ["distilled", "method:same", "method:steps2"]
    for name in ("same", "steps2"):
        m = json.loads(
            (out / "ablation" / "methods" / name / "eval" / "distilled" / "convnet" / "seed0.json").read_text()
        )
        assert m["set"] == f"method:{name}" and s.loc[f"method:{name}", "accuracy_mean"] == m["accuracy"]
        assert s.loc[f"method:{name}", "make_wall_seconds"] > 0
    assert s.loc["distilled", "make_wall_seconds"] > 0
    # editing one method reruns its jobs only
    edited = deep_update(cfg, {"ablation": {"methods": [SAME, {"name": "steps2", "generation": {"steps": 3}}]}})
    counts = job_counts(run_snakemake(wd, edited, "--dag", targets=summary).stdout)
    assert counts == {
        "ablation/methods/steps2/sample": 3,
        "methods_package": 1,
        "ablation/methods/steps2/evaluate": 1,
        "results_table": 1,
    }, counts


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())
