"""Tier 1: the plan's derived counts and the ablations' variants (gendistill.plan, gendistill.ablation.variants),
each against counts worked out by hand for a small config: what the rules read, so no rule computes its own."""

from __future__ import annotations

import pytest
from conftest import TINY_CONFIG, deep_update

from gendistill.evaluation.runs import full_epochs, teacher_recipe
from gendistill.layout import ABLATION, RUN, TEACHER_ABLATION
from gendistill.plan import build_plan

# TINY_CONFIG: digits classes 0, 1, 2 (ids 000_zero, 001_one, 002_two), n_generated 2, n_aug 2 (IPC 6), results/t
OUT = "results/t"
IDS = ["000_zero", "001_one", "002_two"]
TWO_KEEPS_3 = {"prompts": {"overrides": {"two": {"n_generated": 3}}}}  # class two keeps 3 instead of 2


def plan(*patches):
    cfg = TINY_CONFIG
    for p in patches:
        cfg = deep_update(cfg, p)
    return build_plan(cfg)


def counts(p, fn):
    return [fn(p.by_id(cid)) for cid in IDS]


def test_counts_per_class_without_selection():
    p = plan(TWO_KEEPS_3)
    assert [c.n_generated for c in p.classes] == [2, 2, 3]  # kept
    assert counts(p, p.n_candidates) == [2, 2, 3]  # oversample 1: every candidate is kept
    assert counts(p, p.images_per_class) == [6, 6, 9]  # kept x (1 + n_aug 2)
    assert p.images_per_class_by_label == {0: 6, 1: 6, 2: 9}
    assert p.ipc == 6  # the config's n_generated x (1 + n_aug), the override aside
    assert p.sample_class(RUN, "002_two") == {**p.by_id("002_two").as_dict(), "n_generated": 3}
    assert p.kept_images("000_zero") == f"{OUT}/generated/000_zero"
    assert not p.selection_active and not p.run_uses_teacher and not p.teacher_active


def test_counts_per_class_with_selection():
    p = plan(TWO_KEEPS_3, {"selection": {"oversample": 4, "criterion": "confidence"}})
    assert counts(p, p.n_candidates) == [8, 8, 12]  # 4 x kept
    assert counts(p, p.images_per_class) == [6, 6, 9]  # selection keeps the kept count
    # the sample job samples the candidates; its class dict carries them as `n_generated` (its wire name)
    assert p.sample_class(RUN, "001_one")["n_generated"] == 8
    assert p.sample_class(RUN, "002_two")["n_generated"] == 12
    assert p.by_id("002_two").n_generated == 3  # the class plan keeps its kept count
    assert p.kept_images("002_two") == f"{OUT}/selected/002_two"
    assert p.selection(RUN, "", "002_two") == {
        "criterion": "confidence",
        "candidates": f"{OUT}/generated/002_two",
        "n_candidates": 12,
        "n_keep": 3,
    }
    assert p.selection_active and p.run_uses_teacher and p.teacher_active


def test_full_epochs_fallback_is_one_definition():
    cfg = plan({"evaluation": {"epochs": 12, "baselines": {"full": True, "full_epochs": 5}}}).cfg
    assert full_epochs(cfg) == 5 and teacher_recipe(cfg)["epochs"] == 5
    cfg = plan({"evaluation": {"epochs": 12, "baselines": {"full": True, "full_epochs": None}}}).cfg
    assert full_epochs(cfg) == 12 and teacher_recipe(cfg)["epochs"] == 12
    cfg = plan({"teacher": {"epochs": 3}, "evaluation": {"baselines": {"full_epochs": 5}}}).cfg
    assert teacher_recipe(cfg)["epochs"] == 3


