"""Named evaluation protocols (evaluation/protocols.py) and the evaluation runs a config asks for
(evaluation/runs.py): presets valid for the schema, explicit keys win and are recorded, the default config keeps its
recipe, regimes and no-augmentation runs get their own keys, plan-time problems name their fix."""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
from conftest import REPO, deep_update

from gendistill.config import ConfigError, load_and_validate, load_schema
from gendistill.evaluation.protocols import PROTOCOLS, Context, apply_protocol, protocol_keys, rded_batch_size
from gendistill.evaluation.runs import (
    BASE_RECIPE_KEYS,
    eval_runs,
    evaluation_problems,
    kd_settings,
    label_regimes,
    parse_key,
    recipe,
    teacher_recipe,
)
from gendistill.plan import build_plan

CONTEXTS = [
    Context("cifar100", 32, 10, 100),
    Context("tinyimagenet", 64, 10, 200),
    Context("imagenet", 224, 10, 1000),
    Context("digits", 32, 1, 10),
]
DIGITS = {"dataset": {"name": "digits"}, "model": {"tiny": {"seed": 0}}, "generation": {"resolution": 32}}


def resolved(extra: dict, ctx: Context = CONTEXTS[0]) -> tuple[dict, dict]:
    raw = deep_update(DIGITS, extra)
    return apply_protocol(load_and_validate(raw), raw, ctx)


@pytest.mark.parametrize("name", list(PROTOCOLS))
@pytest.mark.parametrize("ctx", CONTEXTS, ids=lambda c: f"{c.dataset}-{c.resolution}px")
def test_every_preset_is_a_valid_config(name, ctx):
    cfg, rec = resolved({"evaluation": {"protocol": name}}, ctx)
    jsonschema.Draft202012Validator(load_schema()).validate(cfg)
    assert rec["protocol"] == name and rec["overridden"] == []
    p = PROTOCOLS[name]
    assert p.sources and p.notes and p.reports and p.title
    for key, value in protocol_keys(name, ctx).items():
        if not isinstance(value, dict):
            assert cfg["evaluation"][key] == value, key


def test_schema_lists_exactly_the_registered_protocols():
    enum = load_schema()["properties"]["evaluation"]["properties"]["protocol"]["enum"]
    assert enum == [None, *PROTOCOLS]


def test_explicit_keys_win_and_are_recorded():
    cfg, rec = resolved({"evaluation": {"protocol": "rded", "epochs": 30, "kd": {"temperature": 4.0}}})
    ev = cfg["evaluation"]
    assert ev["epochs"] == 30 and ev["optimizer"] == "adamw" and ev["labels"] == "kd"
    kd = {"temperature": 4.0, "alpha": 1.0, "t_squared": False, "cache": False, "cache_top_k": 100, "cache_seed": 0}
    assert ev["kd"] == kd  # nested: key by key
    assert set(rec["overridden"]) == {"evaluation.epochs", "evaluation.kd.temperature"}
    assert cfg["teacher"]["model"] == "resnet18"
    cfg, rec = resolved({"evaluation": {"protocol": "rded"}, "teacher": {"model": "convnet"}})
    assert cfg["teacher"]["model"] == "convnet" and rec["overridden"] == ["teacher.model"]


def test_a_protocols_lr_step_keeps_its_fraction_of_training_when_epochs_are_overridden():
    cfg, rec = resolved({"evaluation": {"protocol": "eccv2024_challenge", "epochs": 100}})
    assert cfg["evaluation"]["step_epoch"] == round(502 * 100 / 1001) == 50
    assert "evaluation.step_epoch (scaled to 50 with evaluation.epochs)" in rec["overridden"]
    cfg, _ = resolved({"evaluation": {"protocol": "eccv2024_challenge", "epochs": 100, "step_epoch": 70}})
    assert cfg["evaluation"]["step_epoch"] == 70


def test_no_protocol_changes_nothing():
    raw = deep_update(DIGITS, {"evaluation": {"epochs": 7}})
    cfg = load_and_validate(raw)
    out, rec = apply_protocol(cfg, raw, CONTEXTS[0])
    assert out is cfg and rec == {"protocol": None, "overridden": []}


