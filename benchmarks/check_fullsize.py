#!/usr/bin/env python
"""Every supported family's FULL-SIZE architecture through the real workflow on this machine (random weights).

`make check-fullsize` (not part of `make test`). For each family whose full-size pipeline fits in this machine's
memory it:

1. builds the random-weight directory from benchmarks/model_configs/<stem>/ once (gendistill.generator.random_dir,
   in a child process: one component at a time, seeded), cached under --models (default results/fullsize-models/,
   git-ignored) and reused when complete;
2. runs the workflow on it (Snakemake, the resident sampler): scikit-learn's digits, 3 classes x 2 images at the
   family's smallest resolution (32 px; DiT its native 256), then a minimal evaluation (ConvNet, 1 seed, 2
   epochs) - the plan-time weight and memory checks, the local from_pretrained, the checkpoint's weight dtype
   loaded into the run's dtype, the real text encoders with their tokenizers' lengths, the VAE decoding in float32;
3. reads the sampler's peak resident memory (VmHWM) before stopping it, so each family's memory is freed before
   the next one loads.

It prints one table (build s, load s, peak resident memory of the sampler beside the plan's estimate, seconds per
image) and the families that do not fit, with their figures; rows are appended to
benchmarks/results/check_fullsize.csv. Samplers run in a private runtime directory of their own.

    .venv/bin/python benchmarks/check_fullsize.py                          # every family that fits
    .venv/bin/python benchmarks/check_fullsize.py --families sd-turbo dit-xl-2-256

Images are noise (random weights): this measures paths, memory and time, not quality. Steps are cut for the
multi-step families (2 instead of 20-50: the paths are the same, each step costs the same).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, RESULTS, append_csv, machine_info

CONFIGS = REPO / "benchmarks" / "model_configs"
GIB = 2**30
DATASET_SIZE = 32  # scikit-learn's digits, upsampled: the smallest resolution any family may sample here

# stem: the checkpoint's weight dtype on disk (its published variant), the dtype the run loads it in on the CPU,
# and the sampling settings. float16 is never a CPU dtype (no CPU float16 kernels: the config refuses it), so the
# float16 checkpoints run in bfloat16 or float32; SDXL decodes in float32 (its VAE's upcast, vae_dtype float32).
FAMILIES = {
    "sdxl-turbo": {"weights": "float16", "dtype": "bfloat16", "vae_dtype": "float32", "steps": 1, "guidance": 0.0},
    "sd-turbo": {"weights": "float16", "dtype": "float32", "vae_dtype": "auto", "steps": 1, "guidance": 0.0},
    "dit-xl-2-256": {"weights": "float16", "dtype": "bfloat16", "vae_dtype": "auto", "steps": 2, "guidance": 4.0},
    "pixart-sigma": {"weights": "bfloat16", "dtype": "bfloat16", "vae_dtype": "auto", "steps": 2, "guidance": 4.5},
    "sana-sprint": {"weights": "bfloat16", "dtype": "bfloat16", "vae_dtype": "auto", "steps": 2, "guidance": 4.5},
}
# Not run: their bfloat16 weights alone are above a 24 GB machine's memory (figures printed from the configs).
TOO_LARGE = ("flux.1-schnell", "sd3.5-large-turbo")


def meminfo(key: str = "MemAvailable") -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def parameters_from_configs(stem: str) -> dict[str, int]:
    """Parameters per model component of the full-size architecture, built on the meta device (no memory)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from flops_families import meta_pipeline

    pipe = meta_pipeline(CONFIGS / stem)
    out = {}
    for name, module in pipe.components.items():
        if hasattr(module, "parameters"):
            out[name] = sum(p.numel() for p in module.parameters())
    return out


BUILD = """
import json, resource, sys, warnings
warnings.filterwarnings("ignore")
from gendistill.generator.random_dir import build_random_model_dir
record = build_random_model_dir(sys.argv[1], sys.argv[2], sys.argv[3], log=lambda line: print(line, flush=True))
record["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("BUILD " + json.dumps(record))
"""


