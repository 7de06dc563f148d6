"""Whether a process is alive, and which process a pid names (pids are reused), from /proc (Linux).

Low on purpose: atomic writes (stale temporaries of ended processes) and the sampler (its clients, its jobs'
ancestors) both ask.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: with the pid, it names one process (pids are reused)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_state(pid: int) -> str:
    """'R', 'S', 'T' (stopped), 'Z'... from /proc/<pid>/stat, or '?' if it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def alive(pid: int, started: str | None = None) -> bool:
    """Process `pid` exists (another user's too), and is the one that started at `started` when given."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or process_start_time(pid) == started
