"""Reliability: interrupted runs, concurrent runs, regenerating one image from the manifest, determinism flag."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SNAKEMAKE, TINY_CONFIG, deep_update, job_counts, run_snakemake, with_tiny_model, write_config

pytestmark = pytest.mark.workflow

# In-process sampling loads the pipeline in every sample job (~5 s each): a window to interrupt a run in.
SLOW = deep_update(TINY_CONFIG, {"generation": {"server": False}, "evaluation": {"activate": False}})


def start(wd: Path, config: dict, *args: str) -> subprocess.Popen:
    cfg = write_config(wd, config)
    return subprocess.Popen(
        [
            SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(wd),
            "--configfile",
            str(cfg),
            "--cores",
            "1",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(cond, timeout=300.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.2)
    raise TimeoutError("condition not reached")


def finished_classes(wd: Path) -> list[Path]:
    gen = wd / "results" / "t" / "generated"
    return [p for p in gen.iterdir() if not p.name.startswith(".")] if gen.is_dir() else []


def assert_no_output_looks_valid_but_is_not(wd: Path):
    """Every class directory that exists is complete: records.json lists files whose sha256 match."""
    for d in finished_classes(wd):
        recs = json.loads((d / "records.json").read_text())["images"]
        assert recs, d
        for r in recs:
            assert hashlib.sha256((d / r["file"]).read_bytes()).hexdigest() == r["sha256"], d / r["file"]
        assert sorted(p.name for p in d.glob("*.png")) == sorted(r["file"] for r in recs)


@pytest.mark.long  # in-process sampling, a run and its rerun: ~35 s of CPU each
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_sampling_then_rerun_equals_uninterrupted(sig, tiny_run, tmp_path):
    proc = start(with_tiny_model(tmp_path, tiny_run), SLOW)
    try:
        wait_for(lambda: len(finished_classes(tmp_path)) >= 1 or proc.poll() is not None)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.killpg(proc.pid, sig)  # SIGINT: Ctrl-C on the terminal; SIGKILL: the node dies, jobs included
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert len(finished_classes(tmp_path)) < 3, "interrupted too late to test anything"
    assert not (tmp_path / "results" / "t" / "dataset" / "distilled.pt").exists()
    assert_no_output_looks_valid_but_is_not(tmp_path)
    if sig == signal.SIGKILL:  # a killed Snakemake leaves its lock: the documented recovery is --unlock
        run_snakemake(tmp_path, SLOW, "--unlock")
    run_snakemake(tmp_path, SLOW, "--rerun-incomplete")
    for rel in ("dataset/distilled.pt", "dataset/manifest.csv"):
        assert (tmp_path / "results" / "t" / rel).read_bytes() == (tiny_run / "results" / "t" / rel).read_bytes()


@pytest.mark.long  # a whole in-process run beside a refused one: ~30 s of CPU
def test_second_run_on_same_directory_is_refused(tiny_run, tmp_path):
    first = start(with_tiny_model(tmp_path, tiny_run), SLOW)
    try:
        locks = tmp_path / ".snakemake" / "locks"
        wait_for(lambda: locks.is_dir() and any(locks.glob("*")))
        # --rerun-incomplete: the first run's running job is marked incomplete, and without the flag the second
        # run may stop at that marker before it reaches the lock. With it, only the lock stands between the
        # second run and deleting the first run's outputs in progress.
        second = run_snakemake(tmp_path, SLOW, "--rerun-incomplete", check=False)
        assert second.returncode != 0
        assert "cannot be locked" in second.stdout + second.stderr
        out, _ = first.communicate(timeout=600)
        assert first.returncode == 0, out[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert (tmp_path / "results" / "t" / "dataset" / "distilled.pt").exists()
    assert_no_output_looks_valid_but_is_not(tmp_path)


@pytest.mark.parametrize("file", ["001_one/0001_0.png", "002_two/0000_2.png"])
def test_regenerate_one_image_from_manifest(tiny_run, file):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "gendistill", "regenerate", "results/t", file],
        cwd=tiny_run,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0 and "MATCH" in proc.stdout, proc.stdout + proc.stderr


def test_regenerate_detects_a_changed_image(tiny_run, tmp_path):
    import shutil

    wd = tmp_path / "copy"
    shutil.copytree(tiny_run / "results", wd / "results")
    manifest = wd / "results" / "t" / "dataset" / "manifest.csv"
    text = manifest.read_text().splitlines()
    row = text[2].split(",")
    row[-1] = "0" * 64  # as if the packaged file had been altered after the fact
    text[2] = ",".join(row)
    manifest.write_text("\n".join(text) + "\n")
    file = row[0]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "gendistill", "regenerate", "results/t", file],
        cwd=wd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1 and "MISMATCH" in proc.stdout


def test_deterministic_mode_turns_on_deterministic_kernels(tiny_run):
    import torch

    from gendistill.sampling.pipeline import load_pipeline

    model = next((tiny_run / "results" / "models").iterdir())
    try:
        load_pipeline(str(model), None, "cpu", torch.float32, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.long  # two samplers and three runs: ~20 s of CPU
def test_ctrl_c_then_rerun_under_another_sampler_key_never_changes_the_dataset(tiny_run, tmp_path, private_runtime):
    """The reproduction, with the sampler in use: one class set to 40,000 images by mistake, Ctrl-C while it
    samples, the typo fixed, and the run repeated under another sampler key (CUDA_VISIBLE_DEVICES). The
    orphaned request is dropped by its sampler (it never wrote output anyway: jobs publish their own), the
    packaged dataset equals the uninterrupted run's, and a later plain rerun finds nothing to do. Its samplers are
    its own (private_runtime), and idle for 2 minutes (a runtime knob), so the log read below outlives the rerun."""
    fixed = deep_update(TINY_CONFIG, {"evaluation": {"activate": False}, "generation": {"server_idle_seconds": 120}})
    typo = deep_update(fixed, {"prompts": {"overrides": {"one": {"n_generated": 40000}}}})
    proc = start(with_tiny_model(tmp_path, tiny_run), typo)
    gen = tmp_path / "results" / "t" / "generated"
    try:
        wait_for(
            lambda: any(len(list(d.glob("*.png"))) >= 16 for d in gen.glob(".001_one.tmp-*")) or proc.poll() is not None
        )
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run_snakemake(tmp_path, fixed, env={"CUDA_VISIBLE_DEVICES": ""})
    wait_for(
        lambda: any("dropped: its job went away" in p.read_text() for p in private_runtime.glob("*.log")),
        timeout=60,
    )
    time.sleep(2)
    for rel in ("dataset/distilled.pt", "dataset/manifest.csv"):
        assert (tmp_path / "results" / "t" / rel).read_bytes() == (tiny_run / "results" / "t" / rel).read_bytes()
    assert len(list((gen / "001_one").glob("*.png"))) == 2 and not list(gen.glob(".*tmp*"))
    again = run_snakemake(tmp_path, fixed, "--dag", env={"CUDA_VISIBLE_DEVICES": ""})
    assert job_counts(again.stdout) == {}
