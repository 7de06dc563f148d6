"""Tier 1: the resident sampler as a process: one start path, keyed per SLURM job, ends with its owner, requests
validated and independent, the effective batch size recorded, a failed load reported to every class at once."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from sampler_helpers import CLS, GEN, client_cmd, pid_gone, ping, read_meta, wait_for_tmp_pngs

from gendistill.sampling import client
from gendistill.sampling.client import ensure_sampler, full_load, sampler_paths, stop_sampler
from gendistill.sampling.protocol import Channel

pytestmark = pytest.mark.usefixtures("private_runtime")


def test_socket_is_per_slurm_job(monkeypatch, load):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    local = sampler_paths(load, {})["socket"]
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    job101 = sampler_paths(load, {})["socket"]
    monkeypatch.setenv("SLURM_JOB_ID", "102")
    job102 = sampler_paths(load, {})["socket"]
    assert len({local, job101, job102}) == 3
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    assert sampler_paths(load, {})["socket"] == job101  # the classes of one job (a group) share one sampler


def test_sampler_exits_when_its_owner_ends_and_leaves_no_files(load):
    """Started with an owner (in a SLURM job: the batch step, or SLURM_TASK_PID), it exits within seconds of
    that process ending although its idle timeout is far away, and removes its socket, lock and log."""
    owner = subprocess.Popen(["sleep", "600"])
    try:
        r = ensure_sampler(full_load(load, {}), {"idle": 300}, owner_pid=owner.pid)
        r.sock.close()
        assert r.started and ping(r.paths["socket"])["pid"] == r.pid
        time.sleep(2)
        assert ping(r.paths["socket"])["pid"] == r.pid, "exited while its owner was alive"
        owner.kill()
        owner.wait()
        deadline = time.time() + 15
        while not pid_gone(r.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert pid_gone(r.pid), "the sampler outlived its owner"
        assert not any(p.exists() for p in r.paths.values()), list(r.paths.values())
    finally:
        owner.kill()
        owner.wait()


def test_slurm_batch_step_starts_the_sampler_that_its_classes_use(monkeypatch, load, tmp_path):
    """The workflow's hook in the batch step of a SLURM job starts the sampler without waiting for the model;
    a class's job (an srun step) that arrives while it loads uses that one: one load for the group."""
    monkeypatch.setenv("SLURM_JOB_ID", "424242")
    monkeypatch.delenv("SLURM_STEP_ID", raising=False)
    runtime = {"idle": 60}
    assert client.start_for_slurm_batch_step(load, runtime) is True
    assert client.start_for_slurm_batch_step(load, runtime) is False  # already running: nothing started
    monkeypatch.setenv("SLURM_STEP_ID", "0")  # inside a step: never starts one from here
    assert client.start_for_slurm_batch_step(load, runtime) is False
    rc = client.run(load, CLS, GEN, 16, str(tmp_path / "out"), runtime)
    meta = read_meta(tmp_path / "out")
    assert rc == 0 and meta["pipeline_loads"] == 1 and meta["started_sampler"] is False


def test_per_request_settings_do_not_persist_and_bad_requests_are_refused(load, tmp_path, capsys):
    """A batch_size 3 request does not make later 'auto' requests run at 3; an invalid batch size is refused
    (by the job before sending, and by the sampler) and breaks nothing after it. The effective batch size is
    recorded."""
    rc = client.run(load, CLS, GEN, 16, str(tmp_path / "a"), {"batch_size": 3})
    assert rc == 0 and read_meta(tmp_path / "a")["batch_sizes"] == [3]
    assert client.run(load, CLS, GEN, 16, str(tmp_path / "b"), {"batch_size": -1}) == 1
    assert "batch_size: -1 is not 'auto' or an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    # the same bad request sent straight to the sampler: refused there too, with every problem named
    sock = sampler_paths(load, {})["socket"]
    conn = client.connect(str(sock))[0]
    ch = Channel(conn)
    ch.send(
        {"op": "sample", "code": "x", "cls": {**CLS, "n_generated": 0}, "gen": GEN, "out_size": 16, "batch_size": -1}
    )
    reply, _ = ch.recv(30)
    ch.close()
    assert reply["type"] == "error" and "batch_size: -1" in reply["error"] and "cls.n_generated: 0" in reply["error"]
    rc = client.run(load, CLS, GEN, 16, str(tmp_path / "c"), {"batch_size": "auto"})
    meta = read_meta(tmp_path / "c")
    assert rc == 0 and meta["batch_sizes"] == [8] and meta["batch_size_requested"] == "auto"  # the CPU default
    assert meta["server_pid"] == read_meta(tmp_path / "a")["server_pid"]  # one sampler served them all