def test_the_runs_evaluations():
    p = plan(
        TWO_KEEPS_3,
        {
            "evaluation": {
                "epochs": 12,
                "labels": ["hard", "soft", "kd"],
                "baselines": {"random_subset": True, "full": True, "full_epochs": 5},
            }
        },
    )
    e = p.evaluation(RUN, "distilled")
    assert (e.set, e.labels, e.data, e.counts, e.recipe["epochs"]) == (
        "distilled",
        "hard",
        f"{OUT}/dataset/distilled.pt",
        None,
        12,
    )
    assert not e.reads_soft_labels and not e.reads_teacher
    e = p.evaluation(RUN, "random_subset")
    assert e.counts == {0: 6, 1: 6, 2: 9} and e.data is None  # matches the distilled set class by class
    e = p.evaluation(RUN, "full")
    assert (e.set, e.labels, e.counts, e.recipe["epochs"]) == ("full", "hard", None, 5)
    assert p.evaluation(RUN, "distilled.soft").reads_soft_labels
    assert not p.evaluation(RUN, "distilled.soft").reads_teacher
    assert p.evaluation(RUN, "random_subset.soft").reads_teacher  # the teacher labels the real images once
    assert p.evaluation(RUN, "distilled.kd").reads_teacher and p.soft_labels_active


def test_the_results_tables_evaluations():
    p = plan({"evaluation": {"seeds": [0, 1], "baselines": {"random_subset": True, "full": True, "full_seeds": [3]}}})
    assert [r.key for r in p.eval_runs] == ["distilled", "random_subset", "full"]
    assert p.run_metrics() == [
        f"{OUT}/eval/distilled/convnet/seed0.json",
        f"{OUT}/eval/distilled/convnet/seed1.json",
        f"{OUT}/eval/random_subset/convnet/seed0.json",
        f"{OUT}/eval/random_subset/convnet/seed1.json",
        f"{OUT}/eval/full/convnet/seed3.json",  # baselines.full_seeds
    ]
    assert set(p.evaluation_record["runs"]) == {"distilled", "random_subset", "full"}


def test_pda_variants_pool_and_their_evaluations():
    p = plan({"ablation": {"pda": True}, "evaluation": {"epochs": 12, "baselines": {"random_subset": True}}})
    a = p.ablations
    # default: the run's 2 x (1 + 2), the same without PDA, and the run's IPC generated without PDA
    assert a.pda_variants == [
        {"name": "gen2_aug2", "n_generated": 2, "n_aug": 2, "ipc": 6},
        {"name": "gen2_aug0", "n_generated": 2, "n_aug": 0, "ipc": 2},
        {"name": "gen6_aug0", "n_generated": 6, "n_aug": 0, "ipc": 6},
    ]
    assert a.real_variants == [{"name": "real_ipc2", "ipc": 2}, {"name": "real_ipc6", "ipc": 6}]
    assert counts(p, a.pool_size) == [6, 6, 6]  # the largest variant's count
    assert p.sample_class(ABLATION, "000_zero")["n_generated"] == 6
    e = p.ablations.evaluation("gen2_aug0")
    assert (e.set, e.labels, e.data, e.counts) == (
        "distilled",
        "hard",
        f"{OUT}/ablation/sets/gen2_aug0/distilled.pt",
        None,
    )
    assert e.recipe == p.evaluation(RUN, "distilled").recipe  # the run's own recipe
    assert p.evaluation(ABLATION, "real_ipc2").counts == {0: 2, 1: 2, 2: 2}
    # the run's own set and its real subset (IPC 6) are the run's evaluations, reused; the rest are the ablation's
    rows = {r["variant"]: r for r in a.pda_metric_rows()}
    assert rows["gen2_aug2"]["path"] == f"{OUT}/eval/distilled/convnet/seed0.json"
    assert rows["real_ipc6"]["path"] == f"{OUT}/eval/random_subset/convnet/seed0.json"
    assert rows["gen6_aug0"]["path"] == f"{OUT}/ablation/eval/gen6_aug0/convnet/seed0.json"
    assert [r["reused_from_run"] for r in a.pda_metric_rows()] == [True, False, False, False, True]
    assert a.pda_active and not a.teacher_active


