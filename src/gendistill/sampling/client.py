"""The per-class sample job: reach (or start) the sampler for its model, stream the class's images from it,
write them, and publish the class's directory. With `server: false` the pipeline is loaded in this process
and the same sample-and-write path runs here. Server mode does not import torch (a fast job).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..processes import process_state
from .code import BOOTSTRAP, differences, digest, imported_files, imported_files_on_disk, tree_files
from .protocol import Channel, ProtocolError, RequestError, validate_sample_request
from .runtime import (
    Lineage,
    RuntimeDirError,
    StartLock,
    alive,
    connect,
    key_id,
    open_private,
    paths,
    remove_lock_file,
    resolve_runtime_dir,
    runtime_dir,
    sampler_key,
)
from .slots import Slot, SlotError, SlotHold, resolve_slots
from .writer import ClassWriter, Orphaned

SRC_DIR = str(Path(__file__).resolve().parents[2])
DEFAULT_TIMEOUT = 120.0


class SamplerError(RuntimeError):
    """The sampler failed the request or could not be reached; str() is the cause, `detail` the traceback."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


class StaleSampler(SamplerError):
    """The sampler found that it had imported code other than its key's and retired: start one for the code as
    it is now."""


# A job whose sampler retires (the code changed while it started) starts another for the current code; twice at
# most, so that code edited continuously fails the job instead of starting samplers forever.
STALE_RETRIES = 2


def _snapshot(source: str, revision: str | None) -> str | None:
    """The commit a cached hub id resolves to now (None for a local directory or an uncached id)."""
    if Path(source).exists():
        return None
    from ..hf_cache import cached_snapshot

    found = cached_snapshot(source, revision)
    return found[0] if found else None


def full_load(load: dict, runtime: dict) -> dict:
    """The load spec a sampler is started with and keyed by: absolute model and tiny decoder paths, a hub id's
    snapshot commit (the one the plan resolved, which the job's params name; else as the local cache resolves it
    now: the sampler loads exactly that snapshot, so a cache updated later is another key), compile, determinism."""

    def absolute(source):
        return str(Path(source).resolve()) if Path(source).exists() else source

    out = {
        **load,
        "source": absolute(load["source"]),
        "compile": runtime.get("compile", False),
        "deterministic": runtime.get("deterministic", False),
        "check_memory": runtime.get("check_memory", True),
    }
    if not out.get("snapshot") and (snapshot := _snapshot(out["source"], load.get("revision"))):
        out["snapshot"] = snapshot
    if load.get("tiny_decoder"):
        out["tiny_decoder"] = absolute(load["tiny_decoder"])
        if not out.get("tiny_decoder_snapshot") and (snapshot := _snapshot(out["tiny_decoder"], None)):
            out["tiny_decoder_snapshot"] = snapshot
    return out


class Reached:
    """A connected sampler. (A plain class: this module is imported by every sample job, keep it light.)"""

    def __init__(self, sock: socket.socket, pid: int, started: bool, paths: dict, code: str, slot: Slot | None = None):
        self.sock = sock
        self.pid = pid  # the sampler's pid, from the kernel (SO_PEERCRED), not from anything it says
        self.started = started  # this call started it
        self.paths = paths
        self.code = code  # the hash of the package's code as this job found it: the sampler's key
        self.slot = slot  # the GPU slot whose sampler this is (None: the single slot, as without slots)

    def name(self, short: bool = False) -> str:
        """'the sampler (pid N)' ('sampler pid N'), with its GPU slot when there are several."""
        if self.slot is not None and self.slot.pinned:
            return (
                f"{'' if short else 'the '}sampler of GPU slot {self.slot.index} (GPU {self.slot.gpu}, pid {self.pid})"
            )
        return f"sampler pid {self.pid}" if short else f"the sampler (pid {self.pid})"


