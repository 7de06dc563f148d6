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
sampling term counts all k x n_generated; selection's own cost (one teacher forward per candidate) is small next
to sampling and falls under per_class_overhead.

CLI: reads the run's config exactly as the workflow does (`--configfile`, several merged in order, schema
defaults; without one, ./config.yaml), loads its model through the sampler's own loader on its device, times
class runs with the project's Sampler at the config's resolution, steps, guidance, decoder, dtypes, batch size and
dataset image size, and plans its classes, n_aug and selection.oversample. It prints the recommendation and writes
a JSON record for provenance (`python -m gendistill.time_budget` is the same command):

    gendistill time-budget --configfile my_run.yaml --budget 600 --json results/time_budget.json
    gendistill time-budget --configfile config.yaml configs/models/flux.1-schnell.yaml --budget 600 \
        --set generation.decoder=tiny --set generation.tiny_decoder=models/taef1      # a what-if, not saved
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
    # deferred: torch and the sampler load only when a measurement runs (the planning arithmetic needs neither)
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


def add_arguments(p) -> None:
    """The `gendistill time-budget` options (cli.py adds them to its subcommand; main() below to its own parser).
    What is generated, and how, comes from the run's config; these options only say how to measure and plan."""
    p.add_argument(
        "--configfile",
        nargs="+",
        default=["config.yaml"],
        help="the run's config file(s), merged in order as Snakemake's --configfile",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key for this measurement (dotted key, YAML value; repeatable), "
        "e.g. --set generation.resolution=256",
    )
    p.add_argument("--budget", type=float, required=True, help="wall-clock budget in seconds (challenge: 600)")
    p.add_argument("--json", default=None, help="write the record here (none: print it only)")
    p.add_argument(
        "--warmup-batches", type=int, default=1, help="batches sampled and not timed first (kernel selection, caches)"
    )
    p.add_argument(
        "--timed-batches", type=int, default=2, help="the longer timed class run's batches (the shorter has one)"
    )
    p.add_argument(
        "--repeats", type=int, default=2, help="times each class run is timed; a line fitted through all of them"
    )
    p.add_argument(
        "--job-overhead",
        type=float,
        default=0.3,
        help="seconds per class added to the measured per-class overhead for workflow job start-up and file "
        "writing (Snakemake shell jobs ~0.03 s each + thin client start; see docs/design/sampler.md)",
    )
    p.add_argument(
        "--extra-fixed", type=float, default=0.0, help="extra seconds once per run (e.g. workflow start, packaging)"
    )
    p.add_argument(
        "--no-load-time",
        action="store_true",
        help="do not count the measured model load + warm-up in the fixed overhead (when the budget starts with "
        "a loaded model)",
    )
    p.add_argument("--per-output-image-seconds", type=float, default=0.0, help="augmentation/packaging per final image")
    p.add_argument("--safety", type=float, default=0.9, help="plan for this fraction of the budget")
    p.add_argument(
        "--max-n-generated", type=int, default=None, help="cap the recommendation (none: only the budget caps it)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0 = what the sampler process uses: 1 for a small denoiser, every core otherwise)",
    )


def _run_config(configfiles: list[str], overrides: list[str]) -> dict:
    """The run's config as the workflow reads it, less its time_budget_record (the record this command writes;
    the workflow checks n_generated against it, which must not stop measuring a new one)."""
    from .config import read_config_files

    cfg = read_config_files(configfiles, overrides)
    cfg.pop("time_budget_record", None)
    return cfg


