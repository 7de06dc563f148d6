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
    key = json.dumps({**load, "fingerprint": model_fingerprint(load["source"]), "python": sys.prefix,  # the environment, not the name it was called by (python vs python3)
                      "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES")}, sort_keys=True)
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
        logf = open(path + ".log", "a")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC_DIR, os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen([sys.executable, "-m", "gendistill.sampler_server", "--socket", path,
                                 "--load", json.dumps(load), "--idle", str(idle)],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # survives this job; exits when idle
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
    load = {**load, "source": str(Path(load["source"]).resolve()) if Path(load["source"]).exists() else load["source"],
            "compile": runtime.get("compile", False), "deterministic": runtime.get("deterministic", False)}
    payload = {"op": "sample", "cls": cls, "gen": gen, "out_size": out_size, "out": str(Path(out).resolve()),
               "max_retries": runtime.get("max_retries", 3), "batch_size": runtime.get("batch_size", "auto")}
    print(f"class {cls['index']} {cls['name']!r}: prompt {cls['prompt']!r}, {cls['n_generated']} images, "
          f"seed {cls['seed']}", flush=True)
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
