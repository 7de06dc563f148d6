"""One evaluation job (the evaluate rule): build the training set (distilled / random real subset / full real),
train, test; with a recipe `lr_search` (evaluation.lr_search), train once per learning rate and keep the best on
the test set, as DD-Ranking does (labelled so in `accuracy_kind`).

It sits above both evaluation/ (training, models, real data) and teacher/ (the teacher's logits and the soft labels
that the kd and soft regimes train on), which itself trains with evaluation/'s low modules."""

from __future__ import annotations

import logging

from .datasets import get_adapter
from .distilled.package import load_distilled
from .evaluation.data import TensorSource
from .evaluation.models import model_label
from .evaluation.progress import EpochProgress
from .evaluation.real import real_source, select_subset, test_subset
from .evaluation.runs import FILE_SETS, REGIMES
from .evaluation.train import fit_and_test
from .imageio import sha256_file
from .teacher.classifier import load_teacher, logits_and_features
from .teacher.soft_labels import load_aligned

log = logging.getLogger("gendistill.evaluate")


def _teacher(teacher_path: str, resolution: int):
    teacher, meta = load_teacher(teacher_path)
    if meta["resolution"] != resolution:
        raise ValueError(f"teacher trained at {meta['resolution']} px, evaluation at {resolution} px")
    return teacher


def run_job(
    set_name: str,
    model: str,
    seed: int,
    *,
    dataset: dict,
    labels: list[int],
    num_classes: int,
    recipe: dict,
    per_class_counts: dict[int, int] | None = None,
    max_test_images: int | None = None,
    resolution: int | None = None,
    distilled_path: str | None = None,  # the file of a packaged set (runs.FILE_SETS)
    device: str = "cpu",
    workers: int = 0,
    label_regime: str = "hard",
    kd: dict | None = None,
    soft_labels_path: str | None = None,
    teacher_path: str | None = None,
    eval_key: str | None = None,
) -> dict:
    """Train `model` on one set and test it on the real test set.

    label_regime (evaluation/runs.py) "soft": fixed soft labels, trained with the KD loss (train.kd_loss, `kd`)
    on the teacher's logits of each stored image: the package's sidecar (`soft_labels_path`) for the distilled
    set; for a real set the same teacher (`teacher_path`) labels its images here, so both stand in the same
    regime. "kd": the teacher (`teacher_path`) labels every augmented batch during training, for any set.
    The test images are read at recipe test_resize (evaluation.test_resize) when given."""
    adapter = get_adapter(dataset)
    keep = list(labels)
    mean, std = adapter.mean, adapter.std
    resolution = resolution or adapter.image_size
    soft, teacher, teacher_sha = None, None, None
    if label_regime not in REGIMES:
        raise ValueError(f"label regime {label_regime!r}; use one of {', '.join(REGIMES)}")
    if set_name in FILE_SETS:  # the distilled set, or a selection baseline's set in its format
        d = load_distilled(distilled_path)
        train = TensorSource(d["images"], d["labels"], resolution)
        mean, std = d["mean"], d["std"]
        if label_regime == "soft" and set_name == "distilled":
            s = load_aligned(soft_labels_path, d, distilled_path)
            soft, teacher_sha = s["logits"], s["teacher_sha256"]
            kd = {**kd, "temperature": s["temperature"]}
        elif label_regime == "soft":  # a baseline's images: the teacher labels them here, as a real subset's
            soft, _ = logits_and_features(_teacher(teacher_path, resolution), train, device)
            teacher_sha = sha256_file(teacher_path)
    else:
        select = None
        if set_name == "random_subset":
            counts = {int(k): int(v) for k, v in per_class_counts.items()}
            select = lambda y: select_subset(y, counts, seed)  # noqa: E731
        train = real_source(adapter, "train", keep, resolution, mean, std, workers, select)
        if label_regime == "soft":
            soft, _ = logits_and_features(_teacher(teacher_path, resolution), train, device)
            teacher_sha = sha256_file(teacher_path)
    if label_regime == "kd":
        teacher, teacher_sha = _teacher(teacher_path, resolution), sha256_file(teacher_path)
    test_images = test_subset(max_test_images)
    test = real_source(adapter, "test", keep, resolution, mean, std, workers, test_images, recipe.get("test_resize"))
    log.info(
        "%s/%s/seed %d: %d train images, %d test images at %d px (%s), recipe %s, labels %s%s",
        eval_key or set_name,
        model,
        seed,
        len(train),
        len(test),
        resolution,
        type(train).__name__,
        recipe,
        label_regime,
        f" (KD {kd})" if label_regime != "hard" else "",
    )

    def fit_once(fit_recipe: dict) -> dict:
        progress = EpochProgress(fit_recipe["epochs"], f"{eval_key or set_name}/{model}/seed{seed}")
        try:
            return fit_and_test(
                train,
                test,
                num_classes,
                model,
                seed,
                fit_recipe,
                device,
                progress,
                label_set=keep,
                soft_logits=soft,
                kd=kd if label_regime != "hard" else None,
                teacher=teacher,
            )
        finally:
            progress.close()

    res = search_lr(fit_once, recipe) if recipe.get("lr_search") else fit_once(recipe)
    res.update(
        {
            "set": set_name,
            "model": model,
            "model_label": model_label(model, resolution),
            "seed": seed,
            "recipe": recipe,
            "chance": 1.0 / len(keep),
            "resolution": resolution,
            "labels": label_regime,
        }
    )
    if eval_key is not None:
        res["eval_key"] = eval_key
    if label_regime != "hard":
        res.update({"kd": kd, "teacher_sha256": teacher_sha})
    log.info("accuracy %.4f (%s)", res["accuracy"], res["accuracy_kind"])
    return res


LR_SELECTED = ", lr selected on test"


def search_lr(fit_once, recipe: dict) -> dict:
    """DD-Ranking's learning-rate search: train with each lr of recipe lr_search (seed and recipe otherwise the
    same) and keep the run with the best test accuracy (the first at a tie, as its strict `acc > best_acc`). This
    selects on the test set: `accuracy_kind` says so, and `lr_search` records every lr's accuracy."""
    tried = []
    for lr in recipe["lr_search"]:
        res = fit_once({**recipe, "lr": lr})
        log.info("lr %g: accuracy %.4f (%s)", lr, res["accuracy"], res["accuracy_kind"])
        tried.append((lr, res))
    best_lr, best = max(tried, key=lambda t: (t[1]["accuracy"], -tried.index(t)))
    best["accuracy_kind"] += LR_SELECTED
    best["lr_search"] = {
        "selected_lr": best_lr,
        "accuracy_by_lr": {str(lr): r["accuracy"] for lr, r in tried},
        "selected_on": "test accuracy (DD-Ranking's search)",
    }
    return best
