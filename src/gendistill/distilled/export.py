"""A run's distilled set in the formats the field's evaluators read (`gendistill export RUN_DIR --format F --out
DIR`), each written to a temporary name and renamed into place (an export that is killed leaves nothing that looks
finished), with `gendistill_export.json` (what was exported from which distilled.pt, and the warnings):

- challenge: the ECCV 2024 challenge's submission, `<dataset>.pt` as its evaluate.py reads it: a float tensor
  [classes x IPC, 3, H, W] of the images alone, in class order, normalised with the constants its README and script
  give (CIFAR-100, Tiny-ImageNet; elsewhere the package's own mean and std); the script makes the labels itself
  (image i is class i // IPC) and scores IPC 10 of all 100 / 200 classes.
- ddranking: what DD-Ranking's LabelRobustScoreHard / Soft and AugmentRobustScore take: `images.pt` (image_tensor:
  [N, 3, H, W] in class order, normalised with DD-Ranking's constants for its built-in datasets), `labels.pt` (its
  soft_labels: the teacher's logits per image, when the run has dataset/soft_labels.pt), `hard_labels.pt` (int64),
  and the same images as its image folder (image_path: `images/<label:05d>/<i:05d>.png`, as it writes its random
  subsets).
- hf: a Hugging Face `datasets` folder (Dataset.save_to_disk): an `image` column, a ClassLabel `label` named by the
  dataset's classes, the manifest's columns, and `teacher_logits` when the run has soft labels; read back with
  datasets.load_from_disk.

Torch and datasets are imported inside the functions that need them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..imageio import sha256_file

FORMATS = ("challenge", "ddranking", "hf")

# evaluate.py's "List of Normalizations" (and its README) per scored dataset; its assertions: IPC 10, these sizes
CHALLENGE = {
    "cifar100": {"mean": [0.5071, 0.4866, 0.4409], "std": [0.2673, 0.2564, 0.2762], "size": 32, "classes": 100},
    "tinyimagenet": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "size": 64, "classes": 200},
}
CHALLENGE_IPC = 10

# DD-Ranking's built-in datasets (ddranking/utils/data.py get_dataset): its name, mean and std
_IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
DDRANKING = {
    "cifar10": {"name": "CIFAR10", "mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]},
    "cifar100": {"name": "CIFAR100", "mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]},
    "tinyimagenet": {"name": "TinyImageNet", "mean": _IMAGENET_STATS[0], "std": _IMAGENET_STATS[1]},
    "imagenet": {"name": "ImageNet1K", "mean": _IMAGENET_STATS[0], "std": _IMAGENET_STATS[1]},
}

MANIFEST_INT_COLUMNS = ("seed", "copy", "aug_seed", "candidate")


class ExportError(ValueError):
    """A set that cannot be written in the asked format (the message names why and what to do)."""


def constant(path: str):
    """The formats' constants by dotted path (evaluation/protocol_sources.py pins them to their sources)."""
    head, _, rest = path.partition(".")
    if path == "challenge.ipc":
        return CHALLENGE_IPC
    table = {"challenge": CHALLENGE, "ddranking": DDRANKING}[head]
    dataset, key = rest.split(".")
    return table[dataset][key]


