"""GPU slots without a sampler (fast tier): which slots `generation.gpus` gives, counted without torch; the single
slot keeps the sampler's key and files as without slots; a job holds one slot at a time, waits (saying for whom)
while all are held, and never waits for a job that has ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from gendistill.processes import process_state
from gendistill.sampling import slots as slots_mod
from gendistill.sampling.runtime import key_id, paths, sampler_key
from gendistill.sampling.server import out_of_memory_note
from gendistill.sampling.slots import Slot, SlotError, SlotHold, resolve_slots, slot_lock_path, visible_gpus

LOAD = {"source": "/models/tiny", "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}


@pytest.mark.parametrize(
    ("value", "gpus"),
    [
        ("2,3", ["2", "3"]),
        ("GPU-8f3c1a2b,GPU-77aa0e1d", ["GPU-8f3c1a2b", "GPU-77aa0e1d"]),
        ("", []),
        ("-1", []),  # CUDA stops at the first entry that is not a device
        ("0,-1,2", ["0"]),
        (" 1 , 0 ", ["1", "0"]),
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(value, gpus):
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == gpus


def test_without_cuda_visible_devices_the_node_gpus_are_counted_without_torch(monkeypatch):
    monkeypatch.setattr(slots_mod, "count_node_gpus", lambda: 4)
    assert visible_gpus({}) == ["0", "1", "2", "3"]
    # no driver on this machine: no /proc/driver/nvidia/gpus, no nvidia-smi, so no GPU, and torch is not needed
    code = (
        "import sys; sys.path.insert(0, 'src'); from gendistill.sampling.slots import count_node_gpus; "
        "print(count_node_gpus(), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"
    if not os.path.isdir("/proc/driver/nvidia/gpus"):
        assert out[0] == "0"


def test_auto_gives_one_slot_per_visible_gpu_and_one_unpinned_slot_below_two():
    assert [(s.index, s.count, s.gpu) for s in resolve_slots("auto", ["0", "1", "2"])] == [
        (0, 3, "0"),
        (1, 3, "1"),
        (2, 3, "2"),
    ]
    for visible in ([], ["0"], ["5"]):
        (single,) = resolve_slots("auto", visible)
        assert not single.pinned and single.count == 1  # as without slots: the sampler sees what the job sees


def test_a_list_indexes_the_visible_gpus_and_gives_cpu_slots_without_gpus():
    assert [s.gpu for s in resolve_slots([1, 3], ["4", "5", "6", "7"])] == ["5", "7"]  # SLURM: CVD=4,5,6,7
    fake = resolve_slots([0, 1], [])
    assert [(s.index, s.gpu, s.fake, s.pinned) for s in fake] == [(0, "0", True, True), (1, "1", True, True)]
    assert fake[1].record() == {"index": 1, "of": 2, "gpu": "1", "fake": True}
    with pytest.raises(SlotError, match=r"names GPU index 2, but this job sees 2 GPU\(s\).*Fix: list indices below 2"):
        resolve_slots([0, 2], ["0", "1"])
    for bad in ([], [0, 0], [-1], "0,1", [True]):
        with pytest.raises(SlotError, match="not 'auto' or a list of distinct GPU indices"):
            resolve_slots(bad, ["0", "1"])


def test_single_slot_keeps_the_key_and_files_of_a_sampler_without_slots(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    (single,) = resolve_slots("auto", ["3"])
    assert sampler_key(LOAD, "c", single) == sampler_key(LOAD, "c")
    kid = key_id(sampler_key(LOAD, "c"))
    assert paths(kid, tmp_path, single) == paths(kid, tmp_path)
    a, b = resolve_slots([0, 1], ["0", "1"])
    keys = [sampler_key(LOAD, "c", s) for s in (a, b)]
    assert [k["cuda_visible"] for k in keys] == ["0", "1"]  # each GPU its own sampler
    socks = [paths(key_id(k), tmp_path, s)["socket"].name for k, s in zip(keys, (a, b))]
    assert socks[0].endswith("-slot00.sock") and socks[1].endswith("-slot01.sock") and socks[0] != socks[1]


def test_jobs_take_free_slots_and_wait_for_one_saying_for_whom(tmp_path):
    two = resolve_slots([0, 1], [])
    lines = []
    with SlotHold(two, tmp_path) as first, SlotHold(two, tmp_path) as second:
        assert (first.index, second.index) == (0, 1)
        got = []
        waiter = threading.Thread(target=lambda: got.append(take_and_release(two, tmp_path, lines)))
        waiter.start()
        time.sleep(0.5)
        assert not got, "a job took a slot that another job holds"
        assert lines and lines[0].startswith("waiting for a free GPU slot: all 2 are held by other jobs")
        assert f"slot 0 (GPU 0) by pid {os.getpid()}" in lines[0] and "a slot is never shared" in lines[0]
    waiter.join(10)
    assert got == [0] and lines[-1].startswith("waited ")


def take_and_release(slots, directory, lines, timeout=None):
    with SlotHold(slots, directory, say=lambda line, **_: lines.append(line), timeout=timeout) as slot:
        return slot.index


def test_a_single_slot_takes_no_lock(tmp_path):
    (single,) = resolve_slots("auto", [])
    with SlotHold([single], None) as a, SlotHold([single], None) as b:
        assert a is b is single  # its sampler queues the jobs, as without slots
    assert not list(tmp_path.iterdir())


def test_a_dead_jobs_slot_lock_does_not_block(tmp_path):
    """A job killed while it held slot 0 (SIGKILL: no cleanup) leaves its lock file naming it; the kernel released
    the lock, so the next job takes slot 0 at once."""
    two = resolve_slots([0, 1], [])
    path = slot_lock_path(tmp_path, two[0])
    holder = hold_in_a_process(path)
    lines = []
    # while it lives, it holds the slot
    with SlotHold(two, tmp_path) as slot:
        assert slot.index == 1
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert path.read_text() == f"{holder.pid}\n"  # the file still names the dead job
    t0 = time.monotonic()
    with SlotHold(two, tmp_path, say=lambda line, **_: lines.append(line)) as slot:
        assert slot.index == 0 and time.monotonic() - t0 < 1
    assert not lines  # no wait


def hold_in_a_process(path, mark: str = "") -> subprocess.Popen:
    """A job holding the slot lock at `path` (its pid written, as SlotHold does; `mark` after it: `training` for
    a training job) until it is killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d%s\\n' % (os.getpid(), sys.argv[2].encode())); "
            "print('held', flush=True); time.sleep(600)",
            str(path),
            f" {mark}" if mark else "",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_stopped_jobs_slot_is_used_beside_it_after_a_grace(tmp_path):
    """Every slot held, one by a stopped job (Ctrl-Z): after STOPPED_HOLDER_S the waiting job uses that slot (its
    sampler drops the stopped job's request), so a stopped run does not hold up another run's classes."""
    two = resolve_slots([0, 1], [])
    holders = [hold_in_a_process(slot_lock_path(tmp_path, s)) for s in two]
    try:
        holders[1].send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while process_state(holders[1].pid) != "T" and time.monotonic() < deadline:  # a signal is asynchronous
            time.sleep(0.01)
        lines = []
        t0 = time.monotonic()
        with SlotHold(two, tmp_path, say=lambda line, **_: lines.append(line)) as slot:
            waited = time.monotonic() - t0
            assert slot.index == 1 and slots_mod.STOPPED_HOLDER_S <= waited < slots_mod.STOPPED_HOLDER_S + 3
        assert "(state S)" in lines[0] or "(state R)" in lines[0]
        assert f"pid {holders[1].pid} (state T)" in lines[0]
        assert lines[-1].startswith(f"GPU slot 1 (GPU 1) is held by pid {holders[1].pid}, which has been stopped")
    finally:
        for h in holders:
            h.kill()
            h.send_signal(signal.SIGCONT)
            h.wait()


