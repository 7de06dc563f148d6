"""The fitted stand-in generator (model.fitted), class recognition, negative controls and the PDA ablation.

One session fixture fits a (shorter) stand-in generator through the workflow and runs sampling, augmentation,
packaging and recognition with it; the tests reuse that run. The negative controls prove that labels flow from
prompt to pixels to packaged label to evaluation: (1) the packaged set trains far above chance with its own
labels and to chance (shuffled) or below it (classes renamed) with permuted ones; (2) swapping two classes'
prompts makes exactly those two classes' images unrecognisable as their class.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import (
    ABLATION_CONFIG,
    FIT_SPEC,
    FITTED_CONFIG,
    REPO,
    TINY_RECIPE,
    deep_update,
    job_counts,
    run_snakemake,
)

NAMES = ["zero", "one", "two", "three", "four"]
RECIPE = {**TINY_RECIPE, "epochs": 30, "batch_size": 64}  # the negative controls' training: long enough to learn


def out(wd: Path) -> Path:
    return wd / "results" / "f"


def recognition(wd: Path) -> pd.DataFrame:
    return pd.read_csv(out(wd) / "results" / "recognition.csv", keep_default_na=False, na_values=[""])


def test_fitted_model_is_an_sdxl_turbo_shaped_diffusers_directory_marked_as_stand_in(fitted_run):
    from gendistill.plan import build_plan

    model = fitted_run / build_plan(FITTED_CONFIG).model_dir
    index = json.loads((model / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    assert index["scheduler"] == ["diffusers", "EulerAncestralDiscreteScheduler"]
    sched = json.loads((model / "scheduler" / "scheduler_config.json").read_text())
    assert sched["timestep_spacing"] == "trailing" and sched["prediction_type"] == "v_prediction"
    marker = (model / "FITTED_ON_DEMO_DATA.txt").read_text()
    assert "STAND-IN" in marker and "TRAINING split" in marker and "not a pretrained model" in marker
    report = json.loads((model / "fit_report.json").read_text())
    assert (
        report["spec"]["vae_steps"] == FIT_SPEC["vae_steps"]
        and report["train_images"] == 1257
        and report["classes"] == 10
    )
    assert report["sigma"] == pytest.approx(14.6146, abs=1e-3)
    print(f"\nfit (test spec {FIT_SPEC}): {report['seconds']}")
    prov = json.loads((out(fitted_run) / "dataset" / "provenance.json").read_text())
    assert prov["model_kind"] == "fitted" and prov["random_weights"] is False
    assert prov["fit_report"]["spec"] == report["spec"] and "demo dataset" in prov["model_kind_means"]


def test_generated_images_are_recognised_as_their_prompts_class(fitted_run):
    rec = recognition(fitted_run)
    per_class = rec[rec["class_name"] != "overall"]
    overall = rec[rec["class_name"] == "overall"].iloc[0]
    print(
        "\n"
        + rec[
            ["class_name", "n_images", "recognised_fraction", "diversity_vs_real", "recogniser_test_accuracy"]
        ].to_string(index=False)
    )
    assert list(per_class["class_name"]) == NAMES and set(per_class["n_images"]) == {4}
    assert overall["n_images"] == 20 and overall["recognised_fraction"] >= 0.8
    assert overall["recogniser_test_accuracy"] >= 0.9 and overall["chance"] == pytest.approx(0.2)
    # the same seed gives different images: not one image per class
    assert (per_class["diversity_vs_real"] > 0.1).all()
    images = pd.read_csv(out(fitted_run) / "results" / "recognition_images.csv")
    assert len(images) == 20 and images["recognised"].mean() == overall["recognised_fraction"]


def train_on(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> float:
    """Train the evaluation's ConvNet on (x, y) and return its accuracy on the real test split of the 5 classes."""
    from gendistill.datasets import get_adapter
    from gendistill.evaluation.real import real_split
    from gendistill.evaluation.train import normalise, train_and_test

    adapter = get_adapter({"name": "digits", "root": None, "image_size": None, "split_seed": 0})
    xt, yt = real_split(adapter, "test", list(range(5)))
    res = train_and_test(
        x,
        y,
        normalise(xt, adapter.mean, adapter.std),
        torch.from_numpy(yt),
        10,
        "convnet",
        seed,
        RECIPE,
        label_set=list(range(5)),
    )
    return res["accuracy"]


