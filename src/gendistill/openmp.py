"""How OpenMP's threads wait between kernels, chosen from how busy this process's CPUs are when a job starts.

Torch's CPU kernels run on OpenMP threads that, after each kernel, spin for a while before they sleep (libgomp's
default). A job of many small kernels (the fit of the demo's generator) gains from the spin when the cores are its
own, and loses badly when other processes want them: the spinning threads hold cores the others need. Measured on 2
cores, 30 + 30 fit steps with 2 threads: 11.0 s with the default and 18.9 s with passive waiting on idle cores; with
two other busy processes, 69.1 s with the default and 38.1 s passive. So: passive when, at the start, other
processes already use the cores the job's threads need. The choice changes speed only, never results (the threads
split the work the same way). Torch-free: it must run before torch is imported (OpenMP reads the setting once).
"""

from __future__ import annotations

import os
import time


def busy_cores(window: float = 0.25) -> float | None:
    """Cores' worth of CPU time used by other processes over `window` seconds, on the CPUs this process may run
    on (from /proc/stat; this process sleeps meanwhile). None where /proc/stat cannot be read."""

    def sample(cpus: set[int]) -> tuple[int, int]:
        busy = total = 0
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
                    continue
                ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
        return busy, total

    try:
        cpus = os.sched_getaffinity(0)
        b0, t0 = sample(cpus)
        time.sleep(window)
        b1, t1 = sample(cpus)
    except (OSError, ValueError):
        return None
    return len(cpus) * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def choose_wait_policy(threads: int) -> str:
    """Set OMP_WAIT_POLICY for this process (before torch is imported) unless the environment already sets it, and
    say what was chosen and why (for the job's log)."""
    if "OMP_WAIT_POLICY" in os.environ:
        return f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} (from the environment)"
    busy = busy_cores()
    if busy is None:
        return "OMP_WAIT_POLICY unset (libgomp's default; /proc/stat unreadable)"
    free = len(os.sched_getaffinity(0)) - busy
    if free < threads - 0.5:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return f"OMP_WAIT_POLICY=PASSIVE: other processes use {busy:.1f} of the cores, {threads} threads want them"
    return f"OMP_WAIT_POLICY unset (libgomp's default): {free:.1f} cores free for {threads} threads"
