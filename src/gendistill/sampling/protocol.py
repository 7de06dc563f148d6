"""Messages between a sample job and the sampler: one JSON line each, raw image bytes after it when it says so.

Job -> sampler, once per connection:
  {"op": "sample", "code": <code hash the job expects>, "cls": ..., "gen": ..., "out_size": ..., "batch_size": ...,
   "max_retries": ...}   |   {"op": "ping"}   |   {"op": "stop"}
Sampler -> job, a stream:
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

HEARTBEAT_S = 2.0
MAX_HEADER = 64 * 1024 * 1024  # a header line longer than this is not a message of ours


class ProtocolError(RuntimeError):
    pass


class Channel:
    """A connected socket carrying framed messages; `send` is thread-safe (the heartbeat thread shares it)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()
        self.last_send = time.monotonic()
        self.closed = False

    def send(self, header: dict, payload: bytes = b"") -> None:
        if payload:
            header = {**header, "nbytes": len(payload)}
        data = json.dumps(header).encode() + b"\n"
        with self._send_lock:
            self.sock.sendall(data)
            if payload:
                self.sock.sendall(payload)
            self.last_send = time.monotonic()

    def recv(self, timeout: float | None = None) -> tuple[dict, bytes]:
        """The next message (header, payload). Raises TimeoutError after `timeout` s of silence, EOFError at
        the end of the stream."""
        self.sock.settimeout(timeout)
        try:
            line = self._reader.readline(MAX_HEADER)
            if not line:
                raise EOFError("connection closed")
            if not line.endswith(b"\n"):
                raise ProtocolError("message header too long or cut off")
            header = json.loads(line)
            n = int(header.get("nbytes", 0))
            payload = self._reader.read(n) if n else b""
            if len(payload) != n:
                raise EOFError("connection closed in the middle of a message")
            return header, payload
        except TimeoutError:
            raise TimeoutError(f"nothing received for {timeout:.0f}s") from None
        except json.JSONDecodeError as e:
            raise ProtocolError(f"not a message of this protocol: {e}") from None

    def peer_gone(self) -> bool:
        """True once the other end has closed (it never sends after its request, so readable = EOF)."""
        if self.closed:
            return True
        # select, not a non-blocking recv: the socket's mode is shared with the thread sending heartbeats
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
        ("n_generated", lambda v: _int(v) and v >= 1, "an integer >= 1"),
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
    out_size = req.get("out_size")
    if not (_int(out_size) and out_size >= 1):
        problems.append(f"out_size: {out_size!r} is not an integer >= 1")
    elif _int(gen.get("resolution")) and out_size > gen["resolution"]:
        problems.append(f"out_size: {out_size} is above gen.resolution {gen['resolution']} (images would be upsampled)")
    bs = req.get("batch_size", "auto")
    if not (bs == "auto" or (_int(bs) and bs >= 1)):
        problems.append(f"batch_size: {bs!r} is not 'auto' or an integer >= 1")
    mr = req.get("max_retries", 3)
    if not (_int(mr) and mr >= 0):
        problems.append(f"max_retries: {mr!r} is not an integer >= 0")
    if not isinstance(req.get("code"), str):
        problems.append("code: missing (the code hash the job expects the sampler to run)")
    if problems:
        raise RequestError("invalid sample request:\n" + "\n".join(f"  - {p}" for p in problems))
