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
3. Latent scale: the one trailing Euler-ancestral step starts from x_T = sigma_max * n (sigma_max = 14.6 for
   SDXL-Turbo's schedule) and returns x0 = x_T - sigma_max * eps. The VAE's `scaling_factor` is set so that
   sigma_max is `noise_ratio` x the std of the scaled latents. SDXL's convention (unit-variance latents) makes
   that ratio 14.6: the UNet would have to reproduce the starting noise to better than 1 % to cancel it, which
   a large model learns over long training but a 3-minute CPU fit does not. At 0.3 the noise is a perturbation
   the UNet cancels or uses.
4. Text encoders first, alone: random encoders give prompts that differ in one word nearly the same embeddings,
   and a UNet needs hundreds of steps to find the difference. `text_steps` steps of predicting the class (linear
   heads, then discarded) from what the UNet reads - the pooled embedding and each encoder's penultimate layer
   at the end token - separate the classes in about a second (no images involved).
5. UNet + both text encoders, trained jointly through the exact computation of one sampling step: n ~ N(0, I),
   UNet input x_T / sqrt(sigma^2 + 1) (scheduler.scale_model_input), timestep 999, prompt embeddings from the
   pipeline's own `encode_prompt`, SDXL time ids (H, W, 0, 0, H, W), then x0 = x_T - sigma * eps and the latent
   x0 / scaling_factor is compared with VAE latents (posterior means) of training images of the prompted class.
   `match: ot` pairs the generated and the real latents of each group of `match_group` samples of one class by
   minimal total squared distance (minibatch optimal transport, Hungarian algorithm), so different starting
   noises learn to give different training digits (diversity); `match: none` regresses every noise onto random
   same-class targets, which converges to the class mean (one image per class, whatever the seed).
6. Prompts: every class name in every template of `templates`, so the text encoders learn names, not one string.

Every random choice is drawn from `seed` (weights, batches, noise), and the fit runs with torch's deterministic
algorithms: the same spec, data, library versions and thread count give the same weights (tested). It is fitted
for the one-step sampler only (more steps or guidance are not what it learned; the plan refuses them).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from ..datasets import get_adapter
from .build import build_tiny_pipeline

log = logging.getLogger("gendistill.generator.fit")

FIT_VERSION = 1  # bump when the recipe changes: it is part of the model directory's hash

FIT_DEFAULTS = {
    "seed": 0,
    "vae_steps": 200,
    "unet_steps": 300,
    "batch_size": 64,
    "vae_lr": 0.002,
    "lr": 0.001,
    "text_lr": 0.001,
    "text_steps": 100,
    "kl_weight": 0.0001,
    "noise_ratio": 0.3,
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
    import torch  # deferred: heavy, and the plan imports this module
    import torch.nn.functional as F

    s = full_spec(spec)
    problems = spec_problems(s, dataset_cfg)
    if problems:
        raise ValueError("\n".join(problems))
    if threads:
        torch.set_num_threads(int(threads))
    t_start = time.perf_counter()
    adapter = get_adapter(dataset_cfg)
    x_u8, y_np = adapter.load_split("train")
    size = adapter.image_size
    x = torch.from_numpy(np.ascontiguousarray(x_u8)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    y = torch.from_numpy(y_np).long()
    prompts, prompt_labels = _prompts(adapter, s["templates"])
    n_classes = len(adapter.classes())
    by_class = [torch.nonzero(y == c).flatten() for c in range(n_classes)]
    log.info(
        "data: %d training images of %d classes at %d px (%s train split); %d prompts, e.g. %r",
        len(y),
        n_classes,
        size,
        adapter.name,
        len(prompts),
        prompts[0],
    )
    t_data = time.perf_counter() - t_start

    pipe = build_tiny_pipeline(
        {
            "seed": s["seed"],
            "unet_channels": s["unet_channels"],
            "vae_channels": s["vae_channels"],
            "text_hidden": s["text_hidden"],
            "text_layers": s["text_layers"],
            "sample_size": size,
        }
    )
    vae, unet, sched = pipe.vae, pipe.unet, pipe.scheduler
    g = torch.Generator().manual_seed(s["seed"] + 100)
    bs = s["batch_size"]

    # --- 1. VAE as a KL autoencoder ----------------------------------------------------------------------
    t0 = time.perf_counter()
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
        recon_mse = recon / x.numel()
    latent_std = float(mu.std())
    t_vae = time.perf_counter() - t0
    log.info("vae: reconstruction MSE %.5f (images in [-1, 1]), latent std %.3f, %.1fs", recon_mse, latent_std, t_vae)

    # --- 2. latent scale from the one-step schedule -------------------------------------------------------
    sched.set_timesteps(1)
    timestep = sched.timesteps[0]
    sigma = float(sched.sigmas[0])
    scaling_factor = sigma / (s["noise_ratio"] * latent_std)
    vae.register_to_config(scaling_factor=scaling_factor)
    c_in = 1.0 / math.sqrt(sigma**2 + 1.0)
    log.info(
        "1-step trailing schedule: timestep %s, sigma %.4f; VAE scaling_factor %.4f",
        float(timestep),
        sigma,
        scaling_factor,
    )

    # --- 3. text encoders: make each class name's embeddings distinct from the start ----------------------
    # Random text encoders give nearly the same embeddings to prompts that differ in one word, and a UNet takes
    # hundreds of steps to find the difference. A few cheap steps (20 prompts, no images) of class prediction
    # from what the UNet reads (the pooled embedding, and each encoder's penultimate layer at the end token)
    # separate the classes first; the linear heads are then discarded.
    t0 = time.perf_counter()
    loss_t = _fit_text_encoders(pipe, prompts, prompt_labels, n_classes, s, g)
    t_text = time.perf_counter() - t0
    log.info("text encoders: class-prediction loss %.4f after %d steps (%.1fs)", loss_t, s["text_steps"], t_text)

    # --- 4. UNet + text encoders through one sampling step ------------------------------------------------
    t0 = time.perf_counter()
    for m in (unet, pipe.text_encoder, pipe.text_encoder_2):
        m.train()
    text_params = [*pipe.text_encoder.parameters(), *pipe.text_encoder_2.parameters()]
    opt = torch.optim.Adam(
        [{"params": list(unet.parameters()), "base": s["lr"]}, {"params": text_params, "base": s["text_lr"]}],
        lr=s["lr"],
    )
    time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32)
    prompt_labels_t = torch.tensor(prompt_labels)
    latent_shape = mu.shape[1:]
    k = s["match_group"] if s["match"] == "ot" else 1
    loss_u = float("nan")
    for step in range(s["unet_steps"]):
        for grp in opt.param_groups:
            grp["lr"] = _cosine(step, s["unet_steps"], grp["base"])
        pe, _, ppe, _ = pipe.encode_prompt(
            prompts, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        # a batch of groups: each group is k samples of one class, each sample with a random prompt of it
        classes = torch.randint(0, n_classes, (bs // k,), generator=g).repeat_interleave(k)
        idx = torch.stack(
            [by_class[c][torch.randint(0, len(by_class[c]), (1,), generator=g)][0] for c in classes.tolist()]
        )
        which = torch.stack(
            [
                torch.nonzero(prompt_labels_t == c).flatten()[torch.randint(0, len(s["templates"]), (1,), generator=g)][
                    0
                ]
                for c in classes.tolist()
            ]
        )
        noise = torch.randn((bs, *latent_shape), generator=g)
        x_t = noise * sigma
        eps = unet(
            x_t * c_in,
            timestep,
            encoder_hidden_states=pe[which],
            added_cond_kwargs={"text_embeds": ppe[which], "time_ids": time_ids.expand(bs, -1)},
        ).sample
        z = (x_t - sigma * eps) / scaling_factor
        target = mu[idx]
        if s["match"] == "ot":
            target = target[_ot_pairing(z.detach(), target, k)]
        loss = F.mse_loss(z, target) / latent_std**2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_u = float(loss.detach())
        if step % 50 == 0 or step == s["unet_steps"] - 1:
            log.info("unet step %d/%d loss %.4f (%.1fs)", step + 1, s["unet_steps"], loss_u, time.perf_counter() - t0)
    for m in (unet, pipe.text_encoder, pipe.text_encoder_2):
        m.eval()
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
        "dataset": {k2: dataset_cfg.get(k2) for k2 in ("name", "split_seed", "image_size")},
        "train_images": int(len(y)),
        "classes": n_classes,
        "prompts": prompts,
        "resolution": size,
        "timestep": float(timestep),
        "sigma": sigma,
        "scaling_factor": scaling_factor,
        "latent_std": latent_std,
        "vae_reconstruction_mse": recon_mse,
        "vae_final_loss": loss_v,
        "text_class_loss": loss_t,
        "unet_final_loss": loss_u,
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