def test_negative_control_permuted_labels_train_to_chance(fitted_run):
    """The packaged set with its own labels trains far above chance (20 %); with the labels shuffled among its
    images it trains to about chance; with the classes renamed (label c -> c+1) the model predicts the wrong
    name for every class, far below chance. So the accuracy comes from the labels the pipeline attached.

    Shuffled: the mean over 5 seeded permutations. One permutation of 40 labels keeps 17-28 % of them right by
    chance (seeds 0-4), and a set trained on it scores anywhere from 5 % to 46 %: one draw says little."""
    from gendistill.distilled.package import load_distilled

    d = load_distilled(str(out(fitted_run) / "dataset" / "distilled.pt"))
    x, y = d["images"], d["labels"]
    assert y.tolist() == sorted(y.tolist()) and set(y.tolist()) == set(range(5)) and len(y) == 40
    own = train_on(x, y)
    shuffled = [
        train_on(x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]) for seed in range(5)
    ]
    renamed = train_on(x, (y + 1) % 5)
    print(
        f"\naccuracy: own labels {own:.3f}, shuffled {np.mean(shuffled):.3f} (each: "
        f"{', '.join(f'{a:.3f}' for a in shuffled)}), classes renamed {renamed:.3f} (chance 0.2)"
    )
    assert own >= 0.6
    assert np.mean(shuffled) <= 0.35
    assert renamed <= 0.1


def test_negative_control_swapped_prompts_collapse_those_two_classes(fitted_run, tmp_path):
    """Swap the prompts of 'one' and 'two': their images now show the other digit, so their recognition
    collapses (and they are recognised as each other), while the other classes are untouched. Only the two
    classes are resampled and relabelled; the recogniser is reused."""
    wd = tmp_path / "run"
    shutil.copytree(fitted_run, wd, symlinks=True)
    swap = deep_update(
        FITTED_CONFIG,
        {
            "prompts": {
                "overrides": {
                    "one": {"prompt": "a handwritten digit two"},
                    "two": {"prompt": "a handwritten digit one"},
                }
            }
        },
    )
    target = str(Path("results") / "f" / "results" / "recognition.csv")
    counts = job_counts(run_snakemake(wd, swap, "--dag", targets=(target,)).stdout)
    assert counts == {"sample": 2, "recognise": 1}, counts
    run_snakemake(wd, swap, targets=(target,))
    before, after = recognition(fitted_run).set_index("class_name"), recognition(wd).set_index("class_name")
    print("\n" + after[["prompt", "recognised_fraction", "most_common_other"]].to_string())
    for name, other in (("one", "two"), ("two", "one")):
        assert before.loc[name, "recognised_fraction"] >= 0.75
        assert after.loc[name, "recognised_fraction"] <= 0.25, name
        assert after.loc[name, "most_common_other"] == other
    for name in ("zero", "three", "four"):
        assert after.loc[name, "recognised_fraction"] == before.loc[name, "recognised_fraction"]


