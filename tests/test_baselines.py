"""The selection baselines (evaluation.baselines.kmeans_real, .rded): their rules on fixtures whose answer is known,
the plan's checks, the results table's rows for them, and the workflow with them on (and the fidelity table)."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_CONFIG, deep_update, eval_record, job_counts, run_snakemake

from gendistill.evaluation.runs import SELECTION_BASELINES
from gendistill.plan import ConfigError, build_plan
from gendistill.teacher import rded
from gendistill.teacher.kmeans_real import kmeans_pick

# ---- k-means: the real image nearest to each centre ----------------------------------------------------------


def blobs() -> tuple[np.ndarray, list[int]]:
    """Three far-apart blobs of 5 points: each centre c with c +- (1, 0), c +- (0, 1) and c + (0.1, 0.1); a blob's
    mean is c + (0.02, 0.02), nearest to its c + (0.1, 0.1) point (0.11 away; the others about 1). The points of
    the blobs interleave, so the answer is not the first of each."""
    centres = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]
    offsets = [(1, 0), (-1, 0), (0, 1), (0, -1), (0.1, 0.1)]
    pts, nearest = [], []
    for j, o in enumerate(offsets):
        for c in centres:
            if j == len(offsets) - 1:
                nearest.append(len(pts))
            pts.append((c[0] + o[0], c[1] + o[1]))
    return np.array(pts), nearest


def test_kmeans_keeps_the_real_image_nearest_to_each_centre():
    x, nearest = blobs()
    pick = kmeans_pick(x, 3, seed=0)
    assert sorted(pick["picked"]) == sorted(nearest)
    assert pick["distance"] == pytest.approx([np.hypot(0.08, 0.08)] * 3)
    assert sorted(pick["cluster_size"]) == [5, 5, 5]
    assert kmeans_pick(x, 3, seed=0) == pick  # seeded
    # as many centres as images: every image is kept exactly once (no centre takes an image another took)
    every = kmeans_pick(x, len(x), seed=1)["picked"]
    assert sorted(every) == list(range(len(x)))
    with pytest.raises(ValueError, match="fewer than the 16"):
        kmeans_pick(x, 16, seed=0)


# ---- RDED: the crops with the lowest teacher loss ---------------------------------------------------------------


def flat_images(levels) -> np.ndarray:
    """uint8 [N, 8, 8, 3] images of one grey level each: every crop of image i has level i."""
    return np.stack([np.full((8, 8, 3), v, dtype=np.uint8) for v in levels])


def darkness_loss(seen: list):
    """A stand-in teacher: the loss of a crop is its mean normalised value (the darkest crop is 'most realistic');
    records the shapes it is given."""

    def loss(x: torch.Tensor) -> np.ndarray:
        seen.append(tuple(x.shape))
        return x.mean(dim=(1, 2, 3)).numpy()

    return loss


def test_rded_choose_keeps_each_images_best_crop_and_the_best_images():
    losses = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.7], [0.6, 0.6, 0.3], [0.4, 0.05, 0.9]])
    ranked, crop = rded.choose(losses, 3)
    assert ranked.tolist() == [3, 1, 0] and crop.tolist() == [1, 0, 1]  # best crops 0.05, 0.1, 0.2 (then 0.3)


def test_rded_factor_1_keeps_the_lowest_loss_crops_as_images():
    levels = [200, 40, 120, 10, 250, 90]
    seen = []
    out, recs = rded.rded_class(
        flat_images(levels),
        3,
        darkness_loss(seen),
        np.random.default_rng(0),
        crops=2,
        factor=1,
        scale=(0.3, 1.0),
        mean=[0.5] * 3,
        std=[0.5] * 3,
    )
    assert seen == [(12, 3, 8, 8)]  # 6 images x 2 crops, at the teacher's size
    assert [r["source"] for r in recs] == [3, 1, 5]  # the three darkest, darkest first
    assert [int(img.mean()) for img in out] == [10, 40, 90]
    expected = [(lv / 255 - 0.5) / 0.5 for lv in (10, 40, 90)]
    assert [r["teacher_loss"] for r in recs] == pytest.approx(expected, abs=1e-6)
    assert all(1 <= r["side"] <= 8 and r["top"] + r["side"] <= 8 and r["left"] + r["side"] <= 8 for r in recs)


def test_rded_factor_2_stitches_four_ranked_crops_and_scores_them_padded():
    levels = [200, 40, 120, 10, 250, 90, 30]
    seen = []
    out, recs = rded.rded_class(
        flat_images(levels),
        1,
        darkness_loss(seen),
        np.random.default_rng(0),
        crops=1,
        factor=2,
        scale=(0.08, 1.0),
        mean=[0.0] * 3,
        std=[1.0] * 3,
    )
    assert seen == [(7, 3, 8, 8)]  # 4 px crops zero-padded to the teacher's 8 px (RDED's pad)
    assert [r["source"] for r in recs] == [3, 6, 1, 5] and [r["position"] for r in recs] == [0, 1, 2, 3]
    img = out[0, :, :, 0]
    # row by row: rank 0 top left, 1 top right, 2 bottom left, 3 bottom right
    assert (img[:4, :4] == 10).all() and (img[:4, 4:] == 30).all()
    assert (img[4:, :4] == 40).all() and (img[4:, 4:] == 90).all()
    with pytest.raises(ValueError, match="fewer than the 8 crops"):
        rded.rded_class(
            flat_images(levels),
            2,
            darkness_loss([]),
            np.random.default_rng(0),
            crops=1,
            factor=2,
            scale=(0.5, 1.0),
            mean=[0.0] * 3,
            std=[1.0] * 3,
        )


def test_rded_crop_boxes_follow_the_scale_and_the_seed():
    boxes = rded.crop_boxes(np.random.default_rng(3), 50, 5, 32, (0.25, 0.5))
    side = boxes[..., 2]
    assert (side >= 16).all() and (side <= 23).all()  # sqrt(0.25 x 1024) = 16, sqrt(0.5 x 1024) = 22.6
    assert (boxes[..., 0] + side <= 32).all() and (boxes[..., 1] + side <= 32).all()
    assert (rded.crop_boxes(np.random.default_rng(3), 50, 5, 32, (0.25, 0.5)) == boxes).all()
    assert rded.choose_images(np.random.default_rng(0), 10, 300).tolist() == list(range(10))


# ---- the plan ---------------------------------------------------------------------------------------------------

BASELINES = {"evaluation": {"baselines": {"random_subset": True, "kmeans_real": True, "rded": True}}}


def test_the_plan_evaluates_the_baselines_like_the_random_subset_and_they_use_the_teacher():
    plan = build_plan(deep_update(TINY_CONFIG, BASELINES), check_model=False)
    assert [r.key for r in plan.eval_runs] == ["distilled", "random_subset", "kmeans_real", "rded"]
    job = plan.evaluation("", "rded")
    assert job.data == plan.layout.baseline_set("rded") and job.recipe == plan.evaluation("", "random_subset").recipe
    assert plan.teacher_active and plan.selection_baselines == list(SELECTION_BASELINES)
    sel = plan.baseline_selection("rded")
    assert sel["counts"] == {"0": 6, "1": 6, "2": 6}  # the distilled set's 2 x (1 + 2) per class
    assert sel["settings"] == {"images": 300, "crops": 5, "factor": 1, "scale": [0.08, 1.0]}  # 32 px: factor 1

    def with_eval(**keys):
        return build_plan(deep_update(TINY_CONFIG, deep_update(BASELINES, {"evaluation": keys})), check_model=False)

    assert with_eval(resolution=128).baseline_selection("rded")["settings"]["factor"] == 2  # RDED's ImageNet size
    soft = with_eval(labels=["hard", "soft"])
    assert "kmeans_real.soft" in [r.key for r in soft.eval_runs]
    assert soft.evaluation("", "kmeans_real.soft").reads_teacher  # the teacher labels the baseline's images
    plain = build_plan(TINY_CONFIG, check_model=False)
    assert not plain.teacher_active and plain.selection_baselines == []


@pytest.mark.parametrize(
    "overlay, match",
    [
        (
            {"dataset": {"name": "classlist", "class_names": ["cat", "dog"], "classes": None}, **BASELINES},
            "evaluation.baselines.kmeans_real selects real training images",
        ),
        (deep_update(BASELINES, {"evaluation": {"activate": False}}), "evaluation.activate is false"),
        (deep_update(BASELINES, {"teacher": {"checkpoint": "missing/teacher.pt"}}), "evaluation.baselines.rded"),
        (
            deep_update(BASELINES, {"evaluation": {"baselines": {"rded_scale": [0.9, 0.2]}}}),
            "rded_scale: \\[0.9, 0.2\\] is not",
        ),
    ],
)
def test_baseline_errors_name_the_fix_at_plan_time(overlay, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_plan(deep_update(TINY_CONFIG, overlay), check_model=False)
    assert "Fix:" in str(e.value)


def test_a_baseline_without_real_data_names_the_teacher_it_cannot_get():
    cfg = deep_update(TINY_CONFIG, {"dataset": {"name": "classlist", "class_names": ["cat"], "classes": None}})
    with pytest.raises(ConfigError) as e:
        build_plan(deep_update(cfg, {"evaluation": {"baselines": {"rded": True}}}), check_model=False)
    assert "evaluation.baselines.rded needs a teacher" in str(e.value) and "teacher.checkpoint" in str(e.value)


# ---- the results table ------------------------------------------------------------------------------------------


def test_baselines_get_their_difference_to_random_and_the_scores():
    from gendistill.evaluation.table import rows_frame, summarise

    accs = {"random_subset": [0.80, 0.82, 0.84], "kmeans_real": [0.85, 0.88, 0.87], "full": [0.95] * 3}
    metrics = [eval_record(s, i, a) for s, v in accs.items() for i, a in enumerate(v)]
    s = summarise(rows_frame(metrics)).set_index("set")
    assert list(s.index) == ["random_subset", "kmeans_real", "full"]
    assert s.loc["kmeans_real", "minus_random_subset_points"] == pytest.approx(4.67, abs=0.01)
    assert s.loc["kmeans_real", "vs_random"] == "higher" and bool(s.loc["kmeans_real", "vs_random_paired"])
    assert s.loc["kmeans_real", "ior"] == pytest.approx(0.0467, abs=1e-3)
    assert s.loc["kmeans_real", "hlr"] == pytest.approx(0.95 - 0.8667, abs=1e-3)
    assert np.isfinite(s.loc["kmeans_real", "lrs"]) and not np.isfinite(s.loc["random_subset", "lrs"])


# ---- the workflow -----------------------------------------------------------------------------------------------


@pytest.mark.long  # a teacher, two selections, four sets evaluated and the fidelity job: ~55 s on 2 busy cores
def test_the_baselines_and_the_fidelity_table_in_the_workflow(tiny_run, tmp_path):
    """On a copy of the tiny run: one job per baseline picks 6 images per class with the teacher (k-means: real
    training images, pixel for pixel; RDED: crops scored by the teacher, recorded with their losses), the evaluate
    rule trains on them beside the random subset, and results/fidelity.csv has a row per set on the teacher's
    features. Changing RDED's settings reruns its selection, evaluation and the fidelity table only."""
    from test_workflow import copy_run

    from gendistill.datasets import get_adapter
    from gendistill.distilled.package import load_distilled

    wd = copy_run(tiny_run, tmp_path / "run")
    fid = {"activate": True, "features": "teacher"}  # the teacher is trained anyway: no recogniser to train
    cfg = deep_update(TINY_CONFIG, deep_update(BASELINES, {"teacher": {"epochs": 1}, "evaluation": {"fidelity": fid}}))
    out = wd / "results" / "t"
    t0 = time.perf_counter()
    run_snakemake(wd, cfg, targets=("results/t/results/results.csv", "results/t/results/fidelity.csv"))
    print(f"\nbaselines workflow run: {time.perf_counter() - t0:.0f}s")
    x, y = get_adapter(cfg["dataset"]).load_split("train")
    km = pd.read_csv(out / "baselines" / "kmeans_real" / "picks.csv")
    data = load_distilled(str(out / "baselines" / "kmeans_real" / "set.pt"))
    assert km.groupby("class_index").size().to_dict() == {0: 6, 1: 6, 2: 6}
    assert data["labels"].tolist() == km["class_index"].tolist()
    for r, img in zip(km.itertuples(), data["images_uint8"].permute(0, 2, 3, 1).numpy()):
        i = int(r.source.removeprefix("train[").removesuffix("]"))
        assert y[i] == r.class_index and (x[i] == img).all()  # a real training image of its class
        assert r.cluster_size >= 1 and r.distance_to_centre >= 0
    rd = pd.read_csv(out / "baselines" / "rded" / "picks.csv")
    assert rd.groupby("class_index").size().to_dict() == {0: 6, 1: 6, 2: 6} and (rd["position"] == 0).all()
    assert all((g["teacher_loss"].diff().dropna() >= 0).all() for _, g in rd.groupby("class_index"))  # ranked
    prov = load_distilled(str(out / "baselines" / "rded" / "set.pt"))["provenance"]
    teacher = json.loads((out / "teacher" / "teacher.json").read_text())
    assert prov["teacher_sha256"] == teacher["sha256"] and prov["settings"]["factor"] == 1
    results = pd.read_csv(out / "results" / "results.csv")
    assert list(dict.fromkeys(results["set"])) == ["distilled", "random_subset", "kmeans_real", "rded"]
    assert results.loc[results["set"] != "random_subset", "vs_random"].notna().all()
    assert (results.loc[results["set"] == "kmeans_real", "n_train"] == 18).all()
    table = pd.read_csv(out / "results" / "fidelity.csv")
    assert table["set"].tolist() == ["distilled", "random_subset", "kmeans_real", "rded"]
    assert (table["n_images"] == 18).all() and table["features"].str.startswith("teacher").all()
    assert table[["precision", "recall", "density", "coverage", "frechet_distance"]].notna().all().all()

    other = deep_update(cfg, {"evaluation": {"baselines": {"rded_crops": 3}}})
    counts = job_counts(run_snakemake(wd, other, "--dag").stdout)
    assert counts.get("select_baseline") == 1 and counts.get("teacher", 0) == 0
    assert counts.get("evaluate") == 1 and counts.get("fidelity") == 1 and counts.get("sample", 0) == 0


