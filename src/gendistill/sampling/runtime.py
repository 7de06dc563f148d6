"""Where the sampler lives and who may talk to it: a private runtime directory, safe files, peer checks, keys.

Threat model (a shared GPU node): other users share /tmp and can read our command lines. So the sampler's
socket, lock and log live in a directory only we can enter; every file there is opened without following
symlinks and without truncating; the client checks that the process at the other end of the socket runs
as our own uid before it sends anything; and the sampler's key covers everything that decides its pixels
(the resolved model and its files, environment, the package's code), so a warm sampler never serves stale
code or weights.
Linux only (SO_PEERCRED, /proc), like the clusters this runs on.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import stat
import struct
import sys
import time
from pathlib import Path

from ..model_files import stat_stamp
from ..processes import alive, process_start_time, process_state

# Unix socket paths are limited to 108 bytes (sun_path) including the terminating NUL.
MAX_SOCKET_PATH = 100


class RuntimeDirError(RuntimeError):
    """The runtime directory or a file in it is not private to this user (or not what it should be)."""


# ---- the private runtime directory ------------------------------------------------------------------------


def _not_private(path: Path) -> str | None:
    """Why `path` is not a private directory of ours (checked with lstat: a symlink is not followed), or None."""
    st = os.lstat(path)
    uid = os.getuid()
    if stat.S_ISLNK(st.st_mode):
        return f"is a symbolic link (to {os.readlink(path)!r})"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != uid:
        return f"is owned by uid {st.st_uid}, not by you (uid {uid})"
    if st.st_mode & 0o077:
        return f"has mode {stat.S_IMODE(st.st_mode):o}: other users can enter it"
    return None


def _ensure_private_dir(path: Path) -> Path:
    """Create `path` 0700 if absent; raise RuntimeDirError if what is there is not a private directory of ours."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise RuntimeDirError(f"{path} cannot be created ({e.strerror})") from None
    if why := _not_private(path):
        raise RuntimeDirError(
            f"{path} {why}; it is not used (another user may have made it to intercept the sampler; if it is "
            f"yours, `rm -r {path}` or `chmod 700 {path}`)"
        )
    return path


def temp_dir() -> str:
    """The temp dir as tempfile.gettempdir() finds it (TMPDIR, TEMP, TMP, /tmp), without importing tempfile."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        d = os.environ.get(name)
        if d and os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK):
            return d
    return "/tmp"


def _fits(directory: Path) -> bool:
    """Socket paths in `directory` fit in sun_path (the longest file name there: <key id>.sock)."""
    return len(str(directory)) + len("/0123456789abcdef-slot00.sock") <= MAX_SOCKET_PATH


def _private_cache_dir() -> Path:
    """<XDG_CACHE_HOME or ~/.cache>/gendistill/run-<host>: a directory no other user can pre-empt, since its
    parent is ours and closed to others (the host in the name: a home directory may be shared by nodes, and a
    Unix socket works only on the node that bound it)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(base)  # followed: ~/.cache is often a symlink to scratch space, which is fine if ours
    except OSError as e:
        raise RuntimeDirError(f"{base} cannot be created ({e.strerror})") from None
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise RuntimeDirError(
            f"{base} is owned by uid {st.st_uid} or writable by other users (mode {stat.S_IMODE(st.st_mode):o}), "
            f"so a directory in it could be replaced by them"
        )
    host = socket.gethostname().split(".")[0] or "localhost"
    return _ensure_private_dir(_ensure_private_dir(base / "gendistill") / f"run-{host}")


class RuntimeDir:
    """The private directory the samplers of this user live in, and why earlier candidates were passed over."""

    __slots__ = ("path", "passed_over")

    def __init__(self, path: Path, passed_over: list[str]):
        self.path, self.passed_over = path, passed_over

    def note(self) -> str | None:
        """What a job says when it had to fall back (None when the usual directory was used)."""
        if not self.passed_over:
            return None
        return f"sampler runtime directory: {self.path}, because " + "; ".join(self.passed_over)


