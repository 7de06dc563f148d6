#!/usr/bin/env python
"""Wall time of the whole workflow (Snakemake start to packaged dataset), model load included.

Default job: CIFAR-100 (100 classes, 32 px), 50 generated images per class at 512 px, 1 step, guidance 0
(5,000 images), no augmentation (IPC 50) - override with --n-generated / --n-aug. The local sampler process
for this model is stopped first, so the run pays the model load exactly once, as a fresh run would.
Evaluation (training models on the result) is excluded unless --evaluate.

Needs a local diffusers model directory (--model-dir): the real SDXL-Turbo checkpoint, or on a machine
without the weights the full-size architecture with random weights (same compute, noise images):

    python3 benchmarks/make_random_model_dir.py sdxl-turbo     # -> models/sdxl-turbo-random-float16
    .venv/bin/python benchmarks/bench_end_to_end.py --model-dir models/sdxl-turbo-random-float16 \
        --data-root data            # holds cifar-100-python/; without --data-root the 100 CIFAR-100 class
                                    # names are used as a class list (same prompts and compute, no real data)

Writes the workflow under --workdir (default benchmarks/out/e2e-<time>/) and appends a row to
benchmarks/results/end_to_end.csv. Snakemake runs as `python -m snakemake` with this interpreter. The timed span
ends with the packaged dataset (its evaluation too with --evaluate). benchmarks/gpu_suite.py runs this measurement
as its `workflow` section. Quick CPU check of the script itself (tiny model, 3 classes):

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


def make_config(
    model_dir: str,
    workdir: Path,
    *,
    classes: int | None = None,
    n_generated: int = 50,
    n_aug: int = 0,
    resolution: int = 512,
    device: str = "auto",
    dtype: str = "auto",
    vae_dtype: str = "auto",
    batch_size: int | str = "auto",
    compile: bool = False,
    server_idle: float = 60,
    data_root: str | None = None,
    evaluate: bool = False,
) -> dict:
    """The run's config: CIFAR-100 (its 100 class names as a class list without `data_root`), 32 px."""
    names = CIFAR100_NAMES[:classes] if classes else CIFAR100_NAMES
    if data_root:
        dataset = {"name": "cifar100", "root": str(Path(data_root).resolve())}
        if classes:
            dataset["classes"] = list(range(classes))
    else:
        dataset = {"name": "classlist", "class_names": list(names), "image_size": 32}
    return {
        "run": "e2e",
        "results_dir": str(workdir / "results"),
        "seed": 0,
        "ipc": n_generated * (1 + n_aug),
        "dataset": dataset,
        "model": {"source": str(Path(model_dir).resolve())},
        "generation": {
            "n_generated": n_generated,
            "resolution": resolution,
            "steps": 1,
            "guidance_scale": 0.0,
            "device": device,
            "dtype": dtype,
            "vae_dtype": vae_dtype,
            "batch_size": batch_size if batch_size == "auto" else int(batch_size),
            "compile": compile,
            "server": True,
            "server_idle_seconds": server_idle,
        },
        "augmentation": {"n_aug": n_aug},
        "evaluation": {"activate": bool(evaluate and data_root)},
    }


def stop_our_sampler(cfg: dict) -> bool:
    """Stop the samplers the run's jobs would use (this interpreter, this code, the config's load spec; one per GPU
    slot), if any runs; True if one was running. Other samplers of this user are left alone."""
    from gendistill.plan import build_plan
    from gendistill.sampling.client import sampler_paths, stop_sampler
    from gendistill.sampling.slots import resolve_slots

    plan = build_plan(cfg)
    runtime = plan.sampler_runtime
    stopped = [
        stop_sampler(sampler_paths(plan.load_spec, runtime, slot)["socket"]) for slot in resolve_slots(runtime["gpus"])
    ]
    return any(line is not None for line in stopped)


