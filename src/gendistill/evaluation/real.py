"""The real data of an evaluation: the dataset's splits restricted to the run's classes, as sources (image files
streamed from disk where the adapter lists them, else arrays in memory), the seeded random real subset, and one
classifier trained on the real training split and tested on the real test split.

A low module: the evaluation jobs, the teacher (teacher/classifier.py) and the recogniser all train on real data
through it, and it imports none of them.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .data import DeviceImages, FileSource
from .train import evaluate_on, fit

log = logging.getLogger("gendistill.evaluate")


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


def real_source(
    adapter,
    split: str,
    keep: list[int],
    resolution: int,
    mean,
    std,
    workers: int,
    select=None,
    resize=None,
    device: str = "cpu",
):
    """A real split as a source: image files streamed from disk where the adapter lists them (ImageNet: never
    loaded whole), else uint8 images held on `device` (data.DeviceImages). `select(labels) -> indices` picks a
    subset (the random real subset reads only its own files); `resize` (a test set: evaluation.test_resize) is the
    short side before the centre crop to `resolution`."""
    if adapter.streams:
        paths, y = adapter.files(split, keep)
        if select is not None:
            sel = select(y)
            paths, y = [paths[i] for i in sel], y[sel]
        return FileSource(paths, y, resolution, mean, std, workers, resize)
    x, y = real_split(adapter, split, keep)
    if select is not None:
        sel = select(y)
        x, y = x[sel], y[sel]
    x8 = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
    return DeviceImages(x8, torch.from_numpy(y), mean, std, resolution, resize, device)


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
        adapter,
        "test",
        labels,
        resolution,
        adapter.mean,
        adapter.std,
        workers,
        test_subset(max_test_images),
        recipe.get("test_resize"),
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
