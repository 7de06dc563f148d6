"""Tier 1: the resident sampler's connections, with the sampler in use. One test per reproduction of the issue
"The sampler's key must be what decides the pixels" about streams and the process (the key itself:
test_sampler_key.py):

4. one stopped job does not stall another run on the same sampler, and every message says what happened
8. SIGTERM removes the socket, lock and log; malformed messages get an error reply, the sampler goes on and its
   log holds no traceback
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest
from sampler_helpers import CLS, client_cmd, pid_gone, ping, wait_for_tmp_pngs

from gendistill.sampling.client import ensure_sampler, full_load, sampler_paths
from gendistill.sampling.runtime import connect

pytestmark = pytest.mark.usefixtures("private_runtime")


@pytest.fixture
def load(tiny_model_dir):
    return {"source": tiny_model_dir, "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


# ---- 4. a stopped job stalls nobody -----------------------------------------------------------------------


def test_a_stopped_job_does_not_stall_another_and_every_message_says_what_happened(load, tmp_path):
    """Job A samples a large class; its process group is stopped (SIGSTOP, as Ctrl-Z does) mid-class, so it stops
    reading and the sampler's sends to it would block. Job B, from another run, is served within seconds (it
    used to wait for A's blocked send, without heartbeats, and fail saying the sampler had sent nothing). After
    SIGCONT, A fails saying that it was dropped because it was stopped: not that the sampler crashed or that
    the job went away."""
    big = {**CLS, "n_generated": 20000}
    a = subprocess.Popen(
        client_cmd(load, big, tmp_path / "a", {"batch_size": 1}, out_size=32),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a Snakemake run's jobs are
    )
    log = sampler_paths(load, {})["log"]
    try:
        wait_for_tmp_pngs(tmp_path, "a", 3)
        os.killpg(a.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        b = subprocess.run(
            client_cmd(load, {**CLS, "index": 4, "id": "004_dog"}, tmp_path / "b", {"server_timeout": 10}),
            capture_output=True,
            text=True,
            timeout=120,
        )
        waited = time.monotonic() - t0
        assert b.returncode == 0, b.stdout + b.stderr
        assert waited < 25, f"B waited {waited:.0f}s behind the stopped job"
        sampler_log = log.read_text()
        assert f"job pid {a.pid} is stopped" in sampler_log, sampler_log[-2000:]
        assert "went away" not in sampler_log
        os.killpg(a.pid, signal.SIGCONT)
        _, err = a.communicate(timeout=60)
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
    assert a.returncode == 1
    assert f"this job (pid {a.pid}) was stopped" in err and "dropped" in err, err
    for false in ("crashed or was killed", "went away", "kill -CONT"):
        assert false not in err, err
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a.tmp-*"))


# ---- 8. SIGTERM; malformed messages ---------------------------------------------------------------------------


def test_sigterm_tells_the_running_job_and_removes_socket_lock_and_log(load, tmp_path):
    """SIGTERM (a user's `kill`, a node shutting down) ends the sampler as a stop does: the running request
    is dropped at its next batch and its job says why, and the socket, the lock and the log (which holds
    prompts) are removed."""
    r = ensure_sampler(full_load(load, {}), {"idle": 60})
    r.sock.close()
    ping(r.paths["socket"])
    job = subprocess.Popen(
        client_cmd(load, {**CLS, "n_generated": 20000}, tmp_path / "out", {"batch_size": 1}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_tmp_pngs(tmp_path, "out", 2)
        assert r.paths["log"].exists() and r.paths["lock"].exists()
        os.kill(r.pid, signal.SIGTERM)
        _, err = job.communicate(timeout=60)
        wait_until(lambda: pid_gone(r.pid), 30, "the sampler outlived SIGTERM")
    finally:
        job.kill()
        job.wait()
    assert job.returncode == 1 and "the sampler was terminated (SIGTERM)" in err, err
    assert not [p for p in r.paths.values() if p.exists()]
    assert not (tmp_path / "out").exists()


MALFORMED = [
    b"not json\n",
    b"[1, 2]\n",
    b'"a string"\n',
    b"\xff\xfe not utf-8\n",
    b'{"op": 5}\n',
    b'{"op": "sample", "nbytes": "many"}\n',
    b'{"op": "sample", "nbytes": -3}\n',
    b'{"op": "sample", "nbytes": 1000000000000}\n',
    b'{"op": "sample", "cls": [1], "gen": 3, "out_size": "big"}\n',
    b'{"op": "sample", "code": "x", "cls": {"id": {"a": 1}}, "gen": {}, "out_size": 16}\n',
    b'{"op": "ping", "extra": NaN}\n',
]


def test_malformed_messages_get_an_error_reply_and_leave_no_traceback(load):
    r = ensure_sampler(full_load(load, {}), {"idle": 60})
    r.sock.close()
    for message in MALFORMED:
        s, _ = connect(str(r.paths["socket"]))
        with s:
            s.settimeout(10)
            s.sendall(message)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        lines = [json.loads(line) for line in reply.splitlines()]
        assert lines and lines[-1]["type"] == "error" and lines[-1]["error"], (message, reply)
    assert ping(r.paths["socket"])["pid"] == r.pid  # it goes on
    log = r.paths["log"].read_text()
    assert "Traceback" not in log and "Exception in thread" not in log, log[-3000:]
    assert log.count("malformed message") + log.count("invalid request") >= len(MALFORMED) - 1, log[-3000:]
