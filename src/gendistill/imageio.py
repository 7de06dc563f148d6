"""Deterministic PNG writing and reading (PIL's PNG encoder writes no timestamps: same pixels, same bytes)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def save_png(path: Path, img: np.ndarray) -> str:
    """Write `img` (uint8 [H, W, 3]) as PNG; return the sha256 of the file's bytes."""
    data = png_bytes(img)
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (a packaged set or a checkpoint can be GBs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
