"""RDED's selection (Sun et al., "On the Diversity and Realism of Distilled Dataset", CVPR 2024, arXiv 2312.03526),
as its public code does it (LINs-lab/RDED @3f6453d: synthesize/main.py, synthesize/utils.py, argument.py,
scripts/*.sh), one class at a time:

1. `images` (RDED's mipc, 300 in every script) of the class's real training images, a seeded random choice (all of
   them when the class has fewer);
2. `crops` (num_crop, 5) random resized crops of each: a square (ratio 1) covering a fraction of the image's area
   drawn from `scale` (torchvision's RandomResizedCrop default, 0.08-1), resized to resolution / factor;
3. every crop scored by the teacher: cross-entropy of the class's label (softmax over the run's classes, as RDED
   prunes its classifier to the subset's classes), the crop zero-padded to the teacher's input size in normalised
   space when factor > 1 (RDED's `pad`); lowest loss = most realistic;
4. each image keeps its lowest-loss crop; the IPC x factor^2 images whose crop has the lowest loss are kept, ranked;
5. factor 1: each kept crop is an image (RDED's CIFAR and Tiny-ImageNet scripts). factor 2: image i of the class
   is the 2x2 mosaic of the crops ranked i, IPC + i, 2 IPC + i, 3 IPC + i, row by row (RDED's `mix_images`, its
   ImageNet scripts).

Where this differs from the code: the crops' positions and areas come from a numpy generator seeded per class
(RDED draws from torch's global generator and shuffles files with Python's `random`, unseeded); crops are
resized with antialiased bilinear interpolation (RandomResizedCrop's antialias=True) and placed with it too
(RDED places with F.interpolate's nearest, a no-op at even sizes); ties go to the lower index. RDED's relabelling
with region-level soft labels is not part of the selection: the label regimes are the evaluation's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def class_rng(seed: int, label: int) -> np.random.Generator:
    """The class's generator: from [seed, label, 2] (2: RDED; k-means uses [seed, label])."""
    return np.random.default_rng([seed, label, 2])


def crop_boxes(rng: np.random.Generator, n_images: int, n_crops: int, size: int, scale) -> np.ndarray:
    """[n_images, n_crops, 3] (top, left, side) of square crops of a size x size image: area fraction uniform in
    `scale`, position uniform (torchvision's RandomResizedCrop.get_params at ratio 1)."""
    lo, hi = scale
    area = rng.uniform(lo, hi, size=(n_images, n_crops)) * size * size
    side = np.clip(np.rint(np.sqrt(area)).astype(int), 1, size)
    top = rng.integers(0, size - side + 1)
    left = rng.integers(0, size - side + 1)
    return np.stack([top, left, side], axis=-1)


def resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)


def cut(images: torch.Tensor, boxes: np.ndarray, out: int) -> torch.Tensor:
    """Crops of float images [N, 3, S, S] at `boxes` [N, M, 3], each resized to out x out: [N, M, 3, out, out]."""
    n, m = boxes.shape[:2]
    crops = torch.empty(n, m, images.shape[1], out, out, dtype=images.dtype)
    for i in range(n):
        for j in range(m):
            t, left, s = (int(v) for v in boxes[i, j])
            crops[i, j] = resize(images[i : i + 1, :, t : t + s, left : left + s], out, out)[0]
    return crops


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad [N, C, h, w] to size x size, centred (RDED's `pad`: top/left get the smaller half)."""
    dh, dw = size - x.shape[-2], size - x.shape[-1]
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def choose(losses: np.ndarray, n_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """losses [n_images, n_crops] -> (kept images ranked by their best crop's loss, lowest first; each one's best
    crop). Ties go to the lower crop, then the lower image."""
    best_crop = np.argmin(losses, axis=1)
    best = losses[np.arange(len(losses)), best_crop]
    ranked = np.argsort(best, kind="stable")[:n_keep]
    return ranked, best_crop[ranked]


def stitch(crops: torch.Tensor, n_out: int, factor: int, size: int) -> torch.Tensor:
    """RDED's mix_images: crops [n_out x factor^2, C, s, s] in rank order -> n_out images [n_out, C, size, size];
    position p (row-major) of image i holds crop p x n_out + i. Rows and columns share size's remainder (the first
    ones are a pixel larger)."""
    s, extra = divmod(size, factor)
    out = torch.zeros(n_out, crops.shape[1], size, size, dtype=crops.dtype)
    p, top = 0, 0
    for r in range(factor):
        h = s + 1 if r < extra else s
        left = 0
        for c in range(factor):
            w = s + 1 if c < extra else s
            out[:, :, top : top + h, left : left + w] = resize(crops[p * n_out : (p + 1) * n_out], h, w)
            left += w
            p += 1
        top += h
    return out


def choose_images(rng: np.random.Generator, n: int, images: int) -> np.ndarray:
    """Which of a class's n real training images are scored: `images` of them at random (all when fewer), in the
    class's order."""
    return np.sort(rng.permutation(n)[: min(images, n)])


def rded_class(
    images_uint8: np.ndarray,
    n_out: int,
    loss_fn,
    rng: np.random.Generator,
    *,
    crops: int,
    factor: int,
    scale,
    mean,
    std,
) -> tuple[np.ndarray, list[dict]]:
    """One class: `images_uint8` [N, S, S, 3] are its chosen real training images (choose_images, then `rng`
    goes on to draw the crops) at the teacher's resolution S; `loss_fn(normalised [B, 3, S, S]) -> the teacher's
    loss of the class [B]`. Returns the n_out images (uint8 [n_out, S, S, 3]) and one record per kept crop: the
    image it is in, its position there, its rank, its source (an index into images_uint8), crop, box and loss."""
    n, size = len(images_uint8), images_uint8.shape[1]
    n_keep = n_out * factor**2
    if n < n_keep:
        raise ValueError(
            f"{n} real training images scored, fewer than the {n_keep} crops RDED keeps ({n_out} images x "
            f"factor {factor}^2, one crop per real image)"
        )
    x = torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float().div(255.0)
    boxes = crop_boxes(rng, n, crops, size, scale)
    side = size // factor
    c = cut(x, boxes, side)  # [n, m, 3, side, side] in [0, 1]
    m_, s_ = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    flat = (c.reshape(-1, *c.shape[2:]) - m_) / s_
    if side != size:
        flat = pad_to(flat, size)
    losses = np.asarray(loss_fn(flat), dtype=np.float64).reshape(n, crops)
    ranked, crop_of = choose(losses, n_keep)
    kept = c[torch.as_tensor(ranked), torch.as_tensor(crop_of)]  # [n_keep, 3, side, side], rank order
    out = stitch(kept, n_out, factor, size)
    out_u8 = out.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    records = []
    for rank, (img, crop) in enumerate(zip(ranked, crop_of)):
        t, left, s = (int(v) for v in boxes[img, crop])
        records.append(
            {
                "image": rank % n_out,
                "position": rank // n_out,
                "rank": rank,
                "source": int(img),
                "crop": int(crop),
                "top": t,
                "left": left,
                "side": s,
                "teacher_loss": float(losses[img, crop]),
            }
        )
    return out_u8, records
