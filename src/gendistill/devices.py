"""The one reading of a `device` setting (generation.device, evaluation.device): `auto` is the GPU when one is
visible, else the CPU; `cuda` with no GPU visible is refused before any work, naming the setting and the fix.
Importing this module does not import torch (the plan uses `gpu_visible` when Snakemake builds the DAG)."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_device(name: str, setting: str = "generation.device") -> str:
    import torch  # deferred: the plan imports this module without torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"{setting}: cuda requested but no CUDA device is visible. Fix: run on a GPU node, or set {setting}: cpu."
        )
    return name


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process, without importing torch (the plan's guess of where
    `auto` will run): CUDA_VISIBLE_DEVICES not emptied, and a driver that lists a GPU."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return gpus.is_dir() and any(gpus.iterdir())
    except OSError:
        return False


def gpu_count() -> int:
    """How many GPUs this process may use, without importing torch: those CUDA_VISIBLE_DEVICES names when it is
    set, else those the NVIDIA driver lists."""
    if not gpu_visible():
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    return len(list(Path("/proc/driver/nvidia/gpus").iterdir()))
