"""GPU slots: the GPUs of a node that its sample jobs spread over, one class per GPU at a time.

A sample job holds one slot while it runs and talks to that slot's sampler, which runs with only that GPU visible
(CUDA_VISIBLE_DEVICES=<the slot's GPU>), so each GPU loads the model once and `--resources gpu=N` samples N classes
at once. The slots are `generation.gpus`: `auto` (the GPUs CUDA_VISIBLE_DEVICES names if it is set, else every GPU
of the node) or a list of GPU indices. With one slot (a machine with one GPU or none) nothing changes: no slot
lock, the sampler's key and socket as without slots, and the sampler queues the jobs.

A job holds its slot by an flock on the slot's file in the private runtime directory: taken without a race
(LOCK_NB on each slot in turn), and released by the kernel when the job ends, however it ends, so a killed job's
slot is free at once; the file only names the last holder, for the log of a job that waits, and its mtime is the
holder's last sign of progress (`SlotHold.beat`: each message from its sampler, each batch in-process), so a job
that waits can tell a holder that is sampling from one that has hung, and gives up on the latter with its name.

The evaluation's training jobs hold the same slots (gendistill.evaluation.gpus): N of them at once, all or none
(`SlotHold(count=N, training=True)`), marked in the files as training jobs, whose slots are never used beside them.

Standard library only: every sample job imports this, and the job must stay light (importing torch costs about
1.7 s a job), so GPUs are counted from CUDA_VISIBLE_DEVICES, /proc/driver/nvidia/gpus (one directory per GPU the
NVIDIA driver manages) or `nvidia-smi -L`, never through torch.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ..processes import process_state

AUTO = "auto"


class SlotError(ValueError):
    """generation.gpus names GPUs this node does not have (or is not a list of indices)."""


class SlotWaitTimeout(TimeoutError):
    """Every GPU slot is held by a job that has shown no progress for the wait's deadline."""


class Slot:
    """One GPU slot: its position among the slots, how many there are, and the GPU its sampler sees (a
    CUDA_VISIBLE_DEVICES value: an index, a UUID or a MIG id), or None for the single slot that keeps the
    environment as it is (the sampler sees what the job sees, as without slots)."""

    __slots__ = ("index", "count", "gpu", "fake")

    def __init__(self, index: int, count: int, gpu: str | None, fake: bool = False):
        self.index, self.count, self.gpu, self.fake = index, count, gpu, fake

    @property
    def pinned(self) -> bool:
        """Its sampler is started with CUDA_VISIBLE_DEVICES=gpu and keyed by it."""
        return self.gpu is not None

    def label(self) -> str:
        if not self.pinned:
            return (
                "the only GPU slot (CUDA_VISIBLE_DEVICES as set: "
                + os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
                + ")"
            )
        where = "no GPU visible: its sampler runs on the CPU" if self.fake else f"CUDA_VISIBLE_DEVICES={self.gpu}"
        return f"GPU slot {self.index} of {self.count} (GPU {self.gpu}; {where})"

    def record(self) -> dict:
        """What records.json says about the slot that made a class."""
        return {"index": self.index, "of": self.count, "gpu": self.gpu, "fake": self.fake}

    def __repr__(self):
        return f"Slot({self.index}, {self.count}, {self.gpu!r}, fake={self.fake})"


def _cuda_visible(value: str) -> list[str]:
    """The GPUs a CUDA_VISIBLE_DEVICES value names, in order. CUDA stops at the first entry that is not a device
    (so "-1", or "", hides every GPU)."""
    out = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        out.append(entry)
    return out


