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


def fit_batch(xb: torch.Tensor, resolution: int, resize: int | None = None) -> torch.Tensor:
    """A batch [B, C, H, W] at `resolution`: the short side resized to `resize` (default the resolution), then the
    centre square (torchvision's Resize + CenterCrop)."""
    r, (h, w) = resolution, xb.shape[-2:]
    short = resize or r
    th, tw = (int(short * h / w), short) if w <= h else (short, int(short * w / h))  # torchvision's Resize
    if (th, tw) != (h, w):
        xb = F.interpolate(xb, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
    top, left = int(round((th - r) / 2.0)), int(round((tw - r) / 2.0))  # CenterCrop
    return xb[..., top : top + r, left : left + r]


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

    def batches(self, order: torch.Tensor, bs: int):
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            yield fit_batch(self.x[idx], self.resolution, self.resize), self.y[idx]


class DeviceImages:
    """uint8 images [N, 3, H, W] (a packaged set, a real split in memory) held on the training device, each batch
    gathered, normalised and resized there: no per-image loader, and a quarter of float32's memory (ImageNet-1k at
    IPC 50 and 224 px is 7.5 GB in uint8). The arithmetic is `normalise`'s (x / 255 - mean) / std, so the batches
    hold the same floats as a TensorSource of the normalised images. Labels stay on the CPU."""

    def __init__(self, x_uint8: torch.Tensor, y: torch.Tensor, mean, std, resolution=None, resize=None, device="cpu"):
        if x_uint8.dtype != torch.uint8 or x_uint8.ndim != 4:
            raise ValueError(f"uint8 [N, C, H, W] images expected, not {x_uint8.dtype} {tuple(x_uint8.shape)}")
        self.x, self.y = x_uint8.to(device), y
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.resolution = resolution or x_uint8.shape[-1]
        self.resize = resize

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labels(self) -> torch.Tensor:
        return self.y

    @property
    def nbytes(self) -> int:
        return self.x.numel() * self.x.element_size()

    def batches(self, order: torch.Tensor, bs: int):
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            xb = (self.x[idx.to(self.x.device)].float() / 255.0 - self.mean) / self.std
            yield fit_batch(xb, self.resolution, self.resize), self.y[idx]


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

    @property
    def nbytes(self) -> int:
        """Its images' size as uint8 at the resolution (what `held_on` takes)."""
        return len(self) * 3 * self.resolution * self.resolution

    def held_on(self, device: str, bs: int = 256) -> DeviceImages:
        """These images read once (by the workers, a batch at a time) into uint8 on `device`: the same floats
        per batch as reading the files every epoch (each file's resize and centre crop are fixed), one decode per
        image instead of one per image and epoch. For a set that fits the device (a random real subset)."""
        r = self.resolution
        x8 = torch.empty((len(self), 3, r, r), dtype=torch.uint8, device=device)
        ds = _Files(self.paths, self.y, r, self.mean, self.std, self.resize, raw=True)
        loader = DataLoader(ds, batch_size=bs, num_workers=self.workers)
        offset = 0
        for xb, _ in loader:
            x8[offset : offset + len(xb)] = xb.to(device)
            offset += len(xb)
        return DeviceImages(x8, self.y, self.mean, self.std, r, None, device)

    def share_batches(self, order: torch.Tensor, bs: int, rank: int, world_size: int):
        """With several processes: this process's share of each global batch of `order` (runtime.share_of), read
        by its own workers; the processes gather the shares into the global batch (train.global_batches)."""
        from .runtime import share_of

        shares = []
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            shares.append(idx[share_of(len(idx), rank, world_size)].tolist())
        ds = _Files(self.paths, self.y, self.resolution, self.mean, self.std, self.resize)
        loader = DataLoader(ds, batch_sampler=shares, num_workers=self.workers, collate_fn=_collate)
        for i, (xs, ys) in zip(range(0, len(order), bs), loader):
            yield xs, ys, len(order[i : i + bs])


def _collate(items):
    """default_collate, and an empty share (a global batch smaller than the processes) as empty tensors."""
    from torch.utils.data import default_collate

    return default_collate(items) if items else (torch.zeros(0), torch.zeros(0, dtype=torch.long))


class _Files(Dataset):
    def __init__(self, paths, labels, resolution, mean, std, resize=None, raw: bool = False):
        self.paths, self.labels, self.resolution, self.resize = paths, labels, resolution, resize
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.raw = raw  # uint8 [3, H, W] instead of normalised floats

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = images.read_images([self.paths[i]], self.resolution, self.resize)[0]
        if self.raw:
            return torch.from_numpy(img).permute(2, 0, 1).contiguous(), self.labels[i]
        x = torch.from_numpy(img).permute(2, 0, 1).float().div(255.0)
        return (x - self.mean) / self.std, self.labels[i]
