"""Soft labels: the teacher's logits for every final image of a packaged set (after PDA), beside its hard label.

Stored as a sidecar of the package, `dataset/soft_labels.pt`, aligned with `distilled.pt` by index: logits
[N, num_classes] (float32), the temperature the evaluation's KD loss uses, and copies of the package's hard labels
and file names plus the sha256 of distilled.pt and of the teacher, so a mismatch is detected, never trained on.
A sidecar keeps distilled.pt byte-identical whether or not soft labels are on, and a new temperature rewrites
only the sidecar.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..atomic import atomic_path
from ..distilled.package import load_distilled
from ..evaluation.data import TensorSource
from ..imageio import sha256_file
from .classifier import load_teacher, logits_and_features

FORMAT = "gendistill-soft-labels-v1"


def compute(distilled_path: str, teacher_path: str, temperature: float, out_path: str, device: str = "cpu") -> dict:
    d = load_distilled(distilled_path)
    model, meta = load_teacher(teacher_path)
    if list(map(float, d["mean"])) != list(map(float, meta["mean"])) or list(map(float, d["std"])) != list(
        map(float, meta["std"])
    ):
        raise ValueError(
            f"the package's normalisation {d['mean']}/{d['std']} differs from the teacher's "
            f"{meta['mean']}/{meta['std']}. Fix: a teacher of this dataset (teacher.checkpoint)."
        )
    logits, _ = logits_and_features(model, TensorSource(d["images"], d["labels"], meta["resolution"]), device)
    data = {
        "format": FORMAT,
        "logits": logits.float().contiguous(),
        "temperature": float(temperature),
        "labels": d["labels"].clone(),
        "files": list(d["files"]),
        "distilled_sha256": sha256_file(distilled_path),
        "teacher_sha256": sha256_file(teacher_path),
        "teacher_test_accuracy": meta.get("test_accuracy"),
    }
    with atomic_path(Path(out_path)) as tmp:
        torch.save(data, tmp)
    agree = float((logits.argmax(1) == d["labels"]).float().mean()) if len(logits) else float("nan")
    return {
        "n_images": len(logits),
        "num_classes": int(logits.shape[1]) if len(logits) else 0,
        "teacher_agrees_with_hard_label": agree,
        "temperature": float(temperature),
    }


def load_aligned(path: str, distilled: dict, distilled_path: str | None = None) -> dict:
    """The sidecar at `path`, checked against the loaded package `distilled`: same files, labels (and sha256)."""
    s = torch.load(path, map_location="cpu", weights_only=True)
    problems = []
    if s.get("format") != FORMAT:
        problems.append("not a soft-label file")
    elif len(s["logits"]) != len(distilled["labels"]) or s["files"] != list(distilled["files"]):
        problems.append(f"{len(s['logits'])} logits for {len(distilled['labels'])} images, or other files")
    elif not torch.equal(s["labels"], distilled["labels"]):
        problems.append("hard labels differ")
    if not problems and distilled_path is not None:
        if sha256_file(distilled_path) != s["distilled_sha256"]:
            problems.append("written for another distilled.pt (sha256 differs)")
    if problems:
        raise ValueError(
            f"{path}: not aligned with the package ({problems[0]}). Fix: delete it and rerun (rule soft_labels)."
        )
    return s
