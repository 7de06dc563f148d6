"""Train a network from scratch on a training set with an evaluation recipe, then test it on the real test set.

The recipe (a dict; evaluation/runs.py builds it from the config, a protocol preset included) holds the field's
keys: epochs, batch_size, optimizer (sgd, adam, adamw), lr, momentum, weight_decay, schedule (step: x0.1 at half
the epochs or at `step_epoch`; step_restart: the same with a fresh optimizer from the step on; step_every: x0.1
every `step_epoch` epochs, torch's StepLR; cosine; cosine_half: lr x 0.5 (1 + cos(pi e / 2E)), ending at lr / 2;
constant) and train_augment (off: no augmentation, no mixing). Optional keys, absent from the default recipe:
augment and rrc_scale (evaluation/augment.py), mix and mix_beta, decay_norm_and_bias (false: no weight decay on
biases and normalisation weights, as SRe2L and RDED train), accuracy (final, or best_during_training with
eval_every and eval_after), test_resize (read by the caller that builds the test source).

Labels: hard (cross-entropy), fixed soft labels (the teacher's logits of each stored image, `soft_logits`) or the
teacher run online on every augmented batch (`teacher`, knowledge distillation as RDED/SRe2L evaluate); both soft
regimes train with kd_loss.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from .augment import Mixed, augment, mix, random_crop_flip
from .data import TensorSource
from .models import build_model

log = logging.getLogger("gendistill.evaluate")

__all__ = ["random_crop_flip"]  # kept importable here: the field's default augmentation


def normalise(images_uint8_nhwc: np.ndarray, mean, std) -> torch.Tensor:
    # a copy straight to float: the source may be a read-only array (torch.load with mmap, np.load), which
    # torch.from_numpy would wrap with a warning
    x = torch.tensor(np.ascontiguousarray(images_uint8_nhwc), dtype=torch.float32).permute(0, 3, 1, 2).div(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def step_boundary(epochs: int, step_epoch: int | None = None) -> int:
    """The first epoch at the stepped learning rate: `step_epoch`, else half the epochs."""
    return epochs // 2 if step_epoch is None else int(step_epoch)


def lr_at(epoch: int, epochs: int, lr: float, schedule: str, step_epoch: int | None = None) -> float:
    if schedule in ("step", "step_restart"):
        return lr * (0.1 if epoch >= step_boundary(epochs, step_epoch) else 1.0)
    if schedule == "step_every":  # torch's StepLR(step_size, gamma 0.1), stepped once per epoch
        return lr * 0.1 ** (epoch // max(1, step_boundary(epochs, step_epoch)))
    if schedule == "cosine":
        return 0.5 * lr * (1 + np.cos(np.pi * epoch / epochs))
    if schedule == "cosine_half":  # SRe2L/RDED's LambdaLR(0.5 (1 + cos(pi e / E / 2))): from lr down to lr / 2
        return 0.5 * lr * (1 + np.cos(np.pi * epoch / epochs / 2))
    return lr


def make_optimizer(model: torch.nn.Module, recipe: dict) -> torch.optim.Optimizer:
    params = model.parameters()
    if not recipe.get("decay_norm_and_bias", True):  # decay only weight matrices and kernels (>= 2 dims)
        named = list(model.named_parameters())
        params = [
            {"params": [p for _, p in named if p.ndim >= 2]},
            {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0},
        ]
    opt, lr, wd = recipe["optimizer"], recipe["lr"], recipe["weight_decay"]
    if opt == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=recipe["momentum"], weight_decay=wd)
    if opt == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


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


BEST = "best_during_training"


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
    teacher: torch.nn.Module | None = None,
) -> dict:
    """train_and_test on sources (evaluation/data.py): tensors in memory or image files streamed from disk.

    `accuracy` is the final epoch's test accuracy (`accuracy_kind` final). With recipe accuracy
    best_during_training it is the best test accuracy among the evaluations every `eval_every` epochs (only those
    after the fraction `eval_after` of training, when given: RDED's epoch % 10 == 9 and epoch > 0.8 E, 0-based) and
    the final one: model selection on the test set, as some published protocols report; `final_accuracy` keeps the
    final epoch's and per-class accuracy stays the final model's."""
    bs = max(recipe["batch_size"], 256)
    history = []
    monitor = None
    if recipe.get("accuracy", "final") == BEST:
        every, after = int(recipe.get("eval_every") or 10), recipe.get("eval_after")

        def monitor(epoch: int, model):  # `epoch` epochs done: the 0-based epoch epoch - 1 has just ended
            late = after is None or epoch - 1 > after * recipe["epochs"]
            if epoch % every == 0 and epoch < recipe["epochs"] and late:
                history.append((epoch, evaluate_on(model, test, device, bs, label_set)["accuracy"]))
                model.train()

    model, info = fit(train, num_classes, model_name, seed, recipe, device, progress, soft_logits, kd, teacher, monitor)
    res = {**evaluate_on(model, test, device, bs, label_set), **info, "accuracy_kind": "final"}
    if monitor is not None:
        history.append((recipe["epochs"], res["accuracy"]))
        best_epoch, best = max(history, key=lambda h: (h[1], -h[0]))
        res.update(
            final_accuracy=res["accuracy"],
            accuracy=best,
            best_epoch=best_epoch,
            accuracy_kind=BEST,
            test_accuracy_history=[list(h) for h in history],
        )
    return res


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


def kd_loss(
    out: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    alpha: float,
    t_squared: bool = True,
) -> torch.Tensor:
    """Knowledge distillation (Hinton et al.): alpha * T^2 * KL(teacher/T || student/T) + (1 - alpha) * CE.
    `t_squared` false drops the T^2 factor (SRe2L, RDED and DD-Ranking train with the plain KL)."""
    t = float(temperature)
    kl = F.kl_div(
        F.log_softmax(out / t, 1), F.log_softmax(teacher_logits / t, 1), reduction="batchmean", log_target=True
    )
    kl = kl * (t * t) if t_squared else kl
    return kl if alpha == 1 else alpha * kl + (1 - alpha) * F.cross_entropy(out, y)


def _cross_entropy(out, y, mixed: Mixed | None) -> torch.Tensor:
    """Cross-entropy on hard labels; on a mixed batch the two partners' labels weighted by lam."""
    if mixed is None:
        return F.cross_entropy(out, y)
    return mixed.lam * F.cross_entropy(out, y) + (1 - mixed.lam) * F.cross_entropy(out, y[mixed.perm])


def _mixed_loss(out, y, mixed: Mixed, soft: torch.Tensor | None, kd: dict | None) -> torch.Tensor:
    """The loss on a mixed batch with hard or fixed soft labels: the two partners' targets weighted by lam."""
    lam, perm = mixed.lam, mixed.perm
    ce = _cross_entropy(out, y, mixed)
    if soft is None:
        return ce
    t = float(kd["temperature"])
    target = lam * F.softmax(soft / t, 1) + (1 - lam) * F.softmax(soft[perm] / t, 1)
    kl = F.kl_div(F.log_softmax(out / t, 1), target, reduction="batchmean")
    kl = kl * (t * t) if kd.get("t_squared", True) else kl
    return kl if kd["alpha"] == 1 else kd["alpha"] * kl + (1 - kd["alpha"]) * ce


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
    teacher: torch.nn.Module | None = None,
    monitor=None,
):
    """Train `model_name` from scratch on a source with `recipe`, seeded by `seed`: (model, {n_train, timings,
    loss}). Every epoch visits the images in a permutation drawn from a generator seeded by `seed`, and augments
    them with the same generator: the same seed gives the same run.

    With `soft_logits` ([N, num_classes], aligned with the source's images) the loss is `kd_loss` with kd's
    temperature, alpha (and t_squared) on the teacher's logits of the stored image (the augmentation applies to
    the student's input only). With `teacher` (a network in eval mode) the teacher labels each augmented batch
    online instead. `monitor(epoch, model)` runs after every epoch (the best-during-training option)."""
    if soft_logits is not None and soft_logits.shape != (len(train), num_classes):
        raise ValueError(
            f"soft labels of shape {tuple(soft_logits.shape)} for {len(train)} images and "
            f"{num_classes} classes; they must be aligned with the images"
        )
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(model_name, num_classes, train.resolution).to(device)
    if teacher is not None:
        teacher = teacher.to(device).eval()
    opt = make_optimizer(model, recipe)
    epochs, bs = recipe["epochs"], recipe["batch_size"]
    restart_at = step_boundary(epochs, recipe.get("step_epoch")) if recipe["schedule"] == "step_restart" else None
    mix_kind, mix_beta = recipe.get("mix", "none"), float(recipe.get("mix_beta", 1.0))
    n = len(train)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        if epoch == restart_at:
            opt = make_optimizer(model, recipe)  # the challenge's script re-creates SGD at its lr step
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch, epochs, recipe["lr"], recipe["schedule"], recipe.get("step_epoch"))
        perm = torch.randperm(n, generator=gen)
        total, offset = 0.0, 0
        for xb, yb in train.batches(perm, bs):
            idx = perm[offset : offset + len(yb)]  # batches follow the permutation in order
            offset += len(yb)
            mixed = None
            if recipe["train_augment"]:
                xb = augment(xb, gen, recipe)
                xb, mixed = mix(xb, gen, mix_kind, mix_beta)
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            if teacher is not None:  # the teacher labels the very images the student sees (mixed ones too)
                with torch.no_grad():
                    t_logits = teacher(xb)
                loss = kd_loss(out, t_logits, yb, kd["temperature"], 1.0, kd.get("t_squared", True))
                if kd["alpha"] != 1:
                    loss = kd["alpha"] * loss + (1 - kd["alpha"]) * _cross_entropy(out, yb, mixed)
            elif mixed is not None:
                soft = soft_logits[idx].to(device) if soft_logits is not None else None
                loss = _mixed_loss(out, yb, mixed, soft, kd)
            elif soft_logits is None:
                loss = F.cross_entropy(out, yb)
            else:
                loss = kd_loss(
                    out, soft_logits[idx].to(device), yb, kd["temperature"], kd["alpha"], kd.get("t_squared", True)
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(yb)
        if progress is not None:
            progress(epoch + 1, epochs, total / max(n, 1))
        if monitor is not None:
            monitor(epoch + 1, model)
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
