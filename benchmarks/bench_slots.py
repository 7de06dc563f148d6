"""Sample-stage wall time with 1 and 2 GPU slots: the tiny pipeline on 20 class-list classes, run by the workflow
up to the sampled classes (`--until sample`), each sampler on one CPU thread.

On a machine without a GPU, `generation.gpus: [0, 1]` gives two CPU slots: two samplers, each on one thread, as
two GPUs would each have one sampler. One slot is the default (`gpus: auto` on a machine without GPUs) with
`--resources gpu=1`; two slots are `gpus: [0, 1]` with `--resources gpu=2`. Each run starts cold (a new results
directory, no sampler running), so its wall time includes starting the samplers and loading the model in each;
the tiny model itself is built once beforehand, untimed. Prints the wall time of each run, the summed per-class
sampling time from the classes' records.json, and the speed-up.

    .venv/bin/python benchmarks/bench_slots.py                   # 20 classes x 200 images, 2 repeats (~5 min)
    .venv/bin/python benchmarks/bench_slots.py --classes 8 --images 16 --repeats 1
    .venv/bin/python benchmarks/bench_slots.py --arithmetic      # the expected 8-GPU figures (arithmetic only)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, RESULTS, append_csv, git_commit, machine_info

SLOTS = {1: "auto", 2: [0, 1]}


def workflow_config(run: str, classes: int, images: int, gpus) -> dict:
    return {
        "run": run,
        "seed": 0,
        "dataset": {"name": "classlist", "class_names": [f"class {i:03d}" for i in range(classes)], "image_size": 32},
        "model": {"tiny": {"seed": 0}},
        "generation": {"n_generated": images, "resolution": 32, "server_idle_seconds": 30, "gpus": gpus},
        "augmentation": {"n_aug": 0},
        "evaluation": {"activate": False},
    }


def snakemake(wd: Path, configfile: Path, gpus: int, env: dict, *extra: str) -> tuple[float, str]:
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "-s",
        str(REPO / "Snakefile"),
        *extra,
        "--cores",
        "2",
        "--resources",
        f"gpu={gpus}",
        "--configfile",
        str(configfile),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


# Arithmetic, not a measurement: the sample stage of ImageNet-1k on G GPUs from FLOP counts and measured per-job costs.
# SDXL-Turbo at 512 px, one step, no guidance (BENCHMARKS.md sections 2 and 5, flops_families.py's sdxl row):
TEXT_GFLOP = 111.2  # both text encoders, once per class
IMAGE_GFLOP = 1588.8 + 2514.5  # one UNet step + the VAE decode, per image
PEAK_TFLOPS = 989.4  # H100 SXM / H200 dense fp16 peak
JOB_S = 0.043  # one sample job's own cost per class, in parallel per slot (BENCHMARKS.md section 7)
SNAKEMAKE_S = 0.012  # Snakemake's own cost per job, serial in its one process (section 7)


def expected(classes: int, images: int, gpus: int, fraction: float) -> float:
    """Seconds for the sample stage without the model load: each GPU samples ceil(C / G) classes one after
    another, T = ceil(C / G) x (text + n x image + job), and never less than Snakemake's serial C x 12 ms."""
    flops = TEXT_GFLOP + images * IMAGE_GFLOP
    per_class = flops / (PEAK_TFLOPS * 1e3 * fraction) + JOB_S
    return max(-(-classes // gpus) * per_class, classes * SNAKEMAKE_S)


def print_expected() -> None:
    print("ARITHMETIC, not a measurement: ImageNet-1k (1,000 classes), SDXL-Turbo 512 px, 1 step; model load excluded")
    print("| IPC | generated per class | fraction of peak | 1 GPU | 8 GPUs | speed-up |")
    print("|---|---|---|---|---|---|")
    for ipc, n_aug in ((10, 4), (50, 4), (10, 0), (50, 0)):
        n = ipc // (n_aug + 1)
        for f in (1.0, 0.5):
            one, eight = expected(1000, n, 1, f), expected(1000, n, 8, f)
            print(f"| {ipc} | {n} (n_aug {n_aug}) | {f:.0%} | {one:.1f} s | {eight:.1f} s | {one / eight:.1f}x |")


def sample_jobs_span(run_dir: Path) -> float:
    """Seconds from the first sample job's start to the last one's end: the stage without Snakemake's start and the
    prompts job. Each job's end is its benchmark file's mtime (written as it ends), its start that minus the
    job's own duration from the same file."""
    ends, starts = [], []
    for tsv in (run_dir / "benchmarks" / "sample").glob("*.tsv"):
        seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
        end = tsv.stat().st_mtime
        ends.append(end)
        starts.append(end - seconds)
    return max(ends) - min(starts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--images", type=int, default=200, help="images per class (32 px)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="keep the work directory here (default: a temp dir)")
    ap.add_argument("--arithmetic", action="store_true", help="print the expected 8-GPU figures only (no run)")
    ap.add_argument("--csv", default=str(RESULTS / "slots.csv"))
    ap.add_argument("--no-csv", action="store_true")
    a = ap.parse_args(argv)
    if a.arithmetic:
        print_expected()
        return 0
    import yaml

    sys.path.insert(0, str(REPO / "src"))
    from gendistill.plan import tiny_model_dir
    from gendistill.sampling.client import stop_samplers

    wd = Path(a.workdir or tempfile.mkdtemp(prefix="gendistill-slots-")).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    xdg = Path(tempfile.mkdtemp(prefix="gendistill-slots-run-"))  # this benchmark's samplers, nobody else's
    xdg.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(xdg), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    os.environ["XDG_RUNTIME_DIR"] = str(xdg)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")], check=True)

    prebuild = wd / "prebuild.yaml"
    cfg = workflow_config("prebuild", 1, 1, "auto")
    prebuild.write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(wd, prebuild, 1, env, tiny_model_dir({**cfg, "results_dir": "results"}))

    print(
        f"{a.classes} classes x {a.images} images (tiny pipeline, 32 px), one CPU thread per sampler, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start"
    )
    walls: dict[int, list[float]] = {1: [], 2: []}
    spans: dict[int, list[float]] = {1: [], 2: []}
    rows, info = [], {**machine_info(), "commit": git_commit()}
    for rep in range(a.repeats):
        for n in (1, 2):
            run = f"slots{n}-r{rep}"
            configfile = wd / f"{run}.yaml"
            configfile.write_text(yaml.safe_dump(workflow_config(run, a.classes, a.images, SLOTS[n]), sort_keys=False))
            load_before = os.getloadavg()[0]
            wall, _ = snakemake(wd, configfile, n, env, "--until", "sample")
            stop_samplers(directory=xdg / "gendistill")
            metas = [
                json.loads((d / "records.json").read_text())["meta"]
                for d in sorted((wd / "results" / run / "generated").iterdir())
            ]
            assert len(metas) == a.classes, len(metas)
            pids = {m["server_pid"] for m in metas}
            threads = {m.get("cpu_threads") for m in metas}
            sampling = sum(m["seconds"] for m in metas)
            loads = [m["load_seconds"] for m in metas if m["started_sampler"]]
            walls[n].append(wall)
            span = sample_jobs_span(wd / "results" / run)
            spans[n].append(span)
            rows.append(
                {
                    **info,
                    "classes": a.classes,
                    "images_per_class": a.images,
                    "slots": n,
                    "repeat": rep + 1,
                    "loadavg_1m_before": round(load_before, 2),
                    "wall_s": round(wall, 2),
                    "sample_jobs_span_s": round(span, 2),
                    "samplers": len(pids),
                    "model_load_s": ";".join(str(round(x, 2)) for x in loads),
                    "sampling_summed_s": round(sampling, 2),
                }
            )
            print(
                f"  {n} slot(s), repeat {rep + 1}: sample stage {wall:6.2f} s wall, sample jobs first start to last "
                f"end {span:6.2f} s; {len(pids)} sampler(s), "
                f"cpu threads {sorted(threads)}, model loads {[round(x, 2) for x in loads]} s, sampling summed "
                f"over classes {sampling:.2f} s",
                flush=True,
            )
    one, two = statistics.median(walls[1]), statistics.median(walls[2])
    print(f"median wall: 1 slot {one:.2f} s, 2 slots {two:.2f} s, speed-up {one / two:.2f}x")
    one, two = statistics.median(spans[1]), statistics.median(spans[2])
    print(f"median sample jobs span: 1 slot {one:.2f} s, 2 slots {two:.2f} s, speed-up {one / two:.2f}x")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if not a.workdir:
        shutil.rmtree(wd, ignore_errors=True)
    shutil.rmtree(xdg, ignore_errors=True)
    if not a.no_csv:
        append_csv(Path(a.csv), rows)
        print(f"rows appended to {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
