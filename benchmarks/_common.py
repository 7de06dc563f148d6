"""Shared helpers of the benchmark scripts: machine/software description, CSV appending, timing summaries."""

from __future__ import annotations

import csv
import datetime as _dt
import os
import platform
import socket
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    """What ran the benchmark: enough to tell two CSV rows from different machines/software apart."""
    import diffusers
    import torch
    import transformers

    info = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else "",
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "git": git_commit(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
    }
    return info


def append_csv(path: Path, rows: list[dict]) -> None:
    """Append rows; write the header when the file is new. A changed column set starts a new header block."""
    if not rows:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(rows[0].keys())
    for r in rows[1:]:
        fields += [k for k in r if k not in fields]
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with path.open() as f:
            header = next(csv.reader(f), [])
        if header != fields:
            new = True  # different columns: write a fresh header line so each block stays readable
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerows(rows)


def summarize(rates: list[float]) -> dict:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "n": len(rates)}


def fmt_table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    num = [all(_numeric(r[i]) for r in cells[1:]) for i in range(len(headers))]

    def line(r):
        return "| " + " | ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(r, widths, num)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def _numeric(s: str) -> bool:
    try:
        float(s.rstrip("x").split("-")[0])
        return True
    except ValueError:
        return False
