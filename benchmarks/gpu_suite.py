#!/usr/bin/env python3
"""One command that measures a GPU: every sampling measurement of BENCHMARKS.md section 2, in sections with their
own time caps, into one CSV and one markdown table.

    python3 benchmarks/gpu_suite.py --out DIR [--minutes 8]          # a GPU node
    python3 benchmarks/gpu_suite.py --out DIR --smoke                # every section on the tiny pipeline, CPU

Needs no model download and no venv: the node's own PyTorch, and this checkout's other requirements on the path
(a no-torch wheelhouse installed with `pip install --target`; BENCHMARKS.md section 2). The full-size models are
built on the node with random weights from benchmarks/model_configs/ (gendistill.generator.random_dir; same
compute and memory as the checkpoints, noise images) and loaded by the workflow's own loader. Sections:

  setup        environment (device, versions, which requirements the path meets), the random SDXL-Turbo,
               sd-turbo and TAESDXL directories (fp16; reused when already built in --work)
  components   SDXL-Turbo at 512 px, batch sizes 1-32: text encoders, one UNet step, VAE decode and end to end
               (gendistill's Sampler), the decode and end to end in each VAE mode (upcast, fp32, bf16)
  compiled     the same with the UNet compiled (torch.compile, max-autotune-no-cudagraphs; compile time shows
               as warm-up)
  tiny_256     the tiny decoder (TAESDXL) at 512 px, and 256 px with the VAE and with the tiny decoder
  sd_turbo     sd-turbo at 512 px, end to end
  reference    the paper's reference loop: one image per pipeline call, PIL output and resize
  workflow     the whole workflow (Snakemake, the resident sampler): CIFAR-100's 100 class names, 50 images per
               class at 512 px, model load included, up to the packaged dataset
  time_budget  `gendistill time-budget` on the workflow's config: the largest n_generated for 600 s
  evaluation   the evaluation's training step (gendistill's Trainer over uint8 images on the GPU, one process):
               ResNet-18 with a ResNet-18 teacher online (KD, cutmix, random resized crop) at 224 px, batch 256
               and 1,024, also reading a kd cache instead of the teacher; ConvNet-D3 at 32 px with DSA, batch
               256; each in float32, bf16 autocast, bf16 + channels-last and that compiled; FLOPs per image
               (student forward + backward, teacher forward) and the fraction of the device's peak

Each section gets a share of the time left (--minutes) and is stopped at it (what it measured so far is kept);
a progress line is printed per step. Rows: one per measurement (ms per call, images/s, FLOPs per image from the
family's adapter, achieved TFLOP/s and its fraction of the device's dense fp16/bf16 peak, peak memory), plus one
per section saying whether it ran, was skipped (and why) or stopped. Written to DIR/gpu_suite.csv and
DIR/gpu_suite.md, with the device, versions and settings.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import signal
import socket
import sys
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "src")]

from bench_end_to_end import make_config, run_workflow  # noqa: E402
from gpu_measure import (  # noqa: E402
    VAE_MODES,
    Timer,
    end_to_end_call,
    peak_tflops_for,
    reference_call,
    sdxl_component_calls,
    set_vae_mode,
)

# section: share of the time left when it starts (shares of the sections still to run are renormalised)
SECTIONS = {
    "setup": 10,
    "components": 20,
    "compiled": 12,
    "tiny_256": 8,
    "sd_turbo": 7,
    "reference": 5,
    "workflow": 32,
    "time_budget": 6,
    "evaluation": 20,
}
PROMPT = "apple"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, for the evaluation section's images
COLUMNS = [
    "section",
    "step",
    "model",
    "resolution",
    "batch",
    "vae_mode",
    "decoder",
    "compiled",
    "ms_per_call",
    "img_per_s",
    "img_per_s_min",
    "img_per_s_max",
    "gflop_per_image",
    "achieved_tflops",
    "frac_of_peak",
    "peak_mem_gib",
    "warmup_s",
    "status",
    "note",
    "precision",
    "channels_last",
]


class SectionTimeout(Exception):
    pass


@contextmanager
def time_cap(seconds: float):
    """Raise SectionTimeout in this (main) thread after `seconds`: a step in Python code stops at its next line."""

    def on_alarm(signum, frame):
        raise SectionTimeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Suite:
    def __init__(self, a):
        import torch

        self.a, self.torch = a, torch
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + a.minutes * 60
        self.device = "cpu" if a.smoke else "cuda"
        self.dtype = torch.float32 if a.smoke else torch.float16
        self.rows: list[dict] = []
        self.env: dict = {}
        self.models: dict[str, Path] = {}
        self.pipes: dict = {}
        self.timer = Timer(self.device)
        self.res = 32 if a.smoke else 512
        self.low_res = 16 if a.smoke else 256
        self.batches = [1, 2, 4] if a.smoke else [1, 2, 4, 8, 16, 32]
        self.warmup, self.repeats = (1, 2) if a.smoke else (2, 5)
        self.peak = a.peak_tflops

    # ---- bookkeeping
    def progress(self, section: str, what: str) -> None:
        print(f"[{time.perf_counter() - self.t0:7.1f} s] {section}: {what}", flush=True)

    def row(self, section: str, step: str, **kw) -> dict:
        r = {c: "" for c in COLUMNS}
        r.update({"section": section, "step": step, "status": "ok", **kw})
        self.rows.append(r)
        return r

    def record(self, section, step, m: dict, images_per_call: int, flops_per_image: float | None, **kw) -> None:
        ips = [images_per_call / t for t in m["times"]]
        img_s = images_per_call / m["median_s"]
        achieved = flops_per_image * img_s / 1e12 if flops_per_image else None
        self.row(
            section,
            step,
            ms_per_call=round(m["median_s"] * 1e3, 3),
            img_per_s=round(img_s, 3),
            img_per_s_min=round(min(ips), 3),
            img_per_s_max=round(max(ips), 3),
            gflop_per_image=round(flops_per_image / 1e9, 3) if flops_per_image else "",
            achieved_tflops=round(achieved, 3) if achieved else "",
            frac_of_peak=round(achieved / self.peak, 4) if achieved and self.peak else "",
            peak_mem_gib=round(m["peak_gib"], 3) if m["peak_gib"] is not None else "",
            warmup_s=round(m["warmup_s"], 3),
            **kw,
        )
        self.progress(section, f"{step} batch {kw.get('batch', '')}: {img_s:.2f} img/s")

    def measure(self, section, step, fn, images_per_call, flops, **kw) -> bool:
        """One measurement; False when the device ran out of memory (larger batches are not tried)."""
        try:
            m = self.timer.measure(fn, self.warmup, self.repeats)
        except self.torch.cuda.OutOfMemoryError:
            self.torch.cuda.empty_cache()
            self.row(section, step, status="skipped", note="CUDA out of memory (larger batches not tried)", **kw)
            self.progress(section, f"{step} batch {kw.get('batch')}: out of memory")
            return False
        self.record(section, step, m, images_per_call, flops, **kw)
        return True

    # ---- models
    def pipeline(self, name: str):
        """The loaded pipeline of model `name` (sdxl, sd), through the workflow's loader; loaded once."""
        if name not in self.pipes:
            from gendistill.sampling.pipeline import load_pipeline

            t = time.perf_counter()
            self.pipes[name] = load_pipeline(str(self.models[name]), None, self.device, self.dtype)
            self.progress("load", f"{name} from {self.models[name]} in {time.perf_counter() - t:.1f} s")
        return self.pipes[name]

    def flops(self, pipe, resolution: int) -> dict:
        from gendistill.families import adapter_for

        return adapter_for(pipe, self.device).flops(resolution, 1, 0.0)

    # ---- sections
    def setup(self, section: str) -> None:
        import diffusers
        import transformers

        torch = self.torch
        name = torch.cuda.get_device_name() if self.device == "cuda" else platform.processor() or "cpu"
        self.peak = self.peak or (peak_tflops_for(name) if self.device == "cuda" else None)
        self.env = {
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": socket.gethostname(),
            "device": self.device,
            "device_name": name,
            "peak_tflops_fp16": self.peak or "",
            "dtype": str(self.dtype).replace("torch.", ""),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda or "",
            "torchvision": _version("torchvision"),
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "numpy": _version("numpy"),
            "torch_from": str(Path(torch.__file__).parent.parent),
            "diffusers_from": str(Path(diffusers.__file__).parent.parent),
            "cpu_cores": os.cpu_count(),
            "smoke": self.a.smoke,
            "minutes": self.a.minutes,
        }
        unmet = unmet_requirements()
        self.env["requirements"] = "all met" if not unmet else "; ".join(unmet)
        self.progress(section, f"{name}, torch {torch.__version__}, requirements: {self.env['requirements']}")
        work = Path(self.a.work)
        if self.a.smoke:
            from gendistill.generator.build import save_tiny_pipeline

            for fam in ("sdxl", "sd"):
                out = work / f"tiny-{fam}"
                if not (out / "model_index.json").is_file():
                    save_tiny_pipeline(out, {"family": fam, "seed": 0})
                self.models[fam] = out
            self.models["taesdxl"] = work / "tiny-sdxl" / "tiny_decoder"
            self.row(section, "models", model="tiny random-weight pipelines (sdxl, sd)", note=str(work))
            return
        from make_random_model_dir import random_model_dir

        wanted = {"sdxl": "sdxl-turbo", "sd": "sd-turbo", "taesdxl": "taesdxl"}
        if self.a.model_dir:
            self.models["sdxl"] = Path(self.a.model_dir)
            wanted.pop("sdxl")
        for key, cfg in wanted.items():
            t = time.perf_counter()
            out, rec = random_model_dir(
                cfg, "float16", work / f"{cfg}-random-float16", device=self.device, log=lambda m: None
            )
            self.models[key] = out
            what = "reused" if rec["reused"] else f"built in {time.perf_counter() - t:.1f} s"
            self.row(section, f"build {cfg}", model=cfg, note=f"{what}, {rec['bytes'] / 2**30:.2f} GiB")
            self.progress(section, f"{cfg} random weights {what}")

    def components(self, section: str) -> None:
        torch = self.torch
        pipe = self.pipeline("sdxl")
        fl = self.flops(pipe, self.res)
        text_encode, unet_step, vae_decode = sdxl_component_calls(pipe, self.device, self.dtype, self.res, PROMPT)
        gen = {"resolution": self.res, "steps": 1, "guidance_scale": 0.0}
        base_vae = pipe.vae.dtype
        model = "sdxl-turbo" if not self.a.smoke else "tiny sdxl"
        common = dict(model=model, resolution=self.res, decoder="vae", compiled=False)
        for b in self.batches:
            ok = self.measure(section, "text_encode", text_encode(b), b, fl["text_per_class"], batch=b, **common)
            if not ok or not self.measure(
                section, "unet_step", unet_step(pipe.unet, b), b, fl["denoiser_per_eval"], batch=b, **common
            ):
                break
        modes = [m for m in self.a.vae_modes.split(",") if m]
        for mode in modes:
            if mode == "fp16" and self.device == "cpu":
                self.row(section, "vae_decode", vae_mode=mode, status="skipped", note="float16 on a CPU", **common)
                continue
            decode_dtype = set_vae_mode(pipe, mode, base_vae)
            self.progress(section, f"VAE mode {mode}: decode in {decode_dtype}")
            for b in self.batches:
                kw = dict(batch=b, vae_mode=mode, **common)
                e2e_flops = fl["text_per_class"] / b + fl["per_image"]
                if not self.measure(section, "vae_decode", vae_decode(b), b, fl["decoder"], **kw):
                    break
                call = end_to_end_call(pipe, self.device, self.dtype, b, PROMPT, gen, 32)
                if not self.measure(section, "end_to_end", call, b, e2e_flops, **kw):
                    break
        set_vae_mode(pipe, "upcast", base_vae)
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def compiled(self, section: str) -> None:
        torch = self.torch
        pipe = self.pipeline("sdxl")
        fl = self.flops(pipe, self.res)
        eager, base_vae = pipe.unet, pipe.vae.dtype
        if self.a.smoke:  # the section's code path, without a C++/Triton build on a small CPU
            pipe.unet = torch.compile(eager, backend="eager", fullgraph=True)
            how = "backend eager (smoke)"
        else:
            pipe.unet = torch.compile(eager, mode="max-autotune-no-cudagraphs", fullgraph=True)
            how = "max-autotune-no-cudagraphs"
        mode = "bf16" if self.device == "cuda" else "fp32"
        set_vae_mode(pipe, mode, base_vae)
        gen = {"resolution": self.res, "steps": 1, "guidance_scale": 0.0}
        model = "sdxl-turbo" if not self.a.smoke else "tiny sdxl"
        _, unet_step, _ = sdxl_component_calls(pipe, self.device, self.dtype, self.res, PROMPT)
        try:
            for b in [2] if self.a.smoke else [8, 32]:
                kw = dict(model=model, resolution=self.res, batch=b, vae_mode=mode, decoder="vae", compiled=True)
                unet = unet_step(pipe.unet, b)
                if not self.measure(section, "unet_step", unet, b, fl["denoiser_per_eval"], note=how, **kw):
                    break
                call = end_to_end_call(pipe, self.device, self.dtype, b, PROMPT, gen, 32)
                e2e_flops = fl["text_per_class"] / b + fl["per_image"]
                if not self.measure(section, "end_to_end", call, b, e2e_flops, note=how, **kw):
                    break
        finally:
            pipe.unet = eager
            set_vae_mode(pipe, "upcast", base_vae)

    def tiny_256(self, section: str) -> None:
        from gendistill.sampling.pipeline import use_tiny_decoder

        pipe = self.pipeline("sdxl")
        vae = pipe.vae
        model = "sdxl-turbo" if not self.a.smoke else "tiny sdxl"
        batches = [2, 4] if self.a.smoke else [8, 32]
        try:
            for decoder, res in (("vae", self.low_res), ("tiny", self.res), ("tiny", self.low_res)):
                pipe.vae = vae
                if decoder == "tiny":
                    use_tiny_decoder(pipe, str(self.models["taesdxl"]), self.dtype)
                    pipe.vae.to(self.device)
                fl = self.flops(pipe, res)
                gen = {"resolution": res, "steps": 1, "guidance_scale": 0.0}
                for b in batches:
                    kw = dict(model=model, resolution=res, batch=b, decoder=decoder, compiled=False)
                    kw["vae_mode"] = "upcast" if decoder == "vae" else ""
                    call = end_to_end_call(pipe, self.device, self.dtype, b, PROMPT, gen, 32)
                    if not self.measure(
                        section, "end_to_end", call, b, fl["text_per_class"] / b + fl["per_image"], **kw
                    ):
                        break
        finally:
            pipe.vae = vae

    def sd_turbo(self, section: str) -> None:
        pipe = self.pipeline("sd")
        fl = self.flops(pipe, self.res)
        gen = {"resolution": self.res, "steps": 1, "guidance_scale": 0.0}
        model = "sd-turbo" if not self.a.smoke else "tiny sd"
        for b in [1, 4] if self.a.smoke else [1, 8, 32]:
            kw = dict(model=model, resolution=self.res, batch=b, vae_mode="upcast", decoder="vae", compiled=False)
            call = end_to_end_call(pipe, self.device, self.dtype, b, PROMPT, gen, 32)
            if not self.measure(section, "end_to_end", call, b, fl["text_per_class"] / b + fl["per_image"], **kw):
                break
        self.pipes.pop("sd")  # its memory goes back before the workflow's sampler loads SDXL-Turbo
        if self.device == "cuda":
            self.torch.cuda.empty_cache()

    def reference(self, section: str) -> None:
        pipe = self.pipeline("sdxl")
        fl = self.flops(pipe, self.res)
        n = 4 if self.a.smoke else 8
        m = self.timer.measure(reference_call(pipe, n, PROMPT, self.res, 32), 1, 2 if self.a.smoke else 3)
        model = "sdxl-turbo" if not self.a.smoke else "tiny sdxl"
        kw = dict(model=model, resolution=self.res, batch=1, vae_mode="upcast", decoder="vae", compiled=False)
        self.record(
            section, "reference_loop", m, n, fl["text_per_class"] + fl["per_image"], note=f"{n} images a call", **kw
        )

    def workflow(self, section: str, seconds: float) -> None:
        # the suite's own pipelines give their memory back first: the sampler process loads its own
        self.pipes.clear()
        if self.device == "cuda":
            self.torch.cuda.empty_cache()
        classes, n = (3, 2) if self.a.smoke else (None, 50)
        work = Path(self.a.work) / "workflow"
        cfg = make_config(
            str(self.models["sdxl"]),
            work,
            classes=classes,
            n_generated=n,
            resolution=self.res,
            device=self.device,
            dtype="auto",
            server_idle=20,
        )
        if self.a.smoke:
            cfg["generation"]["batch_size"] = 2
        self.workflow_config = work / "config.e2e.yaml"
        self.progress(section, f"{classes or 100} classes x {n} images at {self.res} px (Snakemake, sampler)")
        r = run_workflow(cfg, work, os.cpu_count() or 1, timeout=max(seconds - 10, 5))
        status = "ok" if r["completed"] else ("stopped" if r["returncode"] is None else "error")
        note = (
            f"{r['classes_done']}/{r['classes']} classes, wall {r['wall_s']} s (model load "
            f"{r['model_load_s'] or '?'} s, pipeline loads {r['pipeline_loads']}); sampling {r['img_per_s_sampling']}"
            f" img/s summed over classes"
        )
        if status == "error":
            note += "; log tail: " + Path(r["log"]).read_text()[-400:].replace("\n", " | ")
        self.row(
            section,
            "workflow_to_package",
            model=Path(self.models["sdxl"]).name,
            resolution=self.res,
            batch=r["batch_size"],
            vae_mode="upcast",
            decoder="vae",
            compiled=False,
            ms_per_call=round(r["wall_s"] * 1e3, 1),
            img_per_s=r["img_per_s_overall"],
            status=status,
            note=note,
        )
        self.progress(section, f"{status}: {r['images']} images, {r['img_per_s_overall']} img/s overall; {note}")

    def time_budget(self, section: str) -> None:
        from gendistill.time_budget import main as time_budget

        cfg = getattr(self, "workflow_config", None)
        if cfg is None or not cfg.is_file():
            self.row(section, "recommendation", status="skipped", note="needs the workflow section's config")
            return
        out = Path(self.a.work) / "time_budget.json"
        quick = ["--repeats", "1", "--timed-batches", "2"] if self.a.smoke else []
        rc = time_budget(["--configfile", str(cfg), "--budget", "600", "--json", str(out), *quick])
        rec = json.loads(out.read_text())
        m, r = rec["measured"], rec["recommendation"]
        fl = m["flops"]["per_image"]
        achieved = fl * m["throughput_img_s"] / 1e12
        self.row(
            section,
            "recommendation",
            model=Path(self.models["sdxl"]).name,
            resolution=m["resolution"],
            batch=m["batch_size"],
            decoder="vae",
            vae_mode="upcast",
            compiled=False,
            img_per_s=rec["model"]["throughput_img_s"],
            gflop_per_image=round(fl / 1e9, 3),
            achieved_tflops=round(achieved, 3),
            frac_of_peak=round(achieved / self.peak, 4) if self.peak else "",
            status="ok" if rc in (0, 1) else "error",
            note=(
                f"600 s for {rec['model']['n_classes']} classes: n_generated {r['n_generated']}, IPC {r['ipc']} "
                f"(n_aug {rec['model']['n_aug']}), predicted {r['predicted_seconds']} s; load {m['load_s']} s"
            ),
        )

    def evaluation(self, section: str) -> None:
        """The evaluation's training step per case, batch and variant (float32; bf16 autocast; + channels-last;
        + compiled), through gendistill's own loop (benchmarks/bench_eval.py OurLoop: the seeded permutation,
        the batch gathered from uint8 images on the device, augmentation and mixing there, Trainer.step)."""
        from bench_eval import OurLoop

        from gendistill.evaluation import kd_cache
        from gendistill.evaluation.data import DeviceImages
        from gendistill.evaluation.models import build_model
        from gendistill.evaluation.runtime import Runtime

        torch, smoke, dev = self.torch, self.a.smoke, self.device
        kd_recipe = {"lr": 0.001, "optimizer": "adamw", "momentum": 0.9, "weight_decay": 0.01,
                     "schedule": "cosine_half", "train_augment": True, "augment": "rrc_flip",
                     "rrc_scale": [0.08, 1.0], "mix": "cutmix", "mix_beta": 1.0}  # fmt: skip
        dsa_recipe = {"lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "schedule": "step",
                      "train_augment": True, "augment": "dsa"}  # fmt: skip
        kd = {"temperature": 20.0, "alpha": 1.0, "t_squared": False}
        # (name, model, px, classes, batches, recipe, teacher online)
        cases = [
            ("ResNet-18 KD", "resnet18", 32 if smoke else 224, 10 if smoke else 1000, [4] if smoke else [256],
             kd_recipe, True),
            ("ConvNet-D3", "convnet_d3", 16 if smoke else 32, 10, [8] if smoke else [256], dsa_recipe, False),
            ("ResNet-18 KD", "resnet18", 32 if smoke else 224, 10 if smoke else 1000, [8] if smoke else [1024],
             kd_recipe, True),
        ]  # fmt: skip
        half = "bf16"
        variants = [("float32", "off", False, False), (half, half, False, False), (half, half, True, False)]
        variants.append((half, half, True, True))
        epochs = self.warmup + self.repeats + 1
        for name, model, px, classes, batches, extra, online in cases:
            for b in batches:
                g = torch.Generator().manual_seed(0)
                x8 = torch.randint(0, 256, (b, 3, px, px), generator=g, dtype=torch.uint8)
                source = DeviceImages(x8, torch.arange(b) % classes, MEAN, STD, device=dev)
                recipe = {**extra, "epochs": epochs, "batch_size": b}
                teacher = build_model(model, classes, px).eval() if online else None
                flops = self._train_step_flops(model, classes, px, recipe, teacher, kd if online else None)
                common = dict(model=f"{name} ({model})", resolution=px, batch=b)
                for label, amp, channels_last, compiled in variants:
                    rt = Runtime(device=dev, amp=amp, channels_last=channels_last)
                    loop = OurLoop(source, recipe, model, classes, teacher=teacher, kd=kd if online else None,
                                   runtime=rt)  # fmt: skip
                    how = ""
                    if compiled:
                        backend = "eager" if smoke else "inductor"
                        loop.trainer.net = torch.compile(loop.trainer.net, backend=backend)
                        how = f"torch.compile backend {backend}" + (" (smoke)" if smoke else "")
                    kw = dict(precision=label, channels_last=channels_last, compiled=compiled, **common)
                    if not self.measure(section, "train_step", loop.epoch, b, flops, note=how, **kw):
                        break
                if online:  # the same step reading the kd cache (the teacher's outputs stored once)
                    rt = Runtime(device=dev, amp=half, channels_last=True)
                    path = Path(self.a.work) / "kd_cache.pt"
                    rec = kd_cache.build(source, recipe, teacher, kd["temperature"], 100, 0, classes, str(path), rt)
                    cache = kd_cache.load(str(path))
                    loop = OurLoop(source, recipe, model, classes, kd=kd, cache=cache, runtime=rt)
                    student = self._train_step_flops(model, classes, px, recipe, None, None)
                    note = f"kd cache: {rec['storage_bytes'] / (epochs * b):.0f} B per image and epoch (top 100)"
                    kw = dict(precision=half, channels_last=True, compiled=False, **common)
                    self.measure(section, "train_step_kd_cache", loop.epoch, b, student, note=note, **kw)
                if dev == "cuda":
                    torch.cuda.empty_cache()

    def _train_step_flops(self, model, classes, px, recipe, teacher, kd) -> float:
        """FLOPs per image of one training step (student forward + backward, the teacher's forward), counted by
        torch's FlopCounterMode on a batch of 2 in float32."""
        from torch.utils.flop_counter import FlopCounterMode

        from gendistill.evaluation.runtime import Runtime
        from gendistill.evaluation.train import Trainer

        torch = self.torch
        trainer = Trainer(model, classes, px, {**recipe, "train_augment": False}, Runtime(device=self.device),
                          kd=kd, teacher=teacher)  # fmt: skip
        x = torch.randn(2, 3, px, px, device=self.device)
        y = torch.arange(2, device=self.device) % classes
        counter = FlopCounterMode(display=False)
        with counter:
            trainer.step(x, y, torch.arange(2), torch.Generator().manual_seed(0))
        return counter.get_total_flops() / 2

    # ---- running and reporting
    def run(self) -> None:
        wanted = [s for s in SECTIONS if s in self.a.sections.split(",")]
        for i, section in enumerate(wanted):
            left = self.deadline - time.perf_counter()
            shares = [SECTIONS[s] for s in wanted[i:]]
            cap = left * shares[0] / sum(shares)
            if section != "setup" and not self.env:
                self.row(section, "section", status="skipped", note="setup did not finish")
                continue
            if section in ("components", "compiled", "tiny_256", "reference", "workflow", "time_budget") and (
                "sdxl" not in self.models
            ):
                self.row(section, "section", status="skipped", note="no SDXL model (setup)")
                continue
            self.progress(section, f"start, cap {cap:.0f} s")
            t = time.perf_counter()
            try:
                if section == "workflow":  # a subprocess with its own timeout, not the alarm
                    self.workflow(section, cap)
                else:
                    with time_cap(cap):
                        getattr(self, section)(section)
                status, note = "ok", ""
            except SectionTimeout:
                status, note = "stopped", f"time cap {cap:.0f} s reached; the rows above it were measured"
            except Exception as e:  # a section that fails leaves the others to run
                status, note = "error", f"{type(e).__name__}: {e}"[:500]
                traceback.print_exc()
            self.row(section, "section", status=status, note=note or f"{time.perf_counter() - t:.1f} s")
            self.progress(section, f"{status} after {time.perf_counter() - t:.1f} s {note}")

    def write(self, out: Path) -> tuple[Path, Path]:
        out.mkdir(parents=True, exist_ok=True)
        csv_path, md_path = out / "gpu_suite.csv", out / "gpu_suite.md"
        env_cols = list(self.env)
        with csv_path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS + env_cols)
            w.writeheader()
            for r in self.rows:
                w.writerow({**r, **self.env})
        md = io.StringIO()
        md.write("# gendistill GPU suite\n\n")
        md.write(" | ".join(f"{k}: {v}" for k, v in self.env.items()) + "\n\n")
        measured = [r for r in self.rows if r["step"] != "section" and r["status"] == "ok" and r["img_per_s"] != ""]
        evaluation = [r for r in measured if r["section"] == "evaluation"]
        measured = [r for r in measured if r["section"] != "evaluation"]
        cols = ["section", "step", "model", "resolution", "batch", "vae_mode", "decoder", "compiled", "ms_per_call"]
        cols += ["img_per_s", "gflop_per_image", "achieved_tflops", "frac_of_peak", "peak_mem_gib", "warmup_s", "note"]
        md.write(_md_table(cols, measured) + "\n\n")
        if evaluation:
            md.write("## Evaluation: one training step\n\n")
            ecols = ["model", "resolution", "batch", "precision", "channels_last", "compiled", "step", "ms_per_call"]
            ecols += ["img_per_s", "gflop_per_image", "achieved_tflops", "frac_of_peak", "peak_mem_gib", "warmup_s"]
            md.write(_md_table(ecols + ["note"], evaluation) + "\n\n")
        md.write("## Sections\n\n")
        sections = [r for r in self.rows if r["step"] == "section" or r["status"] != "ok" or r["img_per_s"] == ""]
        md.write(_md_table(["section", "step", "status", "note"], sections) + "\n")
        peak = f"achieved / {self.peak} TFLOP/s" if self.peak else "no peak known for this device (--peak-tflops)"
        md.write(f"\nTotal {time.perf_counter() - self.t0:.1f} s. frac_of_peak: {peak}.\n")
        md_path.write_text(md.getvalue())
        return csv_path, md_path


