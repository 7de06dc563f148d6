"""Candidate selection per class: keep `n_keep` of a class's generated candidates by a teacher criterion.

The sample job generates oversample x n_generated candidates; candidate i has the seed of image i (it depends on
class and index only), so the first n_generated candidates are the images a run without oversampling makes.
Criteria (all deterministic; ties go to the lower candidate index):

- confidence: the teacher's probability of the prompted class (softmax over the run's classes); the highest.
- diversity: k-center greedy in the teacher's penultimate feature space, starting from the most confident
  candidate, then repeatedly the candidate farthest from those kept (covers the class's modes).
- difficulty: a band of teacher loss (cross-entropy of the prompted class). Candidates are ranked from easiest
  to hardest; the band [low, high] is a range of that ranking as fractions; n_keep candidates evenly spread over
  the band are kept (CAD-Prune's point: the right difficulty depends on the budget).

`select_class` writes the kept images as a class directory in the sample job's format (records carry
`candidate`, the candidate index = image index, and the criterion's score), plus a CSV with every candidate's
scores and whether it was kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..imageio import load_png, sha256_file
from ..layout import RECORDS, read_records

CRITERIA = ("confidence", "diversity", "difficulty")


def scores_from_logits(logits: np.ndarray, class_index: int, label_set: list[int]) -> dict[str, np.ndarray]:
    """Per candidate: the probability of `class_index` and its cross-entropy loss, softmax over `label_set`."""
    keep = sorted(label_set)
    z = logits[:, keep].astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    col = keep.index(class_index)
    return {"prob": np.exp(logp[:, col]), "loss": -logp[:, col]}


def k_center_greedy(features: np.ndarray, n_keep: int, first: int) -> list[int]:
    """Greedy k-center: start at `first`, then add the point farthest (Euclidean) from the kept set."""
    f = features.astype(np.float64)
    kept = [first]
    dist = np.linalg.norm(f - f[first], axis=1)
    while len(kept) < min(n_keep, len(f)):
        d = dist.copy()
        d[kept] = -1.0
        nxt = int(np.argmax(d))  # argmax: the first index among ties
        kept.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(f - f[nxt], axis=1))
    return kept


def difficulty_band_ranks(n_candidates: int, n_keep: int, band: tuple[float, float]) -> list[int]:
    """Ranks (0 = easiest) of the kept candidates: n_keep evenly spread over the band's ranks."""
    lo = int(np.floor(band[0] * n_candidates))
    hi = max(lo + 1, int(np.ceil(band[1] * n_candidates)))  # ranks lo..hi-1
    hi = min(hi, n_candidates)
    if hi - lo < n_keep:
        raise ValueError(
            f"selection.difficulty_band {list(band)} covers {hi - lo} of {n_candidates} candidates, "
            f"fewer than the {n_keep} to keep. Fix: widen the band or raise selection.oversample."
        )
    return sorted({int(r) for r in np.round(np.linspace(lo, hi - 1, n_keep))})


def select(
    criterion: str,
    prob: np.ndarray,
    loss: np.ndarray,
    features: np.ndarray,
    n_keep: int,
    band: tuple[float, float] = (0.25, 0.75),
) -> tuple[list[int], np.ndarray]:
    """(kept candidate indices in ascending order, the criterion's score per candidate)."""
    n = len(prob)
    if n_keep > n:
        raise ValueError(f"{n} candidates, fewer than the {n_keep} to keep")
    order_conf = np.lexsort((np.arange(n), -prob))  # most confident first, ties by index
    if criterion == "confidence":
        kept, score = order_conf[:n_keep].tolist(), prob
    elif criterion == "diversity":
        kept = k_center_greedy(features, n_keep, int(order_conf[0]))
        score = np.full(n, np.nan)
        score[kept] = np.arange(len(kept))  # the order in which k-center picked them
    elif criterion == "difficulty":
        order = np.lexsort((np.arange(n), loss))  # easiest first
        kept, score = [int(order[r]) for r in difficulty_band_ranks(n, n_keep, band)], loss
    else:
        raise ValueError(f"unknown selection criterion {criterion!r}; use one of {', '.join(CRITERIA)}")
    return sorted(int(i) for i in kept), np.asarray(score, dtype=np.float64)


def select_class(
    cand_dir: str,
    teacher_path: str,
    criterion: str,
    n_keep: int,
    n_candidates: int,
    label_set: list[int],
    band: tuple[float, float],
    out_dir: str,
    out_scores: str,
    device: str = "cpu",
) -> dict:
    """Score the first `n_candidates` candidates of one class with the teacher and keep `n_keep` of them."""
    # torch (through the classifier) only where candidates are scored: the plan imports this module's band
    # arithmetic when it builds the DAG
    from .classifier import images_source, load_teacher, logits_and_features

    cand_dir = Path(cand_dir)
    src = read_records(cand_dir)
    recs = sorted(src["images"], key=lambda r: r["image_index"])[:n_candidates]
    if len(recs) < n_candidates:
        raise RuntimeError(
            f"{cand_dir}: {len(recs)} candidates, {n_candidates} expected. Fix: delete {cand_dir} "
            f"and rerun (sampling generates oversample x n_generated)."
        )
    for r in recs:
        if sha256_file(cand_dir / r["file"]) != r["sha256"]:
            raise RuntimeError(
                f"{cand_dir / r['file']}: sha256 differs from its record. Fix: delete {cand_dir} and rerun."
            )
    images = np.stack([load_png(cand_dir / r["file"]) for r in recs])
    model, meta = load_teacher(teacher_path)
    logits, feats = logits_and_features(
        model, images_source(images, meta["mean"], meta["std"], meta["resolution"]), device
    )
    cls = recs[0]["class_index"]
    s = scores_from_logits(logits.numpy(), cls, label_set)
    kept, score = select(criterion, s["prob"], s["loss"], feats.numpy(), n_keep, tuple(band))
    teacher_sha = sha256_file(teacher_path)
    table = pd.DataFrame(
        {
            "class_index": cls,
            "class_id": recs[0]["class_id"],
            "candidate": [r["image_index"] for r in recs],
            "file": [r["file"] for r in recs],
            "seed": [str(r["seed"]) for r in recs],
            "teacher_prob": s["prob"],
            "teacher_loss": s["loss"],
            "criterion": criterion,
            "score": score,
            "kept": [i in kept for i in range(len(recs))],
        }
    )
    sel_meta = {
        "criterion": criterion,
        "n_candidates": n_candidates,
        "n_keep": n_keep,
        "band": list(band),
        "teacher_sha256": teacher_sha,
    }
    with atomic_path(Path(out_dir)) as tmp:
        tmp.mkdir(parents=True)
        out_recs = []
        for i in kept:
            r = dict(recs[i])
            shutil.copyfile(cand_dir / r["file"], tmp / r["file"])
            r.update(candidate=r["image_index"], selection_score=float(score[i]))
            out_recs.append(r)
        # meta stays the sample job's (provenance reads it), with the selection beside it
        (tmp / RECORDS).write_text(
            json.dumps({"meta": {**src["meta"], "selection": sel_meta}, "images": out_recs}, indent=1)
        )
    with atomic_path(Path(out_scores)) as tmp:
        table.to_csv(tmp, index=False)
    return {"kept": [recs[i]["image_index"] for i in kept], **sel_meta}
