"""The sample job's own cost: N one-class jobs (2 images of the tiny model at 32 px) against a warm sampler, run as
Snakemake runs a `shell:` job (`bash -c "<command>"`, a fresh interpreter each), one after the other.

Prints the wall time per job (median, mean, p90), the job's own CPU time (bash and the job's interpreter, user +
system: less sensitive than the wall time to other processes on a busy machine) and, from each class's
records.json, the sampler's sampling time for it: wall minus sampling is what a job costs per class beyond the
sampling itself (interpreter start, imports, the key, connecting, writing and publishing the class). The first
job, which starts the sampler and loads the model, is not timed.

    .venv/bin/python benchmarks/bench_sample_job.py --jobs 50
    .venv/bin/python benchmarks/bench_sample_job.py --jobs 50 --repo /path/to/other/checkout   # another version

A checkout whose job takes its class on the command line (before the request files) is run in that form.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO

GEN = {"resolution": 32, "steps": 1, "guidance_scale": 0.0}


def request_file(directory: Path, cls: dict, load: dict) -> str:
    """A request file as gendistill.sampling.request writes it (JSON named by its content hash, 0600)."""
    data = json.dumps({"cls": cls, "load": load, "gen": GEN, "out_size": 32}, sort_keys=True).encode()
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / f"{cls['id']}-{hashlib.sha256(data).hexdigest()[:16]}.json"
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


def job_command(repo: Path, wd: Path, cls: dict, load: dict, request_form: bool) -> str:
    out = wd / "out" / cls["id"]
    head = [sys.executable, "-m", "gendistill", "sample"]
    if request_form:
        args = ["--request", request_file(wd / ".requests", cls, load), "--out", str(out)]
    else:
        args = ["--load", json.dumps(load), "--cls", json.dumps(cls), "--gen", json.dumps(GEN), "--out-size", "32"]
        args += ["--out", str(out)]
    return shlex.join([*head, *args, "--runtime", json.dumps({"idle": 120})]) + " > /dev/null 2>&1"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose sample job is measured")
    a = ap.parse_args(argv)
    repo = a.repo.resolve()
    request_form = '"--request"' in (repo / "src" / "gendistill" / "cli.py").read_text()
    from gendistill.generator.build import save_tiny_pipeline
    from gendistill.sampling.client import stop_samplers

    with tempfile.TemporaryDirectory(prefix="bench-job-") as tmp:
        wd = Path(tmp)
        xdg = wd / "xdg"
        xdg.mkdir(mode=0o700)
        model = str(save_tiny_pipeline(wd / "model", {"seed": 0}))
        load = {"source": model, "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}
        env = {**os.environ, "PYTHONPATH": str(repo / "src"), "XDG_RUNTIME_DIR": str(xdg)}
        walls, cpus, sampling = [], [], []
        try:
            for k in range(a.jobs + 1):
                cls = {"index": k, "name": f"c{k}", "id": f"{k:03d}_c{k}", "prompt": "a photo", "seed": 0}
                cmd = job_command(repo, wd, {**cls, "n_generated": 2}, load, request_form)
                r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                proc = subprocess.run(["bash", "-c", cmd], env=env, cwd=wd)
                wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
                if proc.returncode != 0:
                    raise SystemExit(f"job {k} failed: {cmd}")
                if k:  # the first job starts the sampler and waits for the model load
                    walls.append(wall)
                    cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
                    meta = json.loads((wd / "out" / cls["id"] / "records.json").read_text())["meta"]
                    sampling.append(meta["seconds"])
        finally:
            stop_samplers(directory=xdg / "gendistill")
    ms = sorted(w * 1000 for w in walls)
    print(f"{repo} ({'request file' if request_form else 'class on the command line'}), {a.jobs} jobs, warm sampler")
    print(
        f"wall per job: median {statistics.median(ms):.1f} ms, mean {statistics.mean(ms):.1f} ms, "
        f"p90 {ms[int(0.9 * (len(ms) - 1))]:.1f} ms; job CPU time: median {statistics.median(cpus) * 1000:.1f} ms; "
        f"sampling in the sampler: median "
        f"{statistics.median(sampling) * 1000:.1f} ms; load average {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
