"""Tier 1: config schema, semantic checks and the run plan (no Snakemake, no torch)."""

from __future__ import annotations

import pytest
from conftest import TINY_CONFIG, deep_update

from gendistill.config import ConfigError, load_schema, validate_schema
from gendistill.datasets import DatasetError
from gendistill.plan import build_plan
from gendistill.seeds import augment_seed, image_seed


def plan_error(cfg) -> str:
    with pytest.raises((ConfigError, DatasetError)) as e:
        build_plan(cfg)
    return str(e.value)


def test_defaults_filled_and_documented():
    cfg = validate_schema({})
    assert cfg["generation"]["steps"] == 1 and cfg["generation"]["guidance_scale"] == 0.0
    assert cfg["model"]["source"] == "stabilityai/sdxl-turbo"
    assert cfg["augmentation"]["n_aug"] == 4
    # every leaf key of the schema has a default and (almost) all a description: the schema is the reference
    schema = load_schema()

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "default" in sub or path.startswith("prompts.overrides"), f"{path}{key} has no default"
            walk(sub, f"{path}{key}.")

    walk(schema, "")


@pytest.mark.parametrize(
    "patch, expect",
    [
        ({"generation": {"n_generated": -1}}, "generation.n_generated: -1 is less than the minimum of 1"),
        (
            {"generation": {"n_generated": "four"}},
            'generation.n_generated: "four" is a string; this key takes an integer. Fix: e.g. `n_generated: 4`.',
        ),
        (
            {"evaluation": {"seeds": 3}},
            "evaluation.seeds: 3 is an integer; this key takes a list. Fix: e.g. `seeds: [0, 1, 2]`.",
        ),
        ({"dataset": {"classes": "apple"}}, "Fix: e.g. `classes: [apple, 7]`."),
        ({"evaluation": {"labels": 3}}, "evaluation.labels: 3 is an integer; this key takes a string or a list."),
        ({"augmentation": {"n_aug": -2}}, "augmentation.n_aug"),
        ({"generation": {"resolution": 500}}, "generation.resolution: 500 is not a multiple of 8"),
        ({"generation": {"batch_size": "big"}}, "generation.batch_size"),
        ({"generaton": {}}, "generaton: unknown key; did you mean generation? Fix: rename it to generation."),
        ({"generation": {"n_generatd": 3}}, "generation.n_generatd: unknown key; did you mean n_generated?"),
        ({"generation": {"zzz": 3}}, "generation.zzz: unknown key. Keys allowed here: batch_size, compile,"),
        ({"dataset": {"name": "cifar1000"}}, 'dataset.name: "cifar1000" is not one of cifar10, cifar100,'),
        ({"dataset": {"name": "cifar1000"}}, "Did you mean cifar100?"),
        ({"seed": 1.5}, "seed: 1.5 is a number; this key takes an integer."),
        ({"evaluation": {"models": ["vgg"]}}, 'evaluation.models.0: "vgg" is not one of'),
        ({"ipc": 7}, "ipc: 7 but generation.n_generated x (1 + augmentation.n_aug) = 2 x 3 = 6"),
        ({"augmentation": {"crop_scale": [0.9, 0.5]}}, "augmentation.crop_scale: [0.9, 0.5] is not [low, high]"),
        ({"evaluation": {"seeds": [0, 0]}}, "evaluation.seeds: a seed is listed twice"),
        ({"prompts": {"overrides": {"seven_": {"prompt": "x"}}}}, "prompts.overrides: 'seven_' is not a class name"),
        ({"prompts": {"overrides": {"one": {"promt": "x"}}}}, "promt: unknown key; did you mean prompt?"),
        ({"prompts": {"template": "a photo of {label}"}}, "prompts.template: cannot fill"),
        ({"dataset": {"classes": ["zero", "eleven"]}}, "dataset.classes: 'eleven' is not a class"),
        ({"dataset": {"classes": [0, 0]}}, "dataset.classes: a class is listed twice"),
        ({"generation": {"resolution": 16}}, "generation.resolution: 16 is below the dataset's image size 32"),
        ({"generation": {"device": "cpu", "dtype": "float16"}}, "float16 on the CPU"),
        ({"generation": {"device": "cpu", "vae_dtype": "float16"}}, "vae_dtype: float16 on the CPU"),
        ({"generation": {"vae_dtype": "half"}}, "vae_dtype"),
        ({"results_dir": "out/{run}"}, "results_dir: 'out/{run}' contains a brace"),  # not a WildcardError
        ({"run": "a{b}"}, "run: 'a{b}' does not match"),
    ],
)
def test_bad_config_names_key_and_fix(patch, expect):
    msg = plan_error(deep_update(TINY_CONFIG, patch))
    assert expect in msg, msg
    assert msg.startswith(("invalid config", "dataset")), msg


