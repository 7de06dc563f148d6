"""Class recognition: does a generated image show its prompt's class?

A classifier is trained on the REAL training split (the evaluation's own training code and networks), tested on
the real test split (its own accuracy says how far to trust it), then labels every generated image (the
`generated/<class>/` PNGs at dataset resolution, before augmentation). The fraction labelled as the class of the
image's prompt is reported per class and overall. Predictions are restricted to the run's classes, as in the
evaluation, so chance is 1 / (number of classes).

Diversity, in the same table: the mean pairwise pixel distance among a class's generated images divided by the
same among (up to 200, seeded) real training images of the class. 1 = as varied as the real data, 0 = identical
images; it needs 2 or more generated images.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_path, write_text
from ..datasets import get_adapter
from ..datasets.images import read_images
from ..imageio import load_png
from ..layout import read_records
from .models import build_model, model_label
from .real import fit_on_real, real_split
from .train import normalise, predict

log = logging.getLogger("gendistill.recognition")


def train_classifier(
    dataset: dict,
    labels: list[int],
    num_classes: int,
    model_name: str,
    seed: int,
    recipe: dict,
    max_test_images: int | None,
    out_model: str,
    out_info: str,
    device: str = "cpu",
    progress=None,
    workers: int = 0,
) -> dict:
    """Train the recogniser on the real training split of the run's classes; save weights and what it is."""
    adapter = get_adapter(dataset)
    keep = [int(c) for c in labels]
    size = adapter.image_size
    model, info, res = fit_on_real(
        "recogniser",
        adapter,
        keep,
        size,
        num_classes,
        model_name,
        int(seed),
        recipe,
        max_test_images,
        device,
        workers,
        progress,
    )
    meta = {
        **info,
        **res,
        "model": model_name,
        "model_label": model_label(model_name, size),
        "seed": int(seed),
        "recipe": recipe,
        "labels": keep,
        "num_classes": num_classes,
        "image_size": int(size),
        "mean": list(adapter.mean),
        "std": list(adapter.std),
        "trained_on": f"real training split of {adapter.name} (the run's classes)",
        "chance": 1.0 / len(keep),
    }
    log.info("recogniser test accuracy on the real test split: %.4f", res["accuracy"])
    with atomic_path(Path(out_model)) as tmp:
        torch.save(model.cpu().state_dict(), tmp)
    write_text(Path(out_info), json.dumps(meta, indent=1, sort_keys=True))
    return meta


def load_classifier(model_path: str, info_path: str):
    meta = json.loads(Path(info_path).read_text())
    model = build_model(meta["model"], meta["num_classes"], meta["image_size"])
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    return model.eval(), meta


def read_generated(class_dir: str) -> tuple[np.ndarray, list[dict]]:
    """A class's generated images (uint8 [N, H, W, 3]) and their records, from `generated/<class>/`."""
    d = Path(class_dir)
    recs = read_records(d)["images"]
    if not recs:
        return np.zeros((0, 1, 1, 3), dtype=np.uint8), []
    return np.stack([load_png(d / r["file"]) for r in recs]), recs


def mean_pairwise_distance(images: np.ndarray) -> float:
    """Mean L2 distance between all pairs of images (pixels in [0, 1]); NaN for fewer than 2 images."""
    if len(images) < 2:
        return float("nan")
    a = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    d = torch.cdist(a, a)
    iu = torch.triu_indices(len(a), len(a), 1)
    return float(d[iu[0], iu[1]].mean())


def real_images_of(adapter, keep: list[int], n: int):
    """label -> up to n of its real training images (a seeded choice), reading only those where the adapter
    lists files (ImageNet), else from the split in memory."""

    def choose(pool: np.ndarray, label: int) -> np.ndarray:
        if len(pool) <= n:
            return pool
        return np.sort(np.random.default_rng([label, 17]).choice(pool, n, replace=False))

    if adapter.streams:

        def of(label: int) -> np.ndarray:
            paths, _ = adapter.files("train", [label])
            return read_images([paths[i] for i in choose(np.arange(len(paths)), label)], adapter.image_size)

        return of
    x_real, y_real = real_split(adapter, "train", keep)
    return lambda label: x_real[choose(np.flatnonzero(y_real == label), label)]


def recognise(
    class_dirs: list[str],
    model_path: str,
    info_path: str,
    dataset_cfg: dict,
    class_names: dict,
    max_real_for_diversity: int = 200,
    device: str = "cpu",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label every generated image; return (per-image rows, per-class rows + an 'overall' row)."""
    model, meta = load_classifier(model_path, info_path)
    model.to(device)
    keep = meta["labels"]
    real_of = real_images_of(get_adapter(dataset_cfg), keep, max_real_for_diversity)
    rows, per_class = [], []
    for d in sorted(class_dirs, key=lambda p: Path(p).name):
        imgs, recs = read_generated(d)
        if not recs:
            continue
        label = int(recs[0]["class_index"])
        pred = predict(model, normalise(imgs, meta["mean"], meta["std"]), device, 256, keep).tolist()
        for r, p_ in zip(recs, pred):
            rows.append(
                {
                    "class_index": label,
                    "class_name": r["class_name"],
                    "class_id": r["class_id"],
                    "file": f"{r['class_id']}/{r['file']}",
                    "prompt": r["prompt"],
                    "seed": r["seed"],
                    "predicted_index": int(p_),
                    "predicted_name": class_names.get(int(p_), str(p_)),
                    "recognised": int(p_) == label,
                }
            )
        wrong = Counter(int(p_) for p_ in pred if int(p_) != label)
        real_spread = mean_pairwise_distance(real_of(label))
        gen_spread = mean_pairwise_distance(imgs)
        per_class.append(
            {
                "class_index": label,
                "class_name": recs[0]["class_name"],
                "prompt": recs[0]["prompt"],
                "n_images": len(recs),
                "n_recognised": int(sum(int(p_) == label for p_ in pred)),
                "recognised_fraction": float(np.mean([int(p_) == label for p_ in pred])),
                "most_common_other": class_names.get(wrong.most_common(1)[0][0], "") if wrong else "",
                "diversity_vs_real": gen_spread / real_spread if real_spread > 0 else float("nan"),
            }
        )
    images = pd.DataFrame(rows)
    table = pd.DataFrame(per_class)
    if len(table):
        n, k = int(table["n_images"].sum()), int(table["n_recognised"].sum())
        overall = {
            "class_index": -1,
            "class_name": "overall",
            "prompt": "",
            "n_images": n,
            "n_recognised": k,
            "recognised_fraction": k / n if n else float("nan"),
            "most_common_other": "",
            "diversity_vs_real": float(table["diversity_vs_real"].mean()),
        }
        table = pd.concat([table, pd.DataFrame([overall])], ignore_index=True)
    table["chance"] = meta["chance"]
    table["recogniser"] = meta["model_label"]
    table["recogniser_test_accuracy"] = meta["accuracy"]
    return images, table
