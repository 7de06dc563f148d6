"""Where an evaluation's images come from: tensors in memory, or image files streamed from disk.

A distilled set, a random real subset and the small datasets are tensors (`TensorSource`). A large real set
(ImageNet's 1.28 M training images) is never held in memory: `FileSource` reads, resizes and normalises each
batch's files in DataLoader workers. Both give the training loop the same thing: per epoch, batches in the
order of a permutation drawn from the loop's seeded generator, at the evaluation's resolution. A test set can be
read as the field tests (`resize`, evaluation.test_resize): the short side resized to `resize`, then the centre
square at the resolution; images always keep their aspect ratio (the short side, then the centre square).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..datasets import images


class TensorSource:
    """Normalised float images [N, 3, H, W] and labels in memory, resized per batch to `resolution` (with `resize`:
    the short side to `resize`, then the centre `resolution` square)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, resolution: int | None = None, resize: int | None = None):
        self.x, self.y = x, y
        self.resolution = resolution or x.shape[-1]
        self.resize = resize

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labels(self) -> torch.Tensor:
        return self.y

    def _fit(self, xb: torch.Tensor) -> torch.Tensor:
        r, (h, w) = self.resolution, xb.shape[-2:]
        short = self.resize or r
        th, tw = (int(short * h / w), short) if w <= h else (short, int(short * w / h))  # torchvision's Resize
        if (th, tw) != (h, w):
            xb = F.interpolate(xb, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
        top, left = int(round((th - r) / 2.0)), int(round((tw - r) / 2.0))  # CenterCrop
        return xb[..., top : top + r, left : left + r]

    def batches(self, order: torch.Tensor, bs: int):
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            yield self._fit(self.x[idx]), self.y[idx]


class FileSource:
    """Image files and labels on disk; a batch is read, resized to `resolution` (with `resize`: the short side to
    `resize`, then the centre square) and normalised when needed."""

    def __init__(
        self, paths: list[Path], labels: np.ndarray, resolution: int, mean, std, workers: int = 0, resize=None
    ):
        self.paths, self.y = list(paths), torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.resolution, self.mean, self.std, self.workers = resolution, tuple(mean), tuple(std), workers
        self.resize = resize

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labels(self) -> torch.Tensor:
        return self.y

    def batches(self, order: torch.Tensor, bs: int):
        ds = _Files(self.paths, self.y, self.resolution, self.mean, self.std, self.resize)
        # The order is the loop's permutation, so the sequence of images does not depend on the workers.
        loader = DataLoader(
            ds,
            batch_size=bs,
            sampler=order.tolist(),
            num_workers=self.workers,
            persistent_workers=False,
            pin_memory=False,
        )
        yield from loader


class _Files(Dataset):
    def __init__(self, paths, labels, resolution, mean, std, resize=None):
        self.paths, self.labels, self.resolution, self.resize = paths, labels, resolution, resize
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = images.read_images([self.paths[i]], self.resolution, self.resize)[0]
        x = torch.from_numpy(img).permute(2, 0, 1).float().div(255.0)
        return (x - self.mean) / self.std, self.labels[i]
