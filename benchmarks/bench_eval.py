#!/usr/bin/env python3
"""Images per second of our evaluation training step against a faithful re-implementation of DD-Ranking's training
loop (NUS-HPC-AI-Lab/DD-Ranking @b8b0966, read, not copied), on the same recipe, on this CPU; plus the kd cache
(student without the teacher) and several seeds of a small model in one process.

    .venv/bin/python benchmarks/bench_eval.py [--rounds 5] [--threads 1] [--only convnet_dsa,resnet_kd,seeds]

Recipes (BENCHMARKS.md section 10):
  convnet_dsa   ConvNet-D3 at 32 px, DSA, hard labels, SGD 0.01 (momentum 0.9, wd 5e-4), batch 256, 500 images
                (10 classes x IPC 50); DD-Ranking's hard-label loop on a TensorDataset (its demo's tensor format)
  resnet_kd     ResNet-18 at 64 px (3x3 stem), random resized crop 0.08-1 + flip, cutmix (beta 1), a ResNet-18
                teacher run on every mixed batch, KL at T 20, AdamW 0.001 (wd 0.01), batch 32, 64 images;
                DD-Ranking's soft-label loop (soft_label_mode M) on an ImageFolder with its demo's per-image
                torchvision transforms; ours also with the kd cache (the teacher's outputs stored once)
  seeds         ConvNet-D3 at 32 px, batch 256: 4 seeds stepped one after another against one vmapped step of
                the 4 (torch.func), fwd + bwd + SGD update

Method: one warm-up round, then --rounds rounds; each round times one epoch of every method in turn (interleaved,
so background load hits all alike); images/s min / median / max. One torch thread (--threads) and no DataLoader
workers on both sides: the comparison is the work per core. The CSV row records the load average.

What the reference follows (ddranking/utils/train_and_eval.py train_one_epoch, metrics/hard_label.py and
soft_label.py, aug/dsa.py, aug/cutmix.py, loss/kl.py, utils/meter.py): a DataLoader with a RandomSampler yields
float images per sample (default_collate); each batch is moved to the device, augmented by the DSA class (mode
'S': one of scale, rotate, flip, color, crop, cutout per batch; the affine matrices built per image from Python
lists; crop and cutout by meshgrid indexing, align_corners=True) or by Cutmix (numpy's Beta and box, pasted in
place); in mode M the teacher runs on the augmented batch without no_grad, its outputs averaged over the teachers
(one here) and used as targets of KLDivergenceLoss (softmax of the teacher under no_grad); the loss is read with
.item() every step, backward, optimizer.step(), zero_grad(); top-1/top-5 accuracy of every batch (against the
teacher's argmax in mode M) is read with .item() into the MetricLogger; the LR scheduler steps per epoch.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "src")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import RESULTS, append_csv, fmt_table, machine_info  # noqa: E402

from gendistill.evaluation import kd_cache  # noqa: E402
from gendistill.evaluation.data import DeviceImages  # noqa: E402
from gendistill.evaluation.models import build_model  # noqa: E402
from gendistill.evaluation.runtime import Runtime  # noqa: E402
from gendistill.evaluation.train import Trainer, global_batches  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DSA_PARAMS = {"scale": 1.2, "rotate": 15.0, "flip": 0.5, "brightness": 1.0, "saturation": 2.0, "contrast": 0.5,
              "crop": 0.125, "cutout": 0.5}  # fmt: skip


# ---- the reference: DD-Ranking's loop, re-implemented


class RefDSA:
    """DD-Ranking's DSA (aug/dsa.py) in mode 'S' with seed -1: one transform per batch, per-image parameters from
    torch's global generator, no Siamese sharing."""

    def __init__(self, params: dict):
        self.p = params
        self.funcs = [self.scale, self.rotate, self.flip, self.color, self.crop, self.cutout]

    def __call__(self, x):
        f = self.funcs[torch.randint(0, len(self.funcs), size=(1,)).item()]
        return f(x).contiguous()

    def _affine(self, x, theta_rows):
        theta = torch.tensor(theta_rows, dtype=torch.float)  # built from per-image Python lists, as DD-Ranking
        grid = F.affine_grid(theta, x.shape, align_corners=True).to(x.device)
        return F.grid_sample(x, grid, align_corners=True)

    def scale(self, x):
        r = self.p["scale"]
        sx = torch.rand(x.shape[0]) * (r - 1.0 / r) + 1.0 / r
        sy = torch.rand(x.shape[0]) * (r - 1.0 / r) + 1.0 / r
        return self._affine(x, [[[sx[i], 0, 0], [0, sy[i], 0]] for i in range(x.shape[0])])

    def rotate(self, x):
        t = (torch.rand(x.shape[0]) - 0.5) * 2 * self.p["rotate"] / 180 * float(np.pi)
        rows = [[[torch.cos(t[i]), torch.sin(-t[i]), 0], [torch.sin(t[i]), torch.cos(t[i]), 0]] for i in range(len(t))]
        return self._affine(x, rows)

    def flip(self, x):
        f = torch.rand(x.size(0), 1, 1, 1, device=x.device)
        return torch.where(f < self.p["flip"], x.flip(3), x)

    def color(self, x):
        b = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
        x = x + (b - 0.5) * self.p["brightness"]
        m = x.mean(dim=1, keepdim=True)
        s = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
        x = (x - m) * (s * self.p["saturation"]) + m
        m = x.mean(dim=[1, 2, 3], keepdim=True)
        c = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
        return (x - m) * (c + self.p["contrast"]) + m

    def crop(self, x):
        sx, sy = int(x.size(2) * self.p["crop"] + 0.5), int(x.size(3) * self.p["crop"] + 0.5)
        tx = torch.randint(-sx, sx + 1, size=[x.size(0), 1, 1], device=x.device)
        ty = torch.randint(-sy, sy + 1, size=[x.size(0), 1, 1], device=x.device)
        gb, gx, gy = torch.meshgrid(
            torch.arange(x.size(0), device=x.device),
            torch.arange(x.size(2), device=x.device),
            torch.arange(x.size(3), device=x.device),
            indexing="ij",
        )
        gx = torch.clamp(gx + tx + 1, 0, x.size(2) + 1)
        gy = torch.clamp(gy + ty + 1, 0, x.size(3) + 1)
        xp = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
        return xp.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)

    def cutout(self, x):
        cs = int(x.size(2) * self.p["cutout"] + 0.5), int(x.size(3) * self.p["cutout"] + 0.5)
        ox = torch.randint(0, x.size(2) + (1 - cs[0] % 2), size=[x.size(0), 1, 1], device=x.device)
        oy = torch.randint(0, x.size(3) + (1 - cs[1] % 2), size=[x.size(0), 1, 1], device=x.device)
        gb, gx, gy = torch.meshgrid(
            torch.arange(x.size(0), device=x.device),
            torch.arange(cs[0], device=x.device),
            torch.arange(cs[1], device=x.device),
            indexing="ij",
        )
        gx = torch.clamp(gx + ox - cs[0] // 2, min=0, max=x.size(2) - 1)
        gy = torch.clamp(gy + oy - cs[1] // 2, min=0, max=x.size(3) - 1)
        mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
        mask[gb, gx, gy] = 0
        return x * mask.unsqueeze(1)


class RefCutmix:
    """DD-Ranking's Cutmix (aug/cutmix.py): numpy's Beta(beta, beta) and box centre, pasted in place."""

    def __init__(self, beta: float):
        self.beta = beta

    def __call__(self, images):
        idx = torch.randperm(images.size(0)).to(images.device)
        lam = np.random.beta(self.beta, self.beta)
        w, h = images.size(2), images.size(3)
        cut = np.sqrt(1.0 - lam)
        cw, ch = int(w * cut), int(h * cut)
        cx, cy = np.random.randint(w), np.random.randint(h)
        x1, y1 = np.clip(cx - cw // 2, 0, w), np.clip(cy - ch // 2, 0, h)
        x2, y2 = np.clip(cx + cw // 2, 0, w), np.clip(cy + ch // 2, 0, h)
        images[:, :, x1:x2, y1:y2] = images[idx, :, x1:x2, y1:y2]
        return images


def ref_kl(student_out, teacher_out, t):
    """DD-Ranking's KLDivergenceLoss (loss/kl.py) without scale_loss."""
    log_p = F.log_softmax(student_out / t, dim=1)
    with torch.no_grad():
        q = F.softmax(teacher_out / t, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean")


def ref_accuracy(output, target, topk=(1, 5)):
    """DD-Ranking's accuracy (utils/meter.py): soft targets by their argmax."""
    with torch.inference_mode():
        if target.ndim == 2:
            target = target.max(dim=1)[1]
        _, pred = output.topk(max(topk), 1, True, True)
        correct = pred.t().eq(target[None])
        return [correct[:k].flatten().sum(dtype=torch.float32) * (100.0 / target.size(0)) for k in topk]


class RefTensorDataset(torch.utils.data.Dataset):
    """DD-Ranking's TensorDataset (utils/data.py): float images and labels, one item at a time."""

    def __init__(self, images, labels):
        self.images, self.targets = images, labels

    def __getitem__(self, i):
        return self.images[i], self.targets[i]

    def __len__(self):
        return len(self.images)


class RefLoop:
    """DD-Ranking's train_one_epoch over its DataLoader, with its optimizer and per-epoch LR scheduler."""

    def __init__(self, dataset, batch, student, optimizer, scheduler, loss_fn, aug, teacher=None, device="cpu"):
        sampler = torch.utils.data.RandomSampler(dataset)
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=0, sampler=sampler)
        self.student, self.opt, self.sched, self.loss_fn, self.aug = student, optimizer, scheduler, loss_fn, aug
        self.teacher, self.device = teacher, device
        self.meters = {"loss": [], "acc1": [], "acc5": [], "img/s": []}

    def epoch(self) -> int:
        self.student.train()
        if self.teacher is not None:
            self.teacher.eval()
        n = 0
        for images, targets in self.loader:
            start = time.time()
            images, targets = images.to(self.device), targets.to(self.device)
            images = self.aug(images)
            if self.teacher is not None:  # soft_label_mode M: the teacher labels the augmented batch
                targets = torch.stack([self.teacher(images)], dim=0).mean(dim=0)
            output = self.student(images)
            loss = self.loss_fn(output, targets)
            self.meters["loss"].append(loss.item())
            loss.backward()
            self.opt.step()
            self.opt.zero_grad()
            acc1, acc5 = ref_accuracy(output, targets)
            self.meters["acc1"].append(acc1.item())
            self.meters["acc5"].append(acc5.item())
            self.meters["img/s"].append(images.shape[0] / max(time.time() - start, 1e-9))
            n += images.shape[0]
        self.sched.step()
        return n


# ---- ours: gendistill's Trainer over the uint8 images held on the device


class OurLoop:
    """One epoch of train.fit's inner loop: the seeded permutation, the global batches, Trainer.step."""

    def __init__(self, source, recipe, model, classes, teacher=None, kd=None, cache=None, runtime=None):
        self.source, self.recipe, self.cache = source, recipe, cache
        rt = runtime or Runtime()
        self.trainer = Trainer(model, classes, source.resolution, recipe, rt, kd=kd, teacher=teacher)
        self.gen = torch.Generator().manual_seed(cache.seed if cache is not None else 0)
        self.epoch_index = 0

    def epoch(self) -> int:
        self.trainer.model.train()
        perm = torch.randperm(len(self.source), generator=self.gen)
        offset, rt = 0, self.trainer.rt
        for step, (xb, yb) in enumerate(global_batches(self.source, perm, self.recipe["batch_size"], rt)):
            idx = perm[offset : offset + len(yb)]
            offset += len(yb)
            cached = self.cache.targets(self.epoch_index, step, idx) if self.cache is not None else None
            self.trainer.step(xb, yb, idx, self.gen, cached)
        self.trainer.epoch_loss(len(self.source))
        self.epoch_index += 1
        return len(self.source)


# ---- the recipes


def synthetic(n, size, classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    x8 = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % classes
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return x8, y, (x8.float() / 255.0 - m) / s


def convnet_dsa(rounds: int):
    n, size, classes, batch = 500, 32, 10, 256
    x8, y, xf = synthetic(n, size, classes)
    recipe = {"epochs": rounds + 1, "batch_size": batch, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9,
              "weight_decay": 5e-4, "schedule": "step", "train_augment": True, "augment": "dsa"}  # fmt: skip
    torch.manual_seed(0)
    student = build_model("convnet_d3", classes, size)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=500, gamma=0.1)
    ref = RefLoop(RefTensorDataset(xf, y), batch, student, opt, sched, torch.nn.CrossEntropyLoss(), RefDSA(DSA_PARAMS))
    ours = OurLoop(DeviceImages(x8, y, MEAN, STD), recipe, "convnet_d3", classes)
    return {"reference (DD-Ranking's loop)": ref.epoch, "ours": ours.epoch}, f"{n} images, batch {batch}"


def resnet_kd(rounds: int, workdir: Path):
    from PIL import Image
    from torchvision import datasets, transforms

    n, size, classes, batch, t = 64, 64, 10, 32, 20.0
    x8, y, _ = synthetic(n, size, classes)
    root = workdir / "imagefolder"
    for i in range(n):  # DD-Ranking's image format: an ImageFolder of the set's files
        (root / f"{int(y[i]):05d}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(x8[i].permute(1, 2, 0).numpy()).save(root / f"{int(y[i]):05d}" / f"{i:05d}.png")
    trans = transforms.Compose(
        [
            transforms.RandomResizedCrop(size, scale=(0.08, 1.0)),
            transforms.RandomHorizontalFlip(0.5),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    torch.manual_seed(1)
    teacher = build_model("resnet18", classes, size).eval()
    torch.manual_seed(0)
    student = build_model("resnet18", classes, size)
    opt = torch.optim.AdamW(student.parameters(), lr=0.001, weight_decay=0.01)
    e = rounds + 1
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / e / 2)) if s <= e else 0
    )
    ref = RefLoop(
        datasets.ImageFolder(str(root), transform=trans),
        batch,
        student,
        opt,
        sched,
        lambda out, target: ref_kl(out, target, t),
        RefCutmix(1.0),
        teacher=teacher,
    )
    recipe = {"epochs": e, "batch_size": batch, "lr": 0.001, "optimizer": "adamw", "momentum": 0.9,
              "weight_decay": 0.01, "schedule": "cosine_half", "train_augment": True, "augment": "rrc_flip",
              "rrc_scale": [0.08, 1.0], "mix": "cutmix", "mix_beta": 1.0}  # fmt: skip
    kd = {"temperature": t, "alpha": 1.0, "t_squared": False}
    source = DeviceImages(x8, y, MEAN, STD)
    ours = OurLoop(source, recipe, "resnet18", classes, teacher=copy.deepcopy(teacher), kd=kd)
    t0 = time.perf_counter()
    rec = kd_cache.build(source, recipe, copy.deepcopy(teacher), t, classes, 0, classes, str(workdir / "c.pt"))
    build_s = time.perf_counter() - t0
    cached = OurLoop(source, recipe, "resnet18", classes, kd=kd, cache=kd_cache.load(str(workdir / "c.pt")))
    note = (
        f"{n} images, batch {batch}; kd cache of {e} epochs: {rec['storage_mb']} MB "
        f"({rec['storage_bytes'] / (e * n):.0f} B per image and epoch, top {rec['top_k']} of {classes} classes), "
        f"built in {build_s:.1f} s"
    )
    return {
        "reference (DD-Ranking's loop)": ref.epoch,
        "ours (teacher online)": ours.epoch,
        "ours (kd cache)": cached.epoch,
    }, note


def seeds_in_one_process(rounds: int, k: int = 4):
    """K seeds of ConvNet-D3 stepped one after another, against one step of all K vmapped (torch.func)."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    size, classes, batch = 32, 10, 256
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(k, batch, 3, size, size, generator=g)
    ys = torch.randint(0, classes, (k, batch), generator=g)
    models = [build_model("convnet_d3", classes, size) for _ in range(k)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4) for m in models]

    def one_after_another():
        for m, o, x, y in zip(models, opts, xs, ys):
            loss = F.cross_entropy(m(x), y)
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()
        return k * batch

    params, buffers = stack_module_state([build_model("convnet_d3", classes, size) for _ in range(k)])
    params = {name: p.detach().requires_grad_(False) for name, p in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    stacked_opt = torch.optim.SGD(list(params.values()), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def loss_of(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    grads_of = vmap(grad(loss_of))

    def vmapped():
        grads = grads_of(params, buffers, xs, ys)
        for name, p in params.items():
            p.grad = grads[name]
        stacked_opt.step()
        return k * batch

    return {f"{k} seeds one after another": one_after_another, f"{k} seeds in one vmapped step": vmapped}, (
        f"{k} x batch {batch}, fwd + bwd + SGD"
    )


def measure(methods: dict, rounds: int) -> dict:
    rates = {name: [] for name in methods}
    for r in range(rounds + 1):
        for name, epoch in methods.items():
            t0 = time.perf_counter()
            n = epoch()
            if r > 0:  # round 0 warms up
                rates[name].append(n / (time.perf_counter() - t0))
        print(f"  round {r}/{rounds} done", flush=True)
    return rates


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="convnet_dsa,resnet_kd,seeds")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    info = machine_info()
    rows, table = [], []
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        for name in a.only.split(","):
            print(f"{name}: building", flush=True)
            if name == "convnet_dsa":
                methods, note = convnet_dsa(a.rounds)
            elif name == "resnet_kd":
                methods, note = resnet_kd(a.rounds, Path(tmp))
            else:
                methods, note = seeds_in_one_process(a.rounds)
            load_before = round(os.getloadavg()[0], 2)
            rates = measure(methods, a.rounds)
            first = statistics.median(next(iter(rates.values())))
            for method, r in rates.items():
                med = statistics.median(r)
                table.append([name, method, f"{med:.1f}", f"{min(r):.1f}-{max(r):.1f}", f"{med / first:.2f}x"])
                rows.append({**info, "recipe": name, "method": method, "img_per_s_median": round(med, 2),
                             "img_per_s_min": round(min(r), 2), "img_per_s_max": round(max(r), 2),
                             "vs_first": round(med / first, 3), "rounds": a.rounds, "note": note,
                             "loadavg_before": load_before,
                             "loadavg_after": round(os.getloadavg()[0], 2)})  # fmt: skip
            print(f"  {note}")
    print(fmt_table(["recipe", "method", "img/s median", "min-max", "vs first row"], table))
    print(f"load average {rows[0]['loadavg_before']} before, {rows[-1]['loadavg_after']} after; {a.threads} thread(s)")
    append_csv(RESULTS / "bench_eval.csv", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
