"""The SLURM profile against a real SLURM controller (`make test-slurm`; not part of `make test`).

tests/slurm/run_slurm_test.sh brings up a single-node SLURM (slurmctld + slurmd + munged, one fake GPU) on a
private loopback in its own namespaces, runs the demo through `--profile profiles/slurm`, runs the same config
through `--profile profiles/local`, and tests/slurm/check_runs.py checks the SLURM jobs, the GPU requests, the
grouped sampling (one submission, one model load, no sampler left behind) and that both packaged datasets are
identical. The cluster is torn down whatever happens. See the script's header for what each step proves.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import REPO

pytestmark = pytest.mark.slurm

SCRIPT = REPO / "tests" / "slurm" / "run_slurm_test.sh"
CHECKS = [  # one line per check of check_runs.py, in order
    "SLURM jobs, one per rule and wildcard set; the 5 sample jobs were ONE submission",
    "every SLURM job COMPLETED with exit code 0:0",
    "GPU requested by sampling",
    "all 5 classes ran in SLURM job",
    "the sampler was started by the group's batch step and served the 5 classes in turn",
    "no sampler process outlived its SLURM job",
    "distilled.pt: every entry identical",
    "manifest.csv identical; all 50 PNGs match their manifest sha256",
    "distilled.pt byte-identical",
    "both runs finished the whole workflow",
]


def test_demo_through_slurm_profile_equals_local_run():
    if os.geteuid() != 0:
        pytest.skip("needs root: it installs SLURM and munge with apt and runs their daemons in private namespaces")
    if not shutil.which("apt-get") and not all(shutil.which(c) for c in ("slurmctld", "slurmd", "sbatch", "munged")):
        pytest.skip("SLURM (slurmctld, slurmd, slurm-client, munge) is not installed and there is no apt-get")
    proc = subprocess.run(
        ["bash", str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200
    )
    print(proc.stdout)  # shown with -s, and on failure
    assert proc.returncode == 0, proc.stdout[-10000:]
    ok_lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("ok: ")]
    assert len(ok_lines) == len(CHECKS), "\n".join(ok_lines)
    for line, expected in zip(ok_lines, CHECKS):
        assert expected in line, f"expected a check {expected!r}, got {line!r}"
    assert "SLURM test passed" in proc.stdout
