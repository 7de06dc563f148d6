"""Messages between a sample job and the sampler: one JSON line each, raw image bytes after it when it says so.

Job -> sampler, once per connection:
  {"op": "sample", "code": <code hash the job expects>, "cls": ..., "gen": ..., "out_size": ..., "batch_size": ...,
   "max_retries": ..., "timeout": <the job's server_timeout: a job that reads nothing that long is dropped>}
  |   {"op": "ping"}   |   {"op": "stop"}
Sampler -> job, a stream (written by a thread per connection: a job that stops reading holds up nobody):
  accepted (pid, code hash), wait (a heartbeat at least every HEARTBEAT_S seconds: loading, busy, or working),
  log (a line of the sampler's log for this request), images (a batch: indices, records, shape; nbytes of
  uint8 pixels follow), then done (meta) or error (why, and the traceback).
The sampler never writes the job's output: the job does (writer.py), so a job that has gone away never has
output written for it. A job that hears nothing for its timeout treats the sampler as hung.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque

HEARTBEAT_S = 2.0
MAX_HEADER = 64 * 1024 * 1024  # a header line longer than this is not a message of ours
MAX_REQUEST = 1024 * 1024  # a job's request: one class, no payload
MAX_PAYLOAD = 1 << 32  # a batch of PNG files


class ProtocolError(RuntimeError):
    pass


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def frame(header: dict, payload: bytes = b"") -> bytes:
    if payload:
        header = {**header, "nbytes": len(payload)}
    return json.dumps(header).encode() + b"\n" + payload


class Channel:
    """A connected socket carrying framed messages. `send` writes at once (the job's side: one request)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()
        self.last_send = time.monotonic()
        self.closed = False

    def send(self, header: dict, payload: bytes = b"") -> None:
        data = frame(header, payload)
        with self._send_lock:
            self.sock.sendall(data)
            self.last_send = time.monotonic()

    def recv(
        self, timeout: float | None = None, max_header: int = MAX_HEADER, max_payload: int = MAX_PAYLOAD
    ) -> tuple[dict, bytes]:
        """The next message (header, payload). Raises TimeoutError after `timeout` s of silence, EOFError at
        the end of the stream, ProtocolError for anything that is not a message of this protocol."""
        self.sock.settimeout(timeout)
        try:
            line = self._reader.readline(max_header + 1)
            if not line:
                raise EOFError("connection closed")
            if not line.endswith(b"\n"):
                raise ProtocolError("message header too long or cut off")
            try:
                header = json.loads(line, parse_constant=_no_constant)
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
                raise ProtocolError(f"not a message of this protocol: {e}") from None
            if not isinstance(header, dict):
                raise ProtocolError(f"not a message of this protocol: a JSON {type(header).__name__}, not an object")
            n = header.get("nbytes", 0)
            if not (isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= max_payload):
                raise ProtocolError(f"nbytes {n!r} is not an integer in 0..{max_payload}")
            payload = self._reader.read(n) if n else b""
            if len(payload) != n:
                raise EOFError("connection closed in the middle of a message")
            return header, payload
        except TimeoutError:
            raise TimeoutError(f"nothing received for {timeout:.0f}s") from None

    def peer_gone(self) -> bool:
        """True once the other end has closed (it never sends after its request, so readable = EOF)."""
        if self.closed:
            return True
        # select, not a non-blocking recv: the socket's mode is shared with the thread that writes to it
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and self.sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        self.closed = True
        try:
            self._reader.close()
            self.sock.close()
        except OSError:
            pass


class QueuedChannel(Channel):
    """The sampler's side of a connection: every message is queued and written by a thread of this connection.

    So a job that stops reading (stopped with Ctrl-Z or SIGSTOP, or hung) blocks only its own writer, never
    the device, the heartbeats or another job. Memory stays bounded: `send_batch` queues a batch only once the
    previous one has been handed to the kernel, and tells its caller how long the writer has been blocked.
    """

    def __init__(self, sock: socket.socket, peer_pid: int):
        super().__init__(sock)
        self.peer_pid = peer_pid
        self._cv = threading.Condition()
        self._queue: deque[bytes] = deque()
        self._writing_since: float | None = None
        self._finishing = False
        self.error: str | None = None  # why writing failed (the job closed its end)
        self._writer: threading.Thread | None = None

    def start_writer(self) -> None:
        """After the request has been read: from now on the socket blocks in the writer thread only."""
        self.sock.settimeout(None)
        self._writer = threading.Thread(target=self._write_loop, name=f"writer-{self.peer_pid}", daemon=True)
        self._writer.start()

    def send(self, header: dict, payload: bytes = b"") -> None:
        """Queue a message; never blocks. Raises ConnectionError once the job's end is closed."""
        data = frame(header, payload)
        with self._cv:
            if self.error:
                raise ConnectionError(self.error)
            if self._finishing:
                raise ConnectionError("the connection is closing")
            self._queue.append(data)
            self.last_send = time.monotonic()
            self._cv.notify_all()

    def heartbeat(self, header: dict) -> None:
        """Queue a heartbeat, unless something is already queued or being written (no pile-up for a job that
        does not read: it has messages waiting anyway)."""
        with self._cv:
            busy = self._queue or self._writing_since is not None
            if busy or self._writer is None or self.error or self._finishing:
                return
        self.send(header)

    def peer_gone(self) -> bool:
        return self.error is not None or super().peer_gone()

    def blocked_for(self) -> float:
        """Seconds the write in progress has been waiting for the job to read (0 when none is waiting)."""
        since = self._writing_since
        return 0.0 if since is None else time.monotonic() - since

    def send_batch(self, header: dict, payload: bytes, stuck, poll: float = 0.2) -> None:
        """Queue a batch once everything queued before it is being written or written (so at most two batches
        are held: one in the writer, this one). While waiting, `stuck()` is asked every `poll` seconds: a
        reason it returns is raised as Stuck, and the caller drops the request."""
        while True:
            with self._cv:
                if not self._queue or self.error:
                    break
                self._cv.wait(poll)
                if not self._queue or self.error:
                    break
            if why := stuck():
                raise Stuck(why)
        self.send(header, payload)

    def _write_loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._finishing:
                    self._cv.wait()
                if not self._queue:
                    break
                data = self._queue.popleft()
                self._writing_since = time.monotonic()
            try:
                self.sock.sendall(data)
            except OSError as e:
                with self._cv:
                    self.error = f"its connection closed ({e.strerror or e})"
                    self._queue.clear()
                    self._writing_since = None
                    self._cv.notify_all()
                break
            with self._cv:
                self._writing_since = None
                self._cv.notify_all()
        super().close()

    def close(self) -> None:
        """Close once what is queued has been written (a dropped job that is continued still reads why)."""
        with self._cv:
            self._finishing = True
            self.closed = True
            self._cv.notify_all()
        if self._writer is None:
            super().close()

    def done(self) -> bool:
        """Closed and written out: nothing of this connection is left in the sampler."""
        return self.closed and (self._writer is None or not self._writer.is_alive())

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the writer to write everything and close; True if it did."""
        if self._writer is not None:
            self._writer.join(timeout)
            return not self._writer.is_alive()
        return True


class Stuck(RuntimeError):
    """A job has not read what the sampler sent it (stopped or hung): its request is dropped."""


class RequestError(ValueError):
    """A request the sampler refuses; str(err) lists every problem."""


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_sample_request(req: dict) -> None:
    """Check a sample request before any work; raise RequestError naming each bad field."""
    problems = []
    cls, gen = req.get("cls"), req.get("gen")
    if not isinstance(cls, dict):
        problems.append("cls: missing (an object: index, name, id, prompt, seed, n_generated)")
        cls = {}
    if not isinstance(gen, dict):
        problems.append("gen: missing (an object: resolution, steps, guidance_scale)")
        gen = {}
    for key, ok, want in (
        ("index", lambda v: _int(v) and v >= 0, "an integer >= 0"),
        ("name", lambda v: isinstance(v, str), "a string"),
        ("id", lambda v: isinstance(v, str) and v and "/" not in v, "a non-empty string without '/'"),
        ("prompt", lambda v: isinstance(v, str) and v.strip(), "a non-empty string"),
        ("seed", _int, "an integer"),
        ("n_generated", lambda v: _int(v) and v >= 1, "an integer >= 1"),  # the images this job samples
    ):
        if cls and not ok(cls.get(key)):
            problems.append(f"cls.{key}: {cls.get(key)!r} is not {want}")
    for key, ok, want in (
        ("resolution", lambda v: _int(v) and v >= 8 and v % 8 == 0, "a multiple of 8, >= 8"),
        ("steps", lambda v: _int(v) and v >= 1, "an integer >= 1"),
        (
            "guidance_scale",
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
            "a number >= 0",
        ),
    ):
        if gen and not ok(gen.get(key)):
            problems.append(f"gen.{key}: {gen.get(key)!r} is not {want}")
    if cls and "prototypes" in cls and not (isinstance(cls["prototypes"], str) and cls["prototypes"]):
        problems.append(f"cls.prototypes: {cls['prototypes']!r} is not the path of a prototypes file")
    problems += _real_data_problems(cls, gen)
    out_size = req.get("out_size")
    if not (_int(out_size) and out_size >= 1):
        problems.append(f"out_size: {out_size!r} is not an integer >= 1")
    elif _int(gen.get("resolution")) and out_size > gen["resolution"]:
        problems.append(f"out_size: {out_size} is above gen.resolution {gen['resolution']} (images would be upsampled)")
    bs = req.get("batch_size", "auto")
    if not (bs == "auto" or (_int(bs) and bs >= 1)):
        problems.append(f"batch_size: {bs!r} is not 'auto' or an integer >= 1")
    timeout = req.get("timeout", 120)
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0):
        problems.append(f"timeout: {timeout!r} is not a number of seconds > 0")
    mr = req.get("max_retries", 3)
    if not (_int(mr) and mr >= 0):
        problems.append(f"max_retries: {mr!r} is not an integer >= 0")
    if not isinstance(req.get("code"), str):
        problems.append("code: missing (the code hash the job expects the sampler to run)")
    if problems:
        raise RequestError("invalid sample request:\n" + "\n".join(f"  - {p}" for p in problems))


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _real_data_problems(cls: dict, gen: dict) -> list[str]:
    """Generation from real data (gen.init, gen.strength, gen.real_guidance; cls.prototypes): what is malformed."""
    problems = []
    init = gen.get("init", "noise")
    if init not in ("noise", "prototypes"):
        problems.append(f"gen.init: {init!r} is not 'noise' or 'prototypes'")
    uses_file = init == "prototypes" or bool(gen.get("real_guidance"))
    if cls and uses_file and not cls.get("prototypes"):
        problems.append("cls.prototypes: missing (gen.init prototypes and gen.real_guidance read the class's file)")
    if init == "prototypes" and not (_number(gen.get("strength")) and 0 < gen["strength"] <= 1):
        problems.append(f"gen.strength: {gen.get('strength')!r} is not a number in (0, 1]")
    rg = gen.get("real_guidance")
    if rg:
        if not isinstance(rg, dict) or rg.get("method") != "coda":
            problems.append(f"gen.real_guidance: {rg!r} is not {{method: coda, weight, fraction}}")
        else:
            if not (_number(rg.get("weight")) and rg["weight"] >= 0):
                problems.append(f"gen.real_guidance.weight: {rg.get('weight')!r} is not a number >= 0")
            if not (_number(rg.get("fraction")) and 0 < rg["fraction"] <= 1):
                problems.append(f"gen.real_guidance.fraction: {rg.get('fraction')!r} is not a number in (0, 1]")
    return problems