@pytest.mark.workflow
def test_lint_of_the_fitted_recognition_and_ablation_rules_is_clean(tmp_path):
    """With the fitted model (its fit_model rule), recognition and the ablation active: `--lint` exits 0."""
    cfg = deep_update(FITTED_CONFIG, {"evaluation": {"activate": True}, "ablation": {"pda": True}})
    proc = run_snakemake(tmp_path, cfg, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- fitting: seeded, config errors --------------------------------------------------------------------------


def _weights_digest(model_dir: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(model_dir.rglob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_fit_is_seeded_same_seed_same_weights(tmp_path):
    from gendistill.generator.fit import save_fitted_pipeline

    ds = {"name": "digits", "root": None, "image_size": None, "split_seed": 0}
    spec = {"vae_steps": 3, "unet_steps": 5, "text_steps": 5, "batch_size": 32}
    # 2 threads, as the rule runs it (the backward of indexing is deterministic only on request)
    a = save_fitted_pipeline(tmp_path / "a", {**spec, "seed": 0}, ds, threads=2)
    save_fitted_pipeline(tmp_path / "b", {**spec, "seed": 0}, ds, threads=2)
    save_fitted_pipeline(tmp_path / "c", {**spec, "seed": 1}, ds, threads=2)
    assert _weights_digest(tmp_path / "a") == _weights_digest(tmp_path / "b")
    assert _weights_digest(tmp_path / "a") != _weights_digest(tmp_path / "c")
    assert (tmp_path / "a" / "FITTED_ON_DEMO_DATA.txt").is_file() and a["spec"]["seed"] == 0


def test_fitted_schema_defaults_match_the_code():
    from gendistill.config import load_schema
    from gendistill.generator.fit import FIT_DEFAULTS

    props = load_schema()["properties"]["model"]["properties"]["fitted"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == FIT_DEFAULTS


def test_fitted_model_dir_is_keyed_by_spec_and_data():
    from gendistill.plan import build_plan

    base = build_plan(FITTED_CONFIG)
    assert base.model_kind == "fitted" and base.model_source == base.model_dir
    assert Path(base.model_dir).parent == Path("results") / "models" and "fitted-sdxl-" in base.model_dir
    same = build_plan(
        deep_update(FITTED_CONFIG, {"run": "other", "dataset": {"classes": [3, 4]}, "generation": {"n_generated": 9}})
    )
    assert same.model_dir == base.model_dir  # the generator knows every class; the run's choices don't refit it
    for patch in (
        {"model": {"fitted": {"seed": 1}}},
        {"model": {"fitted": {"unet_steps": 201}}},
        {"dataset": {"split_seed": 1}},
    ):
        assert build_plan(deep_update(FITTED_CONFIG, patch)).model_dir != base.model_dir, patch


def test_the_fit_jobs_params_do_not_follow_the_runs_classes(tmp_path):
    """The same directory must also mean the same fit job: its params (what Snakemake reruns on) are the same for a
    run of 5 classes and one of all 10, so `make demo-methods` after `make demo` does not fit again."""
    from test_envs import _rules_of

    def fit_params(*overlays):
        files = [REPO / "configs" / "demo.yaml"]
        for i, overlay in enumerate(overlays):
            files.append(tmp_path / f"o{i}.yaml")
            files[-1].write_text(json.dumps(overlay))
        (rule,) = [r for r in _rules_of(files) if r.name == "fit_model"]
        return {k: v(None) if callable(v) else v for k, v in rule.params.items()}

    five = fit_params()
    assert json.loads(five["dataset"])["classes"] is None
    assert fit_params({"dataset": {"classes": None}, "run": "all"}) == five
    assert fit_params({"dataset": {"split_seed": 1}}) != five


@pytest.mark.parametrize(
    "patch, expected",
    [
        ({"model": {"tiny": {"seed": 0}}}, "both tiny (random weights) and fitted"),
        (
            {"generation": {"resolution": 64}},
            "generation.resolution: 64, but model.fitted is fitted at the dataset's 32 px",
        ),
        ({"generation": {"steps": 4}, "model": {"fitted": {"denoise_weight": 0}}}, "Fix: generation.steps: 1"),
        ({"generation": {"guidance_scale": 5.0}}, "Fix: guidance_scale: 0"),
        ({"model": {"fitted": {"templates": ["a digit"]}}}, "names no class"),
        ({"model": {"fitted": {"batch_size": 40}}}, "not a multiple of match_group"),
        ({"model": {"fitted": {"vae_stpes": 3}}}, "vae_stpes"),
        ({"model": {"fitted": {"unet_channels": [12, 32]}}}, "Fix: e.g. [16, 32]"),
        (
            {"dataset": {"name": "classlist", "class_names": ["cat", "dog"], "classes": None}},
            "supports dataset.name digits only",
        ),
        ({"ablation": {"pda": True}, "evaluation": {"activate": False}}, "ablation.pda: the PDA ablation"),
    ],
)
def test_fitted_and_ablation_config_errors_name_the_fix(patch, expected):
    from gendistill.plan import ConfigError, build_plan

    with pytest.raises(ConfigError) as e:
        build_plan(deep_update(FITTED_CONFIG, patch))
    assert expected in str(e.value)


# ---- the PDA ablation's plumbing (tiny random-weight model: speed; the demo measures the finding) -------------


def test_pda_ablation_variants_share_images_and_copies_and_reuse_the_runs_evaluation(tiny_run, ablation_run, tmp_path):
    """Planned on a copy of the tiny run with the PDA ablation alone; its outputs are the shared ablation run's
    (conftest.ABLATION_CONFIG: the same variants)."""
    wd = tmp_path / "plan"
    shutil.copytree(tiny_run, wd, symlinks=True)
    counts = job_counts(run_snakemake(wd, ABLATION_CONFIG, "--dag").stdout)
    # a pool of 3 per class; 2 new sets (2 x (1+2) is the run's own set); evaluations: the 2 new sets and real
    # subsets of IPC 3, 4 and 6 (the tiny run has no random-subset evaluation to reuse)
    assert counts["ablation/sample"] == 3 and counts["ablation_package"] == 2 and counts["ablation/evaluate"] == 5
    assert "sample" not in counts and "evaluate" not in counts, counts
    t = ablation_run / "results" / "t"
    for cls in ("000_zero", "001_one", "002_two"):
        for i in (0, 1):  # image i is the same whatever the number generated
            assert (t / "ablation" / "generated" / cls / f"{i:04d}.png").read_bytes() == (
                t / "generated" / cls / f"{i:04d}.png"
            ).read_bytes()
            # ...and so is augmented copy 1 of it
            assert (t / "ablation" / "sets" / "gen2_aug1" / "augmented" / cls / f"{i:04d}_1.png").read_bytes() == (
                t / "augmented" / cls / f"{i:04d}_1.png"
            ).read_bytes()
    table = pd.read_csv(t / "results" / "ablation.csv")
    assert set(table["variant"]) == {"gen2_aug2", "gen2_aug1", "gen3_aug0", "real_ipc3", "real_ipc4", "real_ipc6"}
    row = table.set_index("variant")
    assert bool(row.loc["gen2_aug2", "reused_from_run"]) and not bool(row.loc["gen2_aug1", "reused_from_run"])
    assert list(row.loc[["gen2_aug2", "gen2_aug1", "gen3_aug0"], "n_train"]) == [18, 12, 9]
    assert (row["n_seeds"] == 1).all() and "+-" in row.loc["gen3_aug0", "accuracy"]
    assert np.isfinite(row.loc["gen3_aug0", "minus_real_same_ipc_points"])
    assert (t / "results" / "ablation.png").stat().st_size > 1000
    # in the report, as its own category (the report's rendering is checked in tests/test_report.py)
    wd = tmp_path / "run"
    shutil.copytree(ablation_run, wd, symlinks=True)
    run_snakemake(wd, ABLATION_CONFIG, "--report", str(wd / "report.html"))
    page = (wd / "report.html").read_text()
    assert "Ablation: PDA" in page and "results/t/results/ablation.html" in page and "ablation.png" in page
