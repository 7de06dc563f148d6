"""Tier 1: the resident sampler on a shared machine. One test (or more) per reproduction of the issue
"The resident sampler must be trustworthy", with the sampler in use:

1. a cancelled job's work never lands (the job publishes its own output; the sampler drops its request)
2. another local user cannot impersonate the sampler, nor reach it (simulated with uid 65534; needs root)
3. lock, log and socket paths are not followed through symlinks; a held lock and a stray file fail clearly
4. a warm sampler never serves code other than the job's; records name the code
5. memory per class is bounded by the batch
8. stale temporaries are cleaned, an existing --out is never emptied, a long TMPDIR works, a stopped sampler
   is detected
(6 and 7, and the SLURM owner: test_sampler_process.py; the workflow-level Ctrl-C/rerun: test_reliability.py.)
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from sampler_helpers import CLS, GEN, client_cmd, pid_gone, ping, read_meta, wait_for_tmp_pngs

from gendistill.sampling import client, runtime
from gendistill.sampling.client import ensure_sampler, full_load, sampler_paths, stop_sampler
from gendistill.sampling.runtime import RuntimeDirError

pytestmark = pytest.mark.usefixtures("private_runtime")
OTHER_UID = 65534  # "nobody": the other user on the shared machine
as_root = pytest.mark.skipif(
    os.getuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
    reason="simulating a second local user needs root (CI runs as root) and /usr/bin/python3",
)


@pytest.fixture
def load(tiny_model_dir):
    return {"source": tiny_model_dir, "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}


# ---- 1. cancelled work never lands ----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_cancelled_job_gets_no_output_and_the_next_job_is_served_at_once(load, tmp_path, sig):
    """The job is interrupted mid-class (Ctrl-C, or killed). Its request is dropped at the sampler's next
    batch (not finished 90 s later), nothing is ever written to its output, the next job is served at once
    (not queued behind the orphan), and its stale temporary directory is removed by the next write."""
    big = {**CLS, "n_generated": 5000}
    job = subprocess.Popen(
        client_cmd(load, big, tmp_path / "out", {"batch_size": 1}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as a terminal delivers it: the suite itself may run with SIGINT ignored (started in the background
        # by a shell without job control, e.g. `make test &`), which the job would inherit
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    tmp = wait_for_tmp_pngs(tmp_path, "out", 5)
    job.send_signal(sig)
    try:
        job.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say why the job did not end: its signal mask and dispositions, its state
        status = Path(f"/proc/{job.pid}/status").read_text()
        job.kill()
        out = job.communicate()[0]
        raise AssertionError(f"the job did not end on {sig!r}:\n{status}\n{out[-3000:]}") from None
    rerun = subprocess.run(client_cmd(load, CLS, tmp_path / "out", {}), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "waiting for another class's request" not in rerun.stdout  # the orphan was dropped, not waited for
    time.sleep(3)
    meta, files = read_meta(tmp_path / "out"), sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["0000.png", "0001.png", "records.json"], files  # the rerun's 2 images, never the orphan's
    assert meta["requests_served"] == 1  # the sampler finished only the rerun's request
    if sig == signal.SIGKILL:
        assert not tmp.exists(), "the killed job's temporary directory was not cleaned up"
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_job_whose_snakemake_ended_publishes_nothing(load, tmp_path):
    """A job outliving the Snakemake that ran it (Snakemake killed, the job not) is a cancelled job: it stops
    at its next batch and publishes nothing, so it cannot overwrite what a rerun writes."""
    big = {**CLS, "n_generated": 5000}
    # a stand-in for Snakemake (a script named snakemake) that runs the job as a shell command, as Snakemake does
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    cmd = shlex.join(client_cmd(load, big, tmp_path / "out", {"batch_size": 1}))
    fake.write_text(f"import subprocess, sys\nsubprocess.run({cmd!r}, shell=True)\n")
    fake = subprocess.Popen([sys.executable, str(fake)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_tmp_pngs(tmp_path, "out", 3)
    fake.kill()  # Snakemake dies; the job (its child) lives on
    fake.wait()
    deadline = time.time() + 30
    while time.time() < deadline and list(tmp_path.glob(".out.tmp-*")):
        time.sleep(0.1)
    assert not list(tmp_path.glob(".out.tmp-*")), "the orphaned job kept working"
    time.sleep(1)
    assert not (tmp_path / "out").exists()


# ---- 2. another user cannot impersonate or reach the sampler -----------------------------------------------


@as_root
def test_runtime_dir_made_by_another_user_is_refused_and_a_private_one_used(
    tmp_path, monkeypatch, load, shared_dir, capsys
):
    """Another user who creates our predictable temp-dir path first (or a symlink there) gets nothing: that
    directory is not used and receives nothing. The job does not fail either: it falls back to a directory
    under ~/.cache that the other user cannot pre-empt, checked the same way, and says which it used."""
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("TMPDIR", str(shared_dir))
    cache = Path(tempfile.mkdtemp(prefix="gd-cache-"))  # short: pytest's tmp_path is too long for a socket path
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    planted = shared_dir / f"gendistill-{os.getuid()}"
    as_other_user(f"import os; os.mkdir({str(planted)!r}, 0o777); os.chmod({str(planted)!r}, 0o777)")
    assert planted.stat().st_uid == OTHER_UID
    try:
        rc = client.run(load, CLS, GEN, 16, str(tmp_path / "out"), {"idle": 30})
        out, err = capsys.readouterr()
        assert rc == 0, out + err
        used = runtime.resolve_runtime_dir()
        assert used.path.parent == cache / "gendistill" and f"owned by uid {OTHER_UID}" in used.note()
        assert f"sampler runtime directory: {used.path}, because {planted} is owned by uid {OTHER_UID}" in out, out
        assert list(planted.iterdir()) == [] and read_meta(tmp_path / "out")["started_sampler"]
        for d in (used.path, used.path.parent):
            st = os.lstat(d)
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    finally:
        stop_samplers_in(cache / "gendistill" / f"run-{socket.gethostname().split('.')[0]}")
    # a symlink planted there instead (to a directory the other user controls): not followed, likewise
    os.rmdir(planted)
    target = shared_dir / "theirs"
    as_other_user(f"import os; os.mkdir({str(target)!r}, 0o700); os.symlink({str(target)!r}, {str(planted)!r})")
    assert runtime.runtime_dir() == used.path and "symbolic link" in runtime.resolve_runtime_dir().note()
    # the fallback is checked the same way: pre-empted too, nothing is left to use, and the job says why
    shutil.rmtree(cache)
    cache.mkdir(mode=0o700)
    (cache / "gendistill").mkdir(mode=0o700)
    os.chown(cache / "gendistill", OTHER_UID, OTHER_UID)  # as if made by them while the cache was open
    with pytest.raises(RuntimeDirError, match=f"gendistill is owned by uid {OTHER_UID}") as e:
        runtime.runtime_dir()
    assert "symbolic link" in str(e.value) and "Fix: set XDG_RUNTIME_DIR" in str(e.value)
    shutil.rmtree(cache)


def stop_samplers_in(directory: Path) -> None:
    client.stop_samplers(timeout=5, directory=directory)


@as_root
def test_client_sends_nothing_to_a_listener_of_another_user(shared_dir):
    """Whatever listens at a sampler path, the job checks the peer's uid (SO_PEERCRED) before sending: a
    listener of another user receives no byte (no prompt, no output path) and cannot answer 'done'."""
    d = shared_dir
    sock, got = d / "s.sock", d / "received"
    listener = as_other_user(
        "import os, socket, sys\n"
        f"s = socket.socket(socket.AF_UNIX); s.bind({str(sock)!r}); os.chmod({str(sock)!r}, 0o777); s.listen(1)\n"
        "print('ready', flush=True)\n"
        "c, _ = s.accept(); c.settimeout(3)\n"
        "data = b''\n"
        "try:\n    data = c.recv(65536)\nexcept OSError:\n    pass\n"
        f"open({str(got)!r}, 'w').write(str(len(data)))\n"
        'c.sendall(b\'{"type": "done"}\\n\')\n',
        wait=False,
    )
    assert listener.stdout.readline().strip() == "ready"
    with pytest.raises(RuntimeDirError, match=f"runs as uid {OTHER_UID}, not as you"):
        runtime.connect(str(sock))
    listener.wait(timeout=30)
    assert got.read_text() == "0"


@as_root
def test_another_user_cannot_reach_or_use_the_sampler(load, shared_dir, monkeypatch):
    """The runtime directory is 0700, so another user cannot even connect; and were the socket reachable,
    the sampler closes a connection from another uid without reading it."""
    xdg = shared_dir / "xdg"
    xdg.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    private_runtime = runtime.runtime_dir()
    r = ensure_sampler(full_load(load, {}), {"idle": 60})
    r.sock.close()
    sock = r.paths["socket"]
    assert stat.S_IMODE(private_runtime.stat().st_mode) == 0o700
    out = as_other_user(f"import socket; socket.socket(socket.AF_UNIX).connect({str(sock)!r})", check=False)
    assert out.returncode != 0 and "PermissionError" in out.stderr
    parent = private_runtime.parent
    private_runtime.chmod(0o711), parent.chmod(0o711), sock.chmod(0o777)  # as if the user had opened them up
    try:
        probe = as_other_user(
            "import socket\n"
            f"s = socket.socket(socket.AF_UNIX); s.connect({str(sock)!r}); s.settimeout(10)\n"
            "try:\n"  # the sampler may have closed the connection before the ping is sent: nothing either way
            '    s.sendall(b\'{"op": "ping"}\\n\')\n'
            "    print(repr(s.recv(100)))\n"
            "except (ConnectionResetError, BrokenPipeError):\n    print(repr(b''))\n",
            check=False,
        )
    finally:
        private_runtime.chmod(0o700), parent.chmod(0o700), sock.chmod(0o600)
    assert probe.returncode == 0 and probe.stdout.strip() == "b''", probe.stdout + probe.stderr
    assert ping(sock)["requests"] == 0


@pytest.fixture
def shared_dir():
    """A directory every user can reach and write, like /tmp (pytest's own tmp dirs are private to us)."""
    d = Path(tempfile.mkdtemp(prefix="gendistill-shared-", dir="/tmp"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# The other user's process needs an interpreter it may run (ours may sit under root's private home);
# it uses the standard library only.
OTHER_PYTHON = "/usr/bin/python3"


def as_other_user(code: str, wait: bool = True, check: bool = True):
    cmd = [OTHER_PYTHON, "-c", code]
    kw = {"user": OTHER_UID, "group": OTHER_UID, "extra_groups": [], "cwd": "/", "text": True}
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, **kw)
    proc = subprocess.run(cmd, capture_output=True, timeout=60, **kw)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


# ---- 3. no symlink is followed; a held lock and a stray file fail with a message ----------------------------


@pytest.mark.parametrize("which", ["lock", "log"])
def test_symlink_at_lock_or_log_path_is_not_followed(load, tmp_path, which):
    precious = tmp_path / "precious.txt"
    precious.write_text("a user's file\n")
    p = sampler_paths(load, {})
    p[which].symlink_to(precious)
    with pytest.raises(RuntimeDirError, match="symbolic link"):
        ensure_sampler(full_load(load, {}), {"idle": 30})
    assert precious.read_text() == "a user's file\n"


def test_a_held_start_lock_fails_after_its_deadline_naming_the_holder(load, tmp_path):
    p = sampler_paths(load, {})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1])\n"
            "from gendistill.sampling.runtime import StartLock\n"
            "with StartLock(sys.argv[2], 5):\n    print('held', flush=True); time.sleep(300)\n",
            str(REPO / "src"),
            str(p["lock"]),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError, match=f"held by pid {holder.pid}"):
            ensure_sampler(full_load(load, {}), {"idle": 30, "server_timeout": 2}, say=lambda *a, **k: None)
        assert holder.poll() is None  # it gave up at its own deadline, while the holder still held the lock
    finally:
        holder.kill()
        holder.wait()


