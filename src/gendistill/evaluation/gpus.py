"""The GPUs a training job (rule evaluate, rule kd_cache) trains on: GPU slots, the sample jobs' own
(gendistill.sampling.slots), so that on a node with several GPUs concurrent jobs never share one.

A job that trains on N GPUs (evaluation.processes; a kd cache on one) takes N free slots of generation.gpus at once
and holds them while it runs (flocks in the private runtime directory, released by the kernel however the job
ends), then sets CUDA_VISIBLE_DEVICES to exactly those GPUs before anything starts CUDA: the job's torch, or
torchrun's processes, which inherit it and use their local rank within it. The slots' lock files are the sample
jobs': a sample job and a training job never share a GPU either. A thread beats on the lock files every second
while the job runs (an epoch, or reading a streamed set into memory, can outlast the wait's deadline, twice
generation.server_timeout_seconds), so jobs waiting for the GPUs wait for as long as it trains, and give up only
on a job that is stopped or hung whole.

Nothing changes where there is nothing to choose: evaluation.device cpu, a single unpinned slot (a machine with one
GPU or none, generation.gpus auto), or a job on a cluster, whose allocation's GPUs are its own. On a machine
without GPUs a list in generation.gpus gives CPU slots, held and recorded as on a GPU node (how the tests check
them); the job trains on the CPU.

Standard library only: the job imports this, and chooses its GPUs, before it imports torch.
"""

from __future__ import annotations

import json
import logging
import os
import threading

from ..sampling.slots import BEAT_S, Slot, SlotHold, resolve_slots

# The settings, set by the workflow (workflow/rules/common.smk) from evaluation.runs.slot_settings: runtime knobs,
# not params (which GPU trains a model decides none of its numbers).
ENV = "GENDISTILL_EVAL_SLOTS"

log = logging.getLogger("gendistill.evaluate")


def _say(line: str, **_) -> None:
    """SlotHold's lines (which slots, whom it waits for) in the job's log, with their times."""
    log.info("%s", line)


class TrainingGpus:
    """`with TrainingGpus(settings, count) as gpus:` holds `count` GPU slots (`settings`: evaluation.runs
    .slot_settings, by default from the environment) and makes them the process's only visible GPUs until the
    block ends; `gpus.record()` says which, for the job's result."""

    def __init__(self, settings: dict | None = None, count: int = 1, say=_say):
        if settings is None:
            settings = json.loads(os.environ.get(ENV) or "{}")
        self.settings, self.count, self.say = settings, count, say
        self.hold: SlotHold | None = None
        self._stop = threading.Event()
        self._beating: threading.Thread | None = None

    @property
    def held(self) -> list[Slot]:
        return self.hold.held if self.hold is not None else []

    @property
    def fds(self) -> list[int]:
        """The held slots' lock files, to pass to a child that trains on the GPUs (torchrun): the slots stay held
        until it has ended too."""
        return list(self.hold.fds) if self.hold is not None else []

    def __enter__(self) -> TrainingGpus:
        if not self.settings.get("take"):
            return self
        slots = resolve_slots(self.settings.get("gpus", "auto"))
        directory = None
        if len(slots) > 1:
            from ..sampling.runtime import resolve_runtime_dir

            directory = resolve_runtime_dir().path
        self.hold = SlotHold(
            slots,
            directory,
            say=self.say,
            timeout=self.settings.get("timeout"),
            count=self.count,
            training=True,
        )
        self.hold.__enter__()
        if all(s.pinned for s in self.held):
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(s.gpu for s in self.held)
            self.say(f"training on {self.label()}", flush=True)
        if self.hold.fds:
            self._beating = threading.Thread(target=self._beat, name="gpu-slot-beat", daemon=True)
            self._beating.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(BEAT_S):
            self.hold.beat()

    def label(self) -> str:
        """The pinned slots held, as the job's log names them."""
        held = self.held
        which = ", ".join(f"{s.index} (GPU {s.gpu})" for s in held)
        where = "; no GPU visible: it trains on the CPU" if held[0].fake else ""
        return (
            f"GPU slot(s) {which} of {held[0].count}: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}{where}"
        )

    def record(self) -> dict:
        """What the job's result says about where it trained (not a rerun trigger): the slots it held (index,
        count, GPU, whether a CPU slot; none where it took none) and the CUDA_VISIBLE_DEVICES it ran with."""
        return {
            "slots": [s.record() for s in self.held],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def __exit__(self, *exc):
        self._stop.set()
        if self._beating is not None:
            self._beating.join()
        if self.hold is not None:
            self.hold.__exit__(*exc)
        return False