def _load_pipeline(plan, tmp: Path):
    """(pipe, device, dtype, seconds) through the sampler's own loader and load spec. A tiny random-weight model
    the workflow has not built yet is written to `tmp` first, as rule build_tiny_model would write it."""
    # deferred: torch, diffusers and the generator builders load only when a measurement runs
    from .sampling.pipeline import load_from_spec

    load = {**plan.load_spec, **{k: plan.sampler_runtime[k] for k in ("compile", "deterministic", "check_memory")}}
    if plan.model_kind == "tiny" and not Path(load["source"]).is_dir():
        from .generator.build import save_tiny_pipeline

        built = save_tiny_pipeline(tmp / "tiny", plan.cfg["model"]["tiny"])
        load = {**load, "source": str(built)}
        if load.get("decoder") == "tiny" and not plan.cfg["generation"].get("tiny_decoder"):
            load["tiny_decoder"] = str(built / "tiny_decoder")
    elif plan.model_kind == "fitted" and not Path(load["source"]).is_dir():
        raise SystemExit(
            f"model.fitted: the fitted stand-in {load['source']} is not built yet. Fix: build it first with "
            f"`snakemake --cores 2 {load['source']}` and this config."
        )
    t0 = time.perf_counter()
    pipe, device, dtype = load_from_spec(load)
    return pipe, load, device, dtype, time.perf_counter() - t0


def run(a, command: str) -> int:
    """Measure, plan and report for the parsed `gendistill time-budget` arguments (add_arguments);
    `command`: the command line, recorded. Exit status 1 when not even one image per class fits."""
    import warnings

    from .config import ConfigError
    from .datasets import DatasetError
    from .plan import build_plan

    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        plan = build_plan(_run_config(a.configfile, a.set))
    except (ConfigError, DatasetError, OSError, ValueError) as err:
        print(f"gendistill time-budget: {err}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    m, load, env = _measure_run(plan, a)
    cost = _cost_model(plan, a, m)
    plan_n = plan_n_generated(budget_seconds=a.budget, safety=a.safety, max_n_generated=a.max_n_generated, **cost)
    record = _record(plan, a, m, load, env, cost, plan_n, time.perf_counter() - t_start, command)
    _report(plan, a, m, load, env, cost, plan_n)
    if a.json:
        from .atomic import write_text

        write_text(Path(a.json), json.dumps(record, indent=1) + "\n")
        print(f"record written to {a.json}")
    return 0 if plan_n.fits else 1


def _measure_run(plan, a) -> tuple[dict, dict, dict]:
    """(measurement, load spec, environment): the run's pipeline loaded as the sampler loads it and timed on the
    first class's prompt with the run's generation settings."""
    import platform
    import tempfile

    # deferred: the measurement imports torch
    import torch

    from .sampling.pipeline import environment, set_cpu_threads

    gen = plan.cfg["generation"]
    with tempfile.TemporaryDirectory(prefix="gendistill-time-budget-") as tmp:
        pipe, load, device, dtype, load_s = _load_pipeline(plan, Path(tmp))
        threads = a.threads if a.threads > 0 else set_cpu_threads(pipe, device)
        if a.threads > 0:
            torch.set_num_threads(a.threads)
        m = measure(
            pipe,
            device,
            dtype,
            batch_size=gen["batch_size"],
            resolution=gen["resolution"],
            out_size=plan.image_size,
            prompt=plan.classes[0].prompt,
            warmup_batches=a.warmup_batches,
            timed_batches=a.timed_batches,
            repeats=a.repeats,
            steps=gen["steps"],
            guidance_scale=gen["guidance_scale"],
        )
        env = environment(load, device, dtype, pipe, threads)
    env.update({"host": platform.node(), "torch_threads": torch.get_num_threads(), "compile": load["compile"]})
    return {**m, "load_s": load_s, "device": device, "dtype": str(dtype)}, load, env


def _cost_model(plan, a, m: dict) -> dict:
    """The cost model's terms (predict_seconds' keywords): measured throughput and overheads, and the options'."""
    return dict(
        throughput=m["throughput_img_s"],
        n_classes=len(plan.classes),
        n_aug=plan.cfg["augmentation"]["n_aug"],
        per_class_overhead=m["per_class_overhead_s"] + a.job_overhead,
        fixed_overhead=a.extra_fixed + (0.0 if a.no_load_time else m["load_s"] + m["warmup_s"]),
        per_output_image_seconds=a.per_output_image_seconds,
        oversample=plan.cfg["selection"]["oversample"],
    )


def _record(plan, a, m, load, env, cost, plan_n, wall_s: float, command: str) -> dict:
    """What --json writes (and the workflow copies into the run's provenance)."""
    measured = {k: v for k, v in m.items() if k not in ("load_s", "device", "dtype")}
    return {
        "kind": "gendistill.time_budget",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "recommendation": asdict(plan_n),
        "model": {
            "fixed_overhead_s": round(cost["fixed_overhead"], 4),
            "per_class_overhead_s": round(cost["per_class_overhead"], 5),
            "throughput_img_s": round(m["throughput_img_s"], 4),
            "n_classes": cost["n_classes"],
            "n_aug": cost["n_aug"],
            "per_output_image_seconds": a.per_output_image_seconds,
            "safety": a.safety,
            "oversample": cost["oversample"],
        },
        "measured": {
            **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in measured.items()},
            "load_s": round(m["load_s"], 4),
            "measurement_wall_s": round(wall_s, 3),
        },
        "assumed": {
            "job_overhead_s": a.job_overhead,
            "extra_fixed_s": a.extra_fixed,
            "load_time_counted": not a.no_load_time,
        },
        "config": {"files": list(a.configfile), "set": list(a.set), "load": load, "generation": plan.gen_spec},
        "environment": env,
        "command": command,
    }


