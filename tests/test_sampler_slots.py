"""Tier 1: GPU slots with their samplers, on the CPU (generation.gpus: [0, 1] on a machine without CUDA gives
two fake slots: each slot's sampler runs on the CPU, but slots, locks, samplers and records behave as on a GPU
node). Two jobs at once use two samplers, one per slot, each loaded once and started with only its GPU visible;
a sampler killed mid-class fails that class only, and a rerun completes it; `sampler-stop` stops every slot's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, deep_update, job_counts, run_snakemake, with_tiny_model
from sampler_helpers import CLS, client_cmd, pid_gone, ping, read_meta, wait_for_tmp_pngs

from gendistill.sampling import client
from gendistill.sampling.client import sampler_paths, stop_samplers
from gendistill.sampling.slots import resolve_slots

pytestmark = pytest.mark.usefixtures("private_runtime", "no_gpu_visible")


@pytest.fixture
def no_gpu_visible(monkeypatch):
    """CPU slots on any machine: with no GPU visible, gpus: [0, 1] gives two fake slots (a GPU node would give
    real ones, whose samplers would still run on the CPU: the tests' load spec says so)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


TWO = {"gpus": [0, 1], "idle": 60}


@pytest.fixture
def load(tiny_model_dir):
    return {"source": tiny_model_dir, "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}


def cls(k: int, n: int = 2) -> dict:
    return {**CLS, "index": k, "id": f"{k:03d}_c{k}", "name": f"c{k}", "seed": k, "n_generated": n}


def environ_of(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


def start_jobs(load, classes, tmp_path, runtime):
    return [
        subprocess.Popen(
            client_cmd(load, c, tmp_path / c["id"], runtime),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in classes
    ]


def test_two_jobs_at_once_use_two_samplers_one_per_slot_each_loaded_once(load, tmp_path, private_runtime):
    jobs = start_jobs(load, [cls(0), cls(1)], tmp_path, TWO)
    outs = [j.communicate(timeout=300) for j in jobs]
    assert [j.returncode for j in jobs] == [0, 0], outs
    metas = [read_meta(tmp_path / c) for c in ("000_c0", "001_c1")]
    assert sorted(m["slot"]["index"] for m in metas) == [0, 1]  # the second job did not wait: it took slot 1
    assert len({m["server_pid"] for m in metas}) == 2 and {m["pipeline_loads"] for m in metas} == {1}
    for m, (out, _) in zip(metas, outs):
        gpu = m["slot"]["gpu"]
        assert m["cuda_visible_devices"] == gpu and m["slot"]["fake"] is True  # the sampler saw its slot's GPU only
        assert environ_of(m["server_pid"])["CUDA_VISIBLE_DEVICES"] == gpu
        assert f"sampling on GPU slot {m['slot']['index']} of 2 (GPU {gpu}; no GPU visible" in out
    # later classes go to a free slot's sampler, which is already loaded: no third sampler, no second load
    for k in (2, 3):
        (job,) = start_jobs(load, [cls(k)], tmp_path, TWO)
        out, err = job.communicate(timeout=120)
        assert job.returncode == 0, err
    later = [read_meta(tmp_path / f"00{k}_c{k}") for k in (2, 3)]
    by_slot = {m["slot"]["index"]: m["server_pid"] for m in metas}
    assert all(m["server_pid"] == by_slot[m["slot"]["index"]] and not m["started_sampler"] for m in later)
    assert {m["pipeline_loads"] for m in later} == {1}
    socks = sorted(p.name.rsplit("-", 1)[1] for p in private_runtime.glob("*.sock"))
    assert socks == ["slot00.sock", "slot01.sock"]
    assert len(stop_samplers(directory=private_runtime)) == 2  # `gendistill sampler-stop`: every slot's sampler


def test_a_slurm_batch_step_starts_one_sampler_per_gpu_of_its_allocation(monkeypatch, load, private_runtime):
    """In the batch step of a SLURM job with several GPUs (CUDA_VISIBLE_DEVICES set by SLURM), the workflow's hook
    starts one sampler per GPU, each owned by the batch step and seeing only its GPU, with the keys its classes'
    steps compute (they load while the steps start)."""
    monkeypatch.setenv("SLURM_JOB_ID", "5150")
    monkeypatch.delenv("SLURM_STEP_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # two fake GPUs, as SLURM would name an allocation's
    runtime = {"gpus": "auto", "idle": 60}
    slots = resolve_slots("auto")
    assert [s.gpu for s in slots] == ["0", "1"]
    assert client.start_for_slurm_batch_step(load, runtime) is True
    assert client.start_for_slurm_batch_step(load, runtime) is False  # both already run
    for slot in slots:
        status = ping(sampler_paths(load, runtime, slot)["socket"])
        assert environ_of(status["pid"])["CUDA_VISIBLE_DEVICES"] == slot.gpu
    assert len(list(private_runtime.glob("*.sock"))) == 2


def test_a_killed_sampler_fails_only_its_slots_class_and_a_rerun_completes_it(load, tmp_path):
    """SIGKILL of slot 0's sampler mid-class: that class's job fails clearly and publishes nothing, the class on
    slot 1 goes on and is published, and a rerun of the failed class starts a new sampler on slot 0."""
    big = [cls(0, 80), cls(1, 80)]
    jobs = start_jobs(load, big, tmp_path, {**TWO, "batch_size": 1})
    try:
        for c in big:
            wait_for_tmp_pngs(tmp_path, c["id"], 3)  # both classes are being sampled, one on each slot
        victim_slot = resolve_slots([0, 1], [])[0]
        victim = ping(sampler_paths(load, TWO, victim_slot)["socket"])["pid"]
        os.kill(victim, signal.SIGKILL)
        outs = [j.communicate(timeout=300) for j in jobs]
    finally:
        for j in jobs:
            j.kill()
    deadline = time.time() + 10
    while not pid_gone(victim) and time.time() < deadline:
        time.sleep(0.1)
    failed = [i for i, j in enumerate(jobs) if j.returncode != 0]
    assert len(failed) == 1, [o[1][-2000:] for o in outs]
    lost, kept = big[failed[0]], big[1 - failed[0]]
    err = outs[failed[0]][1]
    assert "the connection to the sampler of GPU slot 0 (GPU 0" in err and "nothing published" in err, err
    assert "taking only this GPU slot's class with it" in err and "Fix: rerun" in err
    assert not (tmp_path / lost["id"]).exists() and (tmp_path / kept["id"] / "records.json").exists()
    assert read_meta(tmp_path / kept["id"])["slot"]["index"] == 1
    # the rerun takes the free slot 0 and starts its sampler again
    (rerun,) = start_jobs(load, [lost], tmp_path, TWO)
    out, err = rerun.communicate(timeout=300)
    meta = read_meta(tmp_path / lost["id"])
    assert rerun.returncode == 0 and meta["slot"]["index"] == 0 and meta["started_sampler"], err
    assert meta["server_pid"] != victim


def test_a_job_waiting_behind_hung_slot_holders_fails_naming_them(load, tmp_path, private_runtime):
    """Issue 31, item 6: every slot held by a job that shows no progress (hung for good): a sample job waits twice
    its server_timeout, then fails naming them, instead of waiting forever; nothing is written."""
    from gendistill.sampling.slots import slot_lock_path

    private_runtime.mkdir(mode=0o700, exist_ok=True)
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d\\n' % os.getpid()); print('held', flush=True); "
        "time.sleep(600)"
    )
    holders = []
    try:
        for slot in resolve_slots([0, 1], []):
            holders.append(
                subprocess.Popen(
                    [sys.executable, "-c", code, str(slot_lock_path(private_runtime, slot))],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            assert holders[-1].stdout.readline().strip() == "held"
        t0 = time.monotonic()
        proc = subprocess.run(
            client_cmd(load, CLS, tmp_path / "out", {**TWO, "server_timeout": 1}), capture_output=True, text=True
        )
        assert proc.returncode == 1 and 2 <= time.monotonic() - t0 < 60, proc.stdout + proc.stderr
        assert "no holder has shown progress for 2s" in proc.stderr, proc.stderr
        for h in holders:
            assert f"by pid {h.pid} (state S)" in proc.stderr, proc.stderr
        assert not (tmp_path / "out").exists()
    finally:
        for h in holders:
            h.kill()
            h.wait()


@pytest.mark.workflow
def test_a_dry_run_says_when_resources_leave_slots_idle(tmp_path):
    """Issue 31, item 6: `generation.gpus: [0, 1]` with `--resources gpu=1` sampled one class at a time on slot 0,
    slot 1 idle without a word. `snakemake -n` says so, and with `--resources gpu=2` says nothing."""
    two = deep_update(TINY_CONFIG, {"generation": {"gpus": [0, 1]}})
    one = run_snakemake(tmp_path / "a", two, "-n")  # run_snakemake passes --resources gpu=1
    assert "but --resources gpu=1 lets Snakemake run 1 sample job(s) at once, so slot(s) 1 (GPU 1) stay idle" in (
        one.stderr
    ), one.stderr[-3000:]
    both = run_snakemake(tmp_path / "b", two, "-n", "--resources", "gpu=2")
    assert "stay idle" not in both.stderr + both.stdout


def test_two_slots_give_the_same_packaged_bytes_as_one_and_rerun_nothing(tiny_run, tmp_path):
    """The tiny run again with generation.gpus: [0, 1] and --resources gpu=2: classes sampled two at a time on two
    samplers, and the packaged dataset byte-identical to the one-slot run's. The setting is a runtime knob: the
    one-slot config finds nothing to rerun in the two-slot run."""
    two = deep_update(TINY_CONFIG, {"generation": {"gpus": [0, 1]}})
    target = ("results/t/dataset/distilled.pt",)
    run_snakemake(with_tiny_model(tmp_path, tiny_run), two, "--resources", "gpu=2", targets=target)
    run = tmp_path / "results" / "t"
    metas = [read_meta(d) for d in sorted((run / "generated").iterdir())]
    assert len(metas) == 3 and {m["slot"]["index"] for m in metas} == {0, 1}
    pid_of_slot = {}
    for m in metas:  # each class served by exactly one sampler, the one of its slot, loaded once
        assert pid_of_slot.setdefault(m["slot"]["index"], m["server_pid"]) == m["server_pid"]
        assert m["pipeline_loads"] == 1 and m["cuda_visible_devices"] == m["slot"]["gpu"]
    assert len(set(pid_of_slot.values())) == 2
    log = "".join((run / "logs" / "sample" / f"{d.name}.log").read_text() for d in (run / "generated").iterdir())
    assert "sampling on GPU slot 0 of 2" in log and "sampling on GPU slot 1 of 2" in log
    for rel in ("dataset/distilled.pt", "dataset/manifest.csv"):
        assert (tiny_run / "results" / "t" / rel).read_bytes() == (run / rel).read_bytes(), rel
    pngs = sorted((tiny_run / "results" / "t" / "dataset" / "imagefolder").rglob("*.png"))
    assert pngs and all(p.read_bytes() == (tmp_path / p.relative_to(tiny_run)).read_bytes() for p in pngs)
    assert job_counts(run_snakemake(tmp_path, TINY_CONFIG, "--dag", targets=target).stdout) == {}
