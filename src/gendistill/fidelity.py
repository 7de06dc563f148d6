"""The fidelity job (rule fidelity): every evaluated set against the real test split in one classifier's feature
space, one row per set (results/fidelity.csv; the metrics are gendistill.evaluation.fidelity's).

The features are the penultimate layer (the input of the last linear layer) of the recogniser or the teacher
(evaluation.fidelity.features), each image at that network's resolution and normalisation. The sets are the ones
the run evaluates: the packaged distilled set (its PDA copies included: what the evaluation trains on), the
selection baselines' sets, the random real subset (the very draw of each evaluation seed, so its row is the mean
over those draws, with their std), and the full real training split. At most `max_images` images of a set and of
the test split count (a seeded subset).

Above evaluation/ and teacher/ (it reads the teacher's and the recogniser's files), as evaluate.py.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .datasets import get_adapter
from .distilled.package import load_distilled
from .evaluation.fidelity import METRICS, capped, measure
from .evaluation.models import model_label
from .evaluation.real import real_source, select_subset, test_subset
from .evaluation.recognition import load_classifier
from .teacher.classifier import images_source, load_teacher, logits_and_features

log = logging.getLogger("gendistill.fidelity")


def feature_network(kind: str, paths: dict):
    """(model, resolution, mean, std, label) of the recogniser or the teacher."""
    if kind == "recogniser":
        model, meta = load_classifier(paths["model"], paths["info"])
        res = int(meta["image_size"])
    elif kind == "teacher":
        model, meta = load_teacher(paths["model"])
        res = int(meta["resolution"])
    else:
        raise ValueError(f"evaluation.fidelity.features: {kind!r}; use recogniser or teacher")
    return model, res, meta["mean"], meta["std"], f"{kind} {model_label(meta['model'], res)}"


def measure_sets(
    sets: list[dict],
    features: str,
    feature_paths: dict,
    dataset: dict,
    labels: list[int],
    nearest_k: int,
    max_images: int,
    max_test_images: int | None,
    out_csv: str,
    device: str = "cpu",
    workers: int = 0,
) -> pd.DataFrame:
    """`sets`: [{"set": name, "file": a packaged set's path} | {"set": "random_subset", "counts": {label: n},
    "seeds": [...]} | {"set": "full"}] in table order. Writes and returns the table."""
    adapter = get_adapter(dataset)
    keep = [int(c) for c in labels]
    model, res, mean, std, label = feature_network(features, feature_paths)

    def feats(source) -> np.ndarray:
        return logits_and_features(model, source, device)[1].numpy()

    def real(split: str, select) -> np.ndarray:
        return feats(real_source(adapter, split, keep, res, mean, std, workers, select))

    def test_select(y):
        idx = test_subset(max_test_images)(y)
        return idx[capped(len(idx), max_images)]

    ref = real("test", test_select)
    log.info("real test split: %d images, %d features (%s)", len(ref), ref.shape[1], label)
    rows = []
    for s in sets:
        name = s["set"]
        if name == "random_subset":
            counts = {int(k): int(v) for k, v in s["counts"].items()}
            draws = [real("train", lambda y, c=counts, seed=seed: select_subset(y, c, seed)) for seed in s["seeds"]]
        elif name == "full":
            draws = [real("train", lambda y: capped(len(y), max_images))]
        else:
            d = load_distilled(s["file"])
            x8 = d["images_uint8"].permute(0, 2, 3, 1).numpy()
            x8 = x8[capped(len(x8), max_images)]
            draws = [feats(images_source(x8, mean, std, res))]
        per = [measure(ref, f, nearest_k) for f in draws]
        row = {"set": name, "n_images": len(draws[0]), "n_draws": len(draws)}
        for m in METRICS:
            v = np.array([p[m] for p in per], dtype=float)
            row[m] = float(v.mean())
            row[f"{m}_std"] = float(v.std()) if len(v) > 1 else math.nan
        rows.append(row)
        log.info("%s: %s", name, {m: round(row[m], 4) for m in METRICS})
    df = pd.DataFrame(rows)
    df = df.assign(features=label, feature_dim=ref.shape[1], nearest_k=nearest_k, n_real=len(ref))
    with atomic_path(Path(out_csv)) as tmp:
        df.to_csv(tmp, index=False)
    return df