def resolve_runtime_dir() -> RuntimeDir:
    """This user's private sampler directory: $XDG_RUNTIME_DIR/gendistill, else <temp dir>/gendistill-<uid> (/tmp
    when the temp dir is too long for socket paths), else, when another user has pre-empted that name in the
    shared temp dir (or it is not private), <XDG_CACHE_HOME or ~/.cache>/gendistill/run-<host>. A directory that
    is not ours and private is never used, and a job says which one it used instead and why."""
    uid = os.getuid()
    passed_over: list[str] = []
    candidates = []
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        try:
            st = os.stat(xdg)
            if st.st_uid == uid and stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o077:
                candidates.append(Path(xdg) / "gendistill")
            else:
                passed_over.append(f"XDG_RUNTIME_DIR={xdg} is not a private directory of yours")
        except OSError:
            passed_over.append(f"XDG_RUNTIME_DIR={xdg} does not exist")  # e.g. kept through sudo or su
    shared = [Path(temp_dir()) / f"gendistill-{uid}", Path("/tmp") / f"gendistill-{uid}"]
    candidates += [p for p in shared if _fits(p)][:1]
    for path in candidates:
        try:
            return RuntimeDir(_ensure_private_dir(path), passed_over)
        except RuntimeDirError as e:
            passed_over.append(str(e))
    try:
        fallback = _private_cache_dir()
    except RuntimeDirError as e:
        passed_over.append(str(e))
        fallback = None
    if fallback is None or not _fits(fallback):
        if fallback is not None:
            passed_over.append(f"{fallback} is too long for a socket path")
        raise RuntimeDirError(
            "no private directory for the sampler's socket: "
            + "; ".join(passed_over)
            + ". Fix: set XDG_RUNTIME_DIR (or TMPDIR) to a directory only you can enter (mode 700)."
        )
    return RuntimeDir(fallback, passed_over)


def runtime_dir() -> Path:
    return resolve_runtime_dir().path


def open_private(path: Path, flags: int) -> int:
    """os.open without following a symlink and without truncating; the file must be a regular file of ours."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RuntimeDirError(
                f"{path} is a symbolic link; it is not followed. Fix: remove it (`rm {path}`)."
            ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        raise RuntimeDirError(f"{path} is not a regular file owned by you; it is not used. Fix: remove it.")
    return fd


# ---- peers ------------------------------------------------------------------------------------------------


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)


def connect(path: str) -> tuple[socket.socket, int] | None:
    """Connect to the sampler at `path`: (socket, its pid), or None if nothing listens there.

    Nothing is sent before the peer is known to run as this user: a process of another user that listens
    there gets no request (no prompt, no path) and cannot answer one.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    pid, uid, _ = peer_credentials(s)
    if uid != os.getuid():
        s.close()
        raise RuntimeDirError(
            f"the process listening at {path} (pid {pid}) runs as uid {uid}, not as you "
            f"(uid {os.getuid()}); nothing was sent to it. Fix: remove the socket if it is "
            f"yours, and report the other process to your administrators if it is not."
        )
    return s, pid