def _spawn(
    p: dict, load: dict, code_files: dict, idle: float, owner_pid: int | None, lock_fd: int, slot: Slot | None = None
):
    """Start the sampler for socket p['socket']. Detached (own session, no inherited pipes): it outlives the
    job that started it, so the next class's job finds the model loaded; it exits after `idle` seconds
    without requests, or as soon as `owner_pid` ends. It inherits the held start lock and lets go of it once
    it listens. A GPU slot's sampler sees only that GPU (CUDA_VISIBLE_DEVICES)."""
    import subprocess

    log_fd = open_private(p["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    # A log here is a killed sampler's (a sampler removes its own on exit; no sampler of this key listens, and we
    # hold its start lock): it holds that sampler's classes, so it is emptied rather than appended to.
    os.ftruncate(log_fd, 0)
    pythonpath = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": SRC_DIR + (os.pathsep + pythonpath if pythonpath else "")}
    if slot is not None and slot.pinned:
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu
    owner = ["--owner-pid", str(owner_pid)] if owner_pid else []
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                BOOTSTRAP,  # hashes each module of the package as it is imported (code.py)
                "gendistill",
                "sampler-serve",
                "--socket",
                str(p["socket"]),
                "--idle",
                str(idle),
                *owner,
                "--lock-fd",
                str(lock_fd),
            ],
            stdin=subprocess.PIPE,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
            start_new_session=True,
            pass_fds=(lock_fd,),
        )
    finally:
        os.close(log_fd)
    # not in argv: other users can read command lines
    spec = {"load": load, "code_files": code_files, "slot": slot.record() if slot is not None else None}
    proc.stdin.write(json.dumps(spec).encode() + b"\n")
    proc.stdin.close()
    return proc


def _log_tail(path: Path, n: int = 4000) -> str:
    try:
        fd = open_private(path, os.O_RDONLY)
    except (OSError, RuntimeDirError):
        return "(no log)"
    with os.fdopen(fd, "rb") as f:
        return f.read().decode(errors="replace")[-n:]


def ensure_sampler(
    load: dict, runtime: dict, owner_pid: int | None = None, say=print, slot: Slot | None = None
) -> Reached:
    """Connect to the sampler for `load` in this environment (on `slot`'s GPU), starting it if none listens: the
    one start path.

    Concurrent jobs start one sampler between them (a start lock, with a deadline). The sampler listens
    before it loads the model, so this returns within seconds; the model load happens while the job waits
    for its reply (with heartbeats).
    """
    files = tree_files()
    code = digest(files)
    rdir = resolve_runtime_dir()
    if note := rdir.note():
        say(note, flush=True)
    if slot is not None and slot.pinned:
        p = paths(key_id(sampler_key(load, code, slot)), rdir.path, slot)
    else:  # the single slot: the key and files of a sampler without slots, by the same calls
        p = paths(key_id(sampler_key(load, code)), rdir.path)
    timeout = float(runtime.get("server_timeout", DEFAULT_TIMEOUT))
    if conn := connect(str(p["socket"])):
        return Reached(conn[0], conn[1], False, p, code, slot)
    with StartLock(p["lock"], timeout, say) as lock:
        if conn := connect(str(p["socket"])):  # another job started it while we waited for the lock
            return Reached(conn[0], conn[1], False, p, code, slot)
        proc = _spawn(p, load, files, runtime.get("idle", 120), owner_pid, lock.fd, slot)
        t0 = time.monotonic()
        while not (conn := connect(str(p["socket"]))):
            if proc.poll() is not None:
                raise SamplerError(
                    f"the sampler process exited (code {proc.returncode}) before it listened. "
                    f"Its log ({p['log']}) ends with:\n{_log_tail(p['log'])}"
                )
            if time.monotonic() - t0 > timeout:
                raise SamplerError(
                    f"the sampler process (pid {proc.pid}) did not listen within {timeout:.0f}s; its log: {p['log']}"
                )
            time.sleep(0.05)
    return Reached(conn[0], conn[1], True, p, code, slot)