def run_workflow(cfg: dict, workdir: Path, cores: int, timeout: float | None = None, keep_warm: bool = False) -> dict:
    """Run Snakemake on `cfg` in `workdir` up to the packaged dataset (and its evaluation, when active), with this
    interpreter (`python -m snakemake`: no venv needed), and return what it measured. A run stopped at `timeout`
    reports the classes it finished (`completed` False)."""
    import os
    import signal

    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "config.e2e.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    was_warm = False if keep_warm else stop_our_sampler(cfg)
    if was_warm:
        time.sleep(1)
    targets = ["package"] + (["results_table"] if cfg["evaluation"]["activate"] else [])
    cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(cfg_path), "--cores", str(cores), "--resources", "gpu=1"]
    log = workdir / "snakemake.log"
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)  # Snakemake's own Ctrl-C: it stops its jobs
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            returncode = None
    wall = time.perf_counter() - t0
    out = Path(cfg["results_dir"]) / cfg["run"]
    metas = [json.loads(p.read_text())["meta"] for p in sorted((out / "generated").glob("*/records.json"))]
    sample_logs = [p.read_text() for p in sorted((out / "logs" / "sample").glob("*.log"))]
    loads = max((int(m) for t in sample_logs for m in re.findall(r"pipeline loads (\d+)", t)), default=None)
    started = sum("started the sampler" in t for t in sample_logs)
    sampling_s = sum(m.get("seconds", 0.0) for m in metas)
    load_s = next((m["load_seconds"] for m in metas if m.get("load_seconds") is not None), None)
    if not keep_warm:
        stop_our_sampler(cfg)
    g, ds = cfg["generation"], cfg["dataset"]
    n_classes = len(ds.get("class_names") or ds.get("classes") or CIFAR100_NAMES)
    images = len(metas) * g["n_generated"]
    return {
        "benchmark": "end_to_end",
        "model_dir": cfg["model"]["source"],
        "dataset": cfg["dataset"]["name"],
        "classes": n_classes,
        "classes_done": len(metas),
        "n_generated": g["n_generated"],
        "n_aug": cfg["augmentation"]["n_aug"],
        "ipc": cfg["ipc"],
        "resolution": g["resolution"],
        "device": metas[0].get("device") if metas else "",
        "sampler_gpu": metas[0].get("gpu", "") if metas else "",
        "dtype": metas[0].get("dtype") if metas else "",
        "vae_dtype": g["vae_dtype"],
        "batch_size": g["batch_size"],
        "compile": g["compile"],
        "evaluate": cfg["evaluation"]["activate"],
        "cores": cores,
        "completed": returncode == 0,
        "returncode": returncode,
        "wall_s": round(wall, 2),
        "images": images,
        "img_per_s_overall": round(images / wall, 3) if wall else "",
        "sampling_s_sum": round(sampling_s, 2),
        "img_per_s_sampling": round(images / sampling_s, 3) if sampling_s else "",
        "model_load_s": load_s if load_s is not None else "",
        "pipeline_loads": loads,
        "sampler_started_by_run": started,
        "cold_start": not keep_warm,
        "log": str(log),
    }


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

    workdir = Path(args.workdir or REPO / "benchmarks" / "out" / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    cfg = make_config(
        args.model_dir,
        workdir,
        classes=args.classes,
        n_generated=args.n_generated,
        n_aug=args.n_aug,
        resolution=args.resolution,
        device=args.device,
        dtype=args.dtype,
        vae_dtype=args.vae_dtype,
        batch_size=args.batch_size,
        compile=args.compile,
        server_idle=args.server_idle,
        data_root=args.data_root,
        evaluate=args.evaluate,
    )
    n_classes = args.classes or 100
    print(
        f"workflow: {n_classes} classes x {args.n_generated} generated (+{args.n_aug} aug each) = "
        f"{n_classes * args.n_generated} images at {args.resolution} px; model {cfg['model']['source']}; "
        f"workdir {workdir}"
    )
    row = {**machine_info(), **run_workflow(cfg, workdir, args.cores, keep_warm=args.keep_warm)}
    if not row["completed"]:
        print(Path(row["log"]).read_text()[-6000:])
        print(f"workflow FAILED (exit {row['returncode']}) after {row['wall_s']:.1f} s; log: {row['log']}")
        return 1
    print(
        f"\nwall time {row['wall_s']:.1f} s for {row['images']} images ({row['img_per_s_overall']} img/s overall, "
        f"Snakemake start and model load included); sampling itself {row['sampling_s_sum']:.1f} s summed over "
        f"classes ({row['img_per_s_sampling']} img/s); model load {row['model_load_s'] or '?'} s; pipeline loads "
        f"{row['pipeline_loads']}; device {row['device']} {row['sampler_gpu']}"
    )
    if row["sampler_started_by_run"] != 1 and not args.keep_warm:
        print(f"WARNING: {row['sampler_started_by_run']} sample jobs started a sampler process (expected exactly 1)")
    if not args.no_csv:
        append_csv(Path(args.csv), [row])
        print(f"appended a row to {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
