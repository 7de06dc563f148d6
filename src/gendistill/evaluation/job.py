"""One evaluation job: build the training set (distilled / random real subset / full real), train, test."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..datasets import get_adapter
from .data import FileSource, TensorSource
from .models import model_label
from .train import evaluate_on, fit, fit_and_test, normalise

log = logging.getLogger("gendistill.evaluate")


class EpochProgress:
    """tqdm's counter, rate and ETA, written to the job log as about ten plain lines (no carriage-return bar)."""

    def __init__(self, epochs: int, desc: str, lines: int = 10):
        import io

        from tqdm import tqdm

        self.bar = tqdm(
            total=epochs, desc=desc, unit="epoch", file=io.StringIO(), ascii=True, ncols=100, mininterval=0, miniters=1
        )
        self.every = max(1, epochs // lines)

    def __call__(self, epoch: int, epochs: int, loss: float):
        self.bar.update(epoch - self.bar.n)
        self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        if epoch == epochs or epoch % self.every == 0:
            log.info("%s", self.bar)

    def close(self):
        self.bar.close()


def select_subset(labels: np.ndarray, counts: dict[int, int], seed: int) -> np.ndarray:
    """Seeded random subset with `counts[c]` real images of each class c (IPC-matched baseline)."""
    rng = np.random.default_rng([seed, 7919])
    idx = []
    for c, k in sorted(counts.items()):
        pool = np.flatnonzero(labels == c)
        if len(pool) < k:
            raise ValueError(f"class {c} has only {len(pool)} real training images, fewer than IPC {k}")
        idx.append(np.sort(rng.choice(pool, size=k, replace=False)))
    return np.concatenate(idx)


def real_split(adapter, split: str, keep_labels: list[int]):
    x, y = adapter.load_split(split)
    mask = np.isin(y, keep_labels)
    return x[mask], y[mask]


def real_source(adapter, split: str, keep: list[int], resolution: int, mean, std, workers: int, select=None):
    """A real split as a source: image files streamed from disk where the adapter lists them (ImageNet: never
    loaded whole), else arrays in memory. `select(labels) -> indices` picks a subset (the random real subset
    reads only its own files)."""
    if getattr(adapter, "streams", False):
        paths, y = adapter.files(split, keep)
        if select is not None:
            sel = select(y)
            paths, y = [paths[i] for i in sel], y[sel]
        return FileSource(paths, y, resolution, mean, std, workers)
    x, y = real_split(adapter, split, keep)
    if select is not None:
        sel = select(y)
        x, y = x[sel], y[sel]
    return TensorSource(normalise(x, mean, std), torch.from_numpy(y), resolution)


def test_subset(max_images: int | None):
    """A seeded subset of at most `max_images` test images (all when None)."""

    def select(y: np.ndarray) -> np.ndarray:
        if not max_images or len(y) <= max_images:
            return np.arange(len(y))
        return np.sort(np.random.default_rng(0).choice(len(y), max_images, replace=False))

    return select


def fit_on_real(
    what: str,
    adapter,
    labels: list[int],
    resolution: int,
    num_classes: int,
    model_name: str,
    seed: int,
    recipe: dict,
    max_test_images: int | None,
    device: str,
    workers: int = 0,
    progress=None,
    eval_batch: int = 256,
):
    """A classifier trained from scratch on the real training split of classes `labels` and tested on the real
    test split, both streamed at `resolution` (the recogniser, the teacher): (model, fit info, test result)."""
    train = real_source(adapter, "train", labels, resolution, adapter.mean, adapter.std, workers)
    test = real_source(
        adapter, "test", labels, resolution, adapter.mean, adapter.std, workers, test_subset(max_test_images)
    )
    log.info(
        "%s %s, seed %d: %d real training images of %d classes at %d px, recipe %s",
        what,
        model_name,
        seed,
        len(train),
        len(labels),
        resolution,
        recipe,
    )
    model, info = fit(train, num_classes, model_name, seed, recipe, device, progress)
    return model, info, evaluate_on(model, test, device, eval_batch, labels)


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
    distilled_path: str | None = None,
    device: str = "cpu",
    workers: int = 0,
    label_regime: str = "hard",
    kd: dict | None = None,
    soft_labels_path: str | None = None,
    teacher_path: str | None = None,
) -> dict:
    """Train `model` on one set and test it on the real test set.

    label_regime "soft": train with the KD loss (train.kd_loss, `kd`: temperature, alpha) on the teacher's
    logits: the package's sidecar (`soft_labels_path`) for the distilled set; for the random real subset the
    same teacher (`teacher_path`) labels the subset's images here, so both stand in the same regime."""
    from ..distilled.package import load_distilled

    adapter = get_adapter(dataset)
    keep = list(labels)
    mean, std = adapter.mean, adapter.std
    resolution = resolution or adapter.image_size
    soft, teacher_sha = None, None
    if label_regime not in ("hard", "soft"):
        raise ValueError(f"label regime {label_regime!r}; use hard or soft")
    if set_name == "distilled":
        d = load_distilled(distilled_path)
        train = TensorSource(d["images"], d["labels"], resolution)
        mean, std = d["mean"], d["std"]
        if label_regime == "soft":
            from ..teacher.soft_labels import load_aligned

            s = load_aligned(soft_labels_path, d, distilled_path)
            soft, teacher_sha = s["logits"], s["teacher_sha256"]
            kd = {**kd, "temperature": s["temperature"]}
    else:
        select = None
        if set_name == "random_subset":
            counts = {int(k): int(v) for k, v in per_class_counts.items()}
            select = lambda y: select_subset(y, counts, seed)  # noqa: E731
        train = real_source(adapter, "train", keep, resolution, mean, std, workers, select)
        if label_regime == "soft":
            from ..imageio import sha256_file
            from ..teacher.classifier import load_teacher, logits_and_features

            teacher, meta = load_teacher(teacher_path)
            if meta["resolution"] != resolution:
                raise ValueError(f"teacher trained at {meta['resolution']} px, evaluation at {resolution} px")
            soft, _ = logits_and_features(teacher, train, device)
            teacher_sha = sha256_file(teacher_path)
    test = real_source(adapter, "test", keep, resolution, mean, std, workers, test_subset(max_test_images))
    log.info(
        "%s/%s/seed %d: %d train images, %d test images at %d px (%s), recipe %s, labels %s%s",
        set_name,
        model,
        seed,
        len(train),
        len(test),
        resolution,
        type(train).__name__,
        recipe,
        label_regime,
        f" (KD {kd})" if soft is not None else "",
    )

    progress = EpochProgress(recipe["epochs"], f"{set_name}/{model}/seed{seed}")
    try:
        res = fit_and_test(
            train,
            test,
            num_classes,
            model,
            seed,
            recipe,
            device,
            progress,
            label_set=keep,
            soft_logits=soft,
            kd=kd if soft is not None else None,
        )
    finally:
        progress.close()
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
    if soft is not None:
        res.update({"kd": kd, "teacher_sha256": teacher_sha})
    log.info("accuracy %.4f", res["accuracy"])
    return res