def _md_table(cols: list[str], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def unmet_requirements() -> list[str]:
    """The project's requirements (pyproject.toml, and what they require in turn) that the importable
    distributions do not meet: the node's own packages and the installed wheelhouse together."""
    from importlib import metadata

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return ["not checked (Python < 3.11 has no tomllib)"]
    env = default_environment()
    todo = [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen, unmet = set(), []
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), str(req.specifier))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{req.name} missing")
            continue
        if not req.specifier.contains(dist.version, prereleases=True):
            unmet.append(f"{req.name} {dist.version} (wants {req.specifier})")
        for sub in map(Requirement, dist.requires or []):
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in ("", *req.extras)):
                todo.append(sub)
    return sorted(set(unmet))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gpu_suite.csv and gpu_suite.md")
    ap.add_argument("--minutes", type=float, default=8.0, help="the whole suite's time, shared among the sections")
    ap.add_argument("--smoke", action="store_true", help="every section on the tiny pipelines, on the CPU")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--work", default=None, help="models and the workflow run (default /tmp/gendistill-gpu-suite)")
    ap.add_argument("--model-dir", default=None, help="a real SDXL-Turbo directory instead of random weights")
    ap.add_argument("--vae-modes", default="upcast,fp32,bf16", help=f"comma list of {', '.join(VAE_MODES)}")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense fp16 peak (default: by name)")
    a = ap.parse_args(argv)
    a.work = a.work or str(Path(os.environ.get("TMPDIR", "/tmp")) / "gendistill-gpu-suite")
    warnings.filterwarnings("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if not a.smoke and not torch.cuda.is_available():
        print("no CUDA device visible: run with --smoke for the CPU check of the suite itself", file=sys.stderr)
        return 2
    if a.smoke:
        torch.set_num_threads(1)
    Path(a.work).mkdir(parents=True, exist_ok=True)
    suite = Suite(a)
    suite.run()
    csv_path, md_path = suite.write(Path(a.out))
    print(md_path.read_text())
    print(f"written: {csv_path} {md_path}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in suite.rows if r["step"] == "section") else 1


if __name__ == "__main__":
    raise SystemExit(main())
