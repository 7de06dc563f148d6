#!/usr/bin/env python
"""CPU benchmark: our batched Sampler vs the paper's per-image loop, on the SAME tiny random-weight pipeline.

What is compared (per class, images end as uint8 arrays at the dataset resolution in both cases):
* reference: a faithful re-implementation of the reference script's loop (submit_cifar100.py of the paper's
  code): for each image one `pipe(prompt=class_name, negative_prompt=..., num_inference_steps=1,
  guidance_scale=0.0, height=H, width=W)` call, batch 1, default PIL output, then PIL `.resize((s, s))`.
  The prompt is therefore tokenised and encoded by both text encoders once per image.
* ours: `gendistill.sampling.generate.Sampler.sample_class` - prompt encoded once per class, batched pipeline calls
  with per-image seeded generators, tensor output, one antialiased resize per batch, NaN/blank check.

A tiny model is dominated by per-call overhead (Python, prompt encoding, PIL conversion), which is exactly
what batching and encoding once remove; on a GPU with the full model the same overhead is the part of the
time that is not UNet/VAE compute (see gpu_suite.py). Figures here are NOT the GPU speed-up.

Method: warm-up calls first; then `--repeats` rounds, each round timing every method once (interleaved, so
background load on a shared machine hits all methods alike); the median images/s is reported.
Also checks (prints, does not assert) that our images are identical whatever the batch size.

    .venv/bin/python benchmarks/bench_cpu_sampler.py            # default: tiny32 and tiny64
    .venv/bin/python benchmarks/bench_cpu_sampler.py --specs tiny32 --repeats 3 --no-csv
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from _common import RESULTS, append_csv, fmt_table, machine_info, summarize

# name -> tiny pipeline spec (gendistill.families.tiny.TINY_DEFAULTS overrides), sampling resolution, output size.
SPECS = {
    "tiny32": {"spec": {"seed": 0}, "resolution": 32, "out_size": 16},
    "tiny64": {"spec": {"seed": 0, "sample_size": 64}, "resolution": 64, "out_size": 32},
}
REFERENCE_NEGATIVE = "cartoon, anime, painting"  # the reference passes it; at guidance 0 it is never encoded


def reference_loop(pipe, class_name: str, n: int, res: int, out_size: int) -> np.ndarray:
    """The reference script's inner loop: one pipeline call per image, PIL output, PIL resize."""
    out = []
    for _ in range(n):
        images = pipe(
            prompt=class_name,
            negative_prompt=REFERENCE_NEGATIVE,
            num_inference_steps=1,
            guidance_scale=0.0,
            height=res,
            width=res,
        ).images
        small = images[0].resize((out_size, out_size))
        out.append(np.asarray(small))
    return np.stack(out)


def ours(pipe, batch_size: int, class_name: str, n: int, res: int, out_size: int) -> np.ndarray:
    import torch

    from gendistill.sampling.generate import Sampler

    cls = {"index": 0, "name": class_name, "id": f"000_{class_name}", "prompt": class_name, "seed": 0, "n_generated": n}
    gen = {"resolution": res, "steps": 1, "guidance_scale": 0.0}
    images, _, _ = Sampler(pipe, "cpu", torch.float32, batch_size).sample_class(cls, gen, out_size)
    return images


def timed(fn, n: int) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return n / (time.perf_counter() - t0), out


