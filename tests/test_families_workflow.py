"""Tier 3: every supported pipeline family samples end to end in the workflow, on a tiny random-weight pipeline
of its real component classes; per-class caching and the tiny decoder on a non-SDXL family.

(SDXL, the default family, runs end to end in test_workflow.py.) Each run: 2 digits classes, 2 images each,
32 px, evaluation off, up to the packaged dataset.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import built_once, deep_update, job_counts, run_snakemake

from gendistill.families import FAMILIES
from gendistill.families.tiny import TINY_DEFAULTS

pytestmark = pytest.mark.workflow

FAMILY_RUN = {
    "run": "f",
    "seed": 0,
    "dataset": {"name": "digits", "classes": [0, 1]},
    "prompts": {"template": "{name}"},  # the digit's name: a text prompt, and a label of the tiny DiT
    "generation": {"n_generated": 2, "resolution": 32, "server_idle_seconds": 10},
    "augmentation": {"n_aug": 1},
    "evaluation": {"activate": False},
}
TARGET = ("--", "results/f/dataset/distilled.pt")  # "--": after --resources, a target must be marked as one
# family -> the class of its tiny pipeline; SDXL, the default family, runs end to end in test_workflow.py
PIPELINES = {f.name: f.pipelines[-1] for f in FAMILIES if f.name != TINY_DEFAULTS["family"]}


def family_config(family: str, **generation) -> dict:
    return deep_update(FAMILY_RUN, {"model": {"tiny": {"seed": 0, "family": family}}, "generation": generation})


@pytest.fixture(scope="session")
def family_models(tmp_path_factory) -> Path:
    """Every family's tiny pipeline as its build_tiny_model job writes it (save_tiny_pipeline with the validated
    model.tiny spec, at the plan's results/models/ path), built once per session in one process: one import of
    diffusers' pipelines instead of one per run (a run's build job is ~8 s, mostly imports)."""
    from gendistill.config import load_and_validate
    from gendistill.generator.build import save_tiny_pipeline
    from gendistill.plan import build_plan

    def build(root: Path) -> None:
        for family in PIPELINES:
            cfg = family_config(family)
            save_tiny_pipeline(root / build_plan(cfg).model_dir, load_and_validate(cfg)["model"]["tiny"])

    return built_once(tmp_path_factory, "family_models", build)


@pytest.fixture(scope="module")
def family_run(tmp_path_factory, family_models):
    """family -> a finished workflow run of that family's tiny pipeline (made once per test module), its model
    directory copied from family_models (copy2 keeps the mtimes: the build job does not run again)."""
    from gendistill.plan import build_plan

    runs = {}

    def get(family: str):
        if family not in runs:
            wd = tmp_path_factory.mktemp(f"run-{family}")
            model = build_plan(family_config(family)).model_dir
            shutil.copytree(family_models / model, wd / model)
            run_snakemake(wd, family_config(family), *TARGET)
            runs[family] = wd
        return runs[family]

    return get


def records(wd, cls_id: str) -> dict:
    return json.loads((wd / "results" / "f" / "generated" / cls_id / "records.json").read_text())


@pytest.mark.long  # a run and a sampler per family: ~10 s of CPU each, 70 s for the seven
@pytest.mark.parametrize("family", sorted(PIPELINES))
def test_family_samples_end_to_end(family, family_run):
    wd = family_run(family)
    data = torch.load(wd / "results" / "f" / "dataset" / "distilled.pt", weights_only=True)
    assert data["labels"].tolist() == [0] * 4 + [1] * 4  # 2 generated x (1 + 1 augmented) per class
    assert data["images_uint8"].shape == (8, 3, 32, 32)
    metas = [records(wd, c)["meta"] for c in ("000_zero", "001_one")]
    assert {m["family"] for m in metas} == {family} and {m["pipeline"] for m in metas} == {PIPELINES[family]}
    assert {m["pipeline_loads"] for m in metas} == {1} and len({m["server_pid"] for m in metas}) == 1
    generated = data["images_uint8"][[0, 2, 4, 6]].float()  # the originals (copy 0) of both classes
    assert all(img.std() > 0 for img in generated)
    assert not torch.equal(generated[0], generated[1]) and not torch.equal(generated[0], generated[2])


@pytest.mark.long  # a copy of the SD3 run, an edited class and a replaced decoder: ~35 s on 2 busy cores
def test_a_non_sdxl_family_caches_per_class_and_the_decoder_decides_pixels(family_run, tmp_path):
    """SD3: editing one class's prompt reruns that class's sample job only; switching to the tiny decoder reruns
    every class's sampling (it decides pixels), and the images it decodes differ from the VAE's."""
    wd = tmp_path / "run"
    shutil.copytree(family_run("sd3"), wd, symlinks=True)
    cfg = family_config("sd3")
    assert job_counts(run_snakemake(wd, cfg, "--dag", *TARGET).stdout) == {}
    edited = deep_update(cfg, {"prompts": {"overrides": {"one": {"prompt": "the numeral 1"}}}})
    counts = job_counts(run_snakemake(wd, edited, "--dag", *TARGET).stdout)
    assert counts.get("sample") == 1 and counts.get("augment") == 1, counts
    tiny = family_config("sd3", decoder="tiny")
    assert job_counts(run_snakemake(wd, tiny, "--dag", *TARGET).stdout).get("sample") == 2
    before = records(wd, "000_zero")
    run_snakemake(wd, tiny, *TARGET)
    after = records(wd, "000_zero")
    assert after["meta"]["decoder"] == "tiny" and after["meta"]["tiny_decoder"].endswith("/tiny_decoder")
    assert [r["seed"] for r in after["images"]] == [r["seed"] for r in before["images"]]
    assert [r["sha256"] for r in after["images"]] != [r["sha256"] for r in before["images"]]