def test_all_problems_reported_together():
    msg = plan_error(deep_update(TINY_CONFIG, {"generation": {"n_generated": 0, "steps": 0}, "typo": 1}))
    assert msg.count("\n  - ") == 3, msg


def test_missing_model_dir(tmp_path):
    cfg = deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": str(tmp_path / "no-model")}})
    msg = plan_error(cfg)
    assert "has no model_index.json" in msg and "model.source" in msg


def test_hub_model_offline_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    cfg = deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": "stabilityai/sdxl-turbo"}})
    msg = plan_error(cfg)
    assert "not in the Hugging Face cache" in msg and "hf download stabilityai/sdxl-turbo" in msg


def test_missing_dataset_names_path_and_fetch(tmp_path):
    msg = plan_error(
        deep_update(TINY_CONFIG, {"dataset": {"name": "cifar100", "root": str(tmp_path), "classes": None}})
    )
    assert "cifar-100-python" in msg and "cifar-100-python.tar.gz" in msg and str(tmp_path) in msg


def test_zero_and_duplicate_classes():
    msg = plan_error(deep_update(TINY_CONFIG, {"dataset": {"name": "classlist", "class_names": [], "classes": None}}))
    assert "no classes given" in msg
    msg = plan_error(
        deep_update(
            TINY_CONFIG, {"dataset": {"name": "classlist", "class_names": ["cat", "dog", "cat"], "classes": None}}
        )
    )
    assert "duplicate class names ['cat']" in msg


def test_plan_prompts_overrides_and_ids():
    cfg = deep_update(
        TINY_CONFIG,
        {
            "prompts": {
                "template": "a photo of the digit {name} (#{index})",
                "overrides": {"two": {"prompt": "the number 2", "seed": 9, "n_generated": 5}},
            },
            "dataset": {"classes": ["two", 0]},
        },
    )
    plan = build_plan(cfg)
    assert [c.index for c in plan.classes] == [0, 2]  # label order, dataset's indices kept
    zero, two = plan.classes
    assert zero.prompt == "a photo of the digit zero (#0)" and zero.seed == 0 and zero.n_generated == 2
    assert two.prompt == "the number 2" and two.seed == 9 and two.n_generated == 5
    assert [c.id for c in plan.classes] == ["000_zero", "002_two"]
    assert plan.all_class_names[2] == "two"


def test_seeds_are_stable_and_distinct():
    assert image_seed(0, 1, 2) == image_seed(0, 1, 2)
    seeds = {image_seed(s, c, i, a) for s in range(3) for c in range(5) for i in range(5) for a in range(2)}
    assert len(seeds) == 3 * 5 * 5 * 2
    assert augment_seed(0, 1, 2, 1) != image_seed(0, 1, 2, 1)
    # pinned value: changing the derivation silently would change every published dataset
    assert image_seed(0, 0, 0) == 180072445940124328