def test_the_challenge_preset_is_its_scripts_recipe():
    ev = protocol_keys("eccv2024_challenge", CONTEXTS[1])  # Tiny-ImageNet: still ConvNet-D3
    assert ev["models"] == ["convnet_d3"] and ev["epochs"] == 1001 and ev["step_epoch"] == 502
    assert (ev["optimizer"], ev["lr"], ev["momentum"], ev["weight_decay"]) == ("sgd", 0.01, 0.9, 0.0005)
    assert (ev["schedule"], ev["augment"], ev["labels"], ev["batch_size"]) == ("step_restart", "dsa", "hard", 256)
    assert ev["accuracy"] == "final" and len(ev["seeds"]) == 3


def test_rded_batch_size_rule_and_imagenet_variants():
    assert rded_batch_size(10, 1000, "imagenet") == 100 and rded_batch_size(10, 100, "cifar100") == 100
    assert rded_batch_size(10, 10, "cifar10") == 50 and rded_batch_size(50, 200, "tinyimagenet") == 100
    assert rded_batch_size(1, 10, "digits") == 10  # never above the whole set
    assert protocol_keys("rded", CONTEXTS[2])["rrc_scale"] == [0.5, 1.0]  # factor 2 on ImageNet
    assert protocol_keys("rded", CONTEXTS[0])["rrc_scale"] == [1.0, 1.0]
    small, big = protocol_keys("dd_ranking_soft", CONTEXTS[0]), protocol_keys("dd_ranking_soft", CONTEXTS[2])
    assert (small["mix"], small["epochs"], small["kd"]["temperature"]) == ("mixup", 400, 30.0)
    assert (big["mix"], big["epochs"], big["batch_size"], big["kd"]["temperature"]) == ("cutmix", 300, 1024, 20.0)
    assert label_regimes({"evaluation": big}) == ["kd", "hard"]


def test_published_best_accuracy_is_never_the_default():
    for name in PROTOCOLS:
        for ctx in CONTEXTS:
            assert protocol_keys(name, ctx).get("accuracy", "final") == "final"


def test_the_docs_table_lists_every_protocol_with_its_sources():
    section = (REPO / "docs" / "evaluation.md").read_text()
    for name, p in PROTOCOLS.items():
        assert f"`{name}`" in section
        repo = re.match(r"[\w.-]+/[\w.-]+", p.sources[0]).group(0)
        assert repo in section, repo
    assert "final epoch" in section and "best" in section and "LRS" in section


# --- evaluation runs and recipes (evaluation/runs.py)


def plain_cfg(extra: dict | None = None) -> dict:
    return load_and_validate(deep_update(DIGITS, extra or {}))


def test_the_default_config_keeps_its_recipe_and_keys():
    cfg = plain_cfg({"evaluation": {"baselines": {"full": True, "full_epochs": 3}}})
    runs = eval_runs(cfg, has_real_data=True)
    assert [r.key for r in runs] == ["distilled", "random_subset", "full"]
    assert [r.labels for r in runs] == ["hard"] * 3 and all(r.train_augment for r in runs)
    ev = cfg["evaluation"]
    assert recipe(cfg, runs[0]) == {k: ev[k] for k in BASE_RECIPE_KEYS}  # no new key: the params are unchanged
    assert recipe(cfg, runs[2]) == {**{k: ev[k] for k in BASE_RECIPE_KEYS}, "epochs": 3}
    assert kd_settings(cfg) == {"temperature": 4.0, "alpha": 1.0}
    assert teacher_recipe(cfg) == {**{k: ev[k] for k in BASE_RECIPE_KEYS}, "epochs": 3}


def test_regimes_and_ars_get_runs_of_their_own():
    cfg = plain_cfg({"evaluation": {"labels": ["soft", "hard", "kd"], "scores": {"ars": True}}})
    keys = [r.key for r in eval_runs(cfg, has_real_data=True)]
    assert keys == [
        "distilled",
        "random_subset",
        "distilled.noaug",
        "random_subset.noaug",
        "distilled.hard",
        "random_subset.hard",
        "distilled.hard.noaug",
        "random_subset.hard.noaug",
        "distilled.kd",
        "random_subset.kd",
        "distilled.kd.noaug",
        "random_subset.kd.noaug",
    ]
    assert parse_key("distilled", cfg).labels == "soft"  # the first regime is the run's own
    kd = parse_key("random_subset.kd.noaug", cfg)
    assert (kd.set, kd.labels, kd.train_augment) == ("random_subset", "kd", False)
    assert recipe(cfg, kd)["train_augment"] is False
    assert parse_key("full", cfg).labels == "hard"
    with pytest.raises(ValueError, match="not an evaluation run key"):
        parse_key("distilled.fuzzy", cfg)