def _from_sampler(
    load: dict, payload: dict, runtime: dict, writer: ClassWriter, slot: Slot | None = None, say=print, beat=None
) -> dict:
    """Send the request, write every batch as it arrives; return the sampler's meta for the class. `beat`: called
    on every message from the sampler (its heartbeats too), the progress a job waiting for this slot sees."""
    r = ensure_sampler(load, runtime, say=say, slot=slot)
    ch = Channel(r.sock)
    timeout = float(runtime.get("server_timeout", DEFAULT_TIMEOUT))
    last_wait = None
    try:
        ch.send({**payload, "code": r.code, "timeout": timeout})
        while True:
            try:
                h, data = ch.recv(timeout)
            except TimeoutError:
                raise SamplerError(_silent(r, timeout)) from None
            except (EOFError, OSError, ProtocolError) as e:
                raise SamplerError(_broken_off(r, e, len(writer.records), payload["cls"]["n_generated"])) from None
            if beat:
                beat()
            kind = h.get("type")
            if kind == "accepted":
                if h.get("code") != r.code:
                    raise SamplerError(
                        f"the sampler (pid {r.pid}) was started for the package's code {h.get('code', '?')[:12]} "
                        f"but this job's is {r.code[:12]} (the code changed while it started). "
                        f"Nothing was written. Fix: rerun; a sampler with this code is started."
                    )
                if r.started:
                    say(f"started {r.name()}", flush=True)
            elif kind == "wait":
                if h.get("why") != last_wait:
                    say(f"{r.name(short=True)}: {h.get('why')}", flush=True)
                    last_wait = h.get("why")
            elif kind == "log":
                say(h["line"], flush=True)
            elif kind == "images":
                ends = list(itertools.accumulate(h["sizes"]))
                writer.add(h["indices"], [data[e - n : e] for n, e in zip(h["sizes"], ends)], h["records"])
            elif kind == "done":
                return {**h["meta"], "requests_served": h.get("requests"), "started_sampler": r.started}
            elif kind == "error":
                if h.get("stale"):
                    raise StaleSampler(h.get("error", "the sampler retired"))
                raise SamplerError(h.get("error", "unknown error"), h.get("detail", ""))
            else:
                raise SamplerError(f"unexpected message from the sampler: {kind!r}")
    finally:
        ch.close()  # if this job stops early, the sampler sees it at its next batch and drops the request


def _silent(r: Reached, timeout: float) -> str:
    """What a job says when its sampler has sent nothing, not even a heartbeat, for its timeout."""
    state = process_state(r.pid)
    head = f"{r.name()} (process state {state}) sent nothing for {timeout:.0f}s, not even a heartbeat"
    if state in ("T", "t"):
        return (
            f"{head}: it is stopped (Ctrl-Z, SIGSTOP or a debugger). Fix: `kill -CONT {r.pid}` if you stopped it, "
            f"or `gendistill sampler-stop` (which kills a sampler that does not answer), then rerun."
        )
    if state in ("Z", "?"):
        return f"{head}: it has ended. Fix: rerun (a new sampler is started). Its log, if kept: {r.paths['log']}"
    return (
        f"{head}: it is running but does not answer, so it is hung (a heartbeat is sent every 2s). Fix: "
        f"`gendistill sampler-stop` (which kills a sampler that does not answer), then rerun; its log: "
        f"{r.paths['log']}"
    )


def _still_running(pid: int, settle: float = 2.0) -> bool:
    """The process still runs `settle` seconds after its connection ended: a killed process closes its sockets
    while it exits, so right after the end of its connection it may not be gone yet."""
    deadline = time.monotonic() + settle
    while alive(pid) and process_state(pid) not in ("Z", "?"):
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)
    return False


def _broken_off(r: Reached, e: BaseException, received: int, expected: int) -> str:
    """What a job says when the connection ends before the class is done: what it knows, no guess."""
    head = (
        f"the connection to {r.name()} ended before this class was done ({e}; {received} of "
        f"{expected} images received, nothing published)"
    )
    if _still_running(r.pid):
        return (
            f"{head}. The sampler is still running: it closed this job's connection without saying why. Its log "
            f"({r.paths['log']}) says why. Fix: rerun the class."
        )
    return (
        f"{head}. The sampler has ended (it exits after its idle time, on `gendistill sampler-stop` or "
        f"SIGTERM, and when killed)"
        + (
            ", taking only this GPU slot's class with it: the other slots' jobs go on"
            if r.slot and r.slot.pinned
            else ""
        )
        + f". Its log, if kept: {r.paths['log']}. Fix: rerun (a new sampler is started)."
    )