def test_a_wait_ends_naming_holders_that_show_no_progress_and_goes_on_while_they_do(tmp_path):
    """Issue 31, item 6: a slot wait had no deadline, so a holder that hangs for good held up every other job. A
    holder shows progress (SlotHold.beat: every message from its sampler) through its lock file's mtime; a job that
    waits gives up, naming the holders, once none has shown any for its deadline, and waits on while one does."""
    two = resolve_slots([0, 1], [])
    holders = [hold_in_a_process(slot_lock_path(tmp_path, s)) for s in two]
    try:
        t0 = time.monotonic()
        with pytest.raises(slots_mod.SlotWaitTimeout) as e:
            with SlotHold(two, tmp_path, say=lambda *a, **k: None, timeout=1.0):
                pass
        assert 1.0 <= time.monotonic() - t0 < 5
        msg = str(e.value)
        for h, slot in zip(holders, two):
            assert f"slot {slot.index} (GPU {slot.gpu}) by pid {h.pid} (state S), no progress for" in msg, msg
        assert "kill <pid>" in msg and "server_timeout_seconds" in msg
        stop = threading.Event()

        def beating(path):  # a holder whose sampler answers: its lock file touched every 0.2 s
            while not stop.wait(0.2):
                os.utime(path)

        beat = threading.Thread(target=beating, args=(slot_lock_path(tmp_path, two[1]),))
        beat.start()
        got = []
        waiter = threading.Thread(target=lambda: got.append(take_and_release(two, tmp_path, [], timeout=1.0)))
        waiter.start()
        time.sleep(2.5)
        assert not got and waiter.is_alive()  # it waits while slot 1's holder shows progress
        holders[1].kill()
        holders[1].wait()
        waiter.join(10)
        assert got == [1]
    finally:
        stop.set()
        for h in holders:
            h.kill()
            h.wait()


