"""A demo/test generator FITTED to the demo dataset's own training split: offline, seeded, minutes on a CPU.

It is a STAND-IN for a pretrained text-to-image model, not one: it has only ever seen the training split of the
demo dataset (scikit-learn's digits), so it can draw those classes and nothing else. What it shares with
SDXL-Turbo is everything the sampling stage touches: the component classes (`StableDiffusionXLPipeline`, two
CLIP text encoders, an SDXL "text_time" `UNet2DConditionModel`, `AutoencoderKL`, Euler-ancestral with trailing
timesteps and SDXL-Turbo's beta schedule, epsilon prediction, the project's offline `CLIPTokenizer`), the
directory layout (`save_pretrained`), the load path (`AutoPipelineForText2Image.from_pretrained`) and the
sampling call (1 step, guidance 0). So the unchanged sampling stage turns "a handwritten digit three" into a 3,
and everything after it (augmentation, packaging, labels, evaluation) gets images whose class can be measured.

Recipe (`fit_pipeline`):
1. Build the tiny pipeline (generator.build.build_tiny_pipeline) with the spec's widths, at the dataset's resolution.
2. VAE: trained as a KL autoencoder on the training images in [-1, 1] (MSE + kl_weight x KL, Adam, cosine lr).
3. Schedule and latent scale: SDXL-Turbo's scheduler with `prediction_type` (v_prediction by default), and the
   VAE's `scaling_factor` set so that sigma_max (14.6 for SDXL-Turbo's schedule) is `noise_ratio` x the std of the
   scaled latents. 14.61 is SDXL's convention (unit-variance latents: timestep 999 is pure noise). With epsilon
   prediction the one step x0 = x_T - sigma_max * eps multiplies every UNet error by 14.6, which a minutes-long
   fit does not overcome (recipe version 1 used noise_ratio 0.3 instead); v-prediction predicts x0 almost
   directly at timestep 999.
4. Text encoders first, alone: random encoders give prompts that differ in one word nearly the same embeddings,
   and a UNet needs hundreds of steps to find the difference. `text_steps` steps of predicting the class (linear
   heads, then discarded) from what the UNet reads - the pooled embedding and each encoder's penultimate layer
   at the end token - separate the classes in about a second (no images involved).
5. UNet + both text encoders, trained jointly on two objectives per step (one UNet call on both halves):
   (a) the exact computation of one sampling step: n ~ N(0, I), UNet input x_T / sqrt(sigma^2 + 1)
   (scheduler.scale_model_input), timestep 999, prompt embeddings from the pipeline's own `encode_prompt`, SDXL
   time ids (H, W, 0, 0, H, W), then the scheduler's x0 compared with VAE latents (posterior means) of training
   images of the prompted class. `match: ot` pairs the generated and the real latents of each group of
   `match_group` samples of one class by minimal total squared distance (minibatch optimal transport, Hungarian
   algorithm), so different starting noises learn to give different training digits (diversity); `match: none`
   regresses every noise onto random same-class targets, which converges to the class mean. (b) With
   `denoise_weight` > 0, the standard denoising objective: a training latent of the prompted class noised to a
   timestep drawn uniformly from 0..999, the prediction target's own loss (v or epsilon), so that img2img and
   multi-step (guided) sampling start from noise levels the model has learned.
6. Prompts: every class name in every template of `templates`, so the text encoders learn names, not one string.

Every random choice is drawn from `seed` (weights, batches, noise), and the fit runs with torch's deterministic
algorithms: the same spec, data, library versions and thread count give the same weights (tested). With
`denoise_weight: 0` it is fitted for the one-step sampler only (the plan then refuses more steps); classifier-free
guidance is never learned (no unconditional prediction), and the plan refuses it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import get_adapter
from .build import build_tiny_pipeline

log = logging.getLogger("gendistill.generator.fit")

FIT_VERSION = 2  # bump when the recipe changes: it is part of the model directory's hash

FIT_DEFAULTS = {
    "seed": 0,
    "vae_steps": 200,
    "unet_steps": 400,
    "batch_size": 64,
    "vae_lr": 0.002,
    "lr": 0.001,
    "text_lr": 0.001,
    "text_steps": 100,
    "kl_weight": 0.0001,
    "noise_ratio": 14.61,
    "prediction_type": "v_prediction",
    "denoise_weight": 1.0,
    "match": "ot",
    "match_group": 16,
    "templates": ["a handwritten digit {name}", "{name}"],
    "unet_channels": [16, 32],
    "vae_channels": [8, 16],
    "text_hidden": 16,
    "text_layers": 2,
}

SUPPORTED_DATASETS = ("digits",)

MARKER = "FITTED_ON_DEMO_DATA.txt"


def full_spec(spec: dict | None) -> dict:
    return {**FIT_DEFAULTS, **(spec or {})}


def spec_problems(spec: dict, dataset_cfg: dict) -> list[str]:
    """Why this spec cannot be fitted to this dataset (each with the fix), or []."""
    s = full_spec(spec)
    problems = []
    if dataset_cfg.get("name") not in SUPPORTED_DATASETS:
        problems.append(
            f"model.fitted: fits a stand-in generator to the demo dataset's training split and supports "
            f"dataset.name {' / '.join(SUPPORTED_DATASETS)} only, not {dataset_cfg.get('name')!r}. "
            f"Fix: use model.source (a pretrained model such as stabilityai/sdxl-turbo) for this "
            f"dataset, or dataset.name: digits for the offline demo."
        )
    if s["match"] == "ot" and s["batch_size"] % s["match_group"]:
        problems.append(
            f"model.fitted.batch_size: {s['batch_size']} is not a multiple of match_group "
            f"{s['match_group']}. Fix: e.g. batch_size: {s['match_group'] * 4}."
        )
    for key in ("unet_channels", "vae_channels"):
        bad = [c for c in s[key] if c % 8]
        if bad:
            problems.append(
                f"model.fitted.{key}: {bad} not multiples of 8 (the blocks normalise in 8 groups). "
                f"Fix: e.g. {[max(8, 8 * round(c / 8)) for c in s[key]]}."
            )
    if s["text_hidden"] % 2:
        problems.append(
            f"model.fitted.text_hidden: {s['text_hidden']} is odd (2 attention heads). "
            f"Fix: text_hidden: {s['text_hidden'] + 1}."
        )
    for t in s["templates"]:
        if "{name}" not in t and "{raw_name}" not in t and "{index}" not in t:
            problems.append(
                f"model.fitted.templates: {t!r} names no class (no {{name}}, {{raw_name}} or {{index}}); "
                f"every class would get the same prompt. Fix: include {{name}}."
            )
    return problems


def _prompts(adapter, templates: list[str]) -> tuple[list[str], list[int]]:
    """(prompt, label) for every class and template, filled like the plan fills prompts.template."""
    prompts, labels = [], []
    for info in adapter.classes():
        fields = {"raw_name": info.name, "index": info.index, **info.fields}
        for t in templates:
            prompts.append(t.format(**fields))
            labels.append(info.index)
    return prompts, labels


def _cosine(step: int, steps: int, lr: float) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * step / max(steps, 1)))


def fit_pipeline(spec: dict | None, dataset_cfg: dict, threads: int | None = None):
    """Fit the pipeline; return (pipe, report). See the module docstring for the recipe.

    Runs with torch's deterministic algorithms: with 2+ threads, the backward of indexing and embeddings adds in
    a varying order otherwise, and two fits with the same seed gave different weights (measured)."""
    import torch  # deferred: heavy, and the plan imports this module

    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _fit(spec, dataset_cfg, threads)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _fit(spec: dict | None, dataset_cfg: dict, threads: int | None = None):
    """The recipe's steps in order; each step logs its figures and returns what the next needs."""
    import torch  # deferred: heavy, and the plan imports this module

    s = full_spec(spec)
    problems = spec_problems(s, dataset_cfg)
    if problems:
        raise ValueError("\n".join(problems))
    if threads:
        torch.set_num_threads(int(threads))
    t_start = time.perf_counter()
    data = _load_data(dataset_cfg, s)
    t_data = time.perf_counter() - t_start
    pipe = build_tiny_pipeline(
        {
            "seed": s["seed"],
            "unet_channels": s["unet_channels"],
            "vae_channels": s["vae_channels"],
            "text_hidden": s["text_hidden"],
            "text_layers": s["text_layers"],
            "sample_size": data.size,
        }
    )
    _set_schedule(pipe, s)
    g = torch.Generator().manual_seed(s["seed"] + 100)
    t0 = time.perf_counter()
    vae_fit = _fit_vae(pipe.vae, data.x, s, g)
    t_vae = time.perf_counter() - t0
    scale = _set_latent_scale(pipe, vae_fit["latent_std"], s)
    t0 = time.perf_counter()
    loss_t = _fit_text_encoders(pipe, data.prompts, data.prompt_labels, data.n_classes, s, g)
    t_text = time.perf_counter() - t0
    log.info("text encoders: class-prediction loss %.4f after %d steps (%.1fs)", loss_t, s["text_steps"], t_text)
    t0 = time.perf_counter()
    losses = _fit_unet(pipe, data, vae_fit["mu"], scale, s, g)
    t_unet = time.perf_counter() - t0
    total = time.perf_counter() - t_start
    log.info(
        "fitted in %.1fs (data %.1fs, vae %.1fs, text encoders %.1fs, unet + text encoders %.1fs)",
        total,
        t_data,
        t_vae,
        t_text,
        t_unet,
    )
    report = {
        "spec": s,
        "fit_version": FIT_VERSION,
        "dataset": {k: dataset_cfg.get(k) for k in ("name", "split_seed", "image_size")},
        "train_images": int(len(data.y)),
        "classes": data.n_classes,
        "prompts": data.prompts,
        "resolution": data.size,
        **scale,
        "latent_std": vae_fit["latent_std"],
        "vae_reconstruction_mse": vae_fit["recon_mse"],
        "vae_final_loss": vae_fit["loss"],
        "text_class_loss": loss_t,
        "unet_final_loss": losses["total"],
        "unet_final_losses": losses,
        "seconds": {
            "data": round(t_data, 2),
            "vae": round(t_vae, 2),
            "text": round(t_text, 2),
            "unet": round(t_unet, 2),
            "total": round(total, 2),
        },
        "torch_threads": torch.get_num_threads(),
    }
    return pipe, report