def _in_process(
    load: dict, payload: dict, writer: ClassWriter, lineage: Lineage, slot: Slot | None = None, beat=None
) -> dict:
    import logging

    if slot is not None and slot.pinned:  # before torch is imported: this job's process sees only its slot's GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.gpu
    files = tree_files()  # the package as this job finds it before the sampling code is imported: the key's code

    from .generate import Sampler, sample_request
    from .pipeline import environment, load_from_spec, set_cpu_threads

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    t0 = time.perf_counter()
    pipe, device, dtype = load_from_spec(load)
    if beat:
        beat()
    load_s = round(time.perf_counter() - t0, 3)
    print(f"pipeline load #1 (in-process) in {load_s:.2f}s", flush=True)
    env = environment(load, device, dtype, pipe, set_cpu_threads(pipe, device))
    meta = sample_request(
        Sampler(pipe, device, dtype),
        payload,
        env,
        lambda b: (writer.add(b.indices, b.pngs, b.records), beat and beat()),
        lineage.broken,
        {
            "server_pid": None,
            "pipeline_loads": 1,
            "load_seconds": load_s,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        },
    )
    ran = imported_files()  # hashed as compiled (the job re-executed itself through BOOTSTRAP: cli._run_sample)
    if ran is None:  # called as a library (not `gendistill sample`): the modules' files as they are now
        ran = imported_files_on_disk()
    if changed := differences(ran, files):
        raise SamplerError(
            f"this job imported {', '.join(changed[:5])} in another version than the package's files it started "
            f"with (edited while it ran), so its images come from code no record would name. Nothing was written. "
            f"Fix: rerun the class."
        )
    return {**meta, "code_hash": digest(files), "code_files": ran, "requests_served": 1, "started_sampler": False}


