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


# ablation.methods: generation methods beside the run's own set, each in its scope
METHODS = {
    "ablation": {
        "methods": [
            {"name": "proto", "generation": {"init": "prototypes", "strength": 0.5, "steps": 4}},
            {"name": "sel", "generation": {"steps": 2}, "selection": {"oversample": 3, "criterion": "confidence"}},
        ]
    },
    "evaluation": {"labels": ["hard", "soft"], "baselines": {"random_subset": True}, "kd": {"cache": False}},
}


def test_generation_methods_their_jobs_and_evaluations():
    p = plan(TWO_KEEPS_3, METHODS)
    a = p.ablations
    proto, sel = "ablation/methods/proto/", "ablation/methods/sel/"
    assert [(m["name"], m["set"], m["scope"]) for m in a.methods] == [
        ("proto", "method:proto", proto),
        ("sel", "method:sel", sel),
    ]
    # generation: the run's keys (1 step from noise) with the method's in their place
    assert "init" not in p.gen_spec and p.gen_spec["steps"] == 1
    assert p.scoped_gen_spec(proto) == {
        "resolution": 32,
        "steps": 4,
        "guidance_scale": 0.0,
        "init": "prototypes",
        "strength": 0.5,
    }
    assert p.scoped_gen_spec(sel)["steps"] == 2 and p.scoped_gen_spec(RUN) == p.gen_spec
    # the run is text-only, a method reads the prototypes: one file per class, the run's, shared
    assert not p.real_data_active and p.prototypes_needed
    assert p.reads_prototypes(proto) and not p.reads_prototypes(sel) and not p.reads_prototypes(RUN)
    cls = p.sample_class(proto, "002_two")
    assert cls["n_generated"] == 3 and cls["prototypes"].endswith(f"{OUT}/prototypes/002_two.pt")
    assert cls["prototypes_spec"] == p.prototype_spec("002_two")
    assert "prototypes" not in p.sample_class(RUN, "002_two")
    # candidates: the method's oversample 3 x each class's kept count; its select job keeps the kept count
    assert [p.sampled(sel, cid) for cid in IDS] == [6, 6, 9] and [p.sampled(RUN, cid) for cid in IDS] == [2, 2, 3]
    assert p.selection(sel, "", "002_two") == {
        "criterion": "confidence",
        "candidates": f"{OUT}/ablation/methods/sel/generated/002_two",
        "n_candidates": 9,
        "n_keep": 3,
    }
    assert a.method_kept("sel", "000_zero") == f"{OUT}/ablation/methods/sel/selected/000_zero"
    assert a.method_kept("proto", "000_zero") == f"{OUT}/ablation/methods/proto/generated/000_zero"
    assert a.method_set_variant("sel") == {
        "name": "sel",
        "n_generated": 3,
        "per_class": {"000_zero": 2, "001_one": 2, "002_two": 3},
        "n_aug": 2,
        "generation": p.scoped_gen_spec(sel),
        "selection": {"oversample": 3, "criterion": "confidence"},
    }
    assert p.teacher_active and not p.selection_active  # the teacher selects for the method, not for the run
    # evaluated under the distilled set's keys, recipe and labels; its own set and soft labels
    for key in ("distilled", "distilled.soft"):
        e, own = p.evaluation(sel, key), p.evaluation(RUN, key)
        assert (e.set, e.labels, e.recipe) == ("method:sel", own.labels, own.recipe)
        assert e.data == f"{OUT}/ablation/methods/sel/set.pt" and e.counts is None
    assert p.soft_labels_file(p.evaluation(sel, "distilled.soft")) == f"{OUT}/ablation/methods/sel/soft_labels.pt"
    assert p.soft_labels_file(p.evaluation(RUN, "distilled.soft")) == f"{OUT}/dataset/soft_labels.pt"
    assert p.soft_labels_file(p.evaluation(sel, "distilled")) is None
    assert not p.evaluation(sel, "distilled.soft").reads_teacher
    with pytest.raises(KeyError, match="not an evaluation of the distilled set"):
        p.evaluation(sel, "random_subset")
    # the results table: the run's evaluations, then each method's per regime and seed
    assert p.run_metrics()[4:] == [
        f"{OUT}/ablation/methods/proto/eval/distilled/convnet/seed0.json",
        f"{OUT}/ablation/methods/proto/eval/distilled.soft/convnet/seed0.json",
        f"{OUT}/ablation/methods/sel/eval/distilled/convnet/seed0.json",
        f"{OUT}/ablation/methods/sel/eval/distilled.soft/convnet/seed0.json",
    ]
    assert p.fidelity_sets == ["distilled", "method:proto", "method:sel", "random_subset"]
    assert p.set_file("method:sel") == f"{OUT}/ablation/methods/sel/set.pt"
    # what making each set took: its jobs' benchmark files (the prototypes only for the sets that read them)
    bench = f"{OUT}/benchmarks"
    making = p.making_benchmarks()
    assert making["distilled"] == [f"{bench}/sample/{c}.tsv" for c in IDS] + [
        f"{bench}/augment.tsv",
        f"{bench}/package.tsv",
    ]
    assert making["method:proto"] == [f"{bench}/prototypes/{c}.tsv" for c in IDS] + [
        f"{bench}/ablation/methods/proto/sample/{c}.tsv" for c in IDS
    ] + [f"{bench}/ablation/methods/proto/package.tsv"]
    assert making["method:sel"][3:6] == [f"{bench}/ablation/methods/sel/select/{c}.tsv" for c in IDS]
    assert set(making) == {"distilled", "method:proto", "method:sel"}  # the random subset is drawn in its jobs


def test_kd_caches_of_a_generation_method():
    p = plan({**METHODS, "evaluation": {"labels": ["hard", "kd"], "kd": {"cache": True}}})
    sel = "ablation/methods/sel/"
    assert p.kd_cache(sel, "distilled.kd", 0) == f"{OUT}/ablation/methods/sel/eval/kd_cache/distilled.kd/set.pt"
    assert p.kd_cache(RUN, "distilled.kd", 0) == f"{OUT}/eval/kd_cache/distilled.kd/set.pt"
    assert p.kd_cache(sel, "distilled", 0) is None
    job, seed = p.kd_cache_job(sel, "distilled.kd", "set")
    assert (job.set, job.data, seed) == ("method:sel", f"{OUT}/ablation/methods/sel/set.pt", 0)


def test_no_methods_leave_the_runs_plan_as_it_was():
    p = plan({"evaluation": {"baselines": {"random_subset": True}}})
    assert p.ablations.methods == [] and not p.ablations.methods_active and not p.prototypes_needed
    assert p.fidelity_sets == ["distilled", "random_subset"]
    assert len(p.run_metrics()) == 2