@dataclass
class _Data:
    """The training split as the fit uses it: images in [-1, 1], labels, the prompts and their classes."""

    x: object  # torch float [N, 3, H, W]
    y: object  # torch long [N]
    by_class: list  # per class, the indices of its images
    prompts: list[str]
    prompt_labels: list[int]
    n_classes: int
    size: int


def _load_data(dataset_cfg: dict, s: dict) -> _Data:
    import torch  # deferred: heavy, and the plan imports this module

    adapter = get_adapter(dataset_cfg)
    x_u8, y_np = adapter.load_split("train")
    x = torch.from_numpy(np.ascontiguousarray(x_u8)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    y = torch.from_numpy(y_np).long()
    prompts, prompt_labels = _prompts(adapter, s["templates"])
    n_classes = len(adapter.classes())
    log.info(
        "data: %d training images of %d classes at %d px (%s train split); %d prompts, e.g. %r",
        len(y),
        n_classes,
        adapter.image_size,
        adapter.name,
        len(prompts),
        prompts[0],
    )
    by_class = [torch.nonzero(y == c).flatten() for c in range(n_classes)]
    return _Data(x, y, by_class, prompts, prompt_labels, n_classes, adapter.image_size)


def _set_schedule(pipe, s: dict) -> None:
    """SDXL-Turbo's scheduler (Euler-ancestral, trailing timesteps, its beta schedule) with the spec's prediction
    type: v_prediction keeps the one-step sample well conditioned at unit-variance latents (x0 is about -v at
    timestep 999, where epsilon prediction multiplies every error of the UNet by sigma_max = 14.6)."""
    from diffusers import EulerAncestralDiscreteScheduler  # deferred: heavy, and the plan imports this module

    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(
        pipe.scheduler.config, prediction_type=s["prediction_type"]
    )


def _fit_vae(vae, x, s: dict, g) -> dict:
    """Train the VAE as a KL autoencoder; return its posterior means of every training image and figures."""
    import torch  # deferred: heavy, and the plan imports this module
    import torch.nn.functional as F

    t0 = time.perf_counter()
    bs = s["batch_size"]
    vae.train()
    opt = torch.optim.Adam(vae.parameters(), lr=s["vae_lr"])
    loss_v = float("nan")
    for step in range(s["vae_steps"]):
        for grp in opt.param_groups:
            grp["lr"] = _cosine(step, s["vae_steps"], s["vae_lr"])
        xb = x[torch.randint(0, len(x), (bs,), generator=g)]
        post = vae.encode(xb).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        loss = F.mse_loss(rec, xb) + s["kl_weight"] * post.kl().mean() / xb[0].numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_v = float(loss.detach())
        if step % 50 == 0 or step == s["vae_steps"] - 1:
            log.info("vae step %d/%d loss %.5f (%.1fs)", step + 1, s["vae_steps"], loss_v, time.perf_counter() - t0)
    vae.eval()
    vae.requires_grad_(False)
    with torch.no_grad():
        mus, recon = [], 0.0
        for i in range(0, len(x), 256):
            post = vae.encode(x[i : i + 256]).latent_dist
            mus.append(post.mean)
            recon += float(F.mse_loss(vae.decode(post.mean).sample, x[i : i + 256], reduction="sum"))
        mu = torch.cat(mus)
    out = {"mu": mu, "latent_std": float(mu.std()), "recon_mse": recon / x.numel(), "loss": loss_v}
    log.info(
        "vae: reconstruction MSE %.5f (images in [-1, 1]), latent std %.3f, %.1fs",
        out["recon_mse"],
        out["latent_std"],
        time.perf_counter() - t0,
    )
    return out


def _set_latent_scale(pipe, latent_std: float, s: dict) -> dict:
    """The VAE's scaling_factor: sigma_max (the one-step schedule's first sigma) is `noise_ratio` x the std of the
    scaled latents. Returns the schedule's figures."""
    sched = pipe.scheduler
    sched.set_timesteps(1)
    timestep, sigma = float(sched.timesteps[0]), float(sched.sigmas[0])
    scaling_factor = sigma / (s["noise_ratio"] * latent_std)
    pipe.vae.register_to_config(scaling_factor=scaling_factor)
    log.info(
        "1-step trailing schedule: timestep %s, sigma %.4f; VAE scaling_factor %.4f", timestep, sigma, scaling_factor
    )
    return {"timestep": timestep, "sigma": sigma, "scaling_factor": scaling_factor}


def _x0(out, x_t, sigma, prediction_type: str):
    """The sample the scheduler's step predicts from the UNet output `out` at noisy latents x_t (Euler form:
    x_t = x0 + sigma n; sigma broadcastable)."""
    if prediction_type == "v_prediction":
        return out * (-sigma / (sigma**2 + 1) ** 0.5) + x_t / (sigma**2 + 1)
    return x_t - sigma * out


def _fit_unet(pipe, data: _Data, mu, scale: dict, s: dict, g) -> dict:
    """UNet and both text encoders, trained jointly on two objectives per step (module docstring, 5.): one
    sampling step from pure noise at timestep 999 with minibatch-OT matching, and the standard denoising objective
    at timesteps drawn uniformly from 0..999 (weight `denoise_weight`), each in latent units of the data."""
    import torch  # deferred: heavy, and the plan imports this module
    import torch.nn.functional as F

    t0 = time.perf_counter()
    unet, sched = pipe.unet, pipe.scheduler
    for m in (unet, pipe.text_encoder, pipe.text_encoder_2):
        m.train()
    text_params = [*pipe.text_encoder.parameters(), *pipe.text_encoder_2.parameters()]
    opt = torch.optim.Adam(
        [{"params": list(unet.parameters()), "base": s["lr"]}, {"params": text_params, "base": s["text_lr"]}],
        lr=s["lr"],
    )
    bs, size, sf, sigma_max = s["batch_size"], data.size, scale["scaling_factor"], scale["sigma"]
    time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32)
    prompt_labels_t = torch.tensor(data.prompt_labels)
    k = s["match_group"] if s["match"] == "ot" else 1
    # every training timestep's sigma (Euler form of the beta schedule)
    alphas = sched.alphas_cumprod.float()
    sigmas_all = ((1 - alphas) / alphas).sqrt()
    latent_std = float(mu.std())
    denoise = s["denoise_weight"] > 0
    losses = {"one_step": float("nan"), "denoise": float("nan"), "total": float("nan")}
    for step in range(s["unet_steps"]):
        for grp in opt.param_groups:
            grp["lr"] = _cosine(step, s["unet_steps"], grp["base"])
        pe, _, ppe, _ = pipe.encode_prompt(
            data.prompts, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        # a batch of groups: each group is k samples of one class, each sample with a random prompt of it
        classes = torch.randint(0, data.n_classes, (bs // k,), generator=g).repeat_interleave(k)
        idx = torch.stack(
            [data.by_class[c][torch.randint(0, len(data.by_class[c]), (1,), generator=g)][0] for c in classes.tolist()]
        )
        which = torch.stack(
            [
                torch.nonzero(prompt_labels_t == c).flatten()[torch.randint(0, len(s["templates"]), (1,), generator=g)][
                    0
                ]
                for c in classes.tolist()
            ]
        )
        target = mu[idx]
        noise = torch.randn((bs, *mu.shape[1:]), generator=g)
        # one step from pure noise (timestep 999), and a noised training latent at a random timestep
        x_one = noise * sigma_max
        t_rand = torch.randint(0, len(sigmas_all), (bs,), generator=g) if denoise else None
        timesteps = torch.full((bs,), scale["timestep"])
        x_in, sig = x_one, torch.full((bs, 1, 1, 1), sigma_max)
        if denoise:
            sig_d = sigmas_all[t_rand].view(-1, 1, 1, 1)
            x_d = target * sf + sig_d * torch.randn((bs, *mu.shape[1:]), generator=g)
            x_in, sig = torch.cat([x_one, x_d]), torch.cat([sig, sig_d])
            timesteps = torch.cat([timesteps, t_rand.float()])
        n = len(x_in)
        out = unet(
            x_in / (sig**2 + 1).sqrt(),
            timesteps,
            encoder_hidden_states=pe[which].repeat(n // bs, 1, 1),
            added_cond_kwargs={"text_embeds": ppe[which].repeat(n // bs, 1), "time_ids": time_ids.expand(n, -1)},
        ).sample
        z = _x0(out, x_in, sig, s["prediction_type"]) / sf
        z_one = z[:bs]
        target_one = target[_ot_pairing(z_one.detach(), target, k)] if s["match"] == "ot" else target
        loss_one = F.mse_loss(z_one, target_one) / latent_std**2
        loss = loss_one
        if denoise:
            # the standard objective's weighting: the prediction target's own error (v or epsilon), here
            # through x0: v-prediction weights x0 errors by 1 + 1/sigma^2, epsilon prediction by 1/sigma^2
            sd = sig[bs:]
            w = 1 + 1 / sd**2 if s["prediction_type"] == "v_prediction" else 1 / sd**2
            err = (z[bs:] - target).pow(2) * sf**2
            loss_d = (w * err).mean()
            loss = loss_one + s["denoise_weight"] * loss_d
            losses["denoise"] = float(loss_d.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses["one_step"], losses["total"] = float(loss_one.detach()), float(loss.detach())
        if step % 50 == 0 or step == s["unet_steps"] - 1:
            log.info(
                "unet step %d/%d loss %.4f (one step %.4f, denoising %.4f) (%.1fs)",
                step + 1,
                s["unet_steps"],
                losses["total"],
                losses["one_step"],
                losses["denoise"],
                time.perf_counter() - t0,
            )
    for m in (unet, pipe.text_encoder, pipe.text_encoder_2):
        m.eval()
    return losses


def _fit_text_encoders(pipe, prompts: list[str], labels: list[int], n_classes: int, s: dict, g) -> float:
    import torch  # deferred: heavy, and the plan imports this module
    import torch.nn.functional as F

    if s["text_steps"] <= 0:
        return float("nan")
    te1, te2 = pipe.text_encoder, pipe.text_encoder_2
    te1.train()
    te2.train()
    tokenizers = (pipe.tokenizer, pipe.tokenizer_2)
    ids = [
        tok(
            prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        for tok in tokenizers
    ]
    eos = [int(tok.eos_token_id) for tok in tokenizers]
    end = [(i == e).int().argmax(-1) for i, e in zip(ids, eos)]  # first end token, as CLIP pools
    y = torch.tensor(labels)
    heads = torch.nn.ModuleList(
        [
            torch.nn.Linear(te1.config.hidden_size, n_classes),
            torch.nn.Linear(te2.config.hidden_size, n_classes),
            torch.nn.Linear(te2.config.projection_dim, n_classes),
        ]
    )
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        for h in heads:
            torch.nn.init.normal_(h.weight, std=0.02)
            torch.nn.init.zeros_(h.bias)
    opt = torch.optim.Adam([*te1.parameters(), *te2.parameters(), *heads.parameters()], lr=s["text_lr"] * 10)
    rows = torch.arange(len(prompts))
    loss = torch.tensor(float("nan"))
    for _ in range(s["text_steps"]):
        o1 = te1(ids[0], output_hidden_states=True)
        o2 = te2(ids[1], output_hidden_states=True)
        feats = [o1.hidden_states[-2][rows, end[0]], o2.hidden_states[-2][rows, end[1]], o2.text_embeds]
        loss = sum(F.cross_entropy(h(f), y) for h, f in zip(heads, feats))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


def _ot_pairing(z, target, k: int):
    """Indices into `target` pairing each generated latent with a real one inside each group of k (min total
    squared distance, Hungarian algorithm)."""
    import torch  # deferred: heavy, and the plan imports this module
    from scipy.optimize import linear_sum_assignment

    out = []
    for j in range(0, len(z), k):
        cost = torch.cdist(z[j : j + k].flatten(1), target[j : j + k].flatten(1)).pow(2).numpy()
        _, cols = linear_sum_assignment(cost)
        out.append(torch.as_tensor(cols, dtype=torch.long) + j)
    return torch.cat(out)


def _package_versions() -> dict:
    import diffusers  # deferred: heavy, and the plan imports this module
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def save_fitted_pipeline(out_dir: Path, spec: dict | None, dataset_cfg: dict, threads: int | None = None) -> dict:
    """Fit and save as a diffusers directory, atomically (temp dir + rename), with the marker file and the
    fit report (`fit_report.json`). Returns the report."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe, report = fit_pipeline(spec, dataset_cfg, threads)
    report["packages"] = _package_versions()
    pipe.save_pretrained(tmp, safe_serialization=True)
    (tmp / "fit_report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    (tmp / MARKER).write_text(
        "STAND-IN GENERATOR, FITTED ON THE DEMO'S OWN TRAINING SPLIT - not a pretrained model.\n"
        "\n"
        "This directory is an ordinary diffusers StableDiffusionXLPipeline with SDXL-Turbo's component classes\n"
        "(two CLIP text encoders, an SDXL text_time UNet, a KL VAE, Euler-ancestral trailing scheduler), tiny\n"
        f"widths, whose weights were fitted offline (gendistill.generator.fit, recipe version {FIT_VERSION}) to the\n"
        f"TRAINING split of the demo dataset {dataset_cfg.get('name')!r} ({report['train_images']} images,\n"
        f"{report['classes']} classes, {report['resolution']} px). It draws those classes from their names\n"
        "(e.g. 'a handwritten digit three') with one sampling step and guidance 0, and nothing else.\n"
        "The test split was not used. But the generator learned the very distribution the test split comes\n"
        "from, so the demo's distilled accuracy shows that labels flow from prompt to pixels to evaluation;\n"
        "it is not evidence of what a pretrained model such as SDXL-Turbo achieves.\n"
        f"spec: {json.dumps(report['spec'], sort_keys=True)}\n"
        f"dataset: {json.dumps(report['dataset'], sort_keys=True)}\n"
        f"fit seconds: {report['seconds']['total']} (torch threads {report['torch_threads']})\n"
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return report