def run(load: dict, cls: dict, gen: dict, out_size: int, out: str, runtime: dict) -> int:
    """The sample job: one class's images into `out` (published whole, or not at all). Exit code."""
    load = full_load(load, runtime)
    payload = {
        "op": "sample",
        "cls": cls,
        "gen": gen,
        "out_size": out_size,
        "max_retries": runtime.get("max_retries", 3),
        "batch_size": runtime.get("batch_size", "auto"),
    }
    print(
        f"class {cls['index']} {cls['name']!r}: prompt {cls['prompt']!r}, {cls['n_generated']} images, "
        f"seed {cls['seed']}",
        flush=True,
    )
    if os.environ.get("SLURM_JOB_ID"):
        print(
            f"SLURM job {os.environ['SLURM_JOB_ID']} on {socket.gethostname()}, "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}",
            flush=True,
        )
    lineage = Lineage()
    try:
        validate_sample_request({**payload, "code": "-"})
        slots = resolve_slots(runtime.get("gpus", "auto"))
        # Held until the class is published or the job fails (the kernel lets go if it is killed).
        deadline = 2 * float(runtime.get("server_timeout", DEFAULT_TIMEOUT))
        hold = SlotHold(slots, resolve_runtime_dir().path if len(slots) > 1 else None, timeout=deadline)
        with hold as slot:
            if slot.pinned:
                print(f"sampling on {slot.label()}", flush=True)
            for attempt in range(STALE_RETRIES + 1):
                try:
                    with ClassWriter(out, cls["n_generated"], lineage) as writer:
                        if runtime.get("server", True):
                            meta = _from_sampler(load, payload, runtime, writer, slot, beat=hold.beat)
                        else:
                            meta = _in_process(load, payload, writer, lineage, slot, hold.beat)
                        meta["slot"] = slot.record()  # which GPU made this class (not a pixel decider)
                        writer.publish(meta)
                    break
                except StaleSampler as e:
                    if attempt == STALE_RETRIES:
                        raise
                    print(f"{e}; nothing was written: starting a sampler for the code as it is now", flush=True)
    except SamplerError as e:
        if e.detail:
            print(e.detail, file=sys.stderr)
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    except (Orphaned, RequestError, RuntimeDirError, SlotError, FileExistsError, TimeoutError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    sizes = "->".join(map(str, meta["batch_sizes"]))
    print(
        f"done: {cls['n_generated']} images in {meta['seconds']:.2f}s; sampler pid {meta['server_pid']}, "
        f"pipeline loads {meta['pipeline_loads']}, requests served {meta['requests_served']}, batch size "
        f"{sizes} (requested {meta['batch_size_requested']}), code {meta['code_hash'][:12]}"
        + (", started the sampler" if meta["started_sampler"] else "")
        + (f"; GPU slot {slot.index} of {slot.count} (GPU {slot.gpu})" if slot.pinned else ""),
        flush=True,
    )
    return 0


def start_for_slurm_batch_step(load: dict, runtime: dict) -> bool:
    """Start the sampler from a SLURM job's batch step, owned by this process; True if it started one.

    snakemake-executor-plugin-slurm runs each job of a group as its own `srun` step, and a cluster with
    cgroup process tracking kills whatever a step started when that step ends: a sampler started by the first
    class's step would die with it (one model load per class). Started here, in the batch step (no
    SLURM_STEP_ID), it serves every class of the job and ends with it (docs/design/sampler.md).
    """
    if not os.environ.get("SLURM_JOB_ID") or os.environ.get("SLURM_STEP_ID"):
        return False
    started = False
    full = full_load(load, runtime)
    try:
        slots = resolve_slots(runtime.get("gpus", "auto"))
    except SlotError:
        return False  # each class's job fails with it, in its log
    # one sampler per GPU slot of the allocation (CUDA_VISIBLE_DEVICES, set by SLURM): each loads on its GPU at once
    for slot in slots:
        r = ensure_sampler(full, runtime, owner_pid=os.getpid(), say=lambda *a, **k: None, slot=slot)
        r.sock.close()
        if r.started:
            print(
                f"gendistill: started {r.name()} for the sample jobs of SLURM job {os.environ['SLURM_JOB_ID']}",
                file=sys.stderr,
                flush=True,
            )
        started |= r.started
    return started


def sampler_paths(load: dict, runtime: dict, slot: Slot | None = None) -> dict:
    """Socket, lock and log paths of the sampler this process's jobs would use for `load` (on `slot`)."""
    if slot is not None and slot.pinned:
        return paths(key_id(sampler_key(full_load(load, runtime), digest(tree_files()), slot)), slot=slot)
    return paths(key_id(sampler_key(full_load(load, runtime), digest(tree_files()))))


def stop_sampler(sock: Path, timeout: float = 10.0) -> str | None:
    """Ask the sampler at `sock` to exit; kill it if it does not answer within `timeout` (stopped or hung).
    None if no sampler listens there (a stale socket is removed)."""
    sock = Path(sock)
    conn = connect(str(sock))
    if conn is None:
        sock.unlink(missing_ok=True)
        return None
    s, pid = conn
    ch = Channel(s)
    try:
        ch.send({"op": "stop"})
        ch.recv(timeout)
        return f"pid {pid}: stopped"
    except (TimeoutError, EOFError, OSError, ProtocolError):
        import signal

        state = process_state(pid)
        os.kill(pid, signal.SIGKILL)  # ours (SO_PEERCRED said so), and it does not answer
        sock.unlink(missing_ok=True)
        remove_lock_file(sock.with_suffix(".lock"))
        return f"pid {pid}: did not answer within {timeout:.0f}s (state {state}): killed"
    finally:
        ch.close()


def stop_samplers(timeout: float = 10.0, directory: Path | None = None) -> list[str]:
    """Stop every sampler of this user in this runtime directory (`gendistill sampler-stop`)."""
    directory = runtime_dir() if directory is None else Path(directory)
    return [line for sock in sorted(directory.glob("*.sock")) if (line := stop_sampler(sock, timeout))]
