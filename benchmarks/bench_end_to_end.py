#!/usr/bin/env python
"""Wall time of the whole workflow (Snakemake start to packaged dataset), model load included.

Default job: CIFAR-100 (100 classes, 32 px), 50 generated images per class at 512 px, 1 step, guidance 0
(5,000 images), no augmentation (IPC 50) - override with --n-generated / --n-aug. The local sampler process
for this model is stopped first, so the run pays the model load exactly once, as a fresh run would.
Evaluation (training models on the result) is excluded unless --evaluate.

Needs a local diffusers model directory (--model-dir): the real SDXL-Turbo checkpoint, or on a machine
without the weights the full-size architecture with random weights (same compute, noise images):

    .venv/bin/python benchmarks/make_random_sdxl_dir.py --config-dir benchmarks/model_configs/sdxl-turbo \
        --out models/sdxl-turbo-random
    .venv/bin/python benchmarks/bench_end_to_end.py --model-dir models/sdxl-turbo-random \
        --data-root data            # holds cifar-100-python/; without --data-root the 100 CIFAR-100 class
                                    # names are used as a class list (same prompts and compute, no real data)

Writes the workflow under --workdir (default benchmarks/out/e2e-<time>/) and appends a row to
benchmarks/results/end_to_end.csv. Quick CPU check of the script itself (tiny model, 3 classes):

    .venv/bin/python benchmarks/bench_end_to_end.py --model-dir <tiny dir> --classes 3 --n-generated 2 \
        --resolution 32 --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, RESULTS, append_csv, machine_info

# CIFAR-100 fine label names in label order (the dataset's meta file order).
CIFAR100_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
assert len(CIFAR100_NAMES) == 100


def make_config(args, workdir: Path) -> dict:
    if args.data_root:
        dataset = {"name": "cifar100", "root": str(Path(args.data_root).resolve())}
    else:
        dataset = {"name": "classlist", "class_names": CIFAR100_NAMES, "image_size": 32}
    if args.classes:
        dataset["classes"] = list(range(args.classes)) if args.data_root else CIFAR100_NAMES[: args.classes]
        if not args.data_root:
            dataset["class_names"] = CIFAR100_NAMES[: args.classes]
            dataset.pop("classes")
    cfg = {
        "run": "e2e",
        "results_dir": str(workdir / "results"),
        "seed": 0,
        "ipc": args.n_generated * (1 + args.n_aug),
        "dataset": dataset,
        "model": {"source": str(Path(args.model_dir).resolve())},
        "generation": {
            "n_generated": args.n_generated,
            "resolution": args.resolution,
            "steps": 1,
            "guidance_scale": 0.0,
            "device": args.device,
            "dtype": args.dtype,
            "vae_dtype": args.vae_dtype,
            "batch_size": args.batch_size if args.batch_size == "auto" else int(args.batch_size),
            "compile": args.compile,
            "server": True,
            "server_idle_seconds": args.server_idle,
        },
        "augmentation": {"n_aug": args.n_aug},
        "evaluation": {"activate": bool(args.evaluate and args.data_root)},
    }
    return cfg


def sampler_load_key(cfg: dict) -> dict:
    """The load dict the sample jobs send (see workflow/rules/sample.smk and sample_client.run)."""
    g = cfg["generation"]
    return {
        "source": cfg["model"]["source"],
        "revision": None,
        "device": g["device"],
        "dtype": g["dtype"],
        "vae_dtype": g["vae_dtype"],
        "compile": g["compile"],
        "deterministic": False,
    }


def stop_our_sampler(load: dict) -> bool:
    """Stop the sampler the run's jobs would use for `load` (this interpreter's environment and code), if one
    runs; True if one was running. Other samplers of this user are left alone."""
    from gendistill.sampling.client import sampler_paths, stop_sampler

    return stop_sampler(sampler_paths(load, {"compile": load["compile"]})["socket"]) is not None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, help="local diffusers directory (real or random weights)")
    ap.add_argument(
        "--data-root",
        default=None,
        help="CIFAR-100 root (holds cifar-100-python/); omitted: "
        "the CIFAR-100 class names as a class list, no real data",
    )
    ap.add_argument("--classes", type=int, default=None, help="only the first N classes (quick checks)")
    ap.add_argument("--n-generated", type=int, default=50)
    ap.add_argument("--n-aug", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    ap.add_argument("--vae-dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--batch-size", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--evaluate", action="store_true", help="include evaluation (needs --data-root)")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--server-idle", type=float, default=60)
    ap.add_argument("--workdir", default=None)
    ap.add_argument(
        "--keep-warm",
        action="store_true",
        help="do not stop an already running sampler first (measures a warm run: model load NOT included)",
    )
    ap.add_argument("--csv", default=str(RESULTS / "end_to_end.csv"))
    ap.add_argument("--no-csv", action="store_true")
    args = ap.parse_args(argv)

    import yaml

    workdir = Path(args.workdir or REPO / "benchmarks" / "out" / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = make_config(args, workdir)
    cfg_path = workdir / "config.e2e.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    load = sampler_load_key(cfg)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    was_warm = False if args.keep_warm else stop_our_sampler(load)
    if was_warm:
        print("stopped a running sampler process for this model (cold start: the model load is measured)")
        time.sleep(1)
    cmd = [
        snakemake,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg_path),
        "--cores",
        str(args.cores),
        "--resources",
        "gpu=1",
    ]
    n_classes = args.classes or 100
    n_images = n_classes * args.n_generated
    print(
        f"workflow: {n_classes} classes x {args.n_generated} generated (+{args.n_aug} aug each) = {n_images} "
        f"images at {args.resolution} px; model {cfg['model']['source']}; workdir {workdir}"
    )
    print("running: " + " ".join(cmd))
    log = workdir / "snakemake.log"
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=workdir)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(log.read_text()[-6000:])
        print(f"workflow FAILED (exit {proc.returncode}) after {wall:.1f} s; log: {log}")
        return proc.returncode

    out = Path(cfg["results_dir"]) / cfg["run"]
    metas = [json.loads(p.read_text())["meta"] for p in sorted((out / "generated").glob("*/records.json"))]
    sample_logs = [p.read_text() for p in sorted((out / "logs" / "sample").glob("*.log"))]
    loads = max((int(m) for t in sample_logs for m in re.findall(r"pipeline loads (\d+)", t)), default=None)
    started = sum("started the sampler" in t for t in sample_logs)
    sampling_s = sum(m.get("seconds", 0.0) for m in metas)
    load_s = next((m["load_seconds"] for m in metas if m.get("load_seconds") is not None), None)
    if not args.keep_warm:
        stop_our_sampler(load)
    device = metas[0].get("device") if metas else ""
    gpu = metas[0].get("gpu", "") if metas else ""
    row = {
        **machine_info(),
        "benchmark": "end_to_end",
        "model_dir": cfg["model"]["source"],
        "dataset": cfg["dataset"]["name"],
        "classes": n_classes,
        "n_generated": args.n_generated,
        "n_aug": args.n_aug,
        "ipc": cfg["ipc"],
        "resolution": args.resolution,
        "device": device,
        "sampler_gpu": gpu,
        "dtype": metas[0].get("dtype") if metas else "",
        "vae_dtype": args.vae_dtype,
        "batch_size": args.batch_size,
        "compile": args.compile,
        "evaluate": cfg["evaluation"]["activate"],
        "cores": args.cores,
        "wall_s": round(wall, 2),
        "images": n_images,
        "img_per_s_overall": round(n_images / wall, 3),
        "sampling_s_sum": round(sampling_s, 2),
        "img_per_s_sampling": round(n_images / sampling_s, 3) if sampling_s else "",
        "model_load_s": load_s if load_s is not None else "",
        "pipeline_loads": loads,
        "sampler_started_by_run": started,
        "cold_start": not args.keep_warm,
    }
    print(
        f"\nwall time {wall:.1f} s for {n_images} images ({n_images / wall:.2f} img/s overall, Snakemake start "
        f"and model load included); sampling itself {sampling_s:.1f} s summed over classes "
        f"({row['img_per_s_sampling']} img/s); model load {load_s if load_s is not None else '?'} s; pipeline "
        f"loads {loads}; device {device} {gpu}"
    )
    if started != 1 and not args.keep_warm:
        print(f"WARNING: {started} sample jobs started a sampler process (expected exactly 1)")
    if not args.no_csv:
        append_csv(Path(args.csv), [row])
        print(f"appended a row to {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