# ---- processes ----------------------------------------------------------------------------------------------


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _is_snakemake(pid: int) -> bool:
    """A Snakemake process: `snakemake ...` (python /path/bin/snakemake) or `python -m snakemake ...`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3]
    except OSError:
        return False
    return any(Path(a.decode(errors="replace")).name == "snakemake" for a in argv)


class Lineage:
    """The processes this job hangs from, up to the Snakemake that runs it: if one of them ends, the job was
    cancelled, and it must not publish output (its rerun may already be writing the same path).

    Without a Snakemake above it (run by hand), the parent alone counts. Ancestors above Snakemake (a login
    shell that exits under nohup) do not count.
    """

    def __init__(self, max_depth: int = 8):
        chain, pid = [], os.getppid()
        for _ in range(max_depth):
            if pid <= 1:
                break
            chain.append((pid, process_start_time(pid)))
            if _is_snakemake(pid):
                self.chain = chain
                return
            pid = _parent(pid)
        self.chain = chain[:1]

    def broken(self) -> str | None:
        """Why this job is an orphan (an ancestor ended), or None while its lineage is intact."""
        for pid, started in self.chain:
            if not alive(pid, started):
                return f"its parent process {pid} ended"
        return None


# ---- the key: everything that decides a sampler's pixels ---------------------------------------------------


def model_dir(source: str, snapshot: str | None = None) -> Path | None:
    """The directory a model is loaded from: a local directory, or the hub cache's snapshot `snapshot` of a hub
    id (client.full_load resolves it); None for a hub id not in the cache (the sampler downloads it)."""
    p = Path(source)
    if p.is_dir():
        return p
    if snapshot:
        from ..hf_cache import cached_snapshot

        found = cached_snapshot(source, snapshot)
        return found[1] if found else None
    return None


def files_fingerprint(directory: Path | None, source: str) -> str:
    """Changes when any file of a model directory changes (added, removed, resized, touched, or a hub snapshot's
    link pointed at another blob, whose name is its content hash), symlinked folders included, so a warm sampler
    never serves stale weights (model_files.stat_stamp). Stat-based: an in-place rewrite that keeps both size and
    mtime is not seen here (the plan's content hash, in the load spec, sees it at the next run)."""
    if directory is None:
        return source
    return stat_stamp(directory)


def environment_fingerprint() -> list:
    """The Python environment: its prefix and its site-packages directories' mtimes, which change whenever a
    package is installed, upgraded or removed (cheaper than reading every package's version)."""
    import site

    dirs = sorted(set(site.getsitepackages()))
    return [sys.prefix] + [(d, os.stat(d).st_mtime_ns) for d in dirs if os.path.isdir(d)]


def sampler_key(load: dict, code: str, slot=None) -> dict:
    """What a sampler is keyed by: two jobs share one sampler only if all of this is equal.

    `load` is the resolved load spec (client.full_load: absolute paths, a hub id's snapshot commit); the model's
    files are fingerprinted wherever it is loaded from. `code`: the hash of the package's modules on disk
    (code.tree_files). SLURM_JOB_ID: inside a SLURM job, only that job's sample jobs share a sampler (its GPU is
    not another allocation's, and SLURM ends it with the job). CUDA_VISIBLE_DEVICES: which GPU it holds: the GPU
    of the job's slot (`slot`, slots.py) when there are several, so each GPU has a sampler of its own; with a
    single slot, the job's own CUDA_VISIBLE_DEVICES, as without slots.
    """
    key = {
        "load": load,
        "model_files": files_fingerprint(model_dir(load["source"], load.get("snapshot")), load["source"]),
        "code": code,
        "python": environment_fingerprint(),
        "cuda_visible": slot.gpu if slot is not None and slot.pinned else os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
    }
    if load.get("tiny_decoder"):  # the tiny decoder's files, like the model's
        directory = model_dir(load["tiny_decoder"], load.get("tiny_decoder_snapshot"))
        key["decoder_files"] = files_fingerprint(directory, load["tiny_decoder"])
    return key


def key_id(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def paths(kid: str, directory: Path | None = None, slot=None) -> dict[str, Path]:
    """The sampler's files, named by its key id (a GPU slot's sampler: the slot's number joins the id, for people
    reading the directory; the key already holds its GPU)."""
    d = runtime_dir() if directory is None else directory
    name = f"{kid}-slot{slot.index:02d}" if slot is not None and slot.pinned else kid
    return {"socket": d / f"{name}.sock", "lock": d / f"{name}.lock", "log": d / f"{name}.log"}


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def remove_lock_file(path: Path) -> None:
    """Remove a start lock file, but only while holding it (so nobody is starting a sampler with it now)."""
    try:
        fd = open_private(path, os.O_RDWR)
    except (OSError, RuntimeDirError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, path):
            os.unlink(path)
    except OSError:
        pass  # a job holds it, starting the next sampler: it is theirs now
    finally:
        os.close(fd)


# ---- the start lock ---------------------------------------------------------------------------------------


class StartLock:
    """An flock on <key>.lock, taken before starting a sampler so concurrent jobs start only one.

    Waits with a deadline, saying who holds it; the holder's pid is written into the file (no truncation on
    open: the file may only be rewritten once the lock is ours).
    """

    def __init__(self, path: Path, timeout: float, say=print):
        self.path, self.timeout, self.say = Path(path), timeout, say
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            pid = int(os.pread(self.fd, 32, 0).decode().split()[0])
            return f"pid {pid} (state {process_state(pid)})"
        except (OSError, ValueError, IndexError):
            return "an unknown process"

    def __enter__(self):
        t0, told = time.monotonic(), False
        self.fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _same_file(self.fd, self.path):
                    break
                # the exiting sampler removed this lock file after we opened it: lock the current one instead
                os.close(self.fd)
                self.fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
                continue
            except BlockingIOError:
                waited = time.monotonic() - t0
                if waited >= self.timeout:
                    holder = self.holder()
                    os.close(self.fd)
                    raise TimeoutError(
                        f"waited {waited:.0f}s for the sampler start lock {self.path}, held by {holder}. A "
                        f"sampler start should take seconds. Fix: if that process is stopped (state T) or hung, "
                        f"end it (`kill <pid>`, or `gendistill sampler-stop`) and rerun."
                    ) from None
                if not told and waited > 2:
                    self.say(f"waiting for the sampler start lock, held by {self.holder()}", flush=True)
                    told = True
                time.sleep(0.1)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock, unless a started sampler still holds its inherited copy
        self.fd = None
