"""One evaluation job: build the training set (distilled / random real subset / full real), train, test."""

from __future__ import annotations

import json
import logging

import numpy as np
import torch

from ..datasets import get_adapter
from .models import model_label
from .train import normalise, train_and_test

log = logging.getLogger("gendistill.evaluate")


class EpochProgress:
    """tqdm's counter, rate and ETA, written to the job log as about ten plain lines (no carriage-return bar)."""

    def __init__(self, epochs: int, desc: str, lines: int = 10):
        import io

        from tqdm import tqdm

        self.bar = tqdm(total=epochs, desc=desc, unit="epoch", file=io.StringIO(), ascii=True, ncols=100,
                        mininterval=0, miniters=1)
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


def run_job(set_name: str, model: str, seed: int, p: dict, distilled_path: str | None, device: str) -> dict:
    from ..package import load_distilled

    adapter = get_adapter(json.loads(p["dataset"]))
    keep = list(p["labels"])
    mean, std = adapter.mean, adapter.std
    if set_name == "distilled":
        d = load_distilled(distilled_path)
        x_train, y_train = d["images"], d["labels"]
        mean, std = d["mean"], d["std"]
    else:
        x, y = real_split(adapter, "train", keep)
        if set_name == "random_subset":
            counts = {int(k): int(v) for k, v in json.loads(p["per_class_counts"]).items()}
            sel = select_subset(y, counts, seed)
            x, y = x[sel], y[sel]
        x_train, y_train = normalise(x, mean, std), torch.from_numpy(y)
    xt, yt = real_split(adapter, "test", keep)
    if p.get("max_test_images") and len(yt) > p["max_test_images"]:
        sel = np.sort(np.random.default_rng(0).choice(len(yt), p["max_test_images"], replace=False))
        xt, yt = xt[sel], yt[sel]
    x_test, y_test = normalise(xt, mean, std), torch.from_numpy(yt)
    recipe = json.loads(p["recipe"])
    log.info("%s/%s/seed %d: %d train images, %d test images, recipe %s", set_name, model, seed, len(y_train),
             len(y_test), recipe)

    progress = EpochProgress(recipe["epochs"], f"{set_name}/{model}/seed{seed}")
    try:
        res = train_and_test(x_train, y_train, x_test, y_test, p["num_classes"], model, seed, recipe, device,
                             progress, label_set=keep)
    finally:
        progress.close()
    res.update({"set": set_name, "model": model, "model_label": model_label(model, x_train.shape[-1]),
                "seed": seed, "recipe": recipe, "chance": 1.0 / len(keep)})
    log.info("accuracy %.4f", res["accuracy"])
    return res
