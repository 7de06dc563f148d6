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
teacher run online on every augmented batch (`teacher`, knowledge distillation as RDED/SRe2L evaluate), or its
outputs for those batches stored once (`kd_cache`, evaluation/kd_cache.py); the soft regimes train with kd_loss.

How it runs is a Runtime (evaluation/runtime.py: device, processes, mixed precision, layout, compile): a Trainer
augments and mixes each global batch on the device, identically on every process, and trains on its process's
share; the default Runtime (one process, float32) computes what a plain loop on the device computes.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment, mix, random_crop_flip
from .data import TensorSource
from .models import build_model
from .runtime import Runtime, all_sum, gather_shares

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
    runtime: Runtime | None = None,
    kd_cache=None,
) -> dict:
    """train_and_test on sources (evaluation/data.py): tensors in memory or image files streamed from disk;
    `runtime` and `kd_cache` as `fit` takes them (the tests run on every process, each predicting its share).

    `accuracy` is the final epoch's test accuracy (`accuracy_kind` final). With recipe accuracy
    best_during_training it is the best test accuracy among the evaluations every `eval_every` epochs (only those
    after the fraction `eval_after` of training, when given: RDED's epoch % 10 == 9 and epoch > 0.8 E, 0-based) and
    the final one: model selection on the test set, as some published protocols report; `final_accuracy` keeps the
    final epoch's and per-class accuracy stays the final model's."""
    bs = max(recipe["batch_size"], 256)
    rt = runtime or Runtime(device=device)
    history = []
    monitor = None
    if recipe.get("accuracy", "final") == BEST:
        every, after = int(recipe.get("eval_every") or 10), recipe.get("eval_after")

        def monitor(epoch: int, model):  # `epoch` epochs done: the 0-based epoch epoch - 1 has just ended
            late = after is None or epoch - 1 > after * recipe["epochs"]
            if epoch % every == 0 and epoch < recipe["epochs"] and late:
                history.append((epoch, evaluate_on(model, test, device, bs, label_set, rt)["accuracy"]))
                model.train()

    model, info = fit(
        train, num_classes, model_name, seed, recipe, device, progress, soft_logits, kd, teacher, monitor, rt, kd_cache
    )
    res = {**evaluate_on(model, test, device, bs, label_set, rt), **info, "accuracy_kind": "final"}
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


def evaluate_on(
    model, test, device: str = "cpu", bs: int = 256, label_set: list[int] | None = None, runtime: Runtime | None = None
) -> dict:
    """Accuracy and per-class accuracy of a trained model on a source."""
    y_test = test.labels
    pred = predict_source(model, test, device, bs, label_set, runtime)
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


def kd_prob_loss(out: torch.Tensor, probs: torch.Tensor, temperature: float, t_squared: bool = True) -> torch.Tensor:
    """kd_loss's KL term against the teacher's probabilities at T (stored, evaluation/kd_cache.py) instead of its
    logits: KL(probs || student/T) (x T^2 with `t_squared`)."""
    t = float(temperature)
    kl = F.kl_div(F.log_softmax(out / t, 1), probs.float(), reduction="batchmean")
    return kl * (t * t) if t_squared else kl


def _cross_entropy(out, y, y_partner: torch.Tensor | None = None, lam: float | None = None) -> torch.Tensor:
    """Cross-entropy on hard labels; on a mixed batch the two partners' labels weighted by lam."""
    if lam is None:
        return F.cross_entropy(out, y)
    return lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y_partner)


def _mixed_loss(out, b, kd: dict | None) -> torch.Tensor:
    """The loss on a mixed batch with hard or fixed soft labels: the two partners' targets weighted by lam."""
    lam = b.lam
    ce = _cross_entropy(out, b.y, b.y_partner, lam)
    if b.soft is None:
        return ce
    t = float(kd["temperature"])
    target = lam * F.softmax(b.soft / t, 1) + (1 - lam) * F.softmax(b.soft_partner / t, 1)
    kl = F.kl_div(F.log_softmax(out / t, 1), target, reduction="batchmean")
    kl = kl * (t * t) if kd.get("t_squared", True) else kl
    return kl if kd["alpha"] == 1 else kd["alpha"] * kl + (1 - kd["alpha"]) * ce


class _Local(NamedTuple):
    """This process's share of a global batch and its targets: labels, the mixing partners' labels and lam (a
    mixed batch), fixed soft labels (and the partners'), cached teacher probabilities."""

    x: torch.Tensor
    y: torch.Tensor
    y_partner: torch.Tensor | None = None
    lam: float | None = None
    soft: torch.Tensor | None = None
    soft_partner: torch.Tensor | None = None
    cached: torch.Tensor | None = None


