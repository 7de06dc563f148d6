"""Per-image seeds that depend only on (run seed, class, image index, attempt).

An image's starting noise therefore never depends on batch size, on which other classes exist, or on the order
jobs run (kernels may still round differently at another batch size: README, Reproducibility).
sha256 rather than Python's hash(): stable across processes and versions.
"""

from __future__ import annotations

import hashlib

SEED_SCHEME = "sha256('gendistill-v1:<purpose>:<seed>:<class_index>:<image_index>:<attempt>') mod 2**63"


def derive_seed(purpose: str, seed: int, class_index: int, image_index: int, attempt: int = 0) -> int:
    key = f"gendistill-v1:{purpose}:{int(seed)}:{int(class_index)}:{int(image_index)}:{int(attempt)}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % (2**63)


def image_seed(seed: int, class_index: int, image_index: int, attempt: int = 0) -> int:
    """Seed of the sampling noise for one generated image; `attempt` > 0 after a rejected (NaN/blank) image."""
    return derive_seed("sample", seed, class_index, image_index, attempt)


def augment_seed(seed: int, class_index: int, image_index: int, copy_index: int) -> int:
    """Seed of one augmented copy: copy `copy_index` (1-based) of generated image `image_index`."""
    return derive_seed("augment", seed, class_index, image_index, copy_index)
