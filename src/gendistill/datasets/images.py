"""Read image files into one uint8 [N, H, W, 3] array at a fixed size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .base import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def read_images(paths: list[Path], size: int) -> np.ndarray:
    """Decode, convert to RGB (Tiny-ImageNet has some greyscale JPEGs) and resize to size x size."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
                out[i] = np.asarray(im)
        except (OSError, UnidentifiedImageError) as e:
            raise DatasetError(f"cannot read image {p}: {type(e).__name__}: {e}") from None
    return out
