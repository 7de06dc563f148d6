"""Cached soft labels (evaluation.kd.cache): the teacher's outputs for every epoch's augmented, mixed batch,
computed once and read by every student seed instead of running the teacher (SRe2L's relabel, FKD).

Online kd draws each epoch's permutation, augmentation and mixing from the student's seed, so every seed sees
other batches and the teacher must run for each. Cached, the batches come from the cache's seed
(evaluation.kd.cache_seed): every student seed trains on the same batch sequence, replayed from that seed, and
its own seed only initialises the network. The stored targets are the teacher's probabilities at the KD
temperature: per image and epoch the `top_k` largest (float16) and their classes, the rest of the mass spread
evenly over the other classes (exact up to float16 when top_k >= the classes). Each epoch's permutation is
stored too: a student whose replay drew another batch (another recipe, another training set) is stopped.

Size: epochs x images x top_k x 4 bytes (+ 4 bytes per image and epoch): ImageNet-1k at IPC 50, 300 epochs,
top_k 100: 50,000 x 300 x 404 B = 6.1 GB.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..atomic import atomic_path
from .runtime import Runtime

FORMAT = "gendistill-kd-cache-v1"
# the recipe keys that decide the batch sequence: a cache serves only students with the same values
DATA_KEYS = ("epochs", "batch_size", "train_augment", "augment", "rrc_scale", "mix", "mix_beta")
log = logging.getLogger("gendistill.evaluate")


def data_recipe(recipe: dict) -> dict:
    return {k: recipe[k] for k in DATA_KEYS if k in recipe}


def build(
    train,
    recipe: dict,
    teacher: torch.nn.Module,
    temperature: float,
    top_k: int,
    seed: int,
    num_classes: int,
    out_path: str,
    runtime: Runtime | None = None,
    meta: dict | None = None,
    progress=None,
) -> dict:
    """Run the training's batch sequence from `seed` (train.fit's draws: a permutation per epoch, then each
    batch's augmentation and mixing) through `teacher` once, and store its top-k probabilities at `temperature`
    per image and epoch at `out_path`; returns the cache's record (sizes in MB, seconds)."""
    from .train import augmented, global_batches

    rt = runtime or Runtime()
    k = min(int(top_k), num_classes)
    epochs, bs, n = recipe["epochs"], recipe["batch_size"], len(train)
    index_dtype = torch.int16 if num_classes <= 2**15 else torch.int32
    values = torch.zeros(epochs, n, k, dtype=torch.float16)
    classes = torch.zeros(epochs, n, k, dtype=index_dtype)
    perms = torch.zeros(epochs, n, dtype=torch.int32)
    teacher = rt_model(teacher, rt)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        perms[epoch] = perm.to(torch.int32)
        offset = 0
        for xb, _ in global_batches(train, perm, bs, rt):
            xb, _ = augmented(xb, gen, recipe)
            with torch.no_grad(), rt.autocast():
                logits = teacher(rt.layout(xb.to(rt.device))).float()
            top = F.softmax(logits / float(temperature), 1).topk(k, dim=1)
            values[epoch, offset : offset + len(xb)] = top.values.to(torch.float16).cpu()
            classes[epoch, offset : offset + len(xb)] = top.indices.to(index_dtype).cpu()
            offset += len(xb)
        if progress is not None:
            progress(epoch + 1, epochs, 0.0)
    seconds = time.perf_counter() - t0
    data = {
        "format": FORMAT,
        "values": values,
        "classes": classes,
        "perms": perms,
        "num_classes": num_classes,
        "temperature": float(temperature),
        "top_k": k,
        "seed": int(seed),
        "recipe": data_recipe(recipe),
        "meta": meta or {},
    }
    with atomic_path(Path(out_path)) as tmp:
        torch.save(data, tmp)
    nbytes = sum(t.numel() * t.element_size() for t in (values, classes, perms))
    return {
        "epochs": epochs,
        "images": n,
        "top_k": k,
        "num_classes": num_classes,
        "seed": int(seed),
        "storage_bytes": nbytes,
        "storage_mb": round(nbytes / 1e6, 3),
        "file_mb": round(Path(out_path).stat().st_size / 1e6, 3),
        "teacher_forwards": epochs * n,
        "seconds": round(seconds, 3),
    }


def rt_model(model: torch.nn.Module, rt: Runtime) -> torch.nn.Module:
    model = model.to(rt.device).eval()
    return model.to(memory_format=torch.channels_last) if rt.channels_last else model


class KDCache:
    """A stored cache (`load`): its seed replaces the student's for the batch draws, and `targets` gives each
    batch's teacher probabilities at T, checking that the student's replay drew the batch that was stored."""

    def __init__(self, data: dict, path: str = ""):
        self.data, self.path = data, path
        self.num_classes, self.top_k = int(data["num_classes"]), int(data["top_k"])
        self.seed, self.temperature = int(data["seed"]), float(data["temperature"])
        self._offsets: dict[int, int] = {}

    def check(self, recipe: dict, num_classes: int, n_images: int, temperature: float) -> None:
        """Refuse a cache made for another batch sequence, training set size, class count or temperature."""
        problems = []
        if self.data["recipe"] != data_recipe(recipe):
            problems.append(f"its batches follow {self.data['recipe']}, the run's {data_recipe(recipe)}")
        if self.num_classes != num_classes or self.data["perms"].shape[1] != n_images:
            problems.append(
                f"{self.data['perms'].shape[1]} images of {self.num_classes} classes, the run has {n_images} of "
                f"{num_classes}"
            )
        if abs(self.temperature - float(temperature)) > 1e-12:
            problems.append(f"temperature {self.temperature}, the run's {temperature}")
        if problems:
            raise ValueError(f"{self.path}: a kd cache of another run ({problems[0]}). Fix: delete it and rerun.")

    def targets(self, epoch: int, step: int, idx: torch.Tensor) -> torch.Tensor:
        """The teacher's probabilities [len(idx), C] of batch `step` of `epoch` (batches in order)."""
        start = 0 if step == 0 else self._offsets[epoch]
        stop = start + len(idx)
        self._offsets[epoch] = stop
        if not torch.equal(self.data["perms"][epoch, start:stop].to(torch.long), idx.to(torch.long)):
            raise RuntimeError(
                f"{self.path}: epoch {epoch}, batch {step} is not the stored batch: the replay of seed {self.seed} "
                "diverged from the cache's (another recipe or code). Fix: delete the cache and rerun."
            )
        return probabilities(
            self.data["values"][epoch, start:stop], self.data["classes"][epoch, start:stop], self.num_classes
        )


def probabilities(values: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Full distributions [B, C] from the top-k probabilities: the rest of the mass spread evenly over the other
    classes (none left when k = C)."""
    values = values.float()
    k = values.shape[1]
    rest = (1.0 - values.sum(1, keepdim=True)).clamp(min=0.0)
    fill = rest / (num_classes - k) if num_classes > k else torch.zeros_like(rest)
    out = fill.expand(len(values), num_classes).clone()
    return out.scatter(1, classes.long(), values)


def load(path: str) -> KDCache:
    data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not (isinstance(data, dict) and data.get("format") == FORMAT):
        raise ValueError(f"{path} is not a gendistill kd cache. Fix: delete it and rerun (rule kd_cache).")
    return KDCache(data, path)
