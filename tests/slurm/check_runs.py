"""Checks of tests/slurm/run_slurm_test.sh after both runs:  check_runs.py WORK

WORK/slurm: the demo run through profiles/slurm; WORK/local: the same config through profiles/local;
WORK/jobs.txt: `scontrol -o show job` right after the SLURM run; WORK/samplers_after_slurm.txt: sampler
processes still alive after it. Prints one line per check; exits non-zero with the reason on the first failure.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import torch

WORK = Path(sys.argv[1])
RUN = "slurm-test"
SLURM, LOCAL = WORK / "slurm" / "results" / RUN, WORK / "local" / "results" / RUN
CLASSES = ["000_zero", "001_one", "002_two", "003_three", "004_four"]
# the submissions the demo (5 classes, evaluation of distilled + random_subset, one seed) must make:
# every rule once (augmentation is one job for all classes); the 5 sample jobs, which the profile groups into
# one submission; 2 evaluations; and the fidelity measure (on by default) with the recogniser whose features it uses
EXPECTED = {
    "build_tiny_model": 1,
    "prompts": 1,
    "sampling (group of sample)": 1,
    "augment": 1,
    "package": 1,
    "evaluate": 2,
    "results_table": 1,
    "evaluation_plots": 1,
    "sample_grids": 1,
    "prompts_table": 1,
    "runtimes": 1,
    "recognition_classifier": 1,
    "fidelity": 1,
    "fidelity_table": 1,
}
GPU_RULES = {"sampling (group of sample)", "evaluate"}


def ok(msg: str) -> None:
    print(f"   ok: {msg}")


def fail(msg: str) -> None:
    print(f"FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond: bool, msg: str) -> None:
    if not cond:
        fail(msg)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- 1. every job was a SLURM job, completed, with the resources the profile asks for ----
jobs = []
for line in (WORK / "jobs.txt").read_text().splitlines():
    if line.strip():
        jobs.append(dict(re.findall(r"(\w+)=(\S*)", line)))
check(bool(jobs), "scontrol shows no jobs")


def rule_of(job: dict) -> str:
    m = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", job.get("Comment", ""))
    check(m is not None, f"job {job['JobId']}: comment {job.get('Comment')!r} does not name a rule")
    name = m.group(1)
    return "sampling (group of sample)" if name == "sampling_sample" else name


by_rule = Counter(rule_of(j) for j in jobs)
check(dict(by_rule) == EXPECTED, f"SLURM submissions per rule {dict(by_rule)}, expected {EXPECTED}")
ok(f"{len(jobs)} SLURM jobs, one per rule and wildcard set; the 5 sample jobs were ONE submission")
bad = [
    f"{j['JobId']} {rule_of(j)} {j['JobState']} {j['ExitCode']}"
    for j in jobs
    if j["JobState"] != "COMPLETED" or j["ExitCode"] != "0:0"
]
check(not bad, f"jobs not COMPLETED with exit 0: {bad}")
ok("every SLURM job COMPLETED with exit code 0:0")
for j in jobs:
    gpu = j.get("TresPerJob", "") + j.get("TresPerNode", "")
    if rule_of(j) in GPU_RULES:
        check("gpu:1" in gpu, f"job {j['JobId']} ({rule_of(j)}) did not request a GPU: {gpu!r}")
    else:
        check("gpu" not in gpu, f"CPU job {j['JobId']} ({rule_of(j)}) requested a GPU: {gpu!r}")
sampling = next(j for j in jobs if rule_of(j) == "sampling (group of sample)")
ok(
    f"GPU requested by sampling (TresPerJob={sampling.get('TresPerJob')}, i.e. --gpus=1) and evaluation "
    f"(--gres=gpu:1) only; the sampling group asked for {sampling['NumCPUs']} CPUs and "
    f"{sampling.get('MinMemoryNode')} (one class's request, not five)"
)
check(
    sampling["NumCPUs"] == "2" and sampling.get("MinMemoryNode") == "16000M",
    f"the sampling group's request was added up over its classes: {sampling['NumCPUs']} CPUs, "
    f"{sampling.get('MinMemoryNode')}",
)

# ---- 2. the classes ran inside that SLURM job, on its GPU, served by ONE sampler that ended with the job ----
pids, loads = set(), set()
for cls in CLASSES:
    log = (SLURM / "logs" / "sample" / f"{cls}.log").read_text()
    check(
        f"SLURM job {sampling['JobId']} on " in log and "CUDA_VISIBLE_DEVICES=0" in log,
        f"{cls}: not run inside SLURM job {sampling['JobId']} with the GPU allocated:\n{log}",
    )
    meta = json.loads((SLURM / "generated" / cls / "records.json").read_text())["meta"]
    pids.add(meta["server_pid"])
    loads.add(meta["pipeline_loads"])
check(len(pids) == 1 and loads == {1}, f"sampler pids {pids}, loads {loads}: the group did not share one load")
pid = pids.pop()
ok(
    f"all 5 classes ran in SLURM job {sampling['JobId']} with CUDA_VISIBLE_DEVICES=0 (the fake GPU), served by "
    f"one sampler (pid {pid}) with one model load"
)
served = sorted(
    json.loads((SLURM / "generated" / c / "records.json").read_text())["meta"]["requests_served"] for c in CLASSES
)
check(
    served == [1, 2, 3, 4, 5],
    f"requests served when each class finished: {served} (expected one sampler serving the 5 classes in turn)",
)
group_log = Path(sampling["StdOut"]).read_text(errors="replace")
started = re.search(
    rf"started the sampler \(pid (\d+)\) for the sample jobs of SLURM job {sampling['JobId']}", group_log
)
check(
    started is not None and int(started.group(1)) == pid,
    f"the group's batch step did not start the sampler that served the classes (pid {pid}); its log:\n"
    f"{group_log[-3000:]}",
)
ok("the sampler was started by the group's batch step and served the 5 classes in turn")
left = (WORK / "samplers_after_slurm.txt").read_text().strip()
check(not left, f"sampler processes outlived the SLURM run:\n{left}")
ok("no sampler process outlived its SLURM job")

# ---- 3. SLURM's packaged dataset == the local run's ----
a = torch.load(SLURM / "dataset" / "distilled.pt", weights_only=True)
b = torch.load(LOCAL / "dataset" / "distilled.pt", weights_only=True)
check(a.keys() == b.keys(), f"distilled.pt keys differ: {sorted(a)} vs {sorted(b)}")
for k in a:
    same = torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k]
    check(same, f"distilled.pt[{k!r}] differs between the SLURM and the local run")
check(a["images"].shape[0] == 50, f"expected 50 images (5 classes x 2 x (1+4)), got {a['images'].shape[0]}")
ok(
    f"distilled.pt: every entry identical ({', '.join(sorted(a))}); {a['images'].shape[0]} images, labels "
    f"{sorted(set(a['labels'].tolist()))}"
)
ma, mb = pd.read_csv(SLURM / "dataset" / "manifest.csv"), pd.read_csv(LOCAL / "dataset" / "manifest.csv")
check(ma.equals(mb), "manifest.csv differs between the SLURM and the local run")
for row in ma.itertuples():
    f = SLURM / "dataset" / "imagefolder" / row.file
    check(sha256(f) == row.sha256, f"{f} does not match its manifest sha256")
ok(f"manifest.csv identical; all {len(ma)} PNGs match their manifest sha256")
check(
    sha256(SLURM / "dataset" / "distilled.pt") == sha256(LOCAL / "dataset" / "distilled.pt"),
    "distilled.pt bytes differ although every entry is equal",
)
ok("distilled.pt byte-identical")
for d in ("slurm", "local"):
    summary = WORK / d / "results" / RUN / "results" / "summary.csv"
    check(summary.is_file(), f"{summary} missing: the {d} run did not finish evaluation")
ok("both runs finished the whole workflow (evaluation summary present)")