def test_a_holder_beats_through_its_lock_file(tmp_path):
    two = resolve_slots([0, 1], [])
    hold = SlotHold(two, tmp_path)
    with hold as slot:
        path = slot_lock_path(tmp_path, slot)
        os.utime(path, (1, 1))
        hold.beat()
        assert time.time() - path.stat().st_mtime < 5
        os.utime(path, (1, 1))
        hold.beat()  # at most once a second (BEAT_S)
        assert path.stat().st_mtime == 1


def test_fewer_jobs_at_once_than_slots_is_said():
    """Issue 31, item 6: `gpus: [0, 1]` with `--resources gpu=1` ran one class at a time on slot 0, with slot 1
    idle and nothing said."""
    two = resolve_slots([0, 1], [])
    note = slots_mod.idle_slots_note(two, 1, 8)
    assert note.startswith("generation.gpus gives 2 GPU slots, but --resources gpu=1 lets Snakemake run 1 sample")
    assert "slot(s) 1 (GPU 1) stay idle" in note and "Fix: --resources gpu=2" in note
    assert "--cores 1 lets" in slots_mod.idle_slots_note(two, 4, 1)
    assert slots_mod.idle_slots_note(two, 2, 2) is None and slots_mod.idle_slots_note(two, None, 4) is None
    assert slots_mod.idle_slots_note(resolve_slots("auto", []), 1, 1) is None  # one slot: nothing idles


def test_an_out_of_memory_gpu_is_reported_with_the_fix_and_other_errors_are_not():
    class OutOfMemoryError(RuntimeError):  # torch.cuda.OutOfMemoryError's name, without a GPU
        pass

    note = out_of_memory_note(
        OutOfMemoryError("CUDA out of memory. Tried to allocate 20 MiB"), Slot(1, 2, "3").record()
    )
    assert note.startswith("GPU 3 (GPU slot 1 of 2) is out of memory")
    assert "does not retry: this class failed" in note and "generation.gpus" in note
    assert out_of_memory_note(ValueError("bad weights")) is None


# ---- training jobs (evaluations, kd caches): several slots at once, beats from a thread, never shared beside


def test_a_job_that_trains_on_several_gpus_takes_them_all_at_once_or_none(tmp_path):
    """A 2-GPU evaluation with slot 0 held takes slots 1 and 2; with slots 0 and 1 held it waits, holding nothing
    (a one-slot job takes slot 2 meanwhile), and takes 0 and 2 once slot 0 is let go."""
    three = resolve_slots([0, 1, 2], [])
    holders = [hold_in_a_process(slot_lock_path(tmp_path, three[0]))]
    try:
        hold = SlotHold(three, tmp_path, count=2, training=True)
        with hold as first:
            assert first.index == 1 and [s.index for s in hold.held] == [1, 2]
            for s in hold.held:  # its pid and that it trains, for the log of a job that waits
                assert slot_lock_path(tmp_path, s).read_text() == f"{os.getpid()} training\n"
        holders.append(hold_in_a_process(slot_lock_path(tmp_path, three[1])))
        lines, got = [], []

        def wait_for_two():
            h = SlotHold(three, tmp_path, say=lambda line, **_: lines.append(line), count=2, training=True)
            with h:
                got.append([s.index for s in h.held])

        waiter = threading.Thread(target=wait_for_two)
        waiter.start()
        time.sleep(0.5)
        assert not got and lines[0].startswith("waiting for 2 free GPU slots at once: 1 of 3 are free, the others")
        assert f"slot 0 (GPU 0) by pid {holders[0].pid}" in lines[0] and "slot 2" not in lines[0]
        with SlotHold(three, tmp_path) as one:  # the waiting job holds no slot
            assert one.index == 2
        holders[0].kill()
        holders[0].wait()
        waiter.join(10)
        assert got == [[0, 2]] and lines[-1].startswith("waited ")
    finally:
        for h in holders:
            h.kill()
            h.wait()


