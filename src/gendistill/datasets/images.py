"""Read image files into one uint8 [N, H, W, 3] array at a fixed size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .base import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def read_images(paths: list[Path], size: int, resize: int | None = None) -> np.ndarray:
    """Decode, convert to RGB (Tiny-ImageNet has some greyscale JPEGs), resize the short side to `resize` (default
    `size`) keeping the aspect ratio, and crop the centre size x size square (torchvision's Resize(resize) +
    CenterCrop(size)). A square image at `size` is read as it is."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                out[i] = np.asarray(resize_crop(im.convert("RGB"), size, resize))
        except (OSError, UnidentifiedImageError) as e:
            raise DatasetError(f"cannot read image {p}: {type(e).__name__}: {e}") from None
    return out


def resize_crop(im: Image.Image, size: int, resize: int | None = None) -> Image.Image:
    """The short side to `resize` (default `size`), the other in proportion (rounded as torchvision's Resize),
    then the centre size x size square (CenterCrop's offsets)."""
    short = resize or size
    w, h = im.size
    if (w, h) != (size, size) or short != size:
        tw, th = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        if (tw, th) != (w, h):
            im = im.resize((tw, th), Image.Resampling.BICUBIC, reducing_gap=None)
        left, top = int(round((tw - size) / 2.0)), int(round((th - size) / 2.0))
        im = im.crop((left, top, left + size, top + size))
    return im
