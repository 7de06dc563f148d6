#!/usr/bin/env python
"""GPU benchmark: SDXL-Turbo-architecture sampling, per component and end to end, vs the reference loop.

The full-size architecture is built with RANDOM weights from the component configs (--config-dir, default
benchmarks/model_configs/sdxl-turbo, the checkpoint's own config files): same compute and memory as the real
checkpoint, noise images. --model-source loads a real local diffusers directory instead (same code path as the
workflow).

Measured at each batch size B (median of --repeats timed calls after --warmup calls, CUDA synchronised):
  text_encode   both CLIP encoders on B prompts (the reference encodes once per image; ours once per class)
  unet_step     one UNet forward on B latents (SDXL-Turbo samples with 1 step)
  vae_decode    VAE decode of B latents, in the --vae mode (see below)
  end_to_end    ours: gendistill Sampler.generate_seeds on B seeds = prompt encoded once, one batched
                pipeline call, on-device resize to --out-size, uint8 copy to the CPU
  reference     the paper's loop: one pipe(prompt=..., num_inference_steps=1, guidance_scale=0.0) call per
                image (batch 1), PIL output, PIL resize (reported once, batch 1)
plus peak memory (torch.cuda.max_memory_allocated per measurement), FLOPs per image (FlopCounterMode at
batch 1, attention counted through the math SDPA backend), achieved TFLOP/s and the fraction of the GPU's
dense fp16/bf16 peak (table below, or --peak-tflops).

--vae modes, a comma list measured in turn on one build (SDXL's VAE config has force_upcast=true because its
fp16 activations overflow); each maps to the workflow's generation.vae_dtype:
  upcast  (auto) what the diffusers pipeline does by default in fp16: casts the VAE to fp32, decodes, casts
          back, on every pipeline call (the reference script's behaviour)
  fp32    (float32) VAE kept in fp32 for good: the same pixels as upcast, no per-call cast
  bf16    (bfloat16) fp32's exponent range (no overflow) at tensor-core speed; pixels differ slightly
  fp16    (float16) force_upcast off: fastest, but the stock SDXL VAE gives NaN/inf in fp16 (fp16-fix weights)

Writes one CSV row per measurement to benchmarks/results/gpu_sdxl.csv (or --csv).

    .venv/bin/python benchmarks/bench_gpu_sdxl.py                                   # GPU, 512 px fp16
    .venv/bin/python benchmarks/bench_gpu_sdxl.py --batch-sizes 1,8,32 --compile --vae upcast,fp32,bf16
    .venv/bin/python benchmarks/bench_gpu_sdxl.py --device cpu --tiny                # CPU smoke test
    .venv/bin/python benchmarks/bench_gpu_sdxl.py --flops-only                       # FLOPs/image, no GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

from _common import REPO, RESULTS, append_csv, fmt_table, machine_info

# Dense (no sparsity) fp16/bf16 tensor-core peaks in TFLOP/s, matched against torch.cuda.get_device_name().
# First match wins, so more specific names come first.
PEAK_TFLOPS_FP16 = [
    ("H100 PCIe", 756.0),
    ("H100", 989.4),  # H100 SXM5 (reported as "NVIDIA H100 80GB HBM3")
    ("H200", 989.4),
    ("A100", 312.0),
]
DEFAULT_CONFIG_DIR = REPO / "benchmarks" / "model_configs" / "sdxl-turbo"
REFERENCE_NEGATIVE = "cartoon, anime, painting"


def peak_tflops_for(name: str) -> float | None:
    for key, tf in PEAK_TFLOPS_FP16:
        if key.lower() in name.lower():
            return tf
    return None


class Timer:
    def __init__(self, device: str):
        import torch

        self.torch, self.cuda = torch, device == "cuda"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def reset_peak(self):
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return self.torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None

    def measure(self, fn, warmup: int, repeats: int) -> dict:
        """Warm-up calls (timed together: includes compilation/autotuning), then `repeats` timed calls."""
        self.reset_peak()
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
        self.sync()
        warm = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return {"times": times, "median_s": statistics.median(times), "warmup_s": warm, "peak_gib": self.peak_gib()}


def build(args):
    """(pipe, description): the random-weight full architecture, the tiny pipeline, or a local checkpoint."""
    import torch

    from gendistill.sampling.pipeline import load_pipeline

    dtype = getattr(torch, args.dtype)
    if args.model_source:
        pipe = load_pipeline(args.model_source, None, args.device, dtype, compile_unet=False)
        return pipe, f"checkpoint {args.model_source}"
    if args.tiny:
        from gendistill.generator.build import build_tiny_pipeline

        pipe = build_tiny_pipeline(json.loads(args.tiny_spec))
        desc = "tiny random-weight SDXL architecture"
    else:
        from gendistill.generator.build import build_full_random_pipeline

        pipe = build_full_random_pipeline(Path(args.config_dir), torch_dtype=dtype)
        desc = f"full SDXL-Turbo architecture, random weights ({args.config_dir})"
    pipe = pipe.to(args.device)
    if dtype != torch.float32:
        pipe = pipe.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    if args.device == "cuda":  # as gendistill.sampling.pipeline.load_pipeline does
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    return pipe, desc


VAE_MODES = {"upcast": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def set_vae_mode(pipe, mode: str, base_dtype):
    """Apply one --vae mode (undoing the previous one) through the workflow's own configure_vae.

    Returns the dtype latents are decoded in."""
    import torch

    from gendistill.sampling.pipeline import configure_vae

    vae = pipe.vae
    vae.__dict__.pop("decode", None)  # drop a previous mode's decode wrapper
    vae.to(base_dtype)
    vae.register_to_config(force_upcast=True)
    configure_vae(pipe, VAE_MODES[mode])
    if mode == "upcast":
        return torch.float32 if (vae.dtype == torch.float16 and vae.config.force_upcast) else vae.dtype
    return vae.dtype


def _g(flops: float) -> str:
    return f"{flops / 1e9:.4g} GFLOP"


def meta_flops(config_dir: Path, resolutions: list[int]) -> list[dict]:
    """FLOPs per image of the full architecture, built on the meta device: no weights, no GPU, seconds."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config_dir = Path(config_dir)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet")).half()
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae"))
        te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder")).half()
        te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(config_dir / "text_encoder_2")).half()
    meta = dict(device="meta", dtype=torch.float16)
    ids = torch.zeros(1, te1.config.max_position_embeddings, dtype=torch.long, device="meta")
    fl_text = count_flops(lambda: (te1(ids, output_hidden_states=True), te2(ids, output_hidden_states=True)))
    out = []
    for res in resolutions:
        lat = torch.zeros(1, unet.config.in_channels, res // 8, res // 8, **meta)
        ehs = torch.zeros(1, 77, unet.config.cross_attention_dim, **meta)
        add = {"text_embeds": torch.zeros(1, te2.config.projection_dim, **meta), "time_ids": torch.zeros(1, 6, **meta)}
        # count_flops calls each lambda at once, inside this iteration
        fl_unet = count_flops(lambda: unet(lat, 999, encoder_hidden_states=ehs, added_cond_kwargs=add))  # noqa: B023
        fl_vae = count_flops(lambda: vae.decode(lat.float()))  # noqa: B023
        out.append({"resolution": res, "text": fl_text, "unet": fl_unet, "vae": fl_vae})
    return out


def count_flops(fn) -> int:
    """FLOPs of one call (2 per multiply-add; convolutions, matmuls, attention via the math SDPA backend)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-dir", default=str(DEFAULT_CONFIG_DIR), help="SDXL-Turbo component configs")
    ap.add_argument("--model-source", default=None, help="a local diffusers checkpoint dir instead of random weights")
    ap.add_argument("--tiny", action="store_true", help="tiny random-weight pipeline (CPU smoke test)")
    ap.add_argument("--tiny-spec", default="{}")
    ap.add_argument("--device", default=None, help="cuda (default when visible) or cpu")
    ap.add_argument(
        "--dtype",
        default=None,
        choices=["float16", "bfloat16", "float32"],
        help="default float16 on cuda, float32 on cpu",
    )
    ap.add_argument("--resolution", type=int, default=None, help="default 512 (tiny: 32)")
    ap.add_argument("--out-size", type=int, default=32, help="dataset resolution for the end-to-end resize")
    ap.add_argument("--batch-sizes", default=None, help="default 1,4,8,16,32 (tiny: 1,4,8)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--ref-images", type=int, default=8, help="images timed per reference-loop repeat")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the UNet as load_pipeline does "
        "(max-autotune-no-cudagraphs, fullgraph); warm-up time then includes compilation",
    )
    ap.add_argument("--compile-vae", action="store_true", help="also torch.compile the VAE decoder")
    ap.add_argument(
        "--vae",
        default="upcast",
        help="comma list of VAE modes measured in turn on one build: upcast, fp32, bf16, fp16 (see above)",
    )
    ap.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 matmuls (off by default, as in the workflow; "
        "cuDNN convolutions use TF32 by torch default either way)",
    )
    ap.add_argument(
        "--flops-only",
        action="store_true",
        help="only FLOPs per image of the full architecture at "
        "--resolutions, built on the meta device (no GPU or weights needed)",
    )
    ap.add_argument("--resolutions", default="512,256", help="with --flops-only")
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the dense fp16 peak (TFLOP/s)")
    ap.add_argument("--prompt", default="apple")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument(
        "--csv",
        default=None,
        help="default benchmarks/results/gpu_sdxl.csv (CPU runs: "
        "gpu_sdxl_cpu_smoke.csv, so smoke rows never mix with GPU figures)",
    )
    ap.add_argument("--no-csv", action="store_true")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.flops_only:
        peak = args.peak_tflops or 989.4
        rows = []
        for r in meta_flops(Path(args.config_dir), [int(x) for x in args.resolutions.split(",")]):
            total = r["text"] + r["unet"] + r["vae"]
            rows.append(
                [
                    r["resolution"],
                    f"{r['text'] / 1e9:.1f}",
                    f"{r['unet'] / 1e9:.1f}",
                    f"{r['vae'] / 1e9:.1f}",
                    f"{total / 1e9:.1f}",
                    f"{total / (peak * 1e12) * 1e3:.2f}",
                    f"{5000 * total / 1e15:.1f}",
                ]
            )
        print(
            f"FLOPs per image, full SDXL-Turbo architecture from {args.config_dir} (meta device; 1 step; "
            f"text encoders counted once per image as in the reference loop)"
        )
        print(
            fmt_table(
                [
                    "px",
                    "text GFLOP",
                    "UNet GFLOP",
                    "VAE decode GFLOP",
                    "total GFLOP",
                    f"ms/img at {peak:g} TFLOP/s",
                    "PFLOP per 5000 img",
                ],
                rows,
            )
        )
        return 0
    if args.device is None:
        if not torch.cuda.is_available():
            ap.error("no CUDA device visible: pass --device cpu (with --tiny for a quick smoke test)")
        args.device = "cuda"
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA device is visible")
    args.dtype = args.dtype or ("float16" if args.device == "cuda" else "float32")
    args.resolution = args.resolution or (json.loads(args.tiny_spec).get("sample_size", 32) if args.tiny else 512)
    bss = [int(b) for b in (args.batch_sizes or ("1,4,8" if args.tiny else "1,4,8,16,32")).split(",")]
    res = args.resolution

    info = machine_info()
    gpu = info["gpu"]
    peak = args.peak_tflops or (peak_tflops_for(gpu) if args.device == "cuda" else None)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    t0 = time.perf_counter()
    pipe, desc = build(args)
    build_s = time.perf_counter() - t0
    unet_eager = pipe.unet
    vae_modes = args.vae.split(",")
    bad = [m for m in vae_modes if m not in VAE_MODES]
    if bad:
        ap.error(f"--vae {bad}: choose from {list(VAE_MODES)}")
    base_vae_dtype = pipe.vae.dtype
    if args.compile:
        pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs", fullgraph=True)
    if args.compile_vae:
        pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode="max-autotune-no-cudagraphs")
    dtype = getattr(torch, args.dtype)
    dev = args.device
    vsf = pipe.vae_scale_factor
    lat_hw = res // vsf
    n_params = {
        k: sum(p.numel() for p in getattr(pipe, k).parameters())
        for k in ("unet", "vae", "text_encoder", "text_encoder_2")
    }
    print(
        f"{desc}; device {dev} ({gpu}), {args.dtype}, {res} px (latent {lat_hw}x{lat_hw}), vae modes "
        f"{vae_modes}, compile {args.compile}; built in {build_s:.1f} s"
    )
    print("parameters (M): " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in n_params.items()))
    print(f"peak dense fp16 TFLOP/s used for fractions: {peak if peak else 'unknown (pass --peak-tflops)'}")
    if dtype == torch.float32 and peak:
        print("note: dtype float32 - the fraction is still relative to the fp16 tensor-core peak")

    # ---- inputs shared by the component measurements
    from gendistill.sampling.generate import Sampler
    from gendistill.seeds import image_seed

    with torch.no_grad():
        pe, _, ppe, _ = pipe.encode_prompt(
            prompt=args.prompt, device=dev, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
    pipe.scheduler.set_timesteps(1, device=dev)
    t_step = pipe.scheduler.timesteps[0]
    time_ids = torch.tensor([[res, res, 0, 0, res, res]], dtype=pe.dtype, device=dev)
    gen_noise = torch.Generator("cpu").manual_seed(0)

    def latents(b, dt=dtype):
        x = torch.randn(b, unet_eager.config.in_channels, lat_hw, lat_hw, generator=gen_noise).to(dev, dt)
        return x.contiguous(memory_format=torch.channels_last) if dev == "cuda" else x

    @torch.no_grad()
    def text_encode(b):
        return pipe.encode_prompt(
            prompt=[args.prompt] * b, device=dev, num_images_per_prompt=1, do_classifier_free_guidance=False
        )

    def unet_call(unet, b):
        lat = latents(b)
        kw = {
            "encoder_hidden_states": pe.expand(b, -1, -1),
            "added_cond_kwargs": {"text_embeds": ppe.expand(b, -1), "time_ids": time_ids.expand(b, -1)},
        }

        @torch.no_grad()
        def f():
            return unet(lat, t_step, return_dict=False, **kw)[0]

        return f

    def vae_call(b):
        lat = latents(b, dtype) / pipe.vae.config.scaling_factor
        upcast = pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast

        @torch.no_grad()
        def f():  # mirrors the pipeline's decode step, including its per-call up/down cast
            if upcast:
                pipe.vae.to(torch.float32)
                out = pipe.vae.decode(lat.to(torch.float32), return_dict=False)[0]
                pipe.vae.to(torch.float16)
                return out
            return pipe.vae.decode(lat, return_dict=False)[0]

        return f

    gen_cfg = {"resolution": res, "steps": 1, "guidance_scale": 0.0}

    def ours_call(b):
        sampler = Sampler(pipe, dev, dtype, b)
        seeds = [image_seed(0, 0, i) for i in range(b)]
        return lambda: sampler.generate_seeds(args.prompt, seeds, gen_cfg, args.out_size)

    def reference_call(n):
        def f():
            for _ in range(n):
                img = pipe(
                    prompt=args.prompt,
                    negative_prompt=REFERENCE_NEGATIVE,
                    num_inference_steps=1,
                    guidance_scale=0.0,
                    height=res,
                    width=res,
                ).images[0]
                img.resize((args.out_size, args.out_size))

        return f

    # ---- FLOPs per image (batch 1, eager modules; the VAE's FLOPs do not depend on its dtype)
    set_vae_mode(pipe, "upcast", base_vae_dtype)
    fl_text = count_flops(lambda: text_encode(1))
    fl_unet = count_flops(unet_call(unet_eager, 1))
    fl_vae = count_flops(vae_call(1))
    print(f"FLOPs per image: text encoders {_g(fl_text)}, UNet step {_g(fl_unet)}, VAE decode {_g(fl_vae)}")

    timer = Timer(dev)
    rows, table = [], []
    base = {
        **info,
        "benchmark": "gpu_sdxl",
        "model": desc,
        "device": dev,
        "dtype": args.dtype,
        "resolution": res,
        "out_size": args.out_size,
        "compile": args.compile,
        "compile_vae": args.compile_vae,
        "tf32_matmul": args.tf32,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "peak_tflops": peak or "",
        "build_s": round(build_s, 2),
    }
    vae_mode = "upcast"

    def record(component, b, images_per_call, m, flops_per_image):
        ips = [images_per_call / t for t in m["times"]]
        img_s = images_per_call / m["median_s"]
        achieved = flops_per_image * img_s / 1e12 if flops_per_image else None
        frac = achieved / peak if (achieved and peak) else None
        rows.append(
            {
                **base,
                "vae_mode": vae_mode,
                "component": component,
                "batch_size": b,
                "images_per_call": images_per_call,
                "sec_per_call_median": round(m["median_s"], 6),
                "img_per_s_median": round(img_s, 3),
                "img_per_s_min": round(min(ips), 3),
                "img_per_s_max": round(max(ips), 3),
                "gflop_per_image": round(flops_per_image / 1e9, 3) if flops_per_image else "",
                "achieved_tflops": round(achieved, 3) if achieved else "",
                "frac_of_peak": round(frac, 4) if frac else "",
                "peak_mem_gib": round(m["peak_gib"], 3) if m["peak_gib"] is not None else "",
                "warmup_s": round(m["warmup_s"], 3),
            }
        )
        table.append(
            [
                component,
                vae_mode if component in ("vae_decode", "end_to_end", "reference_loop") else "-",
                b,
                f"{m['median_s'] * 1e3:.2f}",
                f"{img_s:.2f}",
                f"{achieved:.3g}" if achieved else "-",
                f"{100 * frac:.1f}%" if frac else "-",
                f"{m['peak_gib']:.2f}" if m["peak_gib"] is not None else "-",
                f"{m['warmup_s']:.1f}",
            ]
        )

    # text encoders and UNet once; VAE decode and end to end once per --vae mode, on the same build
    for b in bss:
        try:
            record(
                "text_encode",
                b,
                b,
                timer.measure(lambda: text_encode(b), args.warmup, args.repeats),  # noqa: B023
                fl_text,
            )
            record("unet_step", b, b, timer.measure(unet_call(pipe.unet, b), args.warmup, args.repeats), fl_unet)
        except torch.cuda.OutOfMemoryError:
            print(f"batch {b}: CUDA out of memory - skipped (larger batch sizes too)")
            torch.cuda.empty_cache()
            break
    for vae_mode in vae_modes:
        decode_dtype = set_vae_mode(pipe, vae_mode, base_vae_dtype)
        print(f"vae mode {vae_mode}: decode in {str(decode_dtype).replace('torch.', '')}")
        for b in bss:
            try:
                record("vae_decode", b, b, timer.measure(vae_call(b), args.warmup, args.repeats), fl_vae)
                record(
                    "end_to_end",
                    b,
                    b,
                    timer.measure(ours_call(b), args.warmup, args.repeats),
                    fl_text / b + fl_unet + fl_vae,
                )
            except torch.cuda.OutOfMemoryError:
                print(f"batch {b}: CUDA out of memory - skipped (larger batch sizes too)")
                torch.cuda.empty_cache()
                break
    if not args.no_reference:  # the paper's script: diffusers' default VAE handling (upcast)
        vae_mode = "upcast"
        set_vae_mode(pipe, vae_mode, base_vae_dtype)
        m = timer.measure(reference_call(args.ref_images), max(1, args.warmup // 2), args.repeats)
        record("reference_loop", 1, args.ref_images, m, fl_text + fl_unet + fl_vae)

    print()
    print(
        fmt_table(
            ["component", "vae", "batch", "ms/call", "img/s", "TFLOP/s", "of peak", "peak GiB", "warm-up s"], table
        )
    )
    ref = [r["img_per_s_median"] for r in rows if r["component"] == "reference_loop"]
    for mode in vae_modes:
        e2e = {r["batch_size"]: r for r in rows if r["component"] == "end_to_end" and r["vae_mode"] == mode}
        if not e2e:
            continue
        best = max(e2e, key=lambda k: e2e[k]["img_per_s_median"])
        r = e2e[best]
        line = f"\nend to end, vae {mode}, ours at batch {best}: {r['img_per_s_median']:.2f} img/s"
        if ref:
            line += f" = {r['img_per_s_median'] / ref[0]:.2f}x the reference loop ({ref[0]:.2f} img/s)"
        if peak:
            unet_vae = (fl_unet + fl_vae) * r["img_per_s_median"] / 1e12
            line += f"; UNet+VAE {unet_vae:.0f} TFLOP/s = {100 * unet_vae / peak:.1f}% of the {peak:g} TFLOP/s peak"
        print(line)
    if dev != "cuda":
        print("(CPU run: a smoke test of the script, not a GPU figure)")
    if not args.no_csv:
        args.csv = args.csv or str(RESULTS / ("gpu_sdxl.csv" if dev == "cuda" else "gpu_sdxl_cpu_smoke.csv"))
        append_csv(Path(args.csv), rows)
        print(f"appended {len(rows)} rows to {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
