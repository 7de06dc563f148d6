"""Package per-class augmented images into one distilled dataset with stored labels and a manifest.

Outputs: a torch file (normalised float images, uint8 images, int64 labels, class names, mean/std), an
ImageFolder tree of PNGs with labels.json (class folder -> the dataset's label), and manifest.csv, one row per image.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..imageio import load_png, sha256_file
from ..layout import read_records

FORMAT_VERSION = 1
# In the ImageFolder tree: class folder -> the dataset's label. The folders sort in label order, but torchvision's
# ImageFolder numbers them 0, 1, 2...: with a subset of classes (dataset.classes: [apple, 7]) its index is not the
# dataset's label, and this file maps it back (docs/outputs.md).
IMAGEFOLDER_LABELS = "labels.json"


def collect(class_dirs: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Read augmented class directories -> (uint8 [N, H, W, 3], manifest rows), in label order."""
    rows, imgs = [], []
    for d in sorted(class_dirs, key=lambda p: Path(p).name):  # class ids sort in label order
        d = Path(d)
        recs = read_records(d)["images"]
        for r in recs:
            path = d / r["file"]
            digest = sha256_file(path)
            if digest != r["sha256"]:
                raise RuntimeError(
                    f"{path}: sha256 differs from its record; the file changed after augmentation. "
                    f"Fix: delete {d} and rerun."
                )
            imgs.append(load_png(path))
            rows.append(
                {
                    "file": f"{r['class_id']}/{r['file']}",
                    "label": r["class_index"],
                    "class_name": r["class_name"],
                    "class_id": r["class_id"],
                    "prompt": r["prompt"],
                    "seed": r["seed"],
                    "source_image": f"{r['class_id']}/{r['source_image']}",
                    "copy": r["copy"],
                    "aug_seed": r["aug_seed"],
                    "augmentation": json.dumps(r["augmentation"], sort_keys=True) if r["augmentation"] else "",
                    "sha256": digest,
                    "_src": str(path),
                }
            )
            if "candidate" in r:  # only with selection: which oversampled candidate this image comes from
                rows[-1].update(candidate=r["candidate"], selection_score=r["selection_score"])
    df = pd.DataFrame(rows)
    # Nullable ints built from the Python ints: via float64 the 63-bit seeds would lose precision.
    df["aug_seed"] = pd.array([r["aug_seed"] for r in rows], dtype="Int64")
    if not df["label"].is_monotonic_increasing:
        raise RuntimeError("class directories are not in label order; class ids must start with the label index")
    return np.stack(imgs), df


def package(
    class_dirs: list[str],
    class_names: list[str],
    mean,
    std,
    out_pt: str,
    out_manifest: str,
    out_folder: str,
    provenance: dict,
) -> dict:
    import torch  # deferred (here and in load_distilled): heavy; reading a class's records needs none

    images, df = collect(class_dirs)
    x8 = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    data = {
        "format_version": FORMAT_VERSION,
        "images": ((x8.float() / 255.0 - m) / s).contiguous(),  # what a training loop consumes directly
        "images_uint8": x8,
        "labels": torch.tensor(df["label"].to_numpy(), dtype=torch.int64),
        "class_names": list(class_names),  # label i <-> class_names[i], the dataset's own order
        "mean": list(mean),
        "std": list(std),
        "files": df["file"].tolist(),
        "provenance": provenance,
    }
    with atomic_path(Path(out_folder)) as tmp:
        for src, rel in zip(df["_src"], df["file"]):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
        folder_labels = dict(zip(df["class_id"], (int(v) for v in df["label"])))
        (tmp / IMAGEFOLDER_LABELS).write_text(json.dumps(folder_labels, indent=1) + "\n")
    with atomic_path(Path(out_manifest)) as tmp:
        df.drop(columns=["_src"]).to_csv(tmp, index=False)
    with atomic_path(Path(out_pt)) as tmp:
        torch.save(data, tmp)
    counts = df.groupby("label").size()
    return {
        "n_images": len(df),
        "n_classes": int(counts.size),
        "per_class": {int(k): int(v) for k, v in counts.items()},
    }


def load_distilled(path: str) -> dict:
    """Load a packaged distilled dataset (torch file) written by `package`."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
