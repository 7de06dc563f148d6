"""Time-budget mode: the largest number of generated images per class that fits a wall-clock budget.

The challenge's generative track allowed 10 minutes of generation. Given the throughput measured on the
device that will do the work, the budget is planned with a linear cost model:

    total = fixed_overhead + n_classes * (per_class_overhead + oversample * n_generated / throughput)
                           + n_classes * n_generated * (1 + n_aug) * per_output_image_seconds

fixed_overhead: once per run (model load, warm-up/compilation); per_class_overhead: once per class (prompt
encoding, job start, writing the class's files); throughput: images/s of batched sampling on the device;
per_output_image_seconds: augmentation/packaging per final image (CPU, usually negligible).
IPC = n_generated x (1 + n_aug) (each generated image is kept plus n_aug augmented copies). With candidate
selection (selection.oversample k) each class samples k x n_generated candidates and keeps n_generated: the
sampling term counts all k x n_generated (--oversample); selection's own cost (one teacher forward per candidate)
is small next to sampling and falls under per_class_overhead.

CLI (measures throughput on this machine's device with the project's Sampler, prints the recommendation and
writes a JSON record for provenance; `python -m gendistill.time_budget` is the same command):

    gendistill time-budget --model-source models/sdxl-turbo --budget 600 --classes 100 --n-aug 4 \
        --json results/time_budget.json
    gendistill time-budget --model-source models/FLUX.1-schnell --steps 4 --resolution 512 --budget 600 \
        --classes 100 --decoder tiny --tiny-decoder models/taef1            # any supported family
    gendistill time-budget --model-source tiny --resolution 32 --budget 60 --classes 10   # smoke test
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class BudgetPlan:
    n_generated: int  # per class; 0 when not even one image per class fits
    ipc: int  # n_generated * (1 + n_aug)
    fits: bool  # n_generated >= 1
    predicted_seconds: float  # the model's total for n_generated (<= usable budget when fits)
    usable_seconds: float  # budget * safety
    budget_seconds: float
    limited_by: str  # "budget", "max_n_generated" or "nothing fits"
    seconds_per_class: float  # predicted, at n_generated


def predict_seconds(
    n_generated: int,
    *,
    throughput: float,
    n_classes: int,
    n_aug: int = 0,
    per_class_overhead: float = 0.0,
    fixed_overhead: float = 0.0,
    per_output_image_seconds: float = 0.0,
    oversample: int = 1,
) -> float:
    """Predicted wall-clock seconds of a run keeping `n_generated` images for each of `n_classes` classes
    (sampling oversample x n_generated candidates per class)."""
    if throughput <= 0:
        raise ValueError(f"throughput must be > 0 images/s, got {throughput}")
    per_class = (
        per_class_overhead
        + oversample * n_generated / throughput
        + n_generated * (1 + n_aug) * per_output_image_seconds
    )
    return fixed_overhead + n_classes * per_class


def plan_n_generated(
    *,
    throughput: float,
    budget_seconds: float,
    n_classes: int,
    n_aug: int = 0,
    per_class_overhead: float = 0.0,
    fixed_overhead: float = 0.0,
    per_output_image_seconds: float = 0.0,
    safety: float = 1.0,
    max_n_generated: int | None = None,
    oversample: int = 1,
) -> BudgetPlan:
    """Largest n_generated per class whose predicted total fits `safety * budget_seconds`.

    throughput: images/s of batched sampling; overheads in seconds; safety in (0, 1] keeps a margin for
    run-to-run variation (e.g. 0.9 plans for 90% of the budget).
    """
    if throughput <= 0:
        raise ValueError(f"throughput must be > 0 images/s, got {throughput}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if n_aug < 0 or budget_seconds < 0 or per_class_overhead < 0 or fixed_overhead < 0 or per_output_image_seconds < 0:
        raise ValueError("n_aug, budget and overheads must be >= 0")
    if not 0 < safety <= 1:
        raise ValueError(f"safety must be in (0, 1], got {safety}")
    if oversample < 1:
        raise ValueError(f"oversample must be >= 1, got {oversample}")
    usable = budget_seconds * safety
    per_image = oversample / throughput + (1 + n_aug) * per_output_image_seconds  # seconds per kept image
    room = (usable - fixed_overhead) / n_classes - per_class_overhead  # seconds left per class
    n = max(0, math.floor(room / per_image + 1e-9)) if room > 0 else 0
    kw = dict(
        throughput=throughput,
        n_classes=n_classes,
        n_aug=n_aug,
        per_class_overhead=per_class_overhead,
        fixed_overhead=fixed_overhead,
        per_output_image_seconds=per_output_image_seconds,
        oversample=oversample,
    )
    while n > 0 and predict_seconds(n, **kw) > usable:  # guard against floating-point rounding at the edge
        n -= 1
    limited_by = "budget" if n > 0 else "nothing fits"
    if max_n_generated is not None and n > max_n_generated:
        n, limited_by = max_n_generated, "max_n_generated"
    return BudgetPlan(
        n_generated=n,
        ipc=n * (1 + n_aug),
        fits=n >= 1,
        predicted_seconds=round(predict_seconds(n, **kw), 3),
        usable_seconds=round(usable, 3),
        budget_seconds=budget_seconds,
        limited_by=limited_by,
        seconds_per_class=round(per_class_overhead + n * per_image, 4),
    )


def fit_linear(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares fit seconds = overhead + n / throughput over (n_images, seconds) class runs.

    Returns (throughput images/s, per-class overhead s); the overhead is clamped at >= 0.
    """
    if len({n for n, _ in points}) < 2:
        n, s = points[0]
        return n / s, 0.0
    k = len(points)
    mx = sum(n for n, _ in points) / k
    my = sum(s for _, s in points) / k
    slope = sum((n - mx) * (s - my) for n, s in points) / sum((n - mx) ** 2 for n, _ in points)
    if slope <= 0:  # noise swamped the per-image cost: fall back to the largest run's average rate
        n, s = max(points)
        return n / s, 0.0
    return 1.0 / slope, max(0.0, my - slope * mx)


