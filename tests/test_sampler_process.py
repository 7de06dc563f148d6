"""Tier 1: the local sampler process inside a SLURM job: one per job (never shared across allocations), and it
ends with the job step's task instead of idling on after its allocation is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO

from gendistill import sample_client
from gendistill.model_build import save_tiny_pipeline

LOAD = {"revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(save_tiny_pipeline(str(tmp_path_factory.mktemp("m") / "tiny"), {"seed": 0}))


def test_socket_is_per_slurm_job(monkeypatch, tiny_model):
    load = {**LOAD, "source": tiny_model}
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    local = sample_client.socket_path(load)
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    job101 = sample_client.socket_path(load)
    monkeypatch.setenv("SLURM_JOB_ID", "102")
    job102 = sample_client.socket_path(load)
    assert len({local, job101, job102}) == 3
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    assert sample_client.socket_path(load) == job101  # the classes of one job (a group) share one sampler


def test_sampler_exits_when_its_owner_task_ends(tmp_path, tiny_model):
    """Started with --owner-pid (the client passes SLURM_TASK_PID), it exits within seconds of that process
    ending, although its idle timeout is far away; it also answers requests while the owner lives."""
    owner = subprocess.Popen(["sleep", "600"])
    sock = str(tmp_path / "s.sock")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    server = subprocess.Popen([sys.executable, "-m", "gendistill.sampler_server", "--socket", sock,
                               "--load", json.dumps({**LOAD, "source": tiny_model}), "--idle", "300",
                               "--owner-pid", str(owner.pid)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              start_new_session=True)
    try:
        deadline = time.time() + 120
        while (conn := sample_client._connect(sock)) is None:
            assert server.poll() is None, server.stdout.read()
            assert time.time() < deadline, "the sampler did not come up"
            time.sleep(0.2)
        with conn:
            conn.sendall(b'{"op": "ping"}\n')
            assert json.loads(conn.makefile("r").readline())["server_pid"] == server.pid
        time.sleep(2.5)
        assert server.poll() is None, "exited while its owner was alive"
        owner.kill()
        owner.wait()
        t0 = time.time()
        server.wait(timeout=15)
        assert time.time() - t0 < 5
        log = server.stdout.read()
        assert f"owner pid {owner.pid} ended" in log, log
        assert not os.path.exists(sock)
    finally:
        owner.kill()
        server.kill()
        owner.wait()
        server.wait()


def test_prestarted_sampler_is_used_by_jobs_that_arrive_while_it_loads(tmp_path, monkeypatch, tiny_model):
    """A group's batch step starts the sampler and does not wait (sample_client.prestart); a class's job that
    arrives while it still loads must wait for that one (held socket lock), not start a second load."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # a socket of our own, whatever else runs
    monkeypatch.setattr(sample_client.tempfile, "tempdir", None)
    monkeypatch.setenv("SLURM_JOB_ID", "424242")
    owner = subprocess.Popen(["sleep", "600"])
    try:
        runtime = {"idle": 60}
        path = sample_client.prestart({**LOAD, "source": tiny_model}, runtime, owner_pid=owner.pid)
        assert path and path.startswith(str(tmp_path))
        # a second call waits for the first sampler (lock) and finds it listening: it starts nothing
        assert sample_client.prestart({**LOAD, "source": tiny_model}, runtime, owner_pid=owner.pid) is None
        load = sample_client.full_load({**LOAD, "source": tiny_model}, runtime)
        assert sample_client.socket_path(load) == path
        conn, started = sample_client.connect_or_start(load, idle=60, start_timeout=120)
        with conn:
            conn.sendall(b'{"op": "ping"}\n')
            reply = json.loads(conn.makefile("r").readline())
        assert not started and reply["loads"] == 1
        owner.kill()
        owner.wait()
        deadline = time.time() + 15
        while os.path.exists(path) and time.time() < deadline:
            time.sleep(0.2)
        assert not os.path.exists(path), "the sampler outlived its owner"
        log = open(path + ".log").read()
        assert log.count("pipeline load #1") == 1 and "serving SLURM job 424242" in log, log
    finally:
        owner.kill()
        owner.wait()
