"""The teacher stage: candidate selection (deterministic, cached per class, never resampling), soft labels aligned
with the packaged images, KD training, and a teacher checkpoint loaded from a path."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_CONFIG, deep_update, job_counts, run_snakemake
from test_workflow import copy_run

from gendistill.plan import ConfigError, build_plan
from gendistill.teacher.selection import difficulty_band_ranks, k_center_greedy, scores_from_logits, select

# ---- selection criteria (pure functions) --------------------------------------------------------------------


def test_selection_criteria_are_deterministic_and_do_what_they_say():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(10, 5))
    s = scores_from_logits(logits, class_index=2, label_set=[0, 1, 2, 3, 4])
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(s["prob"], p[:, 2])
    np.testing.assert_allclose(s["loss"], -np.log(p[:, 2]))
    feats = rng.normal(size=(10, 8))
    kept, score = select("confidence", s["prob"], s["loss"], feats, 3)
    assert kept == sorted(np.argsort(-s["prob"])[:3].tolist())
    # diversity: k-center greedy from the most confident; every next point is the farthest from those kept
    kept_d, _ = select("diversity", s["prob"], s["loss"], feats, 3)
    order = k_center_greedy(feats, 3, int(np.argmax(s["prob"])))
    assert kept_d == sorted(order) and order[0] == int(np.argmax(s["prob"]))
    d01 = np.linalg.norm(feats - feats[order[0]], axis=1)
    assert order[1] == int(np.argmax(d01))
    # difficulty: evenly over the band's ranks of the loss (0 = easiest)
    kept_h, _ = select("difficulty", s["prob"], s["loss"], feats, 2, band=(0.2, 0.8))
    ranks = np.argsort(np.argsort(s["loss"], kind="stable"), kind="stable")
    assert sorted(ranks[kept_h].tolist()) == difficulty_band_ranks(10, 2, (0.2, 0.8)) == [2, 7]
    # the same inputs give the same choice
    assert select("diversity", s["prob"], s["loss"], feats, 3)[0] == kept_d
    with pytest.raises(ValueError, match="widen the band"):
        difficulty_band_ranks(10, 4, (0.4, 0.6))


@pytest.mark.parametrize(
    "overlay, match",
    [
        ({"selection": {"oversample": 3}}, "selection.criterion is none"),
        ({"selection": {"criterion": "confidence"}}, "selection.oversample is 1"),
        ({"selection": {"oversample": 2, "criterion": "difficulty", "difficulty_band": [0.5, 0.6]}}, "widen the band"),
        ({"evaluation": {"labels": "soft"}, "teacher": {"checkpoint": "missing/teacher.pt"}}, "teacher.checkpoint"),
        ({"ablation": {"teacher": True}, "evaluation": {"labels": "soft"}}, "must be the paper's method"),
        (
            {"selection": {"oversample": 3, "criterion": "confidence"}, "limits": {"max_images_per_class": 5}},
            "candidates to sample",
        ),
    ],
)
def test_teacher_config_errors_name_the_fix_at_plan_time(overlay, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_plan(deep_update(TINY_CONFIG, overlay), check_model=False)
    assert "Fix:" in str(e.value)


# ---- teacher checkpoint ---------------------------------------------------------------------------------------


def test_teacher_checkpoint_loads_from_a_path(tmp_path):
    """A plain state dict (here torchvision's ResNet-18 at ImageNet resolution, 10 classes) imports as the teacher
    and gives the same logits as the model it came from; a wrong architecture names the fix."""
    import torchvision

    from gendistill.teacher.classifier import import_checkpoint, load_teacher, sha256_file

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    ckpt = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), ckpt)
    info = import_checkpoint(
        str(ckpt),
        "resnet18",
        10,
        224,
        list(range(10)),
        [0.5] * 3,
        [0.25] * 3,
        str(tmp_path / "teacher.pt"),
        str(tmp_path / "teacher.json"),
    )
    assert info["checkpoint_sha256"] == sha256_file(ckpt)
    assert json.loads((tmp_path / "teacher.json").read_text())["sha256"] == sha256_file(tmp_path / "teacher.pt")
    teacher, meta = load_teacher(str(tmp_path / "teacher.pt"))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), net(x))
    assert meta["source"] == "checkpoint" and meta["resolution"] == 224
    with pytest.raises(ValueError, match="Fix: set teacher.model"):
        import_checkpoint(
            str(ckpt),
            "convnet",
            10,
            32,
            list(range(10)),
            [0.5] * 3,
            [0.25] * 3,
            str(tmp_path / "t2.pt"),
            str(tmp_path / "t2.json"),
        )


# ---- soft labels on a fixture package ---------------------------------------------------------------------------


def _fixture_package(tmp_path, n_per_class=3, classes=(0, 1, 2), size=16):
    """A tiny packaged set written by package.package from PNGs in the augment stage's format."""
    from gendistill.distilled.package import package
    from gendistill.imageio import save_png

    rng = np.random.default_rng(0)
    dirs = []
    for c in classes:
        d = tmp_path / "aug" / f"{c:03d}_c{c}"
        d.mkdir(parents=True)
        recs = []
        for i in range(n_per_class):
            f = f"{i:04d}_0.png"
            sha = save_png(d / f, rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            recs.append(
                {
                    "file": f,
                    "class_index": c,
                    "class_name": f"c{c}",
                    "class_id": d.name,
                    "prompt": "p",
                    "seed": i,
                    "source_image": f"{i:04d}.png",
                    "copy": 0,
                    "aug_seed": None,
                    "augmentation": None,
                    "sha256": sha,
                }
            )
        (d / "records.json").write_text(json.dumps({"meta": {}, "images": recs}))
        dirs.append(str(d))
    pt = tmp_path / "dataset" / "distilled.pt"
    package(
        dirs,
        [f"c{i}" for i in range(4)],
        [0.5] * 3,
        [0.25] * 3,
        str(pt),
        str(tmp_path / "dataset/m.csv"),
        str(tmp_path / "dataset/folder"),
        provenance={},
    )
    return pt


def _fixture_teacher(tmp_path, size=16, num_classes=4):
    from gendistill.evaluation.models import build_model
    from gendistill.teacher.classifier import save_teacher

    torch.manual_seed(1)
    model = build_model("convnet", num_classes, size)
    meta = {
        "source": "trained",
        "model": "convnet",
        "num_classes": num_classes,
        "resolution": size,
        "labels": [0, 1, 2],
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
    }
    save_teacher(str(tmp_path / "teacher.pt"), str(tmp_path / "teacher.json"), model, meta)
    return tmp_path / "teacher.pt", model


def test_soft_label_file_is_aligned_with_images_and_labels(tmp_path):
    from gendistill.distilled.package import load_distilled
    from gendistill.teacher.soft_labels import compute, load_aligned

    pt = _fixture_package(tmp_path)
    teacher_pt, model = _fixture_teacher(tmp_path)
    out = tmp_path / "dataset" / "soft_labels.pt"
    info = compute(str(pt), str(teacher_pt), 3.0, str(out))
    d = load_distilled(str(pt))
    s = load_aligned(str(out), d, str(pt))
    assert info["n_images"] == len(d["labels"]) == 9 and s["logits"].shape == (9, 4) and s["temperature"] == 3.0
    assert s["files"] == d["files"] and torch.equal(s["labels"], d["labels"])
    # row i is the teacher's logits of image i (recomputed one image at a time, from the PNG tree's file)
    from gendistill.imageio import load_png
    from gendistill.teacher.classifier import images_source, logits_and_features

    for i in (0, 4, 8):
        img = load_png(tmp_path / "dataset" / "folder" / d["files"][i])[None]
        one, _ = logits_and_features(model, images_source(img, [0.5] * 3, [0.25] * 3, 16))
        torch.testing.assert_close(one[0], s["logits"][i], atol=1e-4, rtol=1e-4)
    # a sidecar of other images is refused, never trained on
    bad = dict(torch.load(out, weights_only=True))
    bad["files"] = list(reversed(bad["files"]))
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not aligned"):
        load_aligned(str(tmp_path / "bad.pt"), d)


def test_kd_loss_trains_towards_the_teacher_logits():
    from gendistill.evaluation.data import TensorSource
    from gendistill.evaluation.train import fit, kd_loss

    out = torch.tensor([[2.0, 0.0, -1.0]])
    assert float(kd_loss(out, out.clone(), torch.tensor([0]), 4.0, 1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kd_loss(out, torch.tensor([[0.0, 2.0, 0.0]]), torch.tensor([0]), 4.0, 1.0)) > 0
    torch.manual_seed(0)
    x, y = torch.randn(12, 3, 16, 16), torch.arange(12) % 3
    soft = torch.zeros(12, 3)
    soft[torch.arange(12), (y + 1) % 3] = 8.0  # the teacher says "the next class": KD must learn that, not y
    recipe = {
        "epochs": 40,
        "batch_size": 12,
        "lr": 0.01,
        "optimizer": "adam",
        "momentum": 0.9,
        "weight_decay": 0.0,
        "schedule": "constant",
        "train_augment": False,
    }
    model, _ = fit(TensorSource(x, y), 3, "convnet", 0, recipe, soft_logits=soft, kd={"temperature": 1.0, "alpha": 1.0})
    with torch.no_grad():
        pred = model.eval()(x).argmax(1)
    assert (pred == (y + 1) % 3).float().mean() > 0.9


# ---- the workflow: selection cached per class, soft labels, provenance ----------------------------------------

TEACHER_RUN = {
    "selection": {"oversample": 2, "criterion": "confidence"},
    "teacher": {"epochs": 1},
    "evaluation": {"labels": "soft", "baselines": {"random_subset": True}},
}


def test_selection_and_soft_labels_in_the_workflow(tiny_run, tmp_path):
    """On a copy of the tiny run: oversample 2 samples 4 candidates per class whose first 2 are the run's images;
    the teacher keeps 2 by confidence (scores file, manifest's candidate column, provenance's teacher sha256);
    soft labels are aligned and every result row says its regime; changing the criterion reruns selection and
    what follows, and 0 sample jobs."""
    wd = copy_run(tiny_run, tmp_path / "run")
    cfg = deep_update(TINY_CONFIG, TEACHER_RUN)
    t0 = time.perf_counter()
    out = wd / "results" / "t"
    classes = sorted(p.name for p in (out / "generated").iterdir())
    run_snakemake(
        wd,
        cfg,
        targets=(
            "results/t/results/results.csv",
            "results/t/dataset/soft_labels.pt",
            *(f"results/t/selection/{c}.csv" for c in classes),
        ),
    )  # not the report items
    for cls in classes:
        recs = json.loads((out / "generated" / cls / "records.json").read_text())["images"]
        base = json.loads((tiny_run / "results/t/generated" / cls / "records.json").read_text())["images"]
        assert len(recs) == 4 and [r["sha256"] for r in recs[:2]] == [r["sha256"] for r in base]
        scores = pd.read_csv(out / "selection" / f"{cls}.csv")
        assert scores["candidate"].tolist() == [0, 1, 2, 3] and scores["kept"].sum() == 2
        top = scores.sort_values(["teacher_prob", "candidate"], ascending=[False, True])["candidate"][:2]
        assert sorted(scores.loc[scores["kept"], "candidate"]) == sorted(top)
    manifest = pd.read_csv(out / "dataset" / "manifest.csv")
    kept = {
        (r.class_id, r.candidate)
        for r in pd.concat([pd.read_csv(p) for p in (out / "selection").glob("*.csv")]).itertuples()
        if r.kept
    }
    assert {(r.class_id, r.candidate) for r in manifest.itertuples()} == kept
    prov = json.loads((out / "dataset" / "provenance.json").read_text())
    teacher = json.loads((out / "teacher" / "teacher.json").read_text())
    assert prov["teacher"]["sha256"] == teacher["sha256"]
    from gendistill.distilled.package import load_distilled
    from gendistill.teacher.soft_labels import load_aligned

    s = load_aligned(
        str(out / "dataset/soft_labels.pt"),
        load_distilled(str(out / "dataset/distilled.pt")),
        str(out / "dataset/distilled.pt"),
    )
    assert s["teacher_sha256"] == teacher["sha256"]
    results = pd.read_csv(out / "results" / "results.csv")
    assert set(results["labels"]) == {"soft"} and set(results["set"]) == {"distilled", "random_subset"}
    print(f"\nteacher workflow run: {time.perf_counter() - t0:.0f}s")

    other = deep_update(cfg, {"selection": {"criterion": "diversity"}})
    counts = job_counts(run_snakemake(wd, other, "--dag").stdout)
    assert counts.get("sample", 0) == 0 and counts.get("teacher", 0) == 0
    assert counts["select"] == 3 and counts["augment"] == 1 and counts["package"] == 1


def test_teacher_ablation_plans_its_rows_and_reuses_the_runs_jobs(tiny_run, tmp_path):
    """ablation.teacher on the tiny run (dry run): one teacher, per criterion and class a selection over the
    shared pool, a set per criterion, and evaluations only for the rows the run has not evaluated itself."""
    wd = copy_run(tiny_run, tmp_path / "run")
    cfg = deep_update(
        TINY_CONFIG,
        {"ablation": {"teacher": True, "oversample": 3}, "evaluation": {"baselines": {"random_subset": True}}},
    )
    counts = job_counts(run_snakemake(wd, cfg, "--dag").stdout)
    assert counts.get("sample", 0) == 0 and counts.get("package", 0) == 0  # the run's own set is untouched
    assert counts["teacher"] == 1 and counts["ablation/sample"] == 3 and counts["soft_labels"] == 1
    assert counts["ablation/teacher/select"] == 9 and counts["ablation_teacher_package"] == 3
    # 3 selected sets + the paper's set soft + the real subset soft + full data (not a baseline of this run)
    assert counts["ablation/evaluate"] == 6 and counts["teacher_ablation_table"] == 1


def test_a_trained_teacher_is_set_beside_the_published_one_and_warned_when_far_below(caplog):
    import logging

    from gendistill.teacher.classifier import published_comparison

    with caplog.at_level(logging.WARNING, logger="gendistill.teacher"):
        ok = published_comparison("cifar100", "resnet18", 32, 0.70, all_classes=True)
        assert not caplog.records
        low = published_comparison("cifar100", "resnet18", 32, 0.40, all_classes=True)
    assert ok == {"accuracy": 0.7227, "source": low["source"], "comparable": True, "far_below": False}
    assert low["far_below"] and "RDED" in low["source"]
    assert "32.3 points below the 0.7227" in caplog.text and "teacher.checkpoint" in caplog.text
    subset = published_comparison("imagenet", "resnet18", 224, 0.10, all_classes=False)  # 10 of 1,000 classes
    assert subset["accuracy"] == 0.69758 and not subset["comparable"] and not subset["far_below"]
    assert published_comparison("digits", "convnet", 32, 0.5, all_classes=True) is None