class Trainer:
    """One network's training state (model, optimizer, gradient scaler) and its step on a global batch: augment and
    mix the batch (on every process alike, from the run's generator), train on this process's share, with the loss
    of the label regime. `fit` runs it over the epochs; benchmarks time `step`."""

    def __init__(
        self,
        model_name: str,
        num_classes: int,
        resolution: int,
        recipe: dict,
        rt: Runtime,
        soft_logits: torch.Tensor | None = None,
        kd: dict | None = None,
        teacher: torch.nn.Module | None = None,
    ):
        self.recipe, self.rt, self.kd, self.soft_logits = recipe, rt, kd, soft_logits
        self.model = build_model(model_name, num_classes, resolution).to(rt.device)
        if rt.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model  # what the training forward calls: DDP and torch.compile wrap the model
        if rt.distributed:
            from torch.nn.parallel import DistributedDataParallel

            if torch.device(rt.device).type == "cuda":  # batch norm over the global batch (GPU only in torch)
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            index = torch.device(rt.device).index
            self.net = DistributedDataParallel(self.model, device_ids=[index] if index is not None else None)
        if rt.compile:
            self.net = torch.compile(self.net)
        self.teacher = None
        if teacher is not None:
            self.teacher = teacher.to(rt.device).eval()
            if rt.channels_last:
                self.teacher = self.teacher.to(memory_format=torch.channels_last)
        self.opt = make_optimizer(self.model, recipe)
        self.scaler = torch.amp.GradScaler(torch.device(rt.device).type) if rt.amp == "fp16" else None
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)

    def new_optimizer(self) -> None:
        self.opt = make_optimizer(self.model, self.recipe)

    def set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def prepare(self, xb, yb, idx, gen: torch.Generator, cached: torch.Tensor | None = None) -> _Local:
        """Augment and mix a global batch (identically on every process: the same draws from `gen`) and cut this
        process's share of it and of its targets."""
        xb, mixed = augmented(xb, gen, self.recipe)
        dev = self.rt.device
        xb, yb = xb.to(dev), yb.to(dev)
        part = self.rt.share(len(yb)) if self.rt.distributed else slice(None)
        soft = self.soft_logits[idx].to(dev) if self.soft_logits is not None else None
        perm = mixed.perm.to(dev) if mixed is not None else None
        return _Local(
            x=self.rt.layout(xb[part]),
            y=yb[part],
            y_partner=yb[perm][part] if mixed is not None else None,
            lam=mixed.lam if mixed is not None else None,
            soft=soft[part] if soft is not None else None,
            soft_partner=soft[perm][part] if soft is not None and mixed is not None else None,
            cached=cached[part].to(dev) if cached is not None else None,
        )

    def loss(self, out: torch.Tensor, b: _Local) -> torch.Tensor:
        """The regime's loss on this process's share (a mean over its images)."""
        kd = self.kd
        if self.teacher is not None or b.cached is not None:  # the teacher's labels of the very images seen
            if b.cached is not None:  # its probabilities at T, stored once (evaluation/kd_cache.py)
                loss = kd_prob_loss(out, b.cached, kd["temperature"], kd.get("t_squared", True))
            else:
                with torch.no_grad(), self.rt.autocast():
                    t_logits = self.teacher(b.x).float()
                loss = kd_loss(out, t_logits, b.y, kd["temperature"], 1.0, kd.get("t_squared", True))
            if kd["alpha"] != 1:
                loss = kd["alpha"] * loss + (1 - kd["alpha"]) * _cross_entropy(out, b.y, b.y_partner, b.lam)
            return loss
        if b.lam is not None:
            return _mixed_loss(out, b, kd)
        if b.soft is None:
            return F.cross_entropy(out, b.y)
        return kd_loss(out, b.soft, b.y, kd["temperature"], kd["alpha"], kd.get("t_squared", True))

    def step(self, xb, yb, idx, gen: torch.Generator, cached: torch.Tensor | None = None) -> None:
        """One optimizer step on the global batch (xb, yb): `idx` its images' positions in the training set."""
        b = self.prepare(xb, yb, idx, gen, cached)
        with self.rt.autocast():
            out = self.net(b.x)
        loss = self.loss(out.float(), b)
        if self.rt.distributed:  # DDP averages over the processes: weigh each share by its size
            train_loss = loss * (len(b.y) * self.rt.world_size / len(yb))
        else:
            train_loss = loss
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(train_loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            train_loss.backward()
            self.opt.step()
        self._loss_sum += loss.detach().double() * len(b.y)  # no device sync per step

    def epoch_loss(self, n: int) -> float:
        """The epoch's mean loss over its `n` images (all processes); resets the sum."""
        total = float(all_sum(self._loss_sum, self.rt))
        self._loss_sum.zero_()
        return total / max(n, 1)


def augmented(xb: torch.Tensor, gen: torch.Generator, recipe: dict):
    """A global batch augmented (recipe augment) and mixed (recipe mix), every choice drawn from `gen`: (images,
    Mixed or None). No augmentation with train_augment false. The kd cache replays exactly these draws."""
    if not recipe["train_augment"]:
        return xb, None
    xb = augment(xb, gen, recipe)
    return mix(xb, gen, recipe.get("mix", "none"), float(recipe.get("mix_beta", 1.0)))


def global_batches(source, order: torch.Tensor, bs: int, rt: Runtime):
    """The global batches of `order` on the device, the same on every process: a source in memory gives each
    process the whole batch; a streamed one (FileSource) reads each process's share and gathers them."""
    if rt.distributed and hasattr(source, "share_batches"):
        for xs, ys, n in source.share_batches(order, bs, rt.rank, rt.world_size):
            yield gather_shares(xs.to(rt.device), n, rt), gather_shares(ys.to(rt.device), n, rt)
        return
    for xb, yb in source.batches(order, bs):
        yield xb.to(rt.device), yb.to(rt.device)


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
    runtime: Runtime | None = None,
    kd_cache=None,
):
    """Train `model_name` from scratch on a source with `recipe`, seeded by `seed`: (model, {n_train, timings,
    loss}). Every epoch visits the images in a permutation drawn from a generator seeded by `seed`, and augments
    them with the same generator: the same seed gives the same run.

    With `soft_logits` ([N, num_classes], aligned with the source's images) the loss is `kd_loss` with kd's
    temperature, alpha (and t_squared) on the teacher's logits of the stored image (the augmentation applies to
    the student's input only). With `teacher` (a network in eval mode) the teacher labels each augmented batch
    online instead. With `kd_cache` (evaluation/kd_cache.py: the teacher's outputs stored once) the permutation
    and augmentation are drawn from the cache's seed, not `seed` (which still initialises the network), and the
    loss reads the stored outputs. `monitor(epoch, model)` runs after every epoch (the best-during-training
    option). `runtime` (evaluation/runtime.py): the device, processes, precision, layout and compile."""
    if soft_logits is not None and soft_logits.shape != (len(train), num_classes):
        raise ValueError(
            f"soft labels of shape {tuple(soft_logits.shape)} for {len(train)} images and "
            f"{num_classes} classes; they must be aligned with the images"
        )
    rt = runtime or Runtime(device=device)
    if kd_cache is not None:
        kd_cache.check(recipe, num_classes, len(train), kd["temperature"])
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(kd_cache.seed if kd_cache is not None else seed)
    trainer = Trainer(model_name, num_classes, train.resolution, recipe, rt, soft_logits, kd, teacher)
    epochs, bs = recipe["epochs"], recipe["batch_size"]
    restart_at = step_boundary(epochs, recipe.get("step_epoch")) if recipe["schedule"] == "step_restart" else None
    n = len(train)
    t0 = time.perf_counter()
    trainer.model.train()
    loss = float("nan")
    for epoch in range(epochs):
        if epoch == restart_at:
            trainer.new_optimizer()  # the challenge's script re-creates SGD at its lr step
        trainer.set_lr(lr_at(epoch, epochs, recipe["lr"], recipe["schedule"], recipe.get("step_epoch")))
        perm = torch.randperm(n, generator=gen)
        offset = 0
        for step, (xb, yb) in enumerate(global_batches(train, perm, bs, rt)):
            idx = perm[offset : offset + len(yb)]  # batches follow the permutation in order
            offset += len(yb)
            cached = kd_cache.targets(epoch, step, idx) if kd_cache is not None else None
            trainer.step(xb, yb, idx, gen, cached)
        loss = trainer.epoch_loss(n)
        if progress is not None:
            progress(epoch + 1, epochs, loss)
        if monitor is not None:
            monitor(epoch + 1, trainer.model)
    train_s = time.perf_counter() - t0
    return trainer.model, {"n_train": int(n), "train_seconds": round(train_s, 3), "final_loss": loss}