def run_spec(name: str, args, info: dict) -> tuple[list[list], list[dict], dict]:
    from gendistill.families.tiny import TINY_DEFAULTS
    from gendistill.generator.build import build_tiny_pipeline
    from gendistill.sampling.generate import DEFAULT_BATCH

    cfg = SPECS[name]
    res, out_size = cfg["resolution"], cfg["out_size"]
    pipe = build_tiny_pipeline(cfg["spec"])
    pipe.set_progress_bar_config(disable=True)
    n_params = sum(
        p.numel() for m in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2) for p in m.parameters()
    )

    methods = {
        "reference (batch 1/call, PIL)": (
            lambda: reference_loop(pipe, args.class_name, args.n_ref, res, out_size),
            args.n_ref,
            1,
        )
    }
    for bs in args.batch_sizes:
        methods[f"ours batch {bs}"] = (
            lambda bs=bs: ours(pipe, bs, args.class_name, args.n_images, res, out_size),
            args.n_images,
            bs,
        )
    for _ in range(args.warmup):  # warm-up: allocator, oneDNN primitive caches, lazy imports
        reference_loop(pipe, args.class_name, 2, res, out_size)
        for bs in args.batch_sizes:
            ours(pipe, bs, args.class_name, min(args.n_images, 2 * bs), res, out_size)

    rates: dict[str, list[float]] = {m: [] for m in methods}
    images: dict[int, np.ndarray] = {}
    for _ in range(args.repeats):
        for m, (fn, n, bs) in methods.items():
            r, out = timed(fn, n)
            rates[m].append(r)
            if m.startswith("ours"):
                images[bs] = out

    ref = summarize(rates["reference (batch 1/call, PIL)"])
    base = images[args.batch_sizes[0]].astype(np.int16)
    diffs = [np.abs(base - im.astype(np.int16)) for im in images.values()]
    identical = all(not d.any() for d in diffs)
    n_diff, max_diff = max(int((d > 0).sum()) for d in diffs), max(int(d.max()) for d in diffs)
    default_bs = DEFAULT_BATCH["cpu"]
    table, rows = [], []
    spec_json = json.dumps({**TINY_DEFAULTS, **cfg["spec"]}, sort_keys=True)
    for m, (_fn, n, bs) in methods.items():
        s = summarize(rates[m])
        ratio = s["median"] / ref["median"]
        tag = " (workflow default)" if m.startswith("ours") and bs == default_bs else ""
        table.append(
            [
                name,
                f"{res}->{out_size}",
                m + tag,
                n,
                f"{s['median']:.1f}",
                f"{s['min']:.1f}-{s['max']:.1f}",
                f"{ratio:.2f}x",
            ]
        )
        rows.append(
            {
                **info,
                "benchmark": "cpu_sampler",
                "spec": name,
                "spec_json": spec_json,
                "params_total": n_params,
                "resolution": res,
                "out_size": out_size,
                "method": "reference" if not m.startswith("ours") else "ours",
                "batch_size": bs,
                "images_per_repeat": n,
                "repeats": args.repeats,
                "warmup": args.warmup,
                "img_per_s_median": round(s["median"], 3),
                "img_per_s_min": round(s["min"], 3),
                "img_per_s_max": round(s["max"], 3),
                "ratio_vs_reference": round(ratio, 3),
                "identical_across_batch_sizes": identical,
                "max_uint8_diff_across_batch_sizes": max_diff,
                "n_values_differing": n_diff,
                "n_values": base.size,
            }
        )
    best_bs = max(args.batch_sizes, key=lambda b: summarize(rates[f"ours batch {b}"])["median"])
    summary = {
        "spec": name,
        "identical": identical,
        "max_diff": max_diff,
        "n_diff": n_diff,
        "size": base.size,
        "best_bs": best_bs,
        "best_ratio": summarize(rates[f"ours batch {best_bs}"])["median"] / ref["median"],
        "default_ratio": (
            summarize(rates[f"ours batch {default_bs}"])["median"] / ref["median"]
            if default_bs in args.batch_sizes
            else None
        ),
    }
    return table, rows, summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specs", default="tiny32,tiny64", help=f"comma list of {sorted(SPECS)}")
    ap.add_argument(
        "--batch-sizes",
        default="1,8,16,32,64",
        help="our Sampler's batch sizes (1 = prompt encoded once but no batching: separates the two effects)",
    )
    ap.add_argument("--n-images", type=int, default=64, help="images per timed class run for ours")
    ap.add_argument("--n-ref", type=int, default=32, help="images per timed run of the reference loop")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: stable on a shared machine; 0 = torch default)",
    )
    ap.add_argument("--class-name", default="apple")
    ap.add_argument("--csv", default=str(RESULTS / "cpu_sampler.csv"))
    ap.add_argument("--no-csv", action="store_true")
    args = ap.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    warnings.filterwarnings("ignore")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine_info()
    print(
        f"machine: {info['cpu']} ({info['cpu_cores']} cores, {info['torch_threads']} torch threads, "
        f"load avg {info['loadavg_1m']}), GPU: {info['gpu']}; torch {info['torch']}, diffusers "
        f"{info['diffusers']}; {info['date_utc']}"
    )
    print(
        f"settings: repeats {args.repeats} (median), warm-up {args.warmup}, ours {args.n_images} images/class "
        f"run, reference {args.n_ref} images/run, 1 step, guidance 0, float32, random-weight tiny pipelines\n"
    )
    table, rows, summaries = [], [], []
    for name in args.specs.split(","):
        t, r, s = run_spec(name, args, info)
        table += t
        rows += r
        summaries.append(s)
    print(fmt_table(["spec", "px", "method", "imgs/run", "img/s median", "min-max", "vs reference"], table))
    print()
    for s in summaries:
        d = f"{s['default_ratio']:.2f}x at the workflow's CPU default batch, " if s["default_ratio"] else ""
        print(f"{s['spec']}: ours / reference = {d}{s['best_ratio']:.2f}x at best batch {s['best_bs']}")
        same = (
            "YES, bit for bit"
            if s["identical"]
            else f"NO: up to {s['n_diff']} of {s['size']} uint8 values differ, by at most {s['max_diff']} "
            f"(float rounding of batch-size-dependent CPU kernels; the starting noise is per image)"
        )
        print(f"  {args.n_images} images identical across batch sizes {args.batch_sizes}: {same}")
    if not args.no_csv:
        append_csv(args.csv, rows)
        print(f"\nappended {len(rows)} rows to {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