def test_a_failed_load_fails_every_class_at_once_with_its_cause(tiny_model_dir, tmp_path):
    """Weights that are present (the plan-time check passes) but corrupt: the first job pays the failing load,
    the sampler keeps the failure, and every later class fails at once with the real cause at the end of its
    log. One load attempt for all of them."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = next((broken / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    load = {"source": str(broken), "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}
    errors = []
    for k in range(3):
        proc = subprocess.run(
            client_cmd(load, CLS, tmp_path / f"out{k}", {"idle": 60}), capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 1 and not (tmp_path / f"out{k}").exists()
        tail = proc.stderr.strip().splitlines()[-2:]  # the cause closes the log, after the traceback
        errors.append(tail[0])
        assert tail[0].startswith("ERROR: the sampler (pid") and "could not load the model" in tail[0], proc.stderr
        assert "OSError: Unable to load weights" in tail[0] and "kept by the sampler" in tail[1]
    assert len(set(errors)) == 1  # the same sampler, the same cause
    status = ping(sampler_paths(load, {})["socket"])
    assert status["state"] == "failed" and status["loads"] == 0


def test_stop_is_answered_at_once_and_drops_the_running_request(load, tmp_path):
    """`gendistill sampler-stop` does not wait behind a running request: the request is dropped at its next
    batch, its job fails saying so, and nothing is published."""
    big = {**CLS, "n_generated": 3000}
    job = subprocess.Popen(
        client_cmd(load, big, tmp_path / "out", {"batch_size": 1}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_tmp_pngs(tmp_path, "out", 3)
        line = stop_sampler(sampler_paths(load, {})["socket"])
        assert line.endswith("stopped")
        out, err = job.communicate(timeout=60)
        assert job.returncode == 1 and "request dropped: the sampler was told to stop" in err, err
    finally:
        job.kill()
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_records_name_the_code_and_batch_size(load, tmp_path):
    """records.json names every module of the package the sampler had imported when it answered (the image
    encoder, the seeds, the generator builder too, not only sampling/), each with the sha256 of the bytes
    imported, and the hash of the package they were checked against (the sampler's key)."""
    from gendistill.sampling.code import digest, tree_files

    assert client.run(load, {**CLS, "n_generated": 3}, GEN, 16, str(tmp_path / "o"), {"batch_size": 2}) == 0
    meta = read_meta(tmp_path / "o")
    files = meta["code_files"]
    on_disk = tree_files()
    assert meta["code_hash"] == digest(on_disk) and meta["batch_size_effective"] == 2 and meta["batch_sizes"] == [2]
    assert {f: on_disk[f] for f in files} == files
    for module in ("imageio", "seeds", "cli", "sampling/server", "families/sdxl", "sampling/generate"):
        assert f"gendistill/{module}.py" in files, sorted(files)
    recs = json.loads((tmp_path / "o" / "records.json").read_text())["images"]
    assert [r["file"] for r in recs] == ["0000.png", "0001.png", "0002.png"]


@pytest.fixture
def load(tiny_model_dir):
    return {"source": tiny_model_dir, "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}