def export(run_dir: str, fmt: str, out: str) -> dict:
    """Write the run's distilled set (RUN_DIR/dataset/distilled.pt, its manifest and soft labels) to `out` in
    format `fmt`; returns what was written, with the warnings (the set is written anyway)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    s = _load(Path(run_dir))
    warnings: list[str] = []
    record = {
        "format": fmt,
        "run_dir": str(run_dir),
        "distilled_sha256": sha256_file(s["path"]),
        "dataset": s["dataset"],
        "n_images": len(s["labels"]),
        "images_per_class": s["ipc"],
    }
    with atomic_path(Path(out), replace=False) as tmp:
        writer = {"challenge": _challenge, "ddranking": _ddranking, "hf": _hf}[fmt]
        record.update(writer(s, Path(tmp), warnings))
        record["warnings"] = warnings
        (Path(tmp) / "gendistill_export.json").write_text(json.dumps(record, indent=1, sort_keys=True))
    return record


def _load(run_dir: Path) -> dict:
    import torch

    from .package import load_distilled

    path = run_dir / "dataset" / "distilled.pt"
    if not path.is_file():
        raise ExportError(
            f"{path} does not exist. Fix: give a run directory (results/<run>) whose dataset is built "
            f"(snakemake {path})."
        )
    d = load_distilled(str(path))
    labels = d["labels"].numpy()
    if np.any(np.diff(labels) < 0):
        raise ExportError(f"{path}: the images are not in class order; it was not written by this version's package")
    config = json.loads(d["provenance"]["config"]) if d.get("provenance", {}).get("config") else {}
    counts = Counter(labels.tolist())
    soft_path = run_dir / "dataset" / "soft_labels.pt"
    soft = None
    if soft_path.is_file():
        from ..teacher.soft_labels import load_aligned

        soft = load_aligned(str(soft_path), d, str(path))
    manifest = run_dir / "dataset" / "manifest.csv"
    return {
        "path": path,
        "images_uint8": d["images_uint8"],
        "labels": torch.as_tensor(labels),
        "class_names": list(d["class_names"]),
        "mean": list(d["mean"]),
        "std": list(d["std"]),
        "files": list(d["files"]),
        "dataset": (config.get("dataset") or {}).get("name"),
        "counts": dict(sorted(counts.items())),
        "ipc": next(iter(counts.values())) if len(set(counts.values())) == 1 else None,
        "soft": soft,
        "manifest": manifest if manifest.is_file() else None,
    }


def _normalised(images_uint8, mean, std):
    import torch

    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((images_uint8.float() / 255.0 - m) / sd).contiguous()


def _implied_labels(s: dict, what: str) -> int:
    """The images per class when labels can be implied by position (class c's images at c x IPC ...), else an
    ExportError: every class from 0 up to the last one present, each with the same number of images."""
    present = sorted(s["counts"])
    if s["ipc"] is None or present != list(range(len(present))):
        raise ExportError(
            f"{what} implies each image's label by its position (class i // IPC), which needs the same number of "
            f"images for every class from 0 on; this set has {s['counts']} (label: images). Fix: distil every "
            f"class up to the last with the same generation.n_generated (no per-class overrides)."
        )
    return s["ipc"]


def _challenge(s: dict, out: Path, warnings: list[str]) -> dict:
    import torch

    ipc = _implied_labels(s, "The challenge's evaluate.py")
    name, n_classes = s["dataset"], len(s["counts"])
    scored = CHALLENGE.get(name)
    size = int(s["images_uint8"].shape[-1])
    if scored is None:
        warnings.append(
            f"dataset {name!r} is not one the challenge scores (cifar100, tinyimagenet): written as {name}.pt, "
            f"normalised with the package's mean {s['mean']} and std {s['std']}"
        )
        mean, std = s["mean"], s["std"]
    else:
        mean, std = scored["mean"], scored["std"]
        if n_classes != scored["classes"]:
            warnings.append(f"{n_classes} of {name}'s {scored['classes']} classes: the challenge scores all of them")
        if size != scored["size"]:
            warnings.append(f"images of {size} px: the challenge's script asserts {scored['size']} px on {name}")
    if ipc != CHALLENGE_IPC:
        warnings.append(f"IPC {ipc}: the challenge's script asserts IPC {CHALLENGE_IPC} (10 images per class)")
    out.mkdir()
    file = out / f"{name or 'distilled'}.pt"
    torch.save(_normalised(s["images_uint8"], mean, std), file)
    return {"file": file.name, "mean": list(mean), "std": list(std), "classes": n_classes, "ipc": ipc}


def _ddranking(s: dict, out: Path, warnings: list[str]) -> dict:
    import torch

    from ..imageio import save_png

    known = DDRANKING.get(s["dataset"])
    if known is None:
        warnings.append(
            f"dataset {s['dataset']!r} is not one of DD-Ranking's built-in datasets ({', '.join(DDRANKING)}): "
            f"images.pt is normalised with the package's mean {s['mean']} and std {s['std']}"
        )
        mean, std = s["mean"], s["std"]
    else:
        mean, std = known["mean"], known["std"]
    n_all = len(s["class_names"])
    if sorted(s["counts"]) != list(range(n_all)):
        warnings.append(
            f"{len(s['counts'])} of the dataset's {n_all} classes: DD-Ranking evaluates every class of its dataset, "
            f"and its image folder numbers the class folders present from 0 (hard_labels.pt keeps the true labels)"
        )
    if s["ipc"] is None:
        warnings.append(
            f"classes with different numbers of images {s['counts']}: DD-Ranking's soft-label score implies the "
            f"hard labels as ipc per class in order; pass hard_labels.pt to the hard-label score"
        )
    out.mkdir()
    torch.save(_normalised(s["images_uint8"], mean, std), out / "images.pt")
    torch.save(s["labels"].clone(), out / "hard_labels.pt")
    written = ["images.pt", "hard_labels.pt", "images/"]
    if s["soft"] is not None:
        torch.save(s["soft"]["logits"].float().clone(), out / "labels.pt")
        written.append("labels.pt")
    else:
        warnings.append("the run has no soft labels (evaluation.labels soft): no labels.pt for soft_label_mode S")
    index = Counter()
    for img, y in zip(s["images_uint8"], s["labels"].tolist()):
        d = out / "images" / f"{y:05d}"
        d.mkdir(parents=True, exist_ok=True)
        save_png(d / f"{index[y]:05d}.png", img.permute(1, 2, 0).numpy())
        index[y] += 1
    rec = {"files": written, "mean": list(mean), "std": list(std), "ddranking_dataset": (known or {}).get("name")}
    rec.update(ipc=s["ipc"], im_size=list(s["images_uint8"].shape[-2:]))
    if s["soft"] is not None:
        rec["soft_label_temperature"] = s["soft"]["temperature"]
    return rec


def _manifest_columns(s: dict) -> dict[str, list]:
    """The manifest's columns (its rows are distilled.pt's images, in order), but the label, which the ClassLabel
    column holds."""
    import pandas as pd

    if s["manifest"] is None:
        return {"file": s["files"]}
    df = pd.read_csv(
        s["manifest"], dtype={c: "Int64" for c in MANIFEST_INT_COLUMNS}, keep_default_na=False, na_values=[""]
    )
    if df["file"].tolist() != s["files"]:
        raise ExportError(f"{s['manifest']} lists other images than distilled.pt. Fix: rerun the package rule.")
    cols = {}
    for c in df.columns:
        if c == "label":
            continue
        values = df[c].tolist()
        cols[c] = [None if v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v for v in values]
        if c in MANIFEST_INT_COLUMNS:
            cols[c] = [None if v is None else int(v) for v in cols[c]]
    return cols


def _hf(s: dict, out: Path, warnings: list[str]) -> dict:
    import datasets
    from PIL import Image

    datasets.disable_progress_bars()
    columns = {
        "image": [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in s["images_uint8"]],
        "label": s["labels"].tolist(),
        **_manifest_columns(s),
    }
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=s["class_names"])}
    for c, values in columns.items():
        if c in features:
            continue
        if c in MANIFEST_INT_COLUMNS:
            features[c] = datasets.Value("int64")
        elif all(v is None or isinstance(v, float) for v in values):
            features[c] = datasets.Value("float64")
        else:
            features[c] = datasets.Value("string")
            columns[c] = [None if v is None else str(v) for v in values]
    if s["soft"] is not None:
        columns["teacher_logits"] = s["soft"]["logits"].float().tolist()
        features["teacher_logits"] = datasets.Sequence(datasets.Value("float32"))
    features = datasets.Features(features)
    info = datasets.DatasetInfo(
        features=features,
        description=(
            f"gendistill distilled set ({s['dataset']}, {len(s['labels'])} images of {len(s['counts'])} classes); "
            f"images as generated (uint8), the package normalises with mean {s['mean']} and std {s['std']}"
            + (f"; teacher_logits at temperature {s['soft']['temperature']}" if s["soft"] is not None else "")
        ),
    )
    ds = datasets.Dataset.from_dict(columns, features=features, info=info)
    ds.save_to_disk(str(out))
    return {"columns": list(features), "class_names": len(s["class_names"])}