def test_optional_recipe_keys_appear_only_when_used():
    cfg = plain_cfg({"evaluation": {"augment": "rrc_flip", "mix": "cutmix", "accuracy": "best_during_training"}})
    r = recipe(cfg, parse_key("distilled", cfg))
    assert r["augment"] == "rrc_flip" and r["rrc_scale"] == [0.08, 1.0] and r["mix_beta"] == 1.0
    assert r["accuracy"] == "best_during_training" and r["eval_every"] == 10
    assert "accuracy" not in recipe(cfg, parse_key("full", cfg))  # the ceiling reports its final epoch


def test_evaluation_problems_name_their_fix():
    cfg = plain_cfg({"evaluation": {"scores": {"ars": True}, "train_augment": False, "rrc_scale": [0.9, 0.2]}})
    problems = " ".join(evaluation_problems(cfg, has_real_data=True))
    assert "scores.ars" in problems and "rrc_scale" in problems and "Fix" in problems
    cfg = plain_cfg({"evaluation": {"labels": "kd"}})
    assert "evaluation.labels" in " ".join(evaluation_problems(cfg, has_real_data=False))
    cfg = plain_cfg({"evaluation": {"epochs": 10, "step_epoch": 10}})
    assert "step_epoch" in " ".join(evaluation_problems(cfg, has_real_data=True))


def test_the_plan_applies_the_protocol_and_refuses_its_problems():
    raw = deep_update(DIGITS, {"dataset": {"classes": [0, 1]}, "evaluation": {"protocol": "dd_ranking_soft"}})
    plan = build_plan(copy.deepcopy(raw))
    assert plan.cfg["evaluation"]["labels"] == ["kd", "hard"] and plan.cfg["teacher"]["model"] == "resnet18"
    assert plan.evaluation_protocol["protocol"] == "dd_ranking_soft"
    with pytest.raises(ConfigError, match="step_epoch"):
        build_plan(deep_update(raw, {"evaluation": {"protocol": "dd_ranking_hard", "step_epoch": 5000}}))


# --- the workflow: a protocol, two regimes, runs without augmentation, the table and the provenance


@pytest.mark.long  # two regimes with and without augmentation on a copy of the tiny run: ~75 s on 2 busy cores
def test_a_protocol_with_regimes_and_ars_in_the_workflow(tiny_run, tmp_path):
    """On a copy of the tiny run: RDED's protocol (teacher online, cutmix, AdamW) overridden to 2 epochs on
    ConvNet-D3 with a ConvNet teacher (a ResNet-18 teacher is ~25 s of CPU more), labels [kd, hard] and ARS: every
    distilled run has its random subset in the same regime, with and without augmentation; the rows carry the
    protocol, regime and recipe; the summary has LRS and ARS; the provenance names the protocol, its sources and
    the overridden keys."""
    import json

    import pandas as pd
    from conftest import TINY_CONFIG, run_snakemake
    from test_workflow import copy_run

    wd = copy_run(tiny_run, tmp_path / "run")
    cfg = deep_update(
        TINY_CONFIG,
        {
            "teacher": {"epochs": 1, "model": "convnet"},
            "evaluation": {
                "protocol": "rded",
                "models": ["convnet"],
                "epochs": 2,
                "labels": ["kd", "hard"],
                "scores": {"ars": True},
                "baselines": {"random_subset": True, "full": True, "full_epochs": 1},
            },
        },
    )
    run_snakemake(wd, cfg, targets=("results/t/results/results.csv",))
    out = wd / "results" / "t"
    rows = pd.read_csv(out / "results" / "results.csv")
    assert sorted(rows["eval"]) == sorted(
        [
            "distilled",
            "random_subset",
            "distilled.noaug",
            "random_subset.noaug",
            "distilled.hard",
            "random_subset.hard",
            "distilled.hard.noaug",
            "random_subset.hard.noaug",
            "full",
        ]
    )
    assert set(rows["protocol"]) == {"rded"} and set(rows["accuracy_kind"]) == {"final"}
    kd = rows[rows["eval"] == "distilled"].iloc[0]
    recipe = json.loads(kd["recipe"])
    assert recipe["optimizer"] == "adamw" and recipe["mix"] == "cutmix" and recipe["epochs"] == 2
    assert kd["labels"] == "kd" and 0 <= kd["lrs"] <= 1 and 0 <= kd["ars"] <= 1
    summary = pd.read_csv(out / "results" / "summary.csv")
    assert {"accuracy_ci_low", "vs_random", "lrs", "ars"} <= set(summary.columns)
    prov = json.loads((out / "results" / "evaluation_provenance.json").read_text())
    assert prov["protocol"] == "rded" and any("LINs-lab/RDED" in s for s in prov["sources"])
    assert {"evaluation.models", "evaluation.epochs", "teacher.model"} <= set(prov["overridden"])
    assert prov["runs"]["random_subset.hard.noaug"]["recipe"]["train_augment"] is False
    assert len(prov["teacher_sha256"]) == 1  # one teacher labelled every kd run