def test_more_gpus_than_slots_is_refused():
    with pytest.raises(SlotError, match=r"trains on 3 GPUs \(evaluation.processes\), and generation.gpus gives 2"):
        with SlotHold(resolve_slots([0, 1], []), None, count=3, training=True):
            pass


def test_a_stopped_training_jobs_slot_is_never_used_beside_it(tmp_path):
    """A stopped sample job's slot is used beside it (its sampler drops its request); a stopped evaluation's is not:
    it holds the GPU itself and trains on when continued. The waiting job gives up, naming it, at its deadline."""
    two = resolve_slots([0, 1], [])
    holders = [hold_in_a_process(slot_lock_path(tmp_path, s), "training") for s in two]
    try:
        holders[1].send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while process_state(holders[1].pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        with pytest.raises(slots_mod.SlotWaitTimeout) as e:
            with SlotHold(two, tmp_path, say=lambda *a, **k: None, timeout=slots_mod.STOPPED_HOLDER_S + 1.5):
                pass
        assert time.monotonic() - t0 >= slots_mod.STOPPED_HOLDER_S + 1.5  # it never took the stopped job's slot
        assert f"pid {holders[1].pid} (state T, training)" in str(e.value) and "kill -CONT" in str(e.value)
    finally:
        for h in holders:
            h.kill()
            h.send_signal(signal.SIGCONT)
            h.wait()


def test_a_training_job_beats_while_it_runs_and_sees_only_its_gpus(tmp_path, monkeypatch):
    """gendistill.evaluation.gpus: an evaluation on 2 of 2 CPU slots sets CUDA_VISIBLE_DEVICES to them and records
    them; its thread touches the lock files every second, so a job waiting for a slot outwaits its own deadline
    (2.5 s here) while the evaluation runs, and takes a slot when it ends."""
    from gendistill.evaluation.gpus import TrainingGpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible: [0, 1] are CPU slots, on any machine
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    tmp_path.chmod(0o700)
    settings = {"gpus": [0, 1], "timeout": 2.5, "take": True}
    lines, got = [], []
    with TrainingGpus(settings, count=2, say=lambda line, **_: lines.append(line)) as gpus:
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
        assert gpus.record() == {
            "slots": [{"index": 0, "of": 2, "gpu": "0", "fake": True}, {"index": 1, "of": 2, "gpu": "1", "fake": True}],
            "cuda_visible_devices": "0,1",
        }
        assert lines == [
            "training on GPU slot(s) 0 (GPU 0), 1 (GPU 1) of 2: CUDA_VISIBLE_DEVICES=0,1; no GPU "
            "visible: it trains on the CPU"
        ]
        directory = tmp_path / "gendistill"
        waiter = threading.Thread(
            target=lambda: got.append(take_and_release(resolve_slots([0, 1], []), directory, [], timeout=2.5))
        )
        waiter.start()
        time.sleep(4.5)  # past the waiting job's deadline: the holder's beats keep it waiting
        assert waiter.is_alive() and not got
    waiter.join(10)
    assert got == [0]


def test_a_training_job_takes_no_slot_where_there_is_nothing_to_choose(monkeypatch):
    from gendistill.evaluation.gpus import TrainingGpus
    from gendistill.evaluation.runs import slot_settings

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    cfg = {"generation": {"gpus": [0, 1], "server_timeout_seconds": 120}, "evaluation": {"device": "auto"}}
    assert slot_settings(cfg, take=True) == {"gpus": [0, 1], "timeout": 240.0, "take": True}
    cpu = {**cfg, "evaluation": {"device": "cpu"}}
    for settings in (slot_settings(cfg, take=False), slot_settings(cpu, take=True)):  # a cluster job; the CPU
        assert settings["take"] is False
        with TrainingGpus(settings, count=2) as gpus:
            assert gpus.record() == {"slots": [], "cuda_visible_devices": ""} and not gpus.fds
    with TrainingGpus({"gpus": "auto", "take": True}) as gpus:  # one GPU or none: a single slot, not pinned
        assert gpus.record()["slots"] == [{"index": 0, "of": 1, "gpu": None, "fake": False}]
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "" and not gpus.fds
    # the job chooses its GPUs before torch starts CUDA: the module imports no torch
    code = "import sys; sys.path.insert(0, 'src'); import gendistill.evaluation.gpus; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
