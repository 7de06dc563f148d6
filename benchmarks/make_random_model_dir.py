#!/usr/bin/env python
"""Write a supported family's full-size architecture with RANDOM weights as a local diffusers directory.

For timing and sizing the workflow on a machine without the real weights: the workflow then loads this directory
exactly as it loads the checkpoint (model.source: <dir>), with the same compute and memory per image (the images
are noise). Built from the component configs in benchmarks/model_configs/ (no download), one component at a time
in the chosen dtype, seeded, and reused when already built from the same configs, dtype and seed
(gendistill.generator.random_dir).

    python3 benchmarks/make_random_model_dir.py sdxl-turbo                 # -> models/sdxl-turbo-random-float16
    python3 benchmarks/make_random_model_dir.py sd-turbo --dtype bfloat16 --out /scratch/sd-turbo-random
    python3 benchmarks/make_random_model_dir.py --list

Prints the build record (seconds, parameters per component, size) and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

from _common import REPO

CONFIGS = REPO / "benchmarks" / "model_configs"


def families() -> list[str]:
    return sorted(p.parent.name for p in CONFIGS.glob("*/model_index.json"))


def random_model_dir(
    name: str, dtype: str = "float16", out: str | Path | None = None, seed: int = 0, device: str = "cpu", log=print
):
    """(path, build record) of benchmarks/model_configs/<name> built with random weights (reused when built);
    `device` draws the weights (cuda: seconds for billions)."""
    from gendistill.generator.random_dir import build_random_model_dir

    if name not in families():
        raise SystemExit(f"{name}: not one of benchmarks/model_configs/: {', '.join(families())}")
    out = Path(out or REPO / "models" / f"{name}-random-{dtype}")
    return out, build_random_model_dir(CONFIGS / name, out, dtype, seed, device, log=log)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", help="a folder of benchmarks/model_configs/ (--list)")
    ap.add_argument("--out", default=None, help="default models/<name>-random-<dtype>")
    ap.add_argument(
        "--dtype",
        default="float16",
        choices=["float16", "bfloat16", "float32"],
        help="dtype of the weights (the hub checkpoints' fp16 variants: float16; SD3.5, FLUX, SANA: bfloat16)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="where the weights are drawn (cuda: fast; other numbers)")
    ap.add_argument("--list", action="store_true", help="list the architectures")
    a = ap.parse_args(argv)
    if a.list or not a.name:
        print("\n".join(families()))
        return 0
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    out, rec = random_model_dir(a.name, a.dtype, a.out, a.seed, a.device)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(json.dumps({k: v for k, v in rec.items() if k != "component_seconds"}, indent=1))
    print(
        f"{out}: {'reused' if rec['reused'] else 'built'} in {time.perf_counter() - t0:.1f} s, "
        f"{rec['bytes'] / 2**30:.2f} GiB, {sum(rec['parameters'].values()) / 1e6:.1f} M parameters ({a.dtype}); "
        f"peak resident memory of this process {peak_gib:.2f} GiB. RANDOM weights: images are noise."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