def test_pda_ablation_reuses_nothing_when_a_class_keeps_another_count():
    p = plan(TWO_KEEPS_3, {"ablation": {"pda": True}, "evaluation": {"baselines": {"random_subset": True}}})
    assert not any(r["reused_from_run"] for r in p.ablations.pda_metric_rows())


def test_teacher_ablation_variants_pool_and_evaluations():
    p = plan(
        TWO_KEEPS_3,
        {
            "ablation": {
                "pda": True,
                "teacher": True,
                "oversample": 4,
                "criteria": ["confidence", "difficulty"],
                "variants": [{"n_generated": 2, "n_aug": 2}, {"n_generated": 5, "n_aug": 0}],
            },
            "evaluation": {"epochs": 12, "baselines": {"random_subset": True, "full": False, "full_epochs": 5}},
        },
    )
    a = p.ablations
    assert counts(p, a.n_candidates) == [8, 8, 12]  # ablation.oversample 4 x kept
    assert counts(p, a.pool_size) == [8, 8, 12]  # above the largest PDA variant's 5: the two share one pool
    assert p.sample_class(ABLATION, "002_two")["n_generated"] == 12
    assert p.selection(TEACHER_ABLATION, "difficulty/", "002_two") == {
        "criterion": "difficulty",
        "candidates": f"{OUT}/ablation/generated/002_two",
        "n_candidates": 12,
        "n_keep": 3,
    }
    names = [v["name"] for v in a.teacher_variants]
    assert names == [
        "paper_hard",
        "select_confidence",
        "select_difficulty",
        "paper_soft",
        "real_hard",
        "real_soft",
        "full_hard",
    ]
    assert [v["oversample"] for v in a.teacher_variants] == [1, 4, 4, 1, 1, 1, 1]
    assert a.teacher_set_variant("confidence") == {
        "name": "select_confidence",
        "n_generated": 3,  # the largest kept count: each class's selected directory holds its own
        "n_aug": 2,
        "selection": "confidence",
        "oversample": 4,
    }
    e = p.evaluation(ABLATION, "select_confidence")
    assert (e.set, e.labels, e.data) == ("distilled", "hard", f"{OUT}/ablation/teacher/sets/confidence/distilled.pt")
    e = p.evaluation(ABLATION, "paper_soft")
    assert e.data == f"{OUT}/dataset/distilled.pt" and e.reads_soft_labels and not e.reads_teacher
    e = p.evaluation(ABLATION, "real_soft")
    assert e.counts == {0: 6, 1: 6, 2: 9} and e.reads_teacher and not e.reads_soft_labels
    e = p.evaluation(ABLATION, "full_hard")
    assert (e.set, e.recipe["epochs"]) == ("full", 5)  # baselines.full_epochs, the full data's epochs
    # reused: the paper's set (hard) and the real subset (hard); the full data is not a baseline of this run
    rows = {r["variant"]: r for r in a.teacher_metric_rows()}
    assert rows["paper_hard"]["path"] == f"{OUT}/eval/distilled/convnet/seed0.json"
    assert rows["real_hard"]["path"] == f"{OUT}/eval/random_subset/convnet/seed0.json"
    assert rows["full_hard"]["path"] == f"{OUT}/ablation/eval/full_hard/convnet/seed0.json"
    assert sum(r["reused_from_run"] for r in rows.values()) == 2
    assert set(a.evaluated) >= {"gen5_aug0", "real_ipc5", "select_difficulty", "full_hard"}
    with pytest.raises(KeyError, match="not a variant"):
        p.evaluation(ABLATION, "gen9_aug9")


def test_ablations_inactive_without_evaluation():
    p = plan({"ablation": {"pda": False, "teacher": False}})
    assert not p.ablations.pda_active and not p.ablations.teacher_active
