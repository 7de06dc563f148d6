"""Orchestration overhead at scale: the tiny pipeline on 100 and 1,000 class-list classes vs Snakemake's floor.

Runs, one after the other, in a fresh work directory:
  * the workflow (tiny random-weight model, 32 px, n_generated 2, n_aug 1, no evaluation, `--cores 1`) on
    each class count, each with a new sampler (cold: its model load is timed); the tiny model itself is built
    once beforehand, untimed (a one-off cost of the demo model, not orchestration);
  * Snakemake alone on the same number of trivial `shell:` jobs (`echo > file`): its own per-job floor, with its
    default (ilp) scheduler and with the greedy one this workflow's profiles/default selects.
Prints the wall times and R = pipeline wall / trivial-jobs wall (default scheduler) at the largest class count:
what the workflow costs beyond Snakemake's own scheduling, as a multiple of it, and the same ratio against the
greedy floor. The GPU work of these runs is tiny, so R measures orchestration.

    .venv/bin/python benchmarks/bench_scale.py                      # 100 and 1,000 classes (~3-4 min)
    .venv/bin/python benchmarks/bench_scale.py --classes 100 --trivial 100 --no-csv
    .venv/bin/python benchmarks/bench_scale.py --repo /path/to/other/checkout   # measure another version
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, RESULTS, append_csv, machine_info

TRIVIAL_SNAKEFILE = """
N = int(config["count"])

rule all:
    input: expand("out/{i}.txt", i=range(N))

rule trivial:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"
"""


def workflow_config(n: int) -> dict:
    return {
        "run": f"scale{n}",
        "seed": 0,
        "dataset": {"name": "classlist", "class_names": [f"class {i:04d}" for i in range(n)], "image_size": 32},
        "model": {"tiny": {"seed": 0}},
        "generation": {"n_generated": 2, "resolution": 32, "server_idle_seconds": 30},
        "augmentation": {"n_aug": 1},
        "evaluation": {"activate": False},
    }


def _model_target(repo: Path, cfg: dict) -> list[str]:
    """The tiny model's directory, as the workflow names it (a target of its own)."""
    sys.path.insert(0, str(repo / "src"))
    from gendistill.plan import tiny_model_dir

    return [tiny_model_dir({**cfg, "results_dir": "results"})]


def timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - t0, rc


def job_counts(log: Path) -> dict[str, int]:
    """{rule: jobs run} from Snakemake's job stats table in its log."""
    counts, inside = {}, False
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("job ") and "count" in line:
            inside = True
            continue
        if inside:
            parts = line.split()
            if parts and parts[0] == "total":
                break
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", default="100,1000", help="comma-separated class counts")
    ap.add_argument("--trivial", type=int, default=None, help="trivial jobs (default: the largest class count)")
    ap.add_argument("--repo", default=str(REPO), help="the checkout whose Snakefile runs (default: this one)")
    ap.add_argument("--workdir", default=None, help="keep the work directories here (default: a temp dir)")
    ap.add_argument("--csv", default=str(RESULTS / "scale.csv"))
    ap.add_argument("--no-csv", action="store_true")
    a = ap.parse_args(argv)

    import yaml

    sizes = [int(x) for x in a.classes.split(",")]
    n_trivial = a.trivial or max(sizes)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    repo = Path(a.repo).resolve()
    base = Path(a.workdir or tempfile.mkdtemp(prefix="gendistill-scale-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    # Bytecode for the measured checkout, as an installed package has (with PYTHONDONTWRITEBYTECODE set, every
    # job would compile the project's modules again: ~8 ms a job here).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(repo / "src")], check=True)
    rows, walls = [], {}
    wd = base / "pipeline"  # one work directory: every run shares results/models/ (the tiny model)
    wd.mkdir(parents=True, exist_ok=True)

    def cmd(*targets: str, configfile: Path) -> list[str]:  # (targets first: the options below take lists)
        return [
            snakemake,
            "-s",
            str(repo / "Snakefile"),
            *targets,
            "--cores",
            "1",
            "--resources",
            "gpu=1",
            "--configfile",
            str(configfile),
        ]

    # The tiny model is built once, untimed: a one-off cost of the demo model, not orchestration.
    (wd / "prebuild.yaml").write_text(yaml.safe_dump(workflow_config(1), sort_keys=False))
    _, rc = timed(
        cmd(*_model_target(repo, workflow_config(1)), configfile=wd / "prebuild.yaml"), wd, wd / "prebuild.log"
    )
    if rc != 0:
        print((wd / "prebuild.log").read_text(errors="replace")[-3000:])
        return rc
    for n in sizes:
        cfg = wd / f"config{n}.yaml"
        cfg.write_text(yaml.safe_dump(workflow_config(n), sort_keys=False))
        log = wd / f"snakemake{n}.log"
        wall, rc = timed(cmd(configfile=cfg), wd, log)
        if rc != 0:
            print(log.read_text(errors="replace")[-4000:])
            print(f"the workflow failed on {n} classes (exit {rc}); log: {log}")
            return rc
        walls[n] = wall
        counts = job_counts(log)
        print(
            f"pipeline, {n:>5} classes: {wall:7.1f} s, {sum(counts.values())} jobs "
            f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})",
            flush=True,
        )
        rows.append({"what": "pipeline", "classes": n, "jobs": sum(counts.values()), "wall_s": round(wall, 2)})
    floors = {}
    for scheduler in ("ilp", "greedy"):  # Snakemake's default, and the one this workflow's profile selects
        wd = base / f"trivial-{scheduler}"
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "Snakefile").write_text(TRIVIAL_SNAKEFILE)
        wall, rc = timed(
            [snakemake, "--cores", "1", "--scheduler", scheduler, "--config", f"count={n_trivial}"],
            wd,
            wd / "snakemake.log",
        )
        if rc != 0:
            print((wd / "snakemake.log").read_text(errors="replace")[-3000:])
            return rc
        floors[scheduler] = wall
        print(
            f"trivial shell jobs, {n_trivial:>5}, {scheduler:>6} scheduler: {wall:7.1f} s "
            f"({wall / n_trivial * 1000:.0f} ms a job)"
        )
        rows.append(
            {"what": f"trivial ({scheduler})", "classes": n_trivial, "jobs": n_trivial + 1, "wall_s": round(wall, 2)}
        )
    largest = max(sizes)
    trivial = floors["ilp"]
    ratio = walls[largest] / trivial if n_trivial == largest else None
    if ratio is not None:
        print(
            f"R = pipeline wall / trivial-jobs wall (Snakemake's default scheduler) at {largest} classes = "
            f"{walls[largest]:.1f} / {trivial:.1f} = {ratio:.2f}"
        )
        print(
            f"    against the greedy-scheduler floor: {walls[largest]:.1f} / {floors['greedy']:.1f} = "
            f"{walls[largest] / floors['greedy']:.2f}"
        )
    version = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if not a.no_csv:
        info = machine_info()
        append_csv(
            Path(a.csv),
            [
                {
                    **info,
                    "benchmark": "scale",
                    "measured_repo_commit": version,
                    **r,
                    "R_at_largest": round(ratio, 3) if ratio else "",
                }
                for r in rows
            ],
        )
        print(f"rows appended to {a.csv}")
    print(f"work directories: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
