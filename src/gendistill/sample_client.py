"""The per-class sample job: send one class's request to the local sampler process (starting it if needed),
or, with `server: false`, load the pipeline in this process. Does not import torch in server mode (fast jobs).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC_DIR = str(Path(__file__).resolve().parents[1])


def model_fingerprint(source: str) -> str:
    """Changes when a local model directory's files change, so a running server never serves stale weights."""
    p = Path(source)
    if not p.is_dir():
        return source
    stamps = sorted((str(f.relative_to(p)), f.stat().st_mtime_ns, f.stat().st_size) for f in p.rglob("*") if f.is_file())
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()


def socket_path(load: dict) -> str:
    # SLURM_JOB_ID: inside a SLURM job, only that job's sample jobs (a group of classes) share a sampler. Jobs
    # of other allocations on the same node never connect to it: its GPU is not theirs, and SLURM ends it with
    # its own job.
    key = json.dumps({**load, "fingerprint": model_fingerprint(load["source"]), "python": sys.prefix,  # the environment, not the name it was called by (python vs python3)
                      "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                      "slurm_job": os.environ.get("SLURM_JOB_ID")}, sort_keys=True)
    h = hashlib.sha256(key.encode()).hexdigest()[:16]
    # Unix socket paths are limited to ~107 bytes: keep it short and in the temp dir, per user.
    return os.path.join(tempfile.gettempdir(), f"gendistill-{os.getuid()}-{h}.sock")


def _connect(path: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return s
    except OSError:
        s.close()
        return None


def _spawn(path: str, load: dict, idle: float, owner_pid: int | None, lockf) -> subprocess.Popen:
    """Start the sampler process for socket `path`. Detached (own session, no inherited pipes): it outlives the
    job that started it, so the next class's job finds the model loaded, and nothing waits for it. It exits after
    `idle` seconds without requests, or as soon as `owner_pid` ends. It inherits the held socket lock and lets go
    of it once it listens, so other jobs wait for it instead of starting a second one."""
    logf = open(path + ".log", "a")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC_DIR, os.environ.get("PYTHONPATH", "")])}
    owner = ["--owner-pid", str(owner_pid)] if owner_pid else []
    return subprocess.Popen([sys.executable, "-m", "gendistill.sampler_server", "--socket", path,
                             "--load", json.dumps(load), "--idle", str(idle), *owner,
                             "--lock-fd", str(lockf.fileno())],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, pass_fds=(lockf.fileno(),))


def full_load(load: dict, runtime: dict) -> dict:
    """The load spec a sampler is started with and keyed by (absolute model path, compile, determinism)."""
    return {**load, "source": str(Path(load["source"]).resolve()) if Path(load["source"]).exists() else load["source"],
            "compile": runtime.get("compile", False), "deterministic": runtime.get("deterministic", False)}


