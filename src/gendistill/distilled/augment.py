"""Post data augmentation (PDA): keep each generated image and add `n_aug` seeded augmented copies.

Pure PIL + NumPy (no torch import): one quick job for all classes.
Every copy's parameters are drawn from its own seed (see seeds.augment_seed) and recorded.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from ..atomic import atomic_path
from ..imageio import load_png, save_png
from ..layout import RECORDS, class_dir, read_records
from ..seeds import augment_seed


def draw_params(rng: np.random.Generator, p: dict, size: int) -> dict:
    scale = rng.uniform(*p["crop_scale"])
    side = max(1, min(size, int(round(math.sqrt(scale) * size))))
    return {
        "crop": [int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1)), side],
        "rotation": float(rng.uniform(-p["rotation"], p["rotation"])),
        "hflip": bool(rng.random() < p["hflip"]),
        "vflip": bool(rng.random() < p["vflip"]),
        "brightness": float(rng.uniform(1 - p["brightness"], 1 + p["brightness"])),
        "contrast": float(rng.uniform(1 - p["contrast"], 1 + p["contrast"])),
        "gamma": float(rng.uniform(*p["gamma"])),
    }


def apply(img: np.ndarray, a: dict) -> np.ndarray:
    """Apply drawn parameters `a` to uint8 [H, W, 3]; output has the same size."""
    size = img.shape[0]
    im = Image.fromarray(img)
    x, y, side = a["crop"]
    im = im.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BICUBIC)
    im = im.rotate(a["rotation"], resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    if a["hflip"]:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if a["vflip"]:
        im = im.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    im = ImageEnhance.Brightness(im).enhance(a["brightness"])
    im = ImageEnhance.Contrast(im).enhance(a["contrast"])
    arr = np.asarray(im).astype(np.float64) / 255.0
    return np.clip(np.round(255.0 * arr ** a["gamma"]), 0, 255).astype(np.uint8)


def augment_class(images: np.ndarray, records: list[dict], params: dict, seed: int) -> tuple[list, list]:
    """Return (images, records): each original (augmentation None) followed by its n_aug copies."""
    out_imgs, out_recs = [], []
    for img, rec in zip(images, records):
        base = {k: rec[k] for k in ("class_index", "class_name", "class_id", "prompt", "image_index", "seed")}
        base["source_image"] = rec["file"]
        if "candidate" in rec:  # selected among oversampled candidates (selection.py): which one, its score
            base.update(candidate=rec["candidate"], selection_score=rec.get("selection_score"))
        out_imgs.append(img)
        out_recs.append(
            {**base, "copy": 0, "aug_seed": None, "augmentation": None, "file": f"{rec['image_index']:04d}_0.png"}
        )
        for c in range(1, params["n_aug"] + 1):
            s = augment_seed(seed, rec["class_index"], rec["image_index"], c)
            a = draw_params(np.random.default_rng(s), params, img.shape[0])
            out_imgs.append(apply(img, a))
            out_recs.append(
                {**base, "copy": c, "aug_seed": s, "augmentation": a, "file": f"{rec['image_index']:04d}_{c}.png"}
            )
    return out_imgs, out_recs


def augment_dir(in_dir: Path, out_dir: Path, params: dict, seed: int) -> int:
    """Augment one class's generated directory into `out_dir` (PNGs + records.json); returns images written."""
    src = read_records(in_dir)
    images = np.stack([load_png(in_dir / r["file"]) for r in src["images"]])
    imgs, recs = augment_class(images, src["images"], params, seed)
    out_dir.mkdir(parents=True)
    for img, rec in zip(imgs, recs):
        rec["sha256"] = save_png(out_dir / rec["file"], img)
    (out_dir / RECORDS).write_text(
        json.dumps({"meta": {"params": params, "seed": seed, "generated": src["meta"]}, "images": recs}, indent=1)
    )
    return len(recs)


def run(generated: list[str], out_dir: str, params: dict, seeds: dict[str, int], workers: int = 1) -> int:
    """Augment every class: `generated` are the classes' directories (named by class id), `seeds` their seeds.

    One job for all classes: the parameters are global and the work is milliseconds per image, so a job per
    class would cost more in process starts than the augmentation itself. The whole output directory is
    published at once.
    """
    dirs = [Path(d) for d in generated]
    missing = [d.name for d in dirs if d.name not in seeds]
    if missing:
        raise SystemExit(f"no seed given for classes {missing[:5]}")
    with atomic_path(Path(out_dir), replace=False) as tmp:
        tmp.mkdir(parents=True)
        jobs = [(d, Path(class_dir(str(tmp), d.name)), params, seeds[d.name]) for d in dirs]
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(workers) as pool:
                counts = list(pool.map(_augment_job, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
        else:
            counts = [_augment_job(j) for j in jobs]
    print(f"{len(dirs)} classes: {sum(counts)} images (n_aug {params['n_aug']})")
    return 0


def _augment_job(job) -> int:
    return augment_dir(*job)
