"""Train-from-scratch evaluation with the field's recipe (SGD 0.9, lr 0.01 stepped x0.1 at half the epochs,
random crop + flip), then test accuracy and per-class accuracy on the real test set."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from .data import TensorSource
from .models import build_model

log = logging.getLogger("gendistill.evaluate")


def normalise(images_uint8_nhwc: np.ndarray, mean, std) -> torch.Tensor:
    # a copy straight to float: the source may be a read-only array (torch.load with mmap, np.load), which
    # torch.from_numpy would wrap with a warning
    x = torch.tensor(np.ascontiguousarray(images_uint8_nhwc), dtype=torch.float32).permute(0, 3, 1, 2).div(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per-sample random crop (zero padding `pad`) and horizontal flip, drawn from `gen`."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    flip = (torch.rand(n, generator=gen) < 0.5).tolist()
    out = torch.stack([xp[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w] for i in range(n)])
    if any(flip):
        f = torch.tensor(flip)
        out[f] = out[f].flip(3)
    return out


def lr_at(epoch: int, epochs: int, lr: float, schedule: str) -> float:
    if schedule == "step":
        return lr * (0.1 if epoch >= epochs // 2 else 1.0)
    if schedule == "cosine":
        return 0.5 * lr * (1 + np.cos(np.pi * epoch / epochs))
    return lr


def train_and_test(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    num_classes: int,
    model_name: str,
    seed: int,
    recipe: dict,
    device: str = "cpu",
    progress=None,
    label_set: list[int] | None = None,
) -> dict:
    """Train `model_name` from scratch with `recipe` and return accuracy, per-class accuracy and timings.

    The head has `num_classes` outputs (the dataset's label indices); with `label_set` (a class-restricted run)
    predictions are the argmax over those labels only, so chance is 1/len(label_set) as reported.
    `progress(epoch, epochs, loss)` is called after every epoch.
    """
    return fit_and_test(
        TensorSource(x_train, y_train),
        TensorSource(x_test, y_test),
        num_classes,
        model_name,
        seed,
        recipe,
        device,
        progress,
        label_set,
    )


def fit_and_test(
    train,
    test,
    num_classes: int,
    model_name: str,
    seed: int,
    recipe: dict,
    device: str = "cpu",
    progress=None,
    label_set: list[int] | None = None,
    soft_logits: torch.Tensor | None = None,
    kd: dict | None = None,
) -> dict:
    """train_and_test on sources (evaluation/data.py): tensors in memory or image files streamed from disk."""
    model, info = fit(train, num_classes, model_name, seed, recipe, device, progress, soft_logits, kd)
    return {**evaluate_on(model, test, device, max(recipe["batch_size"], 256), label_set), **info}


def evaluate_on(model, test, device: str = "cpu", bs: int = 256, label_set: list[int] | None = None) -> dict:
    """Accuracy and per-class accuracy of a trained model on a source."""
    y_test = test.labels
    pred = predict_source(model, test, device, bs, label_set)
    correct = (pred == y_test).float()
    per_class = {}
    for c in torch.unique(y_test).tolist():
        mask = y_test == c
        per_class[int(c)] = float(correct[mask].mean())
    return {"accuracy": float(correct.mean()), "per_class_accuracy": per_class, "n_test": int(len(y_test))}


def train_model(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    num_classes: int,
    model_name: str,
    seed: int,
    recipe: dict,
    device: str = "cpu",
    progress=None,
):
    """Train `model_name` from scratch with `recipe`, seeded by `seed`; return (model, {n_train, timings, loss})."""
    return fit(TensorSource(x_train, y_train), num_classes, model_name, seed, recipe, device, progress)


def kd_loss(
    out: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, temperature: float, alpha: float
) -> torch.Tensor:
    """Knowledge distillation (Hinton et al.): alpha * T^2 * KL(teacher/T || student/T) + (1 - alpha) * CE."""
    t = float(temperature)
    kl = F.kl_div(
        F.log_softmax(out / t, 1), F.log_softmax(teacher_logits / t, 1), reduction="batchmean", log_target=True
    ) * (t * t)
    return kl if alpha == 1 else alpha * kl + (1 - alpha) * F.cross_entropy(out, y)


def fit(
    train,
    num_classes: int,
    model_name: str,
    seed: int,
    recipe: dict,
    device: str = "cpu",
    progress=None,
    soft_logits: torch.Tensor | None = None,
    kd: dict | None = None,
):
    """train_model on a source. Every epoch visits the images in a permutation drawn from a generator seeded
    by `seed`, and crops/flips them with the same generator: the same seed gives the same run.

    With `soft_logits` ([N, num_classes], aligned with the source's images) the loss is `kd_loss` with
    kd["temperature"] and kd["alpha"] instead of cross-entropy on the hard labels (soft labels are the teacher's
    logits of the stored image; the random crop/flip of training is applied to the student's input only)."""
    if soft_logits is not None and soft_logits.shape != (len(train), num_classes):
        raise ValueError(
            f"soft labels of shape {tuple(soft_logits.shape)} for {len(train)} images and "
            f"{num_classes} classes; they must be aligned with the images"
        )
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(model_name, num_classes, train.resolution).to(device)
    if recipe["optimizer"] == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=recipe["lr"], momentum=recipe["momentum"], weight_decay=recipe["weight_decay"]
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    epochs, bs = recipe["epochs"], recipe["batch_size"]
    n = len(train)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch, epochs, recipe["lr"], recipe["schedule"])
        perm = torch.randperm(n, generator=gen)
        total, offset = 0.0, 0
        for xb, yb in train.batches(perm, bs):
            idx = perm[offset : offset + len(yb)]  # batches follow the permutation in order
            offset += len(yb)
            if recipe["train_augment"]:
                xb = random_crop_flip(xb, gen)
            xb, yb = xb.to(device), yb.to(device)
            if soft_logits is None:
                loss = F.cross_entropy(model(xb), yb)
            else:
                loss = kd_loss(model(xb), soft_logits[idx].to(device), yb, kd["temperature"], kd["alpha"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(yb)
        if progress is not None:
            progress(epoch + 1, epochs, total / max(n, 1))
    train_s = time.perf_counter() - t0
    return model, {"n_train": int(n), "train_seconds": round(train_s, 3), "final_loss": total / max(n, 1)}


def predict(model, x: torch.Tensor, device: str, bs: int = 512, label_set: list[int] | None = None) -> torch.Tensor:
    """Predicted labels (eval mode); restricted to `label_set` when given."""
    return predict_source(model, TensorSource(x, torch.zeros(len(x), dtype=torch.long)), device, bs, label_set)


@torch.no_grad()
def predict_source(model, data, device: str, bs: int = 512, label_set: list[int] | None = None) -> torch.Tensor:
    """Predicted labels for every image of a source, in its order."""
    model.eval()
    keep = torch.tensor(sorted(label_set), dtype=torch.long) if label_set else None
    out = []
    for xb, _ in data.batches(torch.arange(len(data)), bs):
        logits = model(xb.to(device)).cpu()
        out.append(keep[logits[:, keep].argmax(1)] if keep is not None else logits.argmax(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)
