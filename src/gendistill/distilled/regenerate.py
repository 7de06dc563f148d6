"""Regenerate one packaged image from the run's manifest and provenance, and check it matches bit for bit.

Uses the image's recorded seed (after any NaN/blank rejections), the run's model and generation settings,
and, for an augmented copy, the recorded augmentation parameters. On the same device type and library
versions the sha256 must match; across GPUs kernels may differ (see README, Reproducibility).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from ..imageio import png_bytes
from ..layout import RunLayout, read_records
from ..sampling.generate import Sampler
from ..sampling.load_spec import load_spec
from ..sampling.pipeline import load_from_spec
from .augment import apply


def regenerate(run_dir: str, file: str):
    """Return (image uint8 [H, W, 3], manifest row) for `file` (the manifest's `file` column)."""
    run = RunLayout(run_dir)
    manifest = pd.read_csv(run.manifest, dtype={"aug_seed": "Int64", "seed": "int64"})
    rows = manifest[manifest["file"] == file]
    if rows.empty:
        raise SystemExit(f"{file!r} is not in {run.manifest} (use its `file` column)")
    row = rows.iloc[0]
    cfg = json.loads(Path(run.provenance).read_text())["config"]
    gen_dir = Path(run.generated(row["class_id"]))
    meta = read_records(gen_dir)["meta"]
    spec = load_spec(cfg, meta["model_source"])
    if meta.get("model_snapshot"):  # the hub cache's commit the class was made from, not what main is now
        spec["snapshot"] = meta["model_snapshot"]
    pipe, device, dtype = load_from_spec(spec)
    sampler = Sampler(pipe, device, dtype, 1)
    small, _ = sampler.generate_seeds(row["prompt"], [int(row["seed"])], meta["generation"], meta["out_size"])
    img = small[0]
    if isinstance(row["augmentation"], str) and row["augmentation"]:
        img = apply(img, json.loads(row["augmentation"]))
    return img, row


def main(run_dir: str, file: str) -> int:
    img, row = regenerate(run_dir, file)
    digest = hashlib.sha256(png_bytes(img)).hexdigest()
    ok = digest == row["sha256"]
    print(f"{file}: class {row['label']} {row['class_name']!r}, seed {row['seed']}, copy {row['copy']}")
    print(f"  manifest sha256    {row['sha256']}\n  regenerated sha256 {digest}\n  {'MATCH' if ok else 'MISMATCH'}")
    return 0 if ok else 1