def prestart(load: dict, runtime: dict, owner_pid: int) -> str | None:
    """Start the sampler now, without waiting for it; returns its socket path, or None if one is up already.

    For a group of sample jobs inside one SLURM job: snakemake-executor-plugin-slurm runs each job of a group
    as its own `srun` step, and a cluster with cgroup process tracking kills whatever a step started when that
    step ends. A sampler started by the first class's step would die with it (one model load per class).
    Started from the group's batch step instead (workflow/rules/sample.smk calls this there), it lives until
    the group is done (`owner_pid`, the batch step's Snakemake, ends) and serves every class of the group.
    """
    load = full_load(load, runtime)
    path = socket_path(load)
    with open(path + ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        s = _connect(path)
        if s:
            s.close()
            return None
        _spawn(path, load, runtime.get("idle", 120), owner_pid, lockf)
    return path


def prestart_for_group(load: dict, runtime: dict, n_jobs: int) -> str | None:
    """prestart() for the group of `n_jobs` sample jobs this process (a SLURM job's batch step) runs; no-op
    outside a SLURM job (elsewhere the group's jobs share one process tree and the first job's sampler)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    path = prestart(load, runtime, owner_pid=os.getpid())
    if path:
        print(f"gendistill: started the sampler for the {n_jobs} sample jobs of SLURM job "
              f"{os.environ['SLURM_JOB_ID']} ({path})", file=sys.stderr, flush=True)
    return path


def connect_or_start(load: dict, idle: float, start_timeout: float = 1800) -> tuple[socket.socket, bool]:
    """Connect to the server for `load`, starting it under a lock so concurrent jobs start only one."""
    path = socket_path(load)
    s = _connect(path)
    if s:
        return s, False
    with open(path + ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        s = _connect(path)  # another job may have started it while we waited for the lock
        if s:
            return s, False
        owner = os.environ.get("SLURM_TASK_PID")  # inside a SLURM job step: end with the step
        proc = _spawn(path, load, idle, int(owner) if owner else None, lockf)
        t0 = time.time()
        while time.time() - t0 < start_timeout:
            if proc.poll() is not None:
                tail = Path(path + ".log").read_text()[-4000:]
                raise RuntimeError(f"the sampler process exited with code {proc.returncode} while loading the "
                                   f"model. Its log ({path}.log) ends with:\n{tail}")
            s = _connect(path)
            if s:
                return s, True
            time.sleep(0.1)
        raise TimeoutError(f"the sampler process did not start within {start_timeout}s; see {path}.log")


def request(load: dict, payload: dict, idle: float = 120) -> dict:
    s, started = connect_or_start(load, idle)
    with s:
        s.sendall((json.dumps(payload) + "\n").encode())
        line = s.makefile("r").readline()
    if not line:
        raise RuntimeError(f"the sampler process closed the connection without a reply (it crashed?); "
                           f"see {socket_path(load)}.log")
    reply = json.loads(line)
    reply["started_server"] = started
    return reply


def sample_in_process(load: dict, payload: dict) -> dict:
    import logging
    import time as _t

    from .sampler import Sampler, environment, load_from_spec, write_class_output

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    t0 = _t.perf_counter()
    pipe, device, dtype = load_from_spec(load)
    load_s = _t.perf_counter() - t0
    print(f"pipeline load #1 (in-process) in {load_s:.2f}s", flush=True)
    sampler = Sampler(pipe, device, dtype, payload.get("batch_size") or "auto")
    images, records, seconds = sampler.sample_class(payload["cls"], payload["gen"], payload["out_size"],
                                                    payload["max_retries"])
    meta = {**environment(load["source"], load.get("revision"), device, dtype, load.get("vae_dtype", "auto")), "server_pid": None,
            "pipeline_loads": 1, "generation": payload["gen"], "out_size": payload["out_size"],
            "seconds": round(seconds, 4)}
    write_class_output(Path(payload["out"]), images, records, meta)
    return {"ok": True, "seconds": seconds, "n": len(records), "loads": 1, "load_seconds": load_s,
            "server_pid": None, "log": []}


def run(load: dict, cls: dict, gen: dict, out_size: int, out: str, runtime: dict) -> int:
    load = full_load(load, runtime)
    payload = {"op": "sample", "cls": cls, "gen": gen, "out_size": out_size, "out": str(Path(out).resolve()),
               "max_retries": runtime.get("max_retries", 3), "batch_size": runtime.get("batch_size", "auto")}
    print(f"class {cls['index']} {cls['name']!r}: prompt {cls['prompt']!r}, {cls['n_generated']} images, "
          f"seed {cls['seed']}", flush=True)
    if os.environ.get("SLURM_JOB_ID"):
        print(f"SLURM job {os.environ['SLURM_JOB_ID']} on {socket.gethostname()}, "
              f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}", flush=True)
    if runtime.get("server", True):
        reply = request(load, payload, runtime.get("idle", 120))
    else:
        reply = sample_in_process(load, payload)
    for line in reply.get("log", []):
        print(line)
    if not reply.get("ok"):
        print(reply.get("error", "unknown error"), file=sys.stderr)
        return 1
    print(f"done: {reply['n']} images in {reply['seconds']:.2f}s; sampler pid {reply.get('server_pid')}, "
          f"pipeline loads {reply['loads']}, requests served {reply.get('requests', 1)}"
          + (", started the sampler" if reply.get("started_server") else ""), flush=True)
    return 0


def stop_all() -> int:
    """Ask every sampler process of this user to exit (used by tests and `gendistill sampler-stop`)."""
    n = 0
    for sock in Path(tempfile.gettempdir()).glob(f"gendistill-{os.getuid()}-*.sock"):
        s = _connect(str(sock))
        if s:
            with s:
                s.sendall(b'{"op": "stop"}\n')
                s.makefile("r").readline()
            n += 1
    return n