def test_the_baselines_job_on_a_streamed_imagenet_layout_picks_its_files(tmp_path):
    """ImageNet's files are streamed, never loaded whole: k-means keeps files of the class (their pixels as read at
    the teacher's resolution), RDED at factor 2 stitches 4 crops of 4 different files into each image; a class
    with too few images names the fix."""
    import dataset_fixtures as fx

    from gendistill.datasets import get_adapter
    from gendistill.datasets.images import read_images
    from gendistill.distilled.package import load_distilled
    from gendistill.evaluation.models import build_model
    from gendistill.teacher.baselines import select_baseline
    from gendistill.teacher.classifier import save_teacher

    fix = fx.make_imagenet(tmp_path / "data", n_classes=3, train_per_class=6)
    dataset = {"name": "imagenet", "root": str(fix.root), "image_size": 32}
    ad = get_adapter(dataset)
    torch.manual_seed(0)
    meta = {"model": "convnet", "num_classes": 3, "resolution": 32, "mean": list(ad.mean), "std": list(ad.std)}
    teacher = str(tmp_path / "teacher.pt")
    save_teacher(teacher, str(tmp_path / "teacher.json"), build_model("convnet", 3, 32), meta)
    names = [c.name for c in ad.classes()]

    def run(method, counts, settings=None):
        out = tmp_path / method
        select_baseline(
            method, dataset, counts, 0, settings or {}, teacher, names, [0, 1, 2], str(out / "set.pt"),
            str(out / "picks.csv"),
        )  # fmt: skip
        return load_distilled(str(out / "set.pt")), pd.read_csv(out / "picks.csv")

    data, picks = run("kmeans_real", {0: 2, 1: 2, 2: 2})
    files = {lab: [str(p) for p in ad.files("train", [lab])[0]] for lab in range(3)}
    assert all(r.source in files[r.class_index] for r in picks.itertuples())
    assert (data["images_uint8"].permute(0, 2, 3, 1).numpy() == read_images(list(picks["source"]), 32)).all()
    settings = {"images": 300, "crops": 2, "factor": 2, "scale": [0.3, 1.0]}
    data, picks = run("rded", {0: 1, 1: 1, 2: 1}, settings)
    assert data["images_uint8"].shape == (3, 3, 32, 32) and len(picks) == 12
    assert all(
        g["source"].nunique() == 4 and sorted(g["position"]) == [0, 1, 2, 3] for _, g in picks.groupby("class_index")
    )
    with pytest.raises(ValueError, match="rded, class .*fewer than the 8 crops.*Fix: a smaller IPC"):
        run("rded", {0: 2}, settings)
