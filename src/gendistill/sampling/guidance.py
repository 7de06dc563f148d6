"""Real-data guidance of multi-step sampling: CoDA's distribution alignment (Zhou, Liu, Wang, "CoDA: From
Text-to-Image Diffusion Models to Training-Free Dataset Distillation", ICLR 2026, arXiv 2512.03844).

CoDA steers each image toward one representative real latent R of its class: at every denoising step t of the
first `fraction` of the schedule (its "guideTPercent"; the later steps run unguided), the clean sample the
denoiser predicts, x0, is moved by weight x sigma_t x (R - x0) (its gamma; sigma_t the step's noise level in the
Euler form, sqrt((1 - alpha_bar_t) / alpha_bar_t)), and the prediction is rewritten to give that x0 at the same
noisy latent, so the scheduler's own step follows it. Under classifier-free guidance only the conditional half is
corrected, as in CoDA. The correction is applied to the denoiser's output by a forward hook, so each family's own
pipeline call (and its img2img call) runs unchanged, batched, with one seeded generator per image.

Supported: UNets on a discrete-time schedule (`alphas_cumprod`) predicting epsilon (CoDA's SDXL) or v (the same
x0 shift, written in v); the plan refuses other families by name before any job.
"""

from __future__ import annotations

import contextlib

import torch


def x0_shift_to_output(dx0: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The change of the denoiser's output that moves its x0 prediction by dx0 at the same noisy latent
    (x0 = (x - sqrt(1 - a) eps) / sqrt(a), or x0 = sqrt(a) x - sqrt(1 - a) v, with x the scaled model input)."""
    if prediction_type == "epsilon":
        return -(alpha_bar.sqrt() / (1 - alpha_bar).sqrt()) * dx0
    if prediction_type == "v_prediction":
        return -dx0 / (1 - alpha_bar).sqrt()
    raise ValueError(f"real guidance: prediction type {prediction_type!r} (expected epsilon or v_prediction)")


def predicted_x0(out: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    if prediction_type == "epsilon":
        return (x - (1 - alpha_bar).sqrt() * out) / alpha_bar.sqrt()
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * x - (1 - alpha_bar).sqrt() * out
    raise ValueError(f"real guidance: prediction type {prediction_type!r} (expected epsilon or v_prediction)")


@contextlib.contextmanager
def coda_guidance(pipe, targets: torch.Tensor, weight: float, fraction: float):
    """While the block runs, every call of `pipe.unet` is corrected toward `targets` (one latent per image of the
    batch, in the denoiser's latent space) as CoDA does (module docstring)."""
    sched = pipe.scheduler
    prediction_type = sched.config.prediction_type
    alphas = sched.alphas_cumprod

    def hook(module, args, kwargs, output):
        x = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        t = int(torch.as_tensor(t).flatten()[0].item())
        steps = sched.timesteps
        stop = int(steps[min(int(len(steps) * fraction), len(steps) - 1)].item())
        if weight <= 0 or t <= stop:
            return output
        out = output[0] if isinstance(output, tuple) else output.sample
        a = alphas[t].to(device=out.device, dtype=torch.float32)
        b = len(targets)
        cond = slice(len(out) - b, len(out))  # with classifier-free guidance: [unconditional, conditional]
        o, xi = out[cond].float(), x[cond].float()
        x0 = predicted_x0(o, xi, a, prediction_type)
        sigma = ((1 - a) / a).sqrt()
        dx0 = weight * sigma * (targets.to(device=out.device, dtype=torch.float32) - x0)
        new = out.clone()
        new[cond] = (o + x0_shift_to_output(dx0, a, prediction_type)).to(out.dtype)
        if isinstance(output, tuple):
            return (new, *output[1:])
        output.sample = new
        return output

    handle = pipe.unet.register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