def build(stem: str, weights: str, out: Path) -> dict:
    """Build (or reuse) the random-weight directory in a child process (its memory is freed when it ends)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", BUILD, str(CONFIGS / stem), str(out), weights]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"building {stem} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    record = json.loads(proc.stdout.split("BUILD ", 1)[1])
    return {
        "build_s": record["seconds"],
        "build_reused": record["reused"],
        "build_peak_gib": None if record["reused"] else round(record["peak_rss_bytes"] / GIB, 2),
        "params_m": round(sum(record["parameters"].values()) / 1e6, 1),
        "disk_gib": round(record["bytes"] / GIB, 2),
    }


def resolution_for(root: Path) -> int:
    """The smallest resolution the family samples at for a 32 px dataset: its multiple, or a DiT's native size."""
    from gendistill.families.facts import model_facts

    facts = model_facts(root, str(root))
    if facts["native_resolution"]:
        return facts["native_resolution"]
    m = facts["multiple"]
    return -(-DATASET_SIZE // m) * m


def run_config(stem: str, root: Path, work: Path, settings: dict, resolution: int) -> dict:
    cfg = {
        "run": stem,
        "results_dir": str(work / "results"),
        "seed": 0,
        "ipc": 2,
        "dataset": {"name": "digits", "classes": [0, 1, 2]},
        "model": {"source": str(root)},
        "generation": {
            "n_generated": 2,
            "resolution": resolution,
            "steps": settings["steps"],
            "guidance_scale": settings["guidance"],
            "device": "cpu",
            "dtype": settings["dtype"],
            "vae_dtype": settings["vae_dtype"],
            "batch_size": "auto",
            "compile": False,
            "server": True,
            "server_idle_seconds": 300,
        },
        "augmentation": {"n_aug": 0},
        "evaluation": {
            "activate": True,
            "models": ["convnet"],
            "seeds": [0],
            "epochs": 2,
            "batch_size": 32,
            "baselines": {"random_subset": False, "full": False},
            "max_test_images": 200,
        },
        "recognition": {"activate": False},
    }
    if stem.startswith("dit"):  # class-conditional: prompted by its class ids
        cfg["prompts"] = {"template": "{index}"}
    return cfg


def vm_hwm(pid: int) -> int | None:
    """Peak resident memory of a live process (bytes), from /proc/<pid>/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def estimate_for(root: Path, settings: dict, resolution: int) -> float:
    from gendistill.pipeline_memory import DEFAULT_BATCH, estimate

    batch = min(2, DEFAULT_BATCH["cpu"])  # 2 images a class: the batch holds them both
    est = estimate(root, settings["dtype"], resolution, batch, settings["guidance"], settings["vae_dtype"])
    return round(est.total / GIB, 2)


def run_family(stem: str, models: Path, work: Path, cores: int) -> dict:
    from bench_end_to_end import run_workflow, stop_our_sampler

    settings = FAMILIES[stem]
    root = models / f"{stem}-random-{settings['weights']}"
    print(f"[{stem}] build or reuse {root} ({settings['weights']} weights)", flush=True)
    row = {"family": stem, "weights": settings["weights"], "dtype": settings["dtype"]}
    row["vae_dtype"] = settings["vae_dtype"]
    row.update(build(stem, settings["weights"], root))
    resolution = resolution_for(root)
    row.update(resolution=resolution, steps=settings["steps"], guidance=settings["guidance"])
    row["estimate_gib"] = estimate_for(root, settings, resolution)
    row["available_before_gib"] = round(meminfo() / GIB, 1)
    cfg = run_config(stem, root, work / stem, settings, resolution)
    fam_work = work / stem
    if fam_work.exists():
        shutil.rmtree(fam_work)  # a fresh run: the model load and every class are measured
    fam_work.mkdir(parents=True)
    stop_our_sampler(cfg)
    print(
        f"[{stem}] workflow: 3 classes x 2 images at {resolution} px, {settings['steps']} step(s), guidance "
        f"{settings['guidance']}, {settings['dtype']} (estimate {row['estimate_gib']} GiB, available "
        f"{row['available_before_gib']} GiB)",
        flush=True,
    )
    r = run_workflow(cfg, fam_work, cores, keep_warm=True)
    out = Path(cfg["results_dir"]) / cfg["run"]
    metas = [json.loads(p.read_text())["meta"] for p in sorted((out / "generated").glob("*/records.json"))]
    pid = metas[0]["server_pid"] if metas else None
    peak = vm_hwm(pid) if pid else None
    stop_our_sampler(cfg)
    row.update(
        completed=r["completed"],
        wall_s=r["wall_s"],
        load_s=r["model_load_s"],
        sampler_peak_gib=round(peak / GIB, 2) if peak else None,
        images=r["images"],
        s_per_image=round(r["sampling_s_sum"] / r["images"], 2) if r["images"] else None,
        pipeline_loads=r["pipeline_loads"],
        evaluated=(out / "results" / "results.csv").is_file(),
        log=r["log"],
    )
    if not r["completed"]:
        print(Path(r["log"]).read_text()[-5000:], flush=True)
    return row


def too_large_row(stem: str) -> dict:
    params = parameters_from_configs(stem)
    total = sum(params.values())
    biggest = sorted(params.items(), key=lambda kv: -kv[1])[:3]
    return {
        "family": stem,
        "params_m": round(total / 1e6, 1),
        "bf16_weights_gib": round(total * 2 / GIB, 1),
        "largest": ", ".join(f"{k} {v / 1e9:.2f} B" for k, v in biggest),
        "mem_total_gib": round(meminfo("MemTotal") / GIB, 1),
    }


def table(rows: list[dict]) -> str:
    head = (
        "| family | weights -> run dtype | px | steps x cfg | parameters | on disk | build s | load s | "
        "sampler peak RSS | estimate | s / image | workflow wall s |\n|" + "---|" * 12
    )
    lines = [head]
    for r in rows:
        cfg = 2 if r["guidance"] > 1 and not r["family"].startswith("sana") else 1  # SANA-Sprint embeds guidance
        reused = " (reused)" if r["build_reused"] else ""
        lines.append(
            f"| {r['family']} | {r['weights']} -> {r['dtype']}"
            f"{'' if r['vae_dtype'] == 'auto' else ', VAE ' + r['vae_dtype']} | {r['resolution']} | "
            f"{r['steps']} x{cfg} | {r['params_m']:,.0f} M | {r['disk_gib']:.2f} GiB | {r['build_s']:.0f}{reused} | "
            f"{r['load_s']} | {r['sampler_peak_gib']} GiB | {r['estimate_gib']} GiB | {r['s_per_image']} | "
            f"{r['wall_s']:.0f}{'' if r['completed'] else ' FAILED'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--models", default=str(REPO / "results" / "fullsize-models"), help="the built directories")
    ap.add_argument("--work", default=str(REPO / "results" / "check-fullsize"), help="the workflow runs")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--csv", default=str(RESULTS / "check_fullsize.csv"))
    ap.add_argument("--no-csv", action="store_true")
    a = ap.parse_args(argv)
    # the samplers of this check live in a private runtime directory: they never meet the user's other samplers
    runtime = tempfile.mkdtemp(prefix="gd-fullsize-")
    os.environ["XDG_RUNTIME_DIR"] = runtime
    models, work = Path(a.models).resolve(), Path(a.work).resolve()
    models.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    load = os.getloadavg()
    print(
        f"machine: {machine['cpu']}, {machine['cpu_cores']} cores, {meminfo('MemTotal') / GIB:.1f} GiB "
        f"({meminfo() / GIB:.1f} available), load average {load[0]:.2f}",
        flush=True,
    )
    rows, failed = [], []
    try:
        for stem in a.families:
            row = run_family(stem, models, work, a.cores)
            rows.append(row)
            if not (row["completed"] and row["evaluated"]):
                failed.append(stem)
            print(f"[{stem}] " + json.dumps({k: v for k, v in row.items() if k != "log"}), flush=True)
    finally:
        from gendistill.sampling.client import stop_samplers

        stop_samplers(directory=Path(runtime) / "gendistill")
        shutil.rmtree(runtime, ignore_errors=True)
    print("\n" + table(rows) if rows else "")
    print("\nNot run (full size does not fit in this machine's memory even in bfloat16):")
    for stem in TOO_LARGE:
        r = too_large_row(stem)
        print(
            f"  {stem}: {r['params_m']:,.0f} M parameters, {r['bf16_weights_gib']} GiB of bfloat16 weights "
            f"(largest: {r['largest']}) vs {r['mem_total_gib']} GiB of memory in all"
        )
    load_after = os.getloadavg()
    print(f"\nload average before {load[0]:.2f}, after {load_after[0]:.2f}")
    if rows and not a.no_csv:
        append_csv(Path(a.csv), [{**machine, **{k: v for k, v in r.items() if k != "log"}} for r in rows])
        print(f"appended {len(rows)} rows to {a.csv}")
    if failed:
        print(f"FAILED: {', '.join(failed)} (logs above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
