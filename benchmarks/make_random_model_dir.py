#!/usr/bin/env python
"""Write the full-size SDXL-Turbo architecture with RANDOM weights as a local diffusers directory.

For timing the whole workflow on a machine without the real weights: the workflow then loads this directory
exactly as it loads the real checkpoint (model.source: <dir>), with the same compute and memory per image
(the images are noise). Tokenizers are the project's character-level CLIP tokenizer (77 tokens, like CLIP).

    .venv/bin/python benchmarks/make_random_sdxl_dir.py --config-dir benchmarks/model_configs/sdxl-turbo \
        --out models/sdxl-turbo-random            # fp16 safetensors, ~6.9 GB; building needs ~14 GB of RAM

The directory is written under a temporary name and renamed at the end (an interrupted run leaves nothing
that looks complete), and carries a RANDOM_WEIGHTS.txt note.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from _common import REPO

DEFAULT_CONFIG_DIR = REPO / "benchmarks" / "model_configs" / "sdxl-turbo"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-dir", default=str(DEFAULT_CONFIG_DIR))
    ap.add_argument("--out", default=str(REPO / "models" / "sdxl-turbo-random"))
    ap.add_argument(
        "--dtype",
        default="float16",
        choices=["float16", "bfloat16", "float32"],
        help="dtype of the saved weights (the real hub checkpoint's fp16 variant is float16)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="replace an existing directory")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    import torch

    from gendistill.atomic import atomic_path
    from gendistill.generator.build import build_full_random_pipeline

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"{out} exists; pass --force to rebuild it")
        return 0
    t0 = time.perf_counter()
    pipe = build_full_random_pipeline(Path(args.config_dir), torch_dtype=getattr(torch, args.dtype), seed=args.seed)
    built = time.perf_counter() - t0
    n_params = {
        k: sum(p.numel() for p in getattr(pipe, k).parameters())
        for k in ("unet", "vae", "text_encoder", "text_encoder_2")
    }
    with atomic_path(out) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "RANDOM_WEIGHTS.txt").write_text(
            "This pipeline has RANDOM weights: the SDXL-Turbo architecture built from the component configs in\n"
            f"{Path(args.config_dir).resolve()} by benchmarks/make_random_sdxl_dir.py (seed {args.seed}, "
            f"{args.dtype}).\nSame compute and memory per image as the real checkpoint; its images are noise.\n"
            f"parameters: {json.dumps(n_params)}\n"
        )
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"wrote {out} ({size / 2**30:.3g} GiB, {sum(n_params.values()) / 1e6:.5g} M parameters, {args.dtype}); "
        f"built in {built:.0f} s, total {time.perf_counter() - t0:.0f} s. RANDOM weights: images are noise."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
