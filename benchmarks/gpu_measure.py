"""Timing a loaded pipeline per component and end to end, and the paper's reference loop (used by gpu_suite.py).

Each measurement: `warmup` calls (timed together: compilation and autotuning show there), then `repeats` timed
calls with the device synchronised; the median is reported with its spread, the peak device memory of the
measurement, and, from the FLOPs per image (the family's adapter, FlopCounterMode), the achieved TFLOP/s and
its fraction of the device's dense fp16/bf16 peak.

VAE modes (`set_vae_mode`), measured in turn on one loaded pipeline; each is the workflow's generation.vae_dtype,
applied by the same code (gendistill.sampling.pipeline.configure_vae):
  upcast (auto)  diffusers' default in fp16 with SDXL's VAE (force_upcast): cast to fp32, decode, cast back, on
                 every call (what the reference script did)
  fp32 (float32) the VAE kept in fp32: the same pixels, no per-call cast
  bf16           fp32's exponent range at tensor-core speed; pixels differ slightly
  fp16           no upcast: fastest, but the stock SDXL VAE overflows (NaN) without fp16-fix weights
"""

from __future__ import annotations

import statistics
import time

# Dense (no sparsity) fp16/bf16 tensor-core peaks in TFLOP/s, matched against the device name; first match wins.
PEAK_TFLOPS_FP16 = [
    ("H100 PCIe", 756.0),
    ("H100", 989.4),  # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200", 989.4),
    ("A100", 312.0),
]
VAE_MODES = {"upcast": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
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

    def measure(self, fn, warmup: int, repeats: int) -> dict:
        """Warm-up calls (timed together), then `repeats` timed calls; peak device memory over all of them."""
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
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
        peak = self.torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None
        return {"times": times, "median_s": statistics.median(times), "warmup_s": warm, "peak_gib": peak}


def set_vae_mode(pipe, mode: str, base_dtype) -> str:
    """Apply one VAE mode (undoing the previous one) through the workflow's configure_vae; returns the dtype the
    latents are decoded in."""
    import torch

    from gendistill.sampling.pipeline import configure_vae

    vae = pipe.vae
    vae.__dict__.pop("decode", None)  # drop a previous mode's decode wrapper
    vae.to(base_dtype)
    vae.register_to_config(force_upcast=True)
    configure_vae(pipe, VAE_MODES[mode])
    if mode == "upcast" and vae.dtype == torch.float16 and vae.config.force_upcast:
        return "float32"
    return str(vae.dtype).replace("torch.", "")


def sdxl_component_calls(pipe, device: str, dtype, resolution: int, prompt: str):
    """Callables of one SDXL pipeline's parts at batch B: text_encode(B), unet_step(unet, B), vae_decode(B)."""
    import torch

    with torch.no_grad():
        pe, _, ppe, _ = pipe.encode_prompt(
            prompt=prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
    pipe.scheduler.set_timesteps(1, device=device)
    t_step = pipe.scheduler.timesteps[0]
    time_ids = torch.tensor([[resolution, resolution, 0, 0, resolution, resolution]], dtype=pe.dtype, device=device)
    lat_hw = resolution // pipe.vae_scale_factor
    noise = torch.Generator("cpu").manual_seed(0)

    def latents(b, dt):
        x = torch.randn(b, 4, lat_hw, lat_hw, generator=noise).to(device, dt)
        return x.contiguous(memory_format=torch.channels_last) if device == "cuda" else x

    def text_encode(b):
        @torch.no_grad()
        def f():
            return pipe.encode_prompt(
                prompt=[prompt] * b, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )

        return f

    def unet_step(unet, b):
        lat = latents(b, dtype)
        kw = {
            "encoder_hidden_states": pe.expand(b, -1, -1),
            "added_cond_kwargs": {"text_embeds": ppe.expand(b, -1), "time_ids": time_ids.expand(b, -1)},
        }

        @torch.no_grad()
        def f():
            return unet(lat, t_step, return_dict=False, **kw)[0]

        return f

    def vae_decode(b):
        lat = latents(b, dtype) / pipe.vae.config.scaling_factor
        upcast = pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast

        @torch.no_grad()
        def f():  # the pipeline's decode step, with its per-call up/down cast
            if upcast:
                pipe.vae.to(torch.float32)
                out = pipe.vae.decode(lat.to(torch.float32), return_dict=False)[0]
                pipe.vae.to(torch.float16)
                return out
            return pipe.vae.decode(lat, return_dict=False)[0]

        return f

    return text_encode, unet_step, vae_decode


def end_to_end_call(pipe, device: str, dtype, b: int, prompt: str, gen: dict, out_size: int):
    """The workflow's sampling of B images: gendistill's Sampler (prompt encoded once, one batched pipeline call,
    on-device resize, uint8 copy to the CPU)."""
    from gendistill.sampling.generate import Sampler
    from gendistill.seeds import image_seed

    sampler = Sampler(pipe, device, dtype, b)
    seeds = [image_seed(0, 0, i) for i in range(b)]
    return lambda: sampler.generate_seeds(prompt, seeds, gen, out_size)


def reference_call(pipe, n: int, prompt: str, resolution: int, out_size: int):
    """The paper's loop (its submit_cifar100.py): one pipeline call per image, default PIL output, PIL resize."""

    def f():
        for _ in range(n):
            img = pipe(
                prompt=prompt,
                negative_prompt=REFERENCE_NEGATIVE,
                num_inference_steps=1,
                guidance_scale=0.0,
                height=resolution,
                width=resolution,
            ).images[0]
            img.resize((out_size, out_size))

    return f