def predict(model, x: torch.Tensor, device: str, bs: int = 512, label_set: list[int] | None = None) -> torch.Tensor:
    """Predicted labels (eval mode); restricted to `label_set` when given."""
    return predict_source(model, TensorSource(x, torch.zeros(len(x), dtype=torch.long)), device, bs, label_set)


@torch.no_grad()
def predict_source(
    model, data, device: str, bs: int = 512, label_set: list[int] | None = None, runtime: Runtime | None = None
) -> torch.Tensor:
    """Predicted labels for every image of a source, in its order. With several processes (`runtime`) each
    predicts its contiguous share of the source (reading only those images) and every process gets them all."""
    rt = runtime or Runtime(device=device)
    model.eval()
    keep = torch.tensor(sorted(label_set), dtype=torch.long) if label_set else None
    order = torch.arange(len(data))[rt.share(len(data))] if rt.distributed else torch.arange(len(data))
    out = []
    for xb, _ in data.batches(order, bs):
        with rt.autocast():
            logits = model(rt.layout(xb.to(rt.device))).float().cpu()
        out.append(keep[logits[:, keep].argmax(1)] if keep is not None else logits.argmax(1))
    pred = torch.cat(out) if out else torch.zeros(0, dtype=torch.long)
    if rt.distributed:
        pred = gather_shares(pred.to(rt.device), len(data), rt).cpu()
    return pred