def _report(plan, a, m, load, env, cost, plan_n) -> None:
    """The printed summary: FLOPs, the measurement, and the recommended n_generated with the config lines."""
    gen, fl = plan.cfg["generation"], m["flops"]
    print(
        f"{env['family']} ({env['pipeline']}), decoder {load.get('decoder', 'vae')}, {gen['steps']} step(s), "
        f"guidance {gen['guidance_scale']}: {fl['per_image'] / 1e9:.4g} GFLOP per image ({fl['evals_per_image']} "
        f"denoiser evaluation(s) of {fl['denoiser_per_eval'] / 1e9:.4g} + decode {fl['decoder'] / 1e9:.4g}); at "
        f"the measured throughput {fl['per_image'] * m['throughput_img_s'] / 1e12:.3g} TFLOP/s"
    )
    print(
        f"device {m['device']} ({env.get('gpu', 'cpu')}), {m['dtype']}, batch {m['batch_size']}, "
        f"{gen['resolution']} px: {m['throughput_img_s']:.2f} images/s, per-class overhead "
        f"{m['per_class_overhead_s']:.3f} s measured + {a.job_overhead} s assumed, fixed "
        f"{cost['fixed_overhead']:.1f} s (load {m['load_s']:.1f} s + warm-up {m['warmup_s']:.1f} s"
        f"{'' if not a.no_load_time else ', not counted'})"
    )
    if plan_n.fits:
        print(
            f"budget {a.budget:.0f} s x safety {a.safety} for {cost['n_classes']} classes: n_generated = "
            f"{plan_n.n_generated} per class -> IPC {plan_n.ipc} (n_aug {cost['n_aug']}); predicted "
            f"{plan_n.predicted_seconds:.1f} s (limited by {plan_n.limited_by})"
        )
    else:
        print(
            f"budget {a.budget:.0f} s x safety {a.safety}: not even 1 image per class fits "
            f"(predicted {predict_seconds(1, **cost):.1f} s for 1)"
        )
    print(f"config: generation.n_generated: {plan_n.n_generated}, ipc: {plan_n.ipc}")


def main(argv=None) -> int:
    """`python -m gendistill.time_budget ...`: the same as `gendistill time-budget ...`."""
    import argparse

    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="gendistill time-budget", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv), " ".join(["gendistill time-budget", *argv]))


if __name__ == "__main__":
    raise SystemExit(main())