def count_node_gpus() -> int:
    """The NVIDIA GPUs of this machine, without torch or CUDA: the driver's /proc entries, else `nvidia-smi -L`
    when it is installed; 0 on a machine without the driver."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return 0
        return sum(1 for line in out.splitlines() if line.startswith("GPU "))
    return 0


def visible_gpus(environ=None) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES values: the entries of CUDA_VISIBLE_DEVICES when it
    is set (SLURM sets it to the allocation's GPUs), else 0..n-1 for the node's n GPUs."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return _cuda_visible(env["CUDA_VISIBLE_DEVICES"])
    return [str(i) for i in range(count_node_gpus())]


def resolve_slots(setting=AUTO, visible: list[str] | None = None) -> list[Slot]:
    """The slots for generation.gpus. `auto`: one per visible GPU, or a single unpinned slot when there are fewer
    than two. A list of indices: one slot per index, an index into the visible GPUs (CUDA_VISIBLE_DEVICES's
    entries when it is set, else the node's GPUs); on a machine without GPUs the indices are fake slots, whose
    samplers run on the CPU but which are held, keyed and recorded as on a GPU node."""
    visible = visible_gpus() if visible is None else visible
    if setting == AUTO:
        if len(visible) < 2:
            return [Slot(0, 1, None)]
        return [Slot(i, len(visible), gpu) for i, gpu in enumerate(visible)]
    if (
        not isinstance(setting, list)
        or not setting
        or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in setting)
        or len(set(setting)) != len(setting)
    ):
        raise SlotError(
            f"generation.gpus: {setting!r} is not 'auto' or a list of distinct GPU indices (0, 1, ...). "
            f"Fix: gpus: auto, or e.g. gpus: [0, 1]."
        )
    if not visible:
        return [Slot(k, len(setting), str(i), fake=True) for k, i in enumerate(setting)]
    if missing := [i for i in setting if i >= len(visible)]:
        seen = (
            "CUDA_VISIBLE_DEVICES=" + os.environ["CUDA_VISIBLE_DEVICES"]
            if "CUDA_VISIBLE_DEVICES" in os.environ
            else "the node's GPUs"
        )
        raise SlotError(
            f"generation.gpus: {setting} names GPU index {missing[0]}, but this job sees {len(visible)} GPU(s) "
            f"({seen}: indices 0 to {len(visible) - 1}). Fix: list indices below {len(visible)}, or gpus: auto."
        )
    return [Slot(k, len(setting), visible[i]) for k, i in enumerate(setting)]


def idle_slots_note(slots: list[Slot], gpu_resource, cores) -> str | None:
    """What a run says when Snakemake would run fewer sample jobs at once (`--resources gpu=N`, `--cores`) than
    there are GPU slots, whose last ones would then stay idle (jobs take the first free slot); None otherwise."""
    limits = [(f"--resources gpu={gpu_resource}", gpu_resource), (f"--cores {cores}", cores)]
    limits = [(text, int(n)) for text, n in limits if isinstance(n, int) and not isinstance(n, bool)]
    if len(slots) < 2 or not limits or min(n for _, n in limits) >= len(slots):
        return None
    text, n = min(limits, key=lambda limit: limit[1])
    idle = ", ".join(f"{s.index} (GPU {s.gpu})" for s in slots[max(n, 1) :])
    return (
        f"generation.gpus gives {len(slots)} GPU slots, but {text} lets Snakemake run {n} sample job(s) at once, so "
        f"slot(s) {idle} stay idle. Fix: --resources gpu={len(slots)} (and --cores {len(slots)} or more), or list "
        f"only the GPUs to use in generation.gpus."
    )


# ---- holding a slot -----------------------------------------------------------------------------------------


def _file_name(gpu: str) -> str:
    """A slot's lock file: per GPU (a UUID or MIG id made safe for a file name), and per SLURM job, whose
    allocation's GPUs are its own even where two jobs on one node both call theirs 0."""
    job = os.environ.get("SLURM_JOB_ID")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", gpu)
    return f"slot-{job}-gpu{safe}.lock" if job else f"slot-gpu{safe}.lock"


def slot_lock_path(directory: Path, slot: Slot) -> Path:
    return Path(directory) / _file_name(slot.gpu or "default")


# A slot whose holder has been stopped (state T: Ctrl-Z, SIGSTOP, a debugger) this long is used beside it by a sample
# job: a stopped job would otherwise hold its GPU for every other run until it is continued. Its sampler drops the
# stopped job's request within a second of its writes blocking (server.STOPPED_GRACE_S), so the two never sample at
# once. Never a stopped training job's slot (it holds the GPU itself, and trains on when continued), and never beside
# anything for a training job (the next job to come would not see it there).
STOPPED_HOLDER_S = 2.0


# A holder beats at most this often (a message from its sampler comes every 2 s: protocol.HEARTBEAT_S).
BEAT_S = 1.0

# What a training job (an evaluation, a kd cache: gendistill.evaluation.gpus) writes after its pid in the slot
# files it holds; a sample job writes its pid alone.
TRAINING = "training"


class SlotHold:
    """Hold `count` free slots of `slots` while the job runs (`with SlotHold(...) as slot:`, the first of them;
    all of them in `held`); waits, saying for whom, while fewer are free, and never shares one with a running job
    (a sample job uses a stopped sample job's slot beside it). A job that needs several takes them all at once or
    none (holding some while it waits could leave two such jobs waiting for each other). A wait ends with
    SlotWaitTimeout, naming the holders, once it has lasted `timeout` seconds and none of them has shown progress
    for as long (twice generation.server_timeout_seconds: a sample job fails by itself when its sampler's start
    lock, then its sampler, is silent for that long, and a training job beats every second while it runs, so one
    silent longer has hung or is stopped). A single slot is not locked (nothing to choose; its sampler queues the
    jobs, as without slots). `training`: the holder is a training job, which waiting jobs never use a slot
    beside."""

    def __init__(
        self,
        slots: list[Slot],
        directory: Path | None,
        say=print,
        poll: float = 0.1,
        timeout: float | None = None,
        count: int = 1,
        training: bool = False,
    ):
        self.slots, self.directory, self.say, self.poll, self.timeout = slots, directory, say, poll, timeout
        self.count, self.training = count, training
        self.fds: list[int] = []
        self.held: list[Slot] = []
        self.waited = 0.0
        self.beside_stopped: int | None = None  # the stopped job whose slot this one uses, if any
        self.last_beat = 0.0

    @property
    def slot(self) -> Slot | None:
        return self.held[0] if self.held else None

    def beat(self) -> None:
        """Show the jobs waiting for these slots that their holder is making progress (the lock files' mtimes)."""
        now = time.monotonic()
        if self.fds and now - self.last_beat >= BEAT_S:
            try:
                for fd in self.fds:
                    os.utime(fd)
            except OSError:
                return
            self.last_beat = now

    def _all_silent(self, busy: list[tuple[Slot, int]]) -> str | None:
        """When every busy slot's holder has shown no progress for `timeout`: who they are; else None."""
        if self.timeout is None or not busy:
            return None
        parts = []
        for slot, fd in busy:
            silent = time.time() - os.fstat(fd).st_mtime
            if silent < self.timeout:
                return None
            parts.append(f"slot {slot.index} (GPU {slot.gpu}) by {holder(fd)}, no progress for {silent:.0f}s")
        return "; ".join(parts)

    @staticmethod
    def _holders(busy: list[tuple[Slot, int]]) -> str:
        return "; ".join(f"slot {slot.index} (GPU {slot.gpu}) by {holder(fd)}" for slot, fd in busy)

    def _take(self, fds: list[int]) -> tuple[list[tuple[Slot, int]], list[tuple[Slot, int]]]:
        """(`count` slots locked now, or none; the slots another job holds): each slot tried without blocking, a
        partial set let go."""
        taken, busy = [], []
        for slot, fd in zip(self.slots, fds):
            if len(taken) == self.count:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy.append((slot, fd))
                continue
            taken.append((slot, fd))
        if len(taken) == self.count:
            return taken, busy
        for _, fd in taken:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return [], busy

    def __enter__(self) -> Slot:
        if self.count > len(self.slots):
            raise SlotError(
                f"this job trains on {self.count} GPUs (evaluation.processes), and generation.gpus gives "
                f"{len(self.slots)} GPU slot(s). Fix: evaluation.processes: {len(self.slots)}, or list "
                f"{self.count} GPUs in generation.gpus (or gpus: auto)."
            )
        if len(self.slots) == 1:
            self.held = [self.slots[0]]
            return self.held[0]
        from .runtime import open_private  # the private, symlink-refusing open of every runtime file

        fds: list[int] = []
        t0, told = time.monotonic(), None
        stopped_since: dict[int, tuple[int, float]] = {}  # slot index -> (its holder's pid, first seen stopped)
        mark = f"{os.getpid()} {TRAINING}\n" if self.training else f"{os.getpid()}\n"
        try:
            for s in self.slots:
                fds.append(open_private(slot_lock_path(self.directory, s), os.O_RDWR | os.O_CREAT))
            while True:
                taken, busy = self._take(fds)
                if taken:
                    for _, fd in taken:
                        os.ftruncate(fd, 0)
                        os.pwrite(fd, mark.encode(), 0)
                    self.held, self.fds = [s for s, _ in taken], [fd for _, fd in taken]
                    self.waited = time.monotonic() - t0
                    if told:
                        self.say(f"waited {self.waited:.1f}s for {self._wanted()}", flush=True)
                    return self.held[0]
                now = time.monotonic()
                if self.count == 1 and not self.training and (beside := self._beside_stopped(busy, stopped_since)):
                    slot, pid = beside
                    self.held, self.beside_stopped = [slot], pid
                    self.waited = now - t0
                    self.say(
                        f"GPU slot {slot.index} (GPU {slot.gpu}) is held by pid {pid}, which has been stopped "
                        f"(state T) for {STOPPED_HOLDER_S:.0f}s: using that slot beside it (its sampler drops a "
                        f"stopped job's request, which fails when it is continued)",
                        flush=True,
                    )
                    return slot
                if now - t0 >= (self.timeout or 0) and (hung := self._all_silent(busy)):
                    raise SlotWaitTimeout(
                        f"waited {now - t0:.0f}s for {self._wanted()}, and no holder has shown progress for "
                        f"{self.timeout:.0f}s (twice generation.server_timeout_seconds): {hung}. A sample job whose "
                        f"sampler answers shows progress every 2s, and a training job every second while it runs, so "
                        f"these are hung or stopped. Fix: end them (`kill <pid>`; a stopped one: `kill -CONT <pid>` "
                        f"to let it go on) and rerun; or, with generation.server: false and a load or batch slower "
                        f"than that, raise generation.server_timeout_seconds."
                    )
                holders = self._holders(busy)
                if holders != told:  # said when it starts waiting, and again when the holders change
                    free = len(self.slots) - len(busy)
                    n = len(self.slots)
                    held = f"{free} of {n} are free, the others held" if free else f"all {n} are held"
                    self.say(
                        f"waiting for {self._wanted()}: {held} by other jobs ({holders}); a slot is never shared "
                        f"with a running job",
                        flush=True,
                    )
                    told = holders
                time.sleep(self.poll)
        finally:
            for fd in fds:
                if fd not in self.fds:
                    os.close(fd)

    def _wanted(self) -> str:
        return "a free GPU slot" if self.count == 1 else f"{self.count} free GPU slots at once"

    def _beside_stopped(self, busy, stopped_since) -> tuple[Slot, int] | None:
        """A slot whose holder, a sample job, has been stopped for STOPPED_HOLDER_S: (slot, its pid); else None."""
        now = time.monotonic()
        stopped = set()
        for slot, fd in busy:
            pid = holder_pid(fd)
            if pid is None or holder_is_training(fd) or process_state(pid) not in ("T", "t"):
                continue
            stopped.add(slot.index)
            if stopped_since.setdefault(slot.index, (pid, now))[0] != pid:
                stopped_since[slot.index] = (pid, now)
            elif now - stopped_since[slot.index][1] >= STOPPED_HOLDER_S:
                return slot, pid
        for index in set(stopped_since) - stopped:
            del stopped_since[index]
        return None

    def __exit__(self, *exc):
        for fd in self.fds:
            os.close(fd)  # releases the slot (as the kernel does when the job ends any other way)
        self.fds = []
        return False


def _holder_fields(fd: int) -> list[str]:
    try:
        return os.pread(fd, 64, 0).decode().split()
    except (OSError, ValueError):
        return []


def holder_pid(fd: int) -> int | None:
    """The pid a slot lock's holder wrote into it after taking it (None if none is written)."""
    try:
        return int(_holder_fields(fd)[0])
    except (ValueError, IndexError):
        return None


def holder_is_training(fd: int) -> bool:
    """Whether a slot lock's holder wrote that it is a training job (an evaluation, a kd cache)."""
    return TRAINING in _holder_fields(fd)[1:]


def holder(fd: int) -> str:
    """Who holds a slot lock, from the pid its holder wrote after taking it (honest when it cannot tell)."""
    pid = holder_pid(fd)
    if pid is None:
        return "a job that has not yet written its pid"
    state = process_state(pid)
    if state == "?":
        return f"a job that has not yet written its pid (the file still names pid {pid}, which has ended)"
    return f"pid {pid} (state {state}{', training' if holder_is_training(fd) else ''})"