def test_a_stray_file_at_the_socket_path_fails_before_the_model_loads(load):
    p = sampler_paths(load, {})
    p["socket"].write_text("not a socket")
    with pytest.raises(client.SamplerError, match="is not a socket") as e:
        ensure_sampler(full_load(load, {}), {"idle": 30})
    assert "pipeline load" not in str(e.value)  # it stopped before loading anything
    assert p["socket"].read_text() == "not a socket"


# ---- 4. stale code never serves ---------------------------------------------------------------------------------


def test_edited_sampling_code_gets_a_sampler_of_its_own(load, tmp_path):
    """Edit the sampling code (here: a copy of the source tree) and rerun while the old sampler is warm: the
    job is served by a new sampler running the edited code, and records.json names the code it ran."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "src" / "gendistill", src / "gendistill", ignore=shutil.ignore_patterns("__pycache__"))
    first = subprocess.run(
        client_cmd(load, CLS, tmp_path / "a", {}, src=src), capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    with open(src / "gendistill" / "sampling" / "generate.py", "a") as f:
        f.write("\n# an edit\n")
    second = subprocess.run(
        client_cmd(load, CLS, tmp_path / "b", {}, src=src), capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    a, b = read_meta(tmp_path / "a"), read_meta(tmp_path / "b")
    assert a["code_hash"] != b["code_hash"] and a["server_pid"] != b["server_pid"]
    assert b["started_sampler"] is True


def test_a_sampler_running_other_code_is_rejected(load, tmp_path, monkeypatch, capsys):
    """Were a sampler of other code reached at the job's path (the code changed while it started), the job
    rejects it on its first reply and writes nothing."""
    r = ensure_sampler(full_load(load, {}), {"idle": 60})
    r.sock.close()
    real = client.digest(client.tree_files())
    monkeypatch.setattr(client, "digest", lambda files: "f" * 64)  # this job's code is other code...
    monkeypatch.setattr(client, "sampler_key", lambda load, code: runtime.sampler_key(load, real))  # ...same path
    assert client.run(load, CLS, GEN, 16, str(tmp_path / "out"), {}) == 1
    assert "was started for the package's code" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- 5. memory per class is bounded by the batch -----------------------------------------------------------


class CountingPipe:
    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []

    def __getattr__(self, name):  # components and encode_prompt: the wrapped pipeline's
        return getattr(self.pipe, name)

    def __call__(self, generator, **kw):
        self.calls.append(len(generator))
        return self.pipe(generator=generator, **kw)


def test_a_class_is_generated_and_written_batch_by_batch(tmp_path):
    """Nothing holds a whole class: the sampler makes one batch per step of the stream (a consumer that stops
    after the first batch has caused exactly one pipeline call), and the job writes each batch as it comes."""
    from gendistill.generator.build import build_tiny_pipeline
    from gendistill.imageio import png_bytes
    from gendistill.sampling.generate import Sampler
    from gendistill.sampling.writer import ClassWriter

    pipe = build_tiny_pipeline({"seed": 0})
    pipe.set_progress_bar_config(disable=True)
    counting = CountingPipe(pipe)
    stream = Sampler(counting, "cpu", torch.float32, family="sdxl").iter_class({**CLS, "n_generated": 1000}, GEN, 16, 4)
    first = next(stream)
    assert counting.calls == [4] and first.images.shape == (4, 16, 16, 3) and first.images.dtype == np.uint8
    with ClassWriter(tmp_path / "out", 8) as w:
        w.add(first.indices, [png_bytes(i) for i in first.images], first.records)
        assert len(list(w.tmp.glob("*.png"))) == 4 and not (tmp_path / "out").exists()
        second = next(stream)
        assert counting.calls == [4, 4]
        w.add(second.indices, [png_bytes(i) for i in second.images], second.records)
        w.publish({"test": True})
    stream.close()
    assert len(list((tmp_path / "out").glob("*.png"))) == 8


# ---- 8. smaller ones ----------------------------------------------------------------------------------------


def test_existing_out_directory_is_never_emptied(load, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert client.run(load, CLS, GEN, 16, str(out), {}) == 1
    assert (out / "keep.txt").read_text() == "precious" and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_stale_temporaries_of_ended_processes_are_removed(tmp_path):
    from gendistill.atomic import atomic_path

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".x.tmp-{dead.pid}-deadbeef"
    stale.mkdir()
    (stale / "half.png").write_bytes(b"\x89PNG")
    live = tmp_path / f".x.tmp-{os.getppid()}-cafe0123"  # a running process's: left alone
    live.mkdir()
    with atomic_path(tmp_path / "x") as tmp:
        tmp.write_text("done")
    assert not stale.exists() and live.exists() and (tmp_path / "x").read_text() == "done"


def test_a_long_tmpdir_still_gives_a_short_socket_path(load, tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("TMPDIR", str(deep))
    p = sampler_paths(load, {})
    assert len(str(p["socket"])) <= runtime.MAX_SOCKET_PATH and not str(p["socket"]).startswith(str(deep))
    r = ensure_sampler(full_load(load, {}), {"idle": 30})
    r.sock.close()
    try:
        assert ping(p["socket"])["pid"] == r.pid
    finally:
        stop_sampler(p["socket"])


def test_a_stopped_sampler_is_detected_and_sampler_stop_kills_it(load, tmp_path):
    r = ensure_sampler(full_load(load, {}), {"idle": 60})
    r.sock.close()
    ping(r.paths["socket"])
    os.kill(r.pid, signal.SIGSTOP)
    try:
        proc = subprocess.run(
            client_cmd(load, CLS, tmp_path / "out", {"server_timeout": 3}), capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 1 and "state T" in proc.stderr and "sent nothing for 3s" in proc.stderr, proc.stderr
        assert not (tmp_path / "out").exists()
        line = stop_sampler(r.paths["socket"], timeout=2)
        assert "did not answer" in line and "killed" in line
        deadline = time.time() + 10
        while not pid_gone(r.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert pid_gone(r.pid)
    finally:
        try:
            os.kill(r.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_samplers_log_is_emptied_not_appended_to_by_the_next_sampler(load, tmp_path):
    """Issue 31, item 6: a sampler removes its log (which names the classes it served) when it exits, but a killed
    one cannot; the next sampler of its key appended to it, keeping the killed one's classes for as long as the
    key lived on. It starts its log afresh."""
    secret = {**CLS, "index": 7, "id": "007_secret_class", "name": "secret class"}
    log = sampler_paths(load, {})["log"]

    def job(cls, out) -> int:
        proc = subprocess.run(client_cmd(load, cls, tmp_path / out, {"idle": 60}), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return read_meta(tmp_path / out)["server_pid"]

    killed = job(secret, "a")
    os.kill(killed, signal.SIGKILL)
    deadline = time.time() + 10
    while not pid_gone(killed) and time.time() < deadline:
        time.sleep(0.1)
    assert "007_secret_class" in log.read_text()  # left behind by the killed sampler
    pid = job(CLS, "b")
    text = log.read_text()
    assert f"pid {pid}" in text and "003_cat" in text and "007_secret_class" not in text, text


def test_stale_socket_of_a_dead_sampler_is_replaced(load):
    p = sampler_paths(load, {})
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p["socket"]))
    s.close()  # bound, nobody listens: what a killed sampler leaves
    r = ensure_sampler(full_load(load, {}), {"idle": 30})
    r.sock.close()
    assert r.started and ping(p["socket"])["pid"] == r.pid


def test_only_one_sampler_starts_for_concurrent_jobs(load, tmp_path):
    jobs = [
        subprocess.Popen(
            client_cmd(load, {**CLS, "index": k, "id": f"00{k}_c"}, tmp_path / f"o{k}", {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(3)
    ]
    outs = [j.communicate(timeout=180)[0] for j in jobs]
    assert all(j.returncode == 0 for j in jobs), outs
    metas = [read_meta(tmp_path / f"o{k}") for k in range(3)]
    assert len({m["server_pid"] for m in metas}) == 1 and sum(m["started_sampler"] for m in metas) == 1