def test_full_data_seeds_can_be_fewer_and_hlr_takes_their_mean():
    from gendistill.evaluation.runs import seeds
    from gendistill.evaluation.table import rows_frame

    cfg = plain_cfg({"evaluation": {"seeds": [0, 1, 2], "baselines": {"full": True, "full_seeds": [0]}}})
    runs = {r.key: r for r in eval_runs(cfg, has_real_data=True)}
    assert seeds(cfg, runs["full"]) == [0] and seeds(cfg, runs["distilled"]) == [0, 1, 2]

    def m(set_, seed, acc):
        return {
            "set": set_,
            "model_label": "ConvNet-D3",
            "seed": seed,
            "accuracy": acc,
            "n_train": 1,
            "n_test": 1,
            "recipe": {"epochs": 1},
            "train_seconds": 0.0,
            "chance": 0.1,
        }

    df = rows_frame([m("distilled", 0, 0.5), m("distilled", 1, 0.6), m("full", 0, 0.9), m("full", 1, 0.8)][:3])
    assert list(df.loc[df["set"] == "distilled", "hlr"]) == pytest.approx([0.4, 0.3])  # seed 1: the full mean 0.9


# --- the options that reproduce the sources: full-data figure and recipe, hard runs, lr search, teacher recipe


def test_a_given_full_data_accuracy_replaces_the_run_and_feeds_hlr():
    from gendistill.evaluation.table import rows_frame

    cfg = plain_cfg({"evaluation": {"baselines": {"full": False, "full_accuracy": 0.9}}})
    assert [r.key for r in eval_runs(cfg, has_real_data=True)] == ["distilled", "random_subset"]
    row = {"model_label": "ConvNet-D3", "n_train": 1, "n_test": 1, "recipe": {"epochs": 1}, "train_seconds": 0.0}
    df = rows_frame([{**row, "set": "distilled", "seed": 0, "accuracy": 0.6, "chance": 0.1}], None, {}, 0.9)
    assert list(df["hlr"]) == pytest.approx([0.3])
    both = plain_cfg({"evaluation": {"baselines": {"full": True, "full_accuracy": 0.9}}})
    assert "baselines.full_accuracy" in " ".join(evaluation_problems(both, has_real_data=True))
    # under dd_ranking_soft on ImageNet-1k the preset gives DD-Ranking's figure; asking for the run replaces it
    ctx = Context("imagenet", 224, 10, 1000)
    cfg, rec = resolved({"evaluation": {"protocol": "dd_ranking_soft"}}, ctx)
    assert (cfg["evaluation"]["baselines"]["full"], cfg["evaluation"]["baselines"]["full_accuracy"]) == (False, 0.565)
    cfg, rec = resolved({"evaluation": {"protocol": "dd_ranking_soft", "baselines": {"full": True}}}, ctx)
    assert cfg["evaluation"]["baselines"]["full_accuracy"] is None and not evaluation_problems(cfg, True)
    cfg, _ = resolved({"evaluation": {"protocol": "dd_ranking_hard", "baselines": {"full_accuracy": 0.8}}})
    assert cfg["evaluation"]["baselines"]["full"] is False and not evaluation_problems(cfg, True)