def measure(
    pipe,
    device: str,
    dtype,
    *,
    batch_size: int | str = "auto",
    resolution: int = 512,
    out_size: int = 32,
    prompt: str = "apple",
    warmup_batches: int = 1,
    timed_batches: int = 2,
    repeats: int = 2,
    steps: int = 1,
    guidance_scale: float = 0.0,
) -> dict:
    """Throughput and per-class overhead of the project's Sampler on `pipe` (any supported family), measured on
    `device` at the given resolution, steps and guidance.

    Class runs of 1 full batch and of `timed_batches` full batches (each `repeats` times, after
    `warmup_batches` warm-up batches) are timed; a linear fit separates per-image cost from per-class cost
    (prompt encoding, per-class Python work). A class-conditional model that has no label `prompt` is timed
    on its first label (the cost is the same for every class).
    """
    import torch

    from .families.dit import dit_label_id
    from .sampling.generate import Sampler

    sampler = Sampler(pipe, device, dtype, batch_size)
    bs = sampler.batch_size
    gen = {"resolution": resolution, "steps": steps, "guidance_scale": guidance_scale}
    labels = getattr(sampler.adapter, "labels", None)
    if labels and dit_label_id(prompt, labels) is None:
        prompt = next(iter(labels))

    def run(n: int, seed: int) -> float:
        cls = {"index": 0, "name": prompt, "id": "000", "prompt": prompt, "seed": seed, "n_generated": n}
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sampler.sample_class(cls, gen, out_size)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    for w in range(warmup_batches):
        run(bs, 1000 + w)
    warmup_s = time.perf_counter() - t0
    sizes = sorted({bs, bs * max(1, timed_batches)})
    points = [(n, run(n, r * 10 + i)) for r in range(repeats) for i, n in enumerate(sizes)]
    throughput, overhead = fit_linear(points)
    largest = max(n for n, _ in points)
    best_avg = max(n / s for n, s in points if n == largest)
    return {
        "throughput_img_s": throughput,
        "per_class_overhead_s": overhead,
        "batch_size": sampler.batch_size,
        "warmup_s": warmup_s,
        "runs": [{"n_images": n, "seconds": round(s, 5)} for n, s in points],
        "avg_img_s_largest_run": best_avg,
        "resolution": resolution,
        "out_size": out_size,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "family": sampler.adapter.family.name,
        "pipeline": type(pipe).__name__,
        "flops": sampler.adapter.flops(resolution, steps, guidance_scale),
    }


