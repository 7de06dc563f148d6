"""The OpenMP wait policy of the fit job: the default spin on free cores, passive waiting on busy ones."""

from __future__ import annotations

import os
import subprocess
import sys

from gendistill import openmp


def test_an_environment_setting_wins(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(openmp, "busy_cores", lambda: 99.0)
    assert "from the environment" in openmp.choose_wait_policy(2)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_busy_cores_make_the_threads_wait_passively_and_free_ones_leave_the_default(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(openmp.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(openmp, "busy_cores", lambda: 0.1)
    assert "2 threads" in openmp.choose_wait_policy(2) and "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setattr(openmp, "busy_cores", lambda: 1.0)  # one of the two cores taken: 2 threads would spin on it
    assert "PASSIVE" in openmp.choose_wait_policy(2) and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert "OMP_WAIT_POLICY" not in os.environ and "unset" in openmp.choose_wait_policy(1)  # 1 thread: a core free


def test_busy_cores_sees_a_process_that_spins():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = openmp.busy_cores(window=0.5)
    finally:
        spin.kill()
        spin.wait()
    assert busy is not None and busy >= 0.5, busy
