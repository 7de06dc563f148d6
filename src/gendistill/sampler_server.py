"""A local sampler process: loads the pipeline once and serves every per-class sample job on this machine.

Why: each Snakemake job is a fresh process, and loading SDXL-Turbo costs far more than sampling one class.
The per-class jobs stay separate (so per-class caching holds); they are thin clients (sample_client.py) that
send their class's request over a Unix socket. The server handles requests one at a time, writes each class's
output atomically, and exits after `idle` seconds without requests. Messages are one JSON line each way.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
import traceback
from pathlib import Path


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def handle_sample(sampler, env: dict, req: dict, stats: dict) -> dict:
    from .sampler import write_class_output

    if req.get("batch_size"):
        sampler.batch_size = sampler.batch_size if req["batch_size"] == "auto" else int(req["batch_size"])
    images, records, seconds = sampler.sample_class(req["cls"], req["gen"], req["out_size"], req["max_retries"])
    meta = {**env, "server_pid": os.getpid(), "pipeline_loads": stats["loads"], "generation": req["gen"],
            "out_size": req["out_size"], "seconds": round(seconds, 4)}
    write_class_output(Path(req["out"]), images, records, meta)
    stats["requests"] += 1
    return {"ok": True, "seconds": seconds, "n": len(records), "server_pid": os.getpid(), **stats}


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat), so a reused pid is not taken for the owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or _start_time(pid) == started


def serve(sock_path: str, load: dict, idle: float, owner_pid: int | None = None, lock_fd: int | None = None) -> None:
    from .sampler import Sampler, environment, load_from_spec

    log = logging.getLogger("gendistill")
    t0 = time.perf_counter()
    pipe, device, dtype = load_from_spec(load)
    stats = {"loads": 1, "requests": 0, "load_seconds": round(time.perf_counter() - t0, 3)}
    log.info("pipeline load #1 from %s on %s/%s in %.2fs (pid %d)", load["source"], device, dtype,
             stats["load_seconds"], os.getpid())
    sampler = Sampler(pipe, device, dtype)
    env = environment(load["source"], load.get("revision"), device, dtype, load.get("vae_dtype", "auto"))

    if os.path.exists(sock_path):
        os.unlink(sock_path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # socket readable/writable by this user only
    srv.bind(sock_path)
    os.umask(old)
    srv.listen(16)
    if lock_fd is not None:
        os.close(lock_fd)  # the starter's socket lock: jobs waiting on it now find this process listening
    owner_started = _start_time(owner_pid) if owner_pid else None
    if owner_pid:
        log.info("serving SLURM job %s: exiting when its owner, pid %d (the group's batch step or the job step "
                 "that started it), ends", os.environ.get("SLURM_JOB_ID"), owner_pid)
    last = time.monotonic()
    try:
        while True:
            left = max(0.01, idle - (time.monotonic() - last))
            srv.settimeout(min(left, 1.0) if owner_pid else left)  # with an owner: check on it every second
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                if owner_pid and not _alive(owner_pid, owner_started):
                    log.info("owner pid %d ended: exiting after %d requests", owner_pid, stats["requests"])
                    return
                if time.monotonic() - last >= idle:
                    log.info("idle for %.0fs after %d requests: exiting", idle, stats["requests"])
                    return
                continue
            with conn:
                conn.settimeout(None)
                req = json.loads(conn.makefile("r").readline() or "{}")
                handler = _ListHandler()
                handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [sampler pid %(process)d] %(message)s"))
                log.addHandler(handler)
                try:
                    if req.get("op") == "stop":
                        reply = {"ok": True, "stopping": True, **stats}
                    elif req.get("op") == "ping":
                        reply = {"ok": True, "server_pid": os.getpid(), **stats}
                    else:
                        reply = handle_sample(sampler, env, req, stats)
                except Exception:  # noqa: BLE001 - the client reports it and fails its job
                    reply = {"ok": False, "error": traceback.format_exc()}
                    log.error("request failed:\n%s", reply["error"])
                finally:
                    log.removeHandler(handler)
                reply["log"] = handler.lines
                try:
                    conn.sendall((json.dumps(reply) + "\n").encode())
                except OSError:
                    log.warning("client went away before the reply (its job was interrupted)")
                if req.get("op") == "stop":
                    return
            last = time.monotonic()
    finally:
        srv.close()
        if os.path.exists(sock_path):
            os.unlink(sock_path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--load", required=True, help="JSON: source, revision, device, dtype, compile, deterministic")
    ap.add_argument("--idle", type=float, default=120)
    ap.add_argument("--owner-pid", type=int, default=None,
                    help="exit when this process ends (inside a SLURM job: the step's task, SLURM_TASK_PID)")
    ap.add_argument("--lock-fd", type=int, default=None, help="inherited socket lock, released once listening")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [sampler pid %(process)d] %(message)s")
    serve(a.socket, json.loads(a.load), a.idle, a.owner_pid, a.lock_fd)


if __name__ == "__main__":
    main()