def test_the_full_data_run_takes_its_own_recipe_keys():
    cfg = plain_cfg(
        {
            "evaluation": {
                "step_epoch": 100,
                "epochs": 300,
                "baselines": {"full": True, "full_epochs": 50, "full_recipe": {"lr": 0.05, "train_augment": False}},
            }
        }
    )
    full, dist = recipe(cfg, parse_key("full", cfg)), recipe(cfg, parse_key("distilled", cfg))
    assert (full["epochs"], full["lr"], full["train_augment"], "step_epoch" in full) == (50, 0.05, False, False)
    assert (dist["epochs"], dist["lr"], dist["train_augment"], dist["step_epoch"]) == (300, 0.01, True, 100)
    cfg, _ = resolved({"evaluation": {"protocol": "dd_ranking_hard"}}, Context("cifar10", 32, 10, 10))
    full = recipe(cfg, parse_key("full", cfg))
    assert {k: full[k] for k in ("epochs", "batch_size", "train_augment", "schedule", "step_epoch")} == {
        "epochs": 1000,
        "batch_size": 256,
        "train_augment": False,
        "schedule": "step_every",
        "step_epoch": 100,
    }


def test_hard_label_runs_without_mixing_and_the_lr_search_only_where_asked():
    cfg, _ = resolved({"evaluation": {"protocol": "dd_ranking_soft"}})
    kd, hard = recipe(cfg, parse_key("distilled", cfg)), recipe(cfg, parse_key("distilled.hard", cfg))
    assert kd["mix"] == "mixup" and "mix" not in hard and "mix_beta" not in hard
    assert "lr_search" not in kd and "lr_search" not in hard  # the fixed lr by default
    cfg, _ = resolved({"evaluation": {"protocol": "dd_ranking_soft", "lr_search": {"activate": True}}})
    runs = {r.key: recipe(cfg, r) for r in eval_runs(cfg, has_real_data=True)}
    assert {k for k, r in runs.items() if "lr_search" in r} == {
        "distilled",
        "random_subset",
        "distilled.hard",
        "random_subset.hard",
    }
    assert runs["distilled.hard"]["lr_search"] == [0.001, 0.005, 0.01, 0.05, 0.1] and "lr_search" not in runs["full"]
    plain = plain_cfg({"evaluation": {"mix": "cutmix"}})
    assert recipe(plain, parse_key("distilled", plain))["mix"] == "cutmix"  # mix_hard_labels true by default


def test_test_resize_and_eval_after_enter_the_recipe_and_are_checked():
    cfg = plain_cfg({"evaluation": {"test_resize": 40, "accuracy": "best_during_training", "eval_after": 0.8}})
    r = recipe(cfg, parse_key("distilled", cfg))
    assert (r["test_resize"], r["eval_after"]) == (40, 0.8)
    full = recipe(cfg, parse_key("full", cfg))
    assert "eval_after" not in full and full["test_resize"] == 40
    assert "test_resize" not in recipe(plain_cfg(), parse_key("distilled", plain_cfg()))  # default: params unchanged
    small = plain_cfg({"evaluation": {"test_resize": 24}})
    assert "test_resize: 24 is below the evaluation's 32 px" in " ".join(evaluation_problems(small, True, 32))


def test_the_teacher_recipe_names_a_published_one():
    cfg = plain_cfg({"evaluation": {"baselines": {"full_epochs": 3}}})
    assert teacher_recipe(cfg)["optimizer"] == "sgd" and teacher_recipe(cfg)["epochs"] == 3  # field: unchanged
    cfg, _ = resolved({"evaluation": {"protocol": "rded"}}, Context("imagenet", 224, 10, 1000))
    tv = teacher_recipe(cfg, 224)
    assert cfg["teacher"]["recipe"] == "torchvision"
    assert (tv["lr"], tv["schedule"], tv["step_epoch"], tv["epochs"], tv["test_resize"]) == (
        0.1,
        "step_every",
        30,
        90,
        256,
    )
    cfg, _ = resolved({"evaluation": {"protocol": "rded"}, "teacher": {"epochs": 5}})
    sre2l = teacher_recipe(cfg, 32)
    assert cfg["teacher"]["recipe"] == "sre2l_cifar" and (sre2l["epochs"], sre2l["batch_size"]) == (5, 128)
    assert "test_resize" not in sre2l
