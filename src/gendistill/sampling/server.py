"""The resident sampler: one process per (model, environment, code) that loads the pipeline once and serves
every per-class sample job on this machine (design: docs/design/sampler.md).

Lifecycle: it is started by the first job that needs it (client.ensure_sampler), inherits that job's start
lock, binds its socket in the private runtime directory *before* loading the model (so a broken socket path
fails in a second, not after a load), releases the lock, and loads the pipeline in a background thread.
Jobs connect at once; while the model loads or another request runs they get heartbeats. A failed load is
kept: every later request gets its cause at once, until the sampler idles out. It exits after `idle` seconds
without requests, when its owner process ends (inside a SLURM job), or on a `stop` request (answered at once;
a running request is dropped at its next batch).

Requests are handled one at a time on the device; each runs in its own thread so that stop and ping are
answered while a request runs, and a job that disconnects is noticed between batches and its request dropped.
The sampler writes no output: it streams each batch to the job, which writes and publishes (writer.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from ..processes import alive, process_start_time, process_state
from .code import differences, digest, imported_files, imported_files_on_disk
from .protocol import (
    HEARTBEAT_S,
    MAX_REQUEST,
    ProtocolError,
    QueuedChannel,
    RequestError,
    Stuck,
    validate_sample_request,
)
from .runtime import peer_credentials, remove_lock_file

log = logging.getLogger("gendistill")


class _ChannelLogHandler(logging.Handler):
    """Sends each log line to the job whose request the logging thread is serving."""

    def __init__(self):
        super().__init__()
        self.channels: dict[int, QueuedChannel] = {}
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [sampler pid %(process)d] %(message)s"))

    def emit(self, record):
        ch = self.channels.get(record.thread)
        if ch is not None and not ch.closed:
            try:
                ch.send({"type": "log", "line": self.format(record)})
            except OSError:
                ch.closed = True


def summarize_error(e: BaseException, slot: dict | None = None) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    text = text if len(text) < 2000 else text[:2000] + " ..."
    note = out_of_memory_note(e, slot)
    return f"{text}\n{note}" if note else text


def out_of_memory_note(e: BaseException, slot: dict | None = None) -> str | None:
    """What a job is told when its GPU ran out of memory (None for any other error): how full the GPU is and which
    processes hold it. Memory that another user's process holds is not this sampler's to free, so nothing is
    retried (the batch size is halved down to 1 first, generate.py); the class fails and says so."""
    if type(e).__name__ != "OutOfMemoryError" and "out of memory" not in str(e).lower():
        return None
    gpu = (slot or {}).get("gpu") or os.environ.get("CUDA_VISIBLE_DEVICES") or "0"
    where = f"GPU {gpu}" + (f" (GPU slot {slot['index']} of {slot['of']})" if slot and slot.get("gpu") else "")
    return (
        f"{where} is out of memory{gpu_memory_report(gpu)}. Memory held by another process (another user's job) "
        f"is not the sampler's to free, so it does not retry: this class failed. Fix: leave this GPU out "
        f"(generation.gpus: the other GPUs' indices), or rerun once it is free (`gendistill sampler-stop` first, "
        f"so that a failed load is not kept)."
    )


def gpu_memory_report(gpu: str) -> str:
    """': X GiB free of Y GiB; processes on it: pid (MiB), ...' as far as torch and nvidia-smi can tell."""
    parts = []
    try:
        torch = sys.modules.get("torch")  # loaded by the time a GPU runs out of memory; not imported for a report
        if torch is not None and torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            parts.append(f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB")
    except Exception:  # noqa: BLE001 - a report, never a second failure
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader", "-i", gpu]
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        apps = [line.strip() for line in out.splitlines() if line.strip()]
        others = [a for a in apps if a.split(",")[0].strip() != str(os.getpid())]
        if others:
            parts.append("other processes on it (nvidia-smi: pid, memory): " + "; ".join(others))
    return ": " + "; ".join(parts) if parts else ""


class Reason(str):
    """Why a request is dropped: the sampler's log says the text, the job is told `to_job` (its own view)."""

    to_job: str

    def __new__(cls, text: str, to_job: str | None = None):
        reason = super().__new__(cls, text)
        reason.to_job = to_job or text
        return reason