def _load(a):
    import torch

    from .sampling.pipeline import configure_vae, load_pipeline, resolve_device, resolve_dtype

    device = resolve_device(a.device)
    dtype = resolve_dtype(a.dtype, device)
    t0 = time.perf_counter()
    if a.model_source == "tiny":
        from .families import adapter_for
        from .generator.build import build_tiny_decoder, build_tiny_pipeline

        spec = json.loads(a.tiny_spec)
        pipe = build_tiny_pipeline(spec)
        if a.decoder == "tiny":
            pipe.vae = build_tiny_decoder(spec)
        pipe = pipe.to(device)
        if dtype != torch.float32:
            pipe = pipe.to(dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        configure_vae(pipe, a.vae_dtype)
        if a.compile:
            name = adapter_for(pipe).denoiser
            setattr(pipe, name, torch.compile(getattr(pipe, name)))
    else:
        pipe = load_pipeline(
            a.model_source,
            a.revision,
            device,
            dtype,
            a.compile,
            vae_dtype=a.vae_dtype,
            decoder=a.decoder,
            tiny_decoder=a.tiny_decoder,
        )
    return pipe, device, dtype, time.perf_counter() - t0


def run(a, command: str) -> int:
    """Measure, plan and report for the parsed `gendistill time-budget` arguments (cli.py holds the parser);
    `command`: the command line, recorded. Exit status 1 when not even one image per class fits."""

    import platform
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=FutureWarning)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    pipe, device, dtype, load_s = _load(a)
    if a.resolution is None:
        from .families import adapter_for

        adapter = adapter_for(pipe)
        a.resolution = (
            adapter.native_resolution()
            if hasattr(adapter, "native_resolution")
            else json.loads(a.tiny_spec).get("sample_size", 32)
            if a.model_source == "tiny"
            else 512
        )
    m = measure(
        pipe,
        device,
        dtype,
        batch_size=a.batch_size,
        resolution=a.resolution,
        out_size=a.out_size,
        prompt=a.prompt,
        warmup_batches=a.warmup_batches,
        timed_batches=a.timed_batches,
        repeats=a.repeats,
        steps=a.steps,
        guidance_scale=a.guidance_scale,
    )
    fixed = a.extra_fixed + (0.0 if a.no_load_time else load_s + m["warmup_s"])
    per_class = m["per_class_overhead_s"] + a.job_overhead
    plan = plan_n_generated(
        throughput=m["throughput_img_s"],
        budget_seconds=a.budget,
        n_classes=a.classes,
        n_aug=a.n_aug,
        per_class_overhead=per_class,
        fixed_overhead=fixed,
        per_output_image_seconds=a.per_output_image_seconds,
        safety=a.safety,
        max_n_generated=a.max_n_generated,
        oversample=a.oversample,
    )
    from .sampling.pipeline import environment

    env = environment(
        {
            "source": a.model_source,
            "revision": a.revision,
            "vae_dtype": a.vae_dtype,
            "decoder": a.decoder,
            "tiny_decoder": a.tiny_decoder,
        },
        device,
        dtype,
        pipe,
    )
    env.update({"host": platform.node(), "torch_threads": torch.get_num_threads(), "compile": a.compile})
    record = {
        "kind": "gendistill.time_budget",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "recommendation": asdict(plan),
        "model": {
            "fixed_overhead_s": round(fixed, 4),
            "per_class_overhead_s": round(per_class, 5),
            "throughput_img_s": round(m["throughput_img_s"], 4),
            "n_classes": a.classes,
            "n_aug": a.n_aug,
            "per_output_image_seconds": a.per_output_image_seconds,
            "safety": a.safety,
            "oversample": a.oversample,
        },
        "measured": {
            **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in m.items()},
            "load_s": round(load_s, 4),
            "measurement_wall_s": round(time.perf_counter() - t_start, 3),
        },
        "assumed": {
            "job_overhead_s": a.job_overhead,
            "extra_fixed_s": a.extra_fixed,
            "load_time_counted": not a.no_load_time,
        },
        "environment": env,
        "command": command,
    }
    fl = m["flops"]
    print(
        f"{env['family']} ({env['pipeline']}), decoder {a.decoder}, {a.steps} step(s), guidance "
        f"{a.guidance_scale}: {fl['per_image'] / 1e9:.4g} GFLOP per image ({fl['evals_per_image']} denoiser "
        f"evaluation(s) of {fl['denoiser_per_eval'] / 1e9:.4g} + decode {fl['decoder'] / 1e9:.4g}); at the measured "
        f"throughput {fl['per_image'] * m['throughput_img_s'] / 1e12:.3g} TFLOP/s"
    )
    print(
        f"device {device} ({env.get('gpu', 'cpu')}), {dtype}, batch {m['batch_size']}, {a.resolution} px: "
        f"{m['throughput_img_s']:.2f} images/s, per-class overhead {m['per_class_overhead_s']:.3f} s measured "
        f"+ {a.job_overhead} s assumed, fixed {fixed:.1f} s (load {load_s:.1f} s + warm-up {m['warmup_s']:.1f} s"
        f"{'' if not a.no_load_time else ', not counted'})"
    )
    if plan.fits:
        print(
            f"budget {a.budget:.0f} s x safety {a.safety} for {a.classes} classes: n_generated = {plan.n_generated}"
            f" per class -> IPC {plan.ipc} (n_aug {a.n_aug}); predicted {plan.predicted_seconds:.1f} s "
            f"(limited by {plan.limited_by})"
        )
    else:
        one = predict_seconds(
            1,
            throughput=m["throughput_img_s"],
            n_classes=a.classes,
            n_aug=a.n_aug,
            per_class_overhead=per_class,
            fixed_overhead=fixed,
            per_output_image_seconds=a.per_output_image_seconds,
            oversample=a.oversample,
        )
        print(
            f"budget {a.budget:.0f} s x safety {a.safety}: not even 1 image per class fits "
            f"(predicted {one:.1f} s for 1)"
        )
    print(f"config: generation.n_generated: {plan.n_generated}, ipc: {plan.ipc}")
    if a.json:
        from .atomic import write_text

        write_text(Path(a.json), json.dumps(record, indent=1) + "\n")
        print(f"record written to {a.json}")
    return 0 if plan.fits else 1


def main(argv=None) -> int:
    """`python -m gendistill.time_budget ...`: the same as `gendistill time-budget ...`."""
    from .cli import main as cli

    return cli(["time-budget", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
