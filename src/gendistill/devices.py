"""The one reading of a `device` setting (generation.device, evaluation.device): `auto` is the GPU when one is
visible, else the CPU; `cuda` with no GPU visible is refused before any work, naming the setting and the fix."""

from __future__ import annotations

import torch


def resolve_device(name: str, setting: str = "generation.device") -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"{setting}: cuda requested but no CUDA device is visible. Fix: run on a GPU node, or set {setting}: cpu."
        )
    return name