# A job whose writes have waited this long while its process is stopped (state T) is dropped: a stopped job
# (Ctrl-Z, SIGSTOP, a debugger) would otherwise hold the device for every other job until it is continued.
STOPPED_GRACE_S = 1.0
GONE = "its job went away (its connection closed: the job was cancelled or killed)"


class Server:
    def __init__(
        self,
        sock_path: str,
        load: dict,
        idle: float,
        owner_pid: int | None,
        key_files: dict | None = None,
        slot: dict | None = None,
    ):
        self.sock_path, self.load, self.idle = sock_path, load, idle
        self.slot = slot  # the GPU slot this sampler serves (slots.Slot.record()), None as without slots
        # The package's files as the job that started this sampler found them (its key), and their hash.
        self.key_files = key_files if key_files is not None else {}
        self.key_code = digest(self.key_files)
        self.stale: str | None = None  # why this sampler retired: it imported code other than its key's
        self.owner_pid = owner_pid
        self.owner_started = process_start_time(owner_pid) if owner_pid else None
        self.stats = {"loads": 0, "requests": 0, "load_seconds": None}
        self.loaded = threading.Event()
        self.sampler = self.env = self.load_error = None
        self.device_lock = threading.Lock()  # one request generates at a time
        self.stop = threading.Event()
        self.stop_reason = "the sampler was told to stop"
        self.active: dict[QueuedChannel, str] = {}  # open connections and what they wait for (heartbeat text)
        self.active_lock = threading.Lock()
        self.last_activity = time.monotonic()
        self.log_handler = _ChannelLogHandler()
        log.addHandler(self.log_handler)
        self.channels: set[QueuedChannel] = set()  # every connection whose writer may still hold messages
        self.socket_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket this process bound

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    # -- socket --------------------------------------------------------------------------------------------
    def bind(self, lock_fd: int | None) -> socket.socket:
        """Bind the socket (the start lock held: no other sampler of this key can be binding now)."""
        try:
            st = os.lstat(self.sock_path)
            if not stat.S_ISSOCK(st.st_mode):
                raise SystemExit(
                    f"ERROR: {self.sock_path} exists and is not a socket; the sampler will not "
                    f"replace it. Fix: remove it."
                )
            os.unlink(self.sock_path)  # a stale socket of ours (its sampler is gone: the client checked)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # rw for this user only (the directory is private too)
        try:
            srv.bind(self.sock_path)
        finally:
            os.umask(old)
        st = os.lstat(self.sock_path)
        self.socket_id = (st.st_dev, st.st_ino)
        srv.listen(64)
        if lock_fd is not None:
            os.close(lock_fd)  # jobs waiting on the start lock now find this process listening
        return srv

    # -- model -----------------------------------------------------------------------------------------------
    def load_model(self) -> None:
        from .. import imageio  # noqa: F401 - what sample_request imports when it runs: part of the code checked now
        from .generate import Sampler
        from .pipeline import environment, load_from_spec, set_cpu_threads

        t0 = time.perf_counter()
        try:
            pipe, device, dtype = load_from_spec(self.load)
            threads = set_cpu_threads(pipe, device)
            self.sampler = Sampler(pipe, device, dtype)
            self.env = environment(self.load, device, dtype, pipe, threads)
            self.stats.update(loads=1, load_seconds=round(time.perf_counter() - t0, 3))
            log.info(
                "pipeline load #1 from %s on %s/%s in %.2fs (pid %d, code %s, cpu threads %s, CUDA_VISIBLE_DEVICES=%s)",
                self.load["source"],
                device,
                dtype,
                self.stats["load_seconds"],
                os.getpid(),
                digest(self.code_ran())[:12],
                threads,
                os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
            )
        except BaseException as e:  # noqa: BLE001 - kept and reported to every request
            self.load_error = (summarize_error(e, self.slot), traceback.format_exc())
            log.error("pipeline load from %s failed:\n%s", self.load["source"], self.load_error[1])
        finally:
            self.check_code()
            self.loaded.set()

    # -- code --------------------------------------------------------------------------------------------------
    def code_ran(self) -> dict[str, str]:
        """{file: sha256} of every module of the package this process has imported, from the bytes compiled."""
        ran = imported_files()
        return ran if ran is not None else imported_files_on_disk()

    def check_code(self) -> bool:
        """True while every module imported is the key's file; else retire: an edit landed between the job's key
        and an import, so this sampler runs code its key does not name (and would record it under the wrong
        hash). It unbinds its socket (the next job starts a sampler for the code as it is) and serves nobody."""
        if self.stale:
            return False
        changed = differences(self.code_ran(), self.key_files)
        if not changed:
            return True
        self.stale = (
            f"the sampler (pid {os.getpid()}) imported {', '.join(changed[:5])} in another version than the job "
            f"that started it had read (edited in between), so it runs code its key does not name; it has retired"
        )
        log.warning("%s", self.stale)
        if self.owns(Path(self.sock_path)):
            os.unlink(self.sock_path)  # no new job reaches it; the next one starts a sampler for the current code
        return False

    def _stale_reply(self, ch: QueuedChannel) -> None:
        ch.send({"type": "error", "stale": True, "error": self.stale})

    # -- requests --------------------------------------------------------------------------------------------
    def _status(self) -> dict:
        return {"pid": os.getpid(), "code": self.key_code, "state": self._state(), **self.stats}

    def _state(self) -> str:
        if not self.loaded.is_set():
            return "loading"
        if self.stale:
            return "retired"
        return "failed" if self.load_error else "ready"

    def handle(self, conn: socket.socket) -> None:
        pid, uid, _ = peer_credentials(conn)
        if uid != os.getuid():
            conn.close()  # only this user's jobs are served
            return
        ch = QueuedChannel(conn, pid)
        with self.active_lock:
            self.active[ch] = "reading the request"
            self.channels.add(ch)
        try:
            try:
                req, _ = ch.recv(timeout=30, max_header=MAX_REQUEST, max_payload=0)
            except TimeoutError:
                return log.info("job pid %d sent no request within 30s: connection closed", pid)
            except (EOFError, ConnectionError):
                return  # connected and left (a job checking whether a sampler listens)
            except ProtocolError as e:
                log.warning("malformed message from job pid %d: %s; answered with an error", pid, e)
                ch.start_writer()
                return ch.send({"type": "error", "error": f"malformed message: {e}"})
            ch.start_writer()
            op = req.get("op")
            if op == "ping":
                ch.send({"type": "status", **self._status()})
            elif op == "stop":
                ch.send({"type": "status", "stopping": True, **self._status()})
                log.info("stop requested by pid %d: exiting", pid)
                self.request_stop("the sampler was told to stop")
            elif op == "sample":
                self.sample(ch, req)
            else:
                log.warning("malformed message from job pid %d: unknown op %r; answered with an error", pid, op)
                ch.send({"type": "error", "error": f"unknown op {op!r} (expected sample, ping or stop)"})
        except OSError:
            pass  # the job went away; nothing was written for it
        except Exception as e:  # noqa: BLE001 - one request's bug must not end the sampler or the others
            log.error("request of job pid %d failed: %s", pid, summarize_error(e))
            try:
                ch.send({"type": "error", "error": summarize_error(e), "detail": traceback.format_exc()})
            except OSError:
                pass
        finally:
            with self.active_lock:
                self.active.pop(ch, None)
                self.channels = {c for c in self.channels if not c.done()}
            self.log_handler.channels.pop(threading.get_ident(), None)
            ch.close()  # after the writer has written what is queued (a continued job still reads why)
            self.last_activity = time.monotonic()

    def _stuck(self, ch: QueuedChannel, limit: float):
        """Why a job must be dropped for not reading what it is sent, or None: it is stopped, or it has read
        nothing for `limit` seconds (its own server_timeout)."""

        def why() -> Reason | None:
            blocked = ch.blocked_for()
            if blocked < STOPPED_GRACE_S:
                return None
            state = process_state(ch.peer_pid)
            if state in ("T", "t"):
                return Reason(
                    f"its job pid {ch.peer_pid} is stopped (state {state}) and has read nothing for {blocked:.0f}s",
                    f"this job (pid {ch.peer_pid}) was stopped (state {state}: Ctrl-Z, SIGSTOP or a debugger) "
                    f"while the sampler (pid {os.getpid()}) was sending it images; a job that does not read "
                    f"would hold the sampler for every other job, so it was dropped",
                )
            if blocked >= limit:
                return Reason(
                    f"its job pid {ch.peer_pid} (state {state}) has read nothing for {blocked:.0f}s",
                    f"this job (pid {ch.peer_pid}) read nothing the sampler (pid {os.getpid()}) sent it for "
                    f"{blocked:.0f}s (its server_timeout), so it was dropped",
                )
            return None

        return why

    def _cancelled(self, ch: QueuedChannel, stuck=None):
        def why() -> str | None:
            if self.stop.is_set():
                return self.stop_reason
            if ch.peer_gone():
                return GONE
            return stuck() if stuck else None

        return why

    def _error(self, ch: QueuedChannel, error: str, detail: str = "") -> None:
        ch.send({"type": "error", "error": error, "detail": detail})

    def _drop(self, ch: QueuedChannel, req: dict, reason: str, when: str = "") -> None:
        """Log why a request is dropped and tell its job, if it is still there to read it."""
        log.warning("request for class %s dropped: %s%s", req["cls"]["id"], reason, f" ({when})" if when else "")
        if not ch.peer_gone():
            self._error(ch, f"request dropped: {getattr(reason, 'to_job', reason)}. Nothing was written.")

    def sample(self, ch: QueuedChannel, req: dict) -> None:
        from .generate import Cancelled, sample_request

        try:
            validate_sample_request(req)
        except RequestError as e:
            log.warning("invalid request from job pid %d: %s", ch.peer_pid, " ".join(str(e).split()))
            return self._error(ch, str(e))
        ch.send({"type": "accepted", **self._status()})
        stuck = self._stuck(ch, float(req.get("timeout", 120)))
        cancelled = self._cancelled(ch, stuck)
        t0 = time.monotonic()
        with self.active_lock:
            self.active[ch] = "waiting for the model to load"
        while not self.loaded.wait(0.2):
            if why := cancelled():
                return self._drop(ch, req, why, "while the model loaded")
        if self.stale:
            return self._stale_reply(ch)
        if self.load_error:
            summary, tb = self.load_error
            return self._error(
                ch,
                f"the sampler (pid {os.getpid()}) could not load the model "
                f"{self.load['source']}: {summary}\nThis failure is kept by the sampler until "
                f"it has been idle for {self.idle:.0f}s, so every class fails at once with it. "
                f"Fix the model, then rerun (`gendistill sampler-stop` clears it at once).",
                tb,
            )
        with self.active_lock:
            self.active[ch] = "waiting for another class's request to finish"
        while not self.device_lock.acquire(timeout=0.2):
            if why := cancelled():
                return self._drop(ch, req, why, "while it waited for another class")
        try:
            if self.stale:
                return self._stale_reply(ch)
            with self.active_lock:
                self.active[ch] = f"sampling class {req['cls']['id']}"
            self.log_handler.channels[threading.get_ident()] = ch
            log.info(
                "class %s: %d images requested (waited %.1fs)",
                req["cls"]["id"],
                req["cls"]["n_generated"],
                time.monotonic() - t0,
            )

            def emit(batch):
                header = {
                    "type": "images",
                    "indices": batch.indices,
                    "records": batch.records,
                    "sizes": [len(p) for p in batch.pngs],
                    "batch_size": batch.batch_size,
                }
                try:
                    ch.send_batch(header, b"".join(batch.pngs), stuck)
                except Stuck as e:
                    raise Cancelled(e.args[0]) from None
                except OSError:
                    raise Cancelled(GONE) from None

            try:
                meta = sample_request(
                    self.sampler,
                    req,
                    self.env,
                    emit,
                    cancelled,
                    {
                        "server_pid": os.getpid(),
                        "pipeline_loads": self.stats["loads"],
                        "load_seconds": self.stats["load_seconds"],
                        # the GPU this sampler saw (its slot's, when there are several)
                        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                    },
                )
            except Cancelled as e:
                return self._drop(ch, req, e.args[0])
            except Exception as e:  # noqa: BLE001 - reported to the job, which fails
                log.error("request for class %s failed:\n%s", req["cls"]["id"], traceback.format_exc())
                return self._error(ch, summarize_error(e, self.slot), traceback.format_exc())
            if not self.check_code():  # a module first imported by this request was not the key's
                return self._stale_reply(ch)
            ran = self.code_ran()  # what made these pixels, hashed from the bytes imported: each the key's file
            self.stats["requests"] += 1
            meta = {**meta, "code_hash": self.key_code, "code_files": ran}  # the key's code, as a job in-process
            ch.send({"type": "done", "meta": meta, **self._status()})
        finally:
            self.device_lock.release()

    # -- the process -----------------------------------------------------------------------------------------
    def heartbeats(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S / 2)
            with self.active_lock:
                channels = list(self.active.items())
            for ch, why in channels:
                if time.monotonic() - ch.last_send >= HEARTBEAT_S:
                    try:
                        ch.heartbeat({"type": "wait", "why": why})  # queued: never waits on a job
                    except OSError:
                        pass  # its request notices at its next batch

    def serve(self, srv: socket.socket) -> str:
        threading.Thread(target=self.load_model, name="load", daemon=True).start()
        threading.Thread(target=self.heartbeats, name="heartbeats", daemon=True).start()
        if self.owner_pid:
            log.info(
                "serving SLURM job %s: exiting when its owner, pid %d (the group's batch step or the job "
                "step that started it), ends",
                os.environ.get("SLURM_JOB_ID"),
                self.owner_pid,
            )
        srv.settimeout(0.5)
        while True:
            if self.stop.is_set():
                return self.stop_reason
            if self.owner_pid and not alive(self.owner_pid, self.owner_started):
                return f"owner pid {self.owner_pid} ended"
            with self.active_lock:
                busy = bool(self.active)
            if self.stale and not busy:
                return "retired: it imported code other than its key's"
            if not busy and self.loaded.is_set() and time.monotonic() - self.last_activity >= self.idle:
                return f"idle for {self.idle:.0f}s"
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            self.last_activity = time.monotonic()
            threading.Thread(target=self.handle, args=(conn,), name="request", daemon=True).start()

    def drain(self, timeout: float = 30) -> None:
        """Let running requests see the stop at their next batch and tell their jobs (bounded wait)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.active_lock:
                if not self.active:
                    return
            time.sleep(0.1)

    def flush(self, timeout: float = 2.0) -> None:
        """Give the connections' writers a moment to deliver their last messages (a stop's reply, an error)."""
        deadline = time.monotonic() + timeout
        with self.active_lock:
            channels = list(self.channels)
        for ch in channels:
            ch.flush(max(0.0, deadline - time.monotonic()))

    def owns(self, path: Path) -> bool:
        """The socket at `path` is the one this process bound (not a newer sampler's of the same key)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self.socket_id

    def remove_files(self) -> None:
        """Remove this sampler's socket, lock and log (the log holds prompts) when it exits, but not files a
        newer sampler of the same key has taken over."""
        sock = Path(self.sock_path)
        newer = sock.exists() and not self.owns(sock)
        if self.owns(sock):
            sock.unlink()
        remove_lock_file(sock.with_suffix(".lock"))  # only if nobody holds it
        if not newer:
            sock.with_suffix(".log").unlink(missing_ok=True)


def run_sampler(socket_path: str, idle: float, owner_pid: int | None, lock_fd: int | None) -> None:
    """The sampler process (`gendistill sampler-serve`, started by client.ensure_sampler): serve at
    `socket_path` until `idle` seconds pass without requests, `owner_pid` ends or a stop request comes;
    `lock_fd`: the inherited start lock, released once listening."""
    # The start spec arrives on stdin, not on the command line that every user of the machine can read: the load
    # spec (source, revision and snapshot, device, dtype, vae_dtype, compile, deterministic) and the package's
    # files as the starting job read them (the key's code).
    spec = json.loads(sys.stdin.readline())
    load = spec["load"]
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s [sampler pid %(process)d] %(message)s"
    )
    server = Server(socket_path, load, idle, owner_pid, spec["code_files"], spec.get("slot"))

    def on_signal(signum, _frame):  # a user's `kill`, a node shutting down: exit as a stop does, tidily
        server.request_stop(f"the sampler was terminated ({signal.Signals(signum).name})")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    srv = server.bind(lock_fd)
    log.info(
        "listening at %s (code %s, GPU slot %s); loading %s",
        socket_path,
        server.key_code[:12],
        "single"
        if not server.slot or server.slot.get("gpu") is None
        else f"{server.slot['index']}: GPU {server.slot['gpu']}",
        load["source"],
    )
    why = "?"
    try:
        why = server.serve(srv)
    finally:
        srv.close()
        if server.stop.is_set():
            server.drain()
        server.flush()
        log.info("exiting after %d requests: %s", server.stats["requests"], why)
        logging.shutdown()
        # What jobs needed from the log reached them as it happened; nothing of ours is left behind.
        server.remove_files()
    if not server.loaded.is_set():
        os._exit(0)  # stopped while loading: the load (and any pool threads it runs) must not hold the exit
