"""Training-time augmentation of an evaluation: applied to each batch of normalised images [B, 3, H, W] on the
device the batch is on, as whole-batch tensor operations; every random choice is drawn from the training run's
seeded generator (a CPU generator, whatever the device: the same seed gives the same run on every device).

`evaluation.augment` names the per-image transforms:

- crop_flip: random crop with zero padding 4 and a horizontal flip (the field's ConvNet recipe; the default).
- dsa: Differentiable Siamese Augmentation as the DC/DSA/MTT line of work and the ECCV 2024 challenge's evaluation
  script use it ("S" mode): per batch ONE of color (brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5]),
  crop (shift up to 1/8 of the side, zero fill), cutout (a zeroed square of half the side), flip (p 0.5), scale
  (x[1/1.2, 1.2] per axis) or rotate (+-15 degrees), with per-image parameters.
- rrc_flip: random resized crop (area fraction in `rrc_scale`, aspect ratio in [3/4, 4/3], torchvision's rule of
  10 attempts then the whole image) resized back by bilinear sampling, and a horizontal flip (SRe2L, RDED).

`evaluation.mix` then mixes the batch with a permutation of itself: cutmix (a box of area 1 - lam pasted from the
partner, lam ~ Beta(b, b)) or mixup (lam x + (1 - lam) x_partner). The loss sees the mixed images and, for hard and
fixed soft labels, the targets mixed by lam; with the teacher run online (labels kd) the teacher labels the mixed
images themselves, as RDED and SRe2L train.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

AUGMENTS = ("crop_flip", "dsa", "rrc_flip")
MIXES = ("none", "cutmix", "mixup")

# DSA's parameters (the values of the DSA paper's code, which the challenge's script and DD-Ranking keep)
DSA = {
    "scale": 1.2,
    "rotate_degrees": 15.0,
    "flip": 0.5,
    "brightness": 1.0,
    "saturation": 2.0,
    "contrast": 0.5,
    "crop": 0.125,
    "cutout": 0.5,
}
DSA_GROUPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
# affine_grid / grid_sample as the DSA code calls them (its default; DD-Ranking's copy passes True)
DSA_ALIGN_CORNERS = False


def _windows(xp: torch.Tensor, top: list[int], left: list[int], h: int, w: int) -> torch.Tensor:
    """Image i's h x w window at (top[i], left[i]) of `xp`, for every image at once (one gather on its device)."""
    n, c = xp.shape[:2]
    dev = xp.device
    rows = torch.tensor(top, device=dev).view(n, 1) + torch.arange(h, device=dev)
    cols = torch.tensor(left, device=dev).view(n, 1) + torch.arange(w, device=dev)
    i = torch.arange(n, device=dev).view(n, 1, 1, 1)
    ch = torch.arange(c, device=dev).view(1, c, 1, 1)
    return xp[i, ch, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per-sample random crop (zero padding `pad`) and horizontal flip, drawn from `gen`."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    flip = torch.rand(n, generator=gen) < 0.5
    out = _windows(xp, oy, ox, h, w)
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), out.flip(3), out)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _affine(x: torch.Tensor, theta: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def _flip(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    f = torch.rand(len(x), generator=gen) < p
    return torch.where(f.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)


def _shift(x: torch.Tensor, gen: torch.Generator, frac: float) -> torch.Tensor:
    """Translate each image by up to round(frac x side) pixels per axis, filling with zeros."""
    n, _, h, w = x.shape
    sy, sx = int(h * frac + 0.5), int(w * frac + 0.5)
    dy = torch.randint(-sy, sy + 1, (n,), generator=gen).tolist()
    dx = torch.randint(-sx, sx + 1, (n,), generator=gen).tolist()
    xp = F.pad(x, (sx, sx, sy, sy))
    return _windows(xp, [sy + d for d in dy], [sx + d for d in dx], h, w)


def _cutout(x: torch.Tensor, gen: torch.Generator, frac: float) -> torch.Tensor:
    """Zero a square of side round(frac x side) centred anywhere in the image (cut at its borders)."""
    n, _, h, w = x.shape
    ch, cw = int(h * frac + 0.5), int(w * frac + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n,), generator=gen).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n,), generator=gen).to(x.device)
    y0, x0 = (cy - ch // 2).view(n, 1), (cx - cw // 2).view(n, 1)
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_y, in_x = (rows >= y0) & (rows < y0 + ch), (cols >= x0) & (cols < x0 + cw)  # [n, h], [n, w]
    mask = ~(in_y.view(n, 1, h, 1) & in_x.view(n, 1, 1, w))
    return x * mask.to(x.dtype)


def _color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = len(x)

    def draw():  # drawn on the generator's CPU, used on the batch's device
        return torch.rand(n, 1, 1, 1, generator=gen, dtype=x.dtype).to(x.device)

    x = x + (draw() - 0.5) * DSA["brightness"]
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (draw() * DSA["saturation"]) + m
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (draw() + DSA["contrast"]) + m


def _scale(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    r = DSA["scale"]
    sx, sy = _uniform(len(x), 1 / r, r, gen), _uniform(len(x), 1 / r, r, gen)
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    return _affine(x, theta, DSA_ALIGN_CORNERS)


def _rotate(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    a = _uniform(len(x), -1.0, 1.0, gen) * math.radians(DSA["rotate_degrees"])
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(a), -torch.sin(a)
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(a), torch.cos(a)
    return _affine(x, theta, DSA_ALIGN_CORNERS)


def dsa(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """DSA in "S" mode: one transform group drawn for the batch, its parameters drawn per image."""
    group = DSA_GROUPS[int(torch.randint(0, len(DSA_GROUPS), (1,), generator=gen))]
    if group == "color":
        return _color(x, gen)
    if group == "crop":
        return _shift(x, gen, DSA["crop"])
    if group == "cutout":
        return _cutout(x, gen, DSA["cutout"])
    if group == "flip":
        return _flip(x, gen, DSA["flip"])
    if group == "scale":
        return _scale(x, gen)
    return _rotate(x, gen)


def random_resized_crop_flip(
    x: torch.Tensor, gen: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> torch.Tensor:
    """torchvision's RandomResizedCrop rule per image (crop area fraction in `scale`, aspect ratio log-uniform in
    `ratio`, 10 attempts, else the whole image), resized back to the input size by bilinear sampling; then a
    horizontal flip with probability 0.5."""
    n, _, h, w = x.shape
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    theta = torch.zeros(n, 2, 3)
    for i in range(n):
        ch, cw, top, left = h, w, 0, 0
        for _ in range(10):
            area = h * w * float(_uniform(1, scale[0], scale[1], gen))
            r = math.exp(float(_uniform(1, lo, hi, gen)))
            tw, th = int(round(math.sqrt(area * r))), int(round(math.sqrt(area / r)))
            if 0 < tw <= w and 0 < th <= h:
                top = int(torch.randint(0, h - th + 1, (1,), generator=gen))
                left = int(torch.randint(0, w - tw + 1, (1,), generator=gen))
                ch, cw = th, tw
                break
        # output [-1, 1] spans the crop's pixel edges [left, left + cw] x [top, top + ch] (align_corners=False)
        theta[i, 0, 0], theta[i, 0, 2] = cw / w, (2 * left + cw) / w - 1
        theta[i, 1, 1], theta[i, 1, 2] = ch / h, (2 * top + ch) / h - 1
    return _flip(_affine(x, theta), gen, 0.5)


def augment(x: torch.Tensor, gen: torch.Generator, recipe: dict) -> torch.Tensor:
    """The recipe's per-image augmentation (`augment`, default crop_flip)."""
    kind = recipe.get("augment", "crop_flip")
    if kind == "crop_flip":
        return random_crop_flip(x, gen)
    if kind == "dsa":
        return dsa(x, gen)
    if kind == "rrc_flip":
        return random_resized_crop_flip(x, gen, tuple(recipe.get("rrc_scale", (0.08, 1.0))))
    raise ValueError(f"unknown augmentation {kind!r}; use one of {', '.join(AUGMENTS)}")


class Mixed:
    """A mixed batch: image i is lam x image i + (1 - lam) x image perm[i] (by pixels for cutmix, by area)."""

    def __init__(self, perm: torch.Tensor, lam: float):
        self.perm, self.lam = perm, lam


def mix(x: torch.Tensor, gen: torch.Generator, kind: str, beta: float) -> tuple[torch.Tensor, Mixed | None]:
    """cutmix / mixup of a batch with a permutation of itself; lam ~ Beta(beta, beta). Returns (images, Mixed)."""
    if kind == "none" or len(x) < 2:
        return x, None
    perm = torch.randperm(len(x), generator=gen)
    lam = float(np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen))).beta(beta, beta))
    partner = x[perm.to(x.device)]
    if kind == "mixup":
        return lam * x + (1 - lam) * partner, Mixed(perm, lam)
    if kind != "cutmix":
        raise ValueError(f"unknown mix {kind!r}; use one of {', '.join(MIXES)}")
    _, _, h, w = x.shape
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(0, h, (1,), generator=gen)), int(torch.randint(0, w, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = partner[:, :, y0:y1, x0:x1]
    return out, Mixed(perm, 1.0 - (y1 - y0) * (x1 - x0) / (h * w))  # lam of the pasted box's real area
