"""One selection baseline's job (rule select_baseline): with the teacher, pick each class's images among its real
training images: `kmeans_real` (kmeans_real.py) or `rded` (rded.py); write them as one set in distilled.pt's
format (baselines/<name>/set.pt: images, images_uint8, labels, class names, mean, std, files, provenance) and what
was picked, with the scores, as baselines/<name>/picks.csv.

One job for all classes: its cost is the teacher's forward passes over the real images, the same split per class
or not, and a job per class would add a process start (torch, the teacher) per class; a class draws its own seed
([selection_seed, label]), so its picks do not depend on the other classes. The images are at the teacher's
resolution (the evaluation's), which the evaluation then reads unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_path
from ..datasets import get_adapter
from ..datasets.images import read_images
from ..evaluation.data import FileSource, TensorSource
from ..evaluation.train import normalise
from ..imageio import sha256_file
from . import kmeans_real, rded
from .classifier import load_teacher, logits_and_features
from .selection import scores_from_logits

log = logging.getLogger("gendistill.baselines")

FORMAT_VERSION = 1
METHODS = ("kmeans_real", "rded")


class RealClasses:
    """The real training images of each class at one resolution: all of a class's as a source (features), any of
    them as uint8, and their identifiers (a file, or the index in the split for datasets held in memory)."""

    def __init__(self, adapter, resolution: int):
        self.adapter, self.resolution = adapter, resolution
        if not adapter.streams:
            self.x, self.y = adapter.load_split("train")

    def _where(self, label: int):
        if self.adapter.streams:
            paths, _ = self.adapter.files("train", [label])
            return list(paths)
        return np.flatnonzero(self.y == label)

    def ids(self, label: int) -> list[str]:
        where = self._where(label)
        return [str(p) for p in where] if self.adapter.streams else [f"train[{int(i)}]" for i in where]

    def uint8(self, label: int, positions=None) -> np.ndarray:
        """uint8 [n, R, R, 3] of the class's images at `positions` (its order; all when None)."""
        where = self._where(label)
        pos = range(len(where)) if positions is None else positions
        if self.adapter.streams:
            return read_images([where[i] for i in pos], self.resolution)
        x = self.x[where[list(pos)]]
        if x.shape[1] == self.resolution:
            return x
        t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
        t = rded.resize(t, self.resolution, self.resolution)
        return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def source(self, label: int, mean, std, workers: int = 0):
        """All of the class's images as an evaluation source (streamed from disk where the adapter lists files)."""
        if self.adapter.streams:
            paths = self._where(label)
            return FileSource(paths, np.full(len(paths), label), self.resolution, mean, std, workers)
        x = self.uint8(label)
        return TensorSource(normalise(x, mean, std), torch.full((len(x),), label), self.resolution)


def _kmeans(real, label, k, seed, model, meta, device, workers):
    _, feats = logits_and_features(model, real.source(label, meta["mean"], meta["std"], workers), device)
    pick = kmeans_real.kmeans_pick(feats.numpy(), k, kmeans_real.class_seed(seed, label))
    ids = real.ids(label)
    order = sorted(range(k), key=lambda c: pick["picked"][c])  # the kept images in the class's own order
    images = real.uint8(label, [pick["picked"][c] for c in order])
    rows = [
        {
            "image": n,
            "cluster": c,
            "source": ids[pick["picked"][c]],
            "source_index": pick["picked"][c],
            "distance_to_centre": pick["distance"][c],
            "cluster_size": pick["cluster_size"][c],
        }
        for n, c in enumerate(order)
    ]
    return images, rows, [r["source"] for r in rows]


def _rded(real, label, k, seed, settings, model, meta, label_set, device):
    def loss_fn(x: torch.Tensor) -> np.ndarray:
        logits, _ = logits_and_features(model, TensorSource(x, torch.zeros(len(x), dtype=torch.long)), device)
        return scores_from_logits(logits.numpy(), label, label_set)["loss"]

    ids, rng = real.ids(label), rded.class_rng(seed, label)
    chosen = rded.choose_images(rng, len(ids), settings["images"])
    images, records = rded.rded_class(
        real.uint8(label, chosen),
        k,
        loss_fn,
        rng,
        crops=settings["crops"],
        factor=settings["factor"],
        scale=settings["scale"],
        mean=meta["mean"],
        std=meta["std"],
    )
    for r in records:
        r["source_index"] = int(chosen[r["source"]])
        r["source"] = ids[r["source_index"]]
    files = ["+".join(r["source"] for r in records if r["image"] == i) for i in range(k)]
    return images, records, files


def select_baseline(
    method: str,
    dataset: dict,
    counts: dict[int, int],
    seed: int,
    settings: dict,
    teacher_path: str,
    class_names: list[str],
    label_set: list[int],
    out_set: str,
    out_picks: str,
    device: str = "cpu",
    workers: int = 0,
) -> dict:
    """Pick `counts[label]` images of every class with `method`; write the set and the picks."""
    if method not in METHODS:
        raise ValueError(f"unknown selection baseline {method!r}; use one of {', '.join(METHODS)}")
    adapter = get_adapter(dataset)
    model, meta = load_teacher(teacher_path)
    model = model.to(device)
    real = RealClasses(adapter, int(meta["resolution"]))
    all_images, labels, files, rows = [], [], [], []
    for label, k in sorted((int(a), int(b)) for a, b in counts.items()):
        try:
            if method == "kmeans_real":
                images, recs, names = _kmeans(real, label, k, seed, model, meta, device, workers)
            else:
                images, recs, names = _rded(real, label, k, seed, settings, model, meta, label_set, device)
        except ValueError as e:
            raise ValueError(
                f"{method}, class {class_names[label]!r}: {e}. Fix: a smaller IPC, or turn "
                f"evaluation.baselines.{method} off" + (" (or rded_factor: 1)" if method == "rded" else "")
            ) from None
        all_images.append(images)
        labels += [label] * len(images)
        files += names
        rows += [{"class_index": label, "class_name": class_names[label], **r} for r in recs]
        log.info("%s: class %s, %d images", method, class_names[label], len(images))
    x8 = torch.from_numpy(np.concatenate(all_images)).permute(0, 3, 1, 2).contiguous()
    m = torch.tensor(meta["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(meta["std"], dtype=torch.float32).view(1, 3, 1, 1)
    provenance = {
        "baseline": method,
        "seed": seed,
        "settings": settings,
        "counts": {str(k): v for k, v in sorted(counts.items())},
        "teacher_sha256": sha256_file(teacher_path),
        "resolution": int(meta["resolution"]),
    }
    data = {
        "format_version": FORMAT_VERSION,
        "images": ((x8.float() / 255.0 - m) / s).contiguous(),
        "images_uint8": x8,
        "labels": torch.tensor(labels, dtype=torch.int64),
        "class_names": list(class_names),
        "mean": list(meta["mean"]),
        "std": list(meta["std"]),
        "files": files,
        "provenance": provenance,
    }
    with atomic_path(Path(out_picks)) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(Path(out_set)) as tmp:
        torch.save(data, tmp)
    return {"n_images": len(labels), **provenance}