def test_config_yaml_and_demo_are_valid():
    import yaml
    from conftest import REPO

    for name in ("config.yaml", "configs/demo.yaml", "configs/imagenet1k.yaml"):
        cfg = validate_schema(yaml.safe_load((REPO / name).read_text()))
        assert cfg["ipc"] == cfg["generation"]["n_generated"] * (1 + cfg["augmentation"]["n_aug"])
    paper = yaml.safe_load((REPO / "config.yaml").read_text())
    assert paper["model"]["source"] == "stabilityai/sdxl-turbo" and paper["ipc"] == 20
    assert paper["generation"]["resolution"] == 512 and paper["dataset"]["name"] == "cifar100"


def test_time_budget_record_must_match_n_generated(tmp_path):
    import json

    rec = tmp_path / "tb.json"
    rec.write_text(json.dumps({"kind": "gendistill.time_budget", "recommendation": {"n_generated": 7}}))
    msg = plan_error(deep_update(TINY_CONFIG, {"time_budget_record": str(rec)}))
    assert "allows n_generated = 7 but generation.n_generated = 2" in msg
    build_plan(deep_update(TINY_CONFIG, {"time_budget_record": str(rec), "generation": {"n_generated": 7}}))
    msg = plan_error(deep_update(TINY_CONFIG, {"time_budget_record": str(tmp_path / "none.json")}))
    assert "is not a readable record" in msg
    # with candidate selection the budget must have paid for every candidate (time-budget reads the oversample)
    msg = plan_error(
        deep_update(
            TINY_CONFIG,
            {
                "time_budget_record": str(rec),
                "generation": {"n_generated": 7},
                "selection": {"oversample": 3, "criterion": "confidence"},
            },
        )
    )
    assert "planned for selection.oversample 1" in msg and "time-budget --configfile" in msg


def test_absurd_counts_are_refused_with_an_estimate():
    """A typo like n_generated 1000000000 fails before any job, saying what it would cost."""
    msg = plan_error(deep_update(TINY_CONFIG, {"prompts": {"overrides": {"one": {"n_generated": 1_000_000_000}}}}))
    assert "n_generated of class 'one' is 1,000,000,000, above limits.max_images_per_class (100,000)" in msg
    assert "1,000,000,004 images" in msg and "h of H100 time" in msg and "GiB" in msg and "Fix:" in msg
    msg = plan_error(
        deep_update(TINY_CONFIG, {"generation": {"n_generated": 50_000}, "limits": {"max_dataset_gib": 1}})
    )
    assert "would need 6.4 GiB, above limits.max_dataset_gib (1)" in msg
    build_plan(deep_update(TINY_CONFIG, {"generation": {"n_generated": 50_000}}))  # within the defaults


def test_incomplete_model_directory_is_reported_at_plan_time(tiny_model_dir, tmp_path):
    """A local model whose component lost its weights fails the plan, naming the component (not 5 failing
    sample jobs with the cause buried in their logs)."""
    import shutil

    broken = tmp_path / "m"
    shutil.copytree(tiny_model_dir, broken)
    build_plan(deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": str(broken)}}))  # complete: fine
    next((broken / "vae").glob("*.safetensors")).unlink()
    msg = plan_error(deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": str(broken)}}))
    assert "cannot be loaded: vae/ (no *.safetensors or *.bin weights)" in msg and "Fix:" in msg


def test_hub_model_not_cached_is_reported_even_online(monkeypatch, tmp_path):
    """Without HF_HUB_OFFLINE, an uncached hub id is still reported before any job, unless downloads are
    allowed on purpose."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    cfg = deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": "stabilityai/sdxl-turbo"}})
    msg = plan_error(cfg)
    assert "is not in the Hugging Face cache" in msg and "model.allow_download: true" in msg
    build_plan(deep_update(cfg, {"model": {"allow_download": True}}))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # allowed, but impossible
    assert "HF_HUB_OFFLINE is set" in plan_error(deep_update(cfg, {"model": {"allow_download": True}}))


def test_prompts_with_braces_are_taken_literally():
    plan = build_plan(deep_update(TINY_CONFIG, {"prompts": {"overrides": {"one": {"prompt": "a {name} in {braces}"}}}}))
    assert plan.classes[1].prompt == "a {name} in {braces}"
