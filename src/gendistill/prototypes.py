"""A class's real training images in the generator's latent space, clustered: what generation from real data
starts from (`generation.init: prototypes`, D4M) or is guided toward (`generation.real_guidance`, CoDA).

One file per class (`prototypes/<class>.pt`, rule `prototypes`): the class's training images, resized to the
sampling resolution and encoded with the run's own VAE into the latents its denoiser works in (the posterior
mean, shifted and scaled as the pipeline scales them), clustered by k-means (seeded from config) into the number
of images the class keeps. It holds
  * `centres`: the k-means centres (D4M's prototypes: each is the start latent of one img2img sample), and
  * `representatives`: for each centre, the real latent nearest to it (CoDA's representative samples, the
    targets of its guidance; CoDA also replaces its cluster centres by their nearest real points).
Image i of the class (candidate i with selection) uses row i mod k.

Importing this module imports neither torch nor diffusers (the plan reads `PROTOTYPE_FAMILIES`).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("gendistill.prototypes")

# Families whose diffusers pipeline has an img2img counterpart that starts from given latents (diffusers 0.42.1):
# family -> the img2img pipeline class. PixArt, SANA and DiT have none; SANA-Sprint's (SanaSprintImg2ImgPipeline)
# resizes its `image` as pixels before encoding it, so it cannot start from a latent prototype.
IMG2IMG = {
    "sd": "StableDiffusionImg2ImgPipeline",
    "sdxl": "StableDiffusionXLImg2ImgPipeline",
    "sd3": "StableDiffusion3Img2ImgPipeline",
    "flux": "FluxImg2ImgPipeline",
}
# Families whose denoiser CoDA's guidance can steer: UNets on a discrete-time (alphas_cumprod) schedule with
# epsilon or v prediction, the setting of CoDA's algorithm (SDXL).
GUIDED = ("sd", "sdxl")


def kmeans(x, k: int, seed: int, iters: int = 100):
    """Lloyd's k-means of the rows of x [n, d] into k clusters, k-means++ initialisation drawn from `seed`:
    (centres [k, d], labels [n]). Deterministic for the same input and seed."""
    import torch  # deferred: heavy

    n = len(x)
    if k > n:
        raise ValueError(f"k-means into {k} clusters of {n} points")
    g = torch.Generator().manual_seed(int(seed))
    x = x.double()
    centres = x[torch.randint(0, n, (1,), generator=g)]
    for _ in range(1, k):  # k-means++: each next centre drawn with probability ~ squared distance to the nearest
        d2 = torch.cdist(x, centres).min(1).values.pow(2)
        centres = torch.cat([centres, x[torch.multinomial(d2 / d2.sum(), 1, generator=g)]])
    labels = torch.cdist(x, centres).argmin(1)
    for _ in range(iters):
        for j in range(k):
            members = x[labels == j]
            if len(members):
                centres[j] = members.mean(0)
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
    return centres.float(), labels


def denoiser_latents(vae, pixels, family: str, scheduler_config: dict | None = None):
    """Latents as the family's denoiser sees them (what its img2img pipeline accepts as `image`): the VAE's
    posterior mean of pixels in [-1, 1], shifted and scaled as the pipeline does after encoding."""
    cfg = vae.config
    mean = vae.encode(pixels).latent_dist.mean
    shift = getattr(cfg, "shift_factor", None) or 0.0
    return (mean - shift) * cfg.scaling_factor


def load_vae(source: str, revision: str | None, device: str):
    """The pipeline's VAE alone (its class from model_index.json), float32 on `device`, and the scheduler's config."""
    import diffusers  # deferred: heavy

    index = diffusers.DiffusionPipeline.load_config(source, revision=revision)
    vae_cls = getattr(diffusers, index["vae"][1])
    vae = vae_cls.from_pretrained(source, subfolder="vae", revision=revision).to(device).eval()
    try:
        sched = diffusers.DiffusionPipeline.load_config(source, subfolder="scheduler", revision=revision)
    except (OSError, ValueError):
        sched = {}
    return vae, dict(sched)


def class_prototypes(
    adapter,
    label: int,
    n: int,
    resolution: int,
    seed: int,
    source: str,
    revision: str | None,
    family: str,
    device: str = "cpu",
    batch: int = 64,
) -> dict:
    """The class's prototypes file content (module docstring) and what made it."""
    import numpy as np  # deferred: heavy (the plan imports this module)
    import torch

    t0 = time.perf_counter()
    images = adapter.class_train_images(label, resolution)
    if len(images) < n:
        raise ValueError(f"class {label} has {len(images)} training images, fewer than its {n} prototypes")
    vae, sched = load_vae(source, revision, device)
    lat = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch])).permute(0, 3, 1, 2).float()
            lat.append(denoiser_latents(vae, x.div(127.5).sub(1).to(device), family, sched).float().cpu())
    z = torch.cat(lat)
    t_enc = time.perf_counter() - t0
    centres, labels = kmeans(z.flatten(1), n, seed)
    nearest = torch.cdist(centres.double(), z.flatten(1).double()).argmin(1)
    shape = tuple(z.shape[1:])
    log.info(
        "class %d: %d training images encoded to latents %s in %.1fs; k-means into %d (cluster sizes %s)",
        label,
        len(z),
        shape,
        t_enc,
        n,
        torch.bincount(labels, minlength=n).tolist(),
    )
    return {
        "centres": centres.reshape(n, *shape).contiguous(),
        "representatives": z[nearest].contiguous(),
        "representative_index": nearest,
        "cluster_sizes": torch.bincount(labels, minlength=n),
        "train_images": len(z),
    }


def load_prototypes(path: str) -> dict:
    """A prototypes file as `class_prototypes` wrote it (tensors only: loaded without unpickling code)."""
    import torch  # deferred: heavy

    return torch.load(path, map_location="cpu", weights_only=True)


def write_class_prototypes(spec: dict, dataset_cfg: dict, out: str, device: str = "cpu") -> dict:
    """The prototypes job: class `spec["label"]`'s file (plan.Plan.prototype_spec), written atomically; returns a
    summary for the log."""
    import torch  # deferred: heavy

    from .atomic import atomic_path
    from .datasets import get_adapter

    load = spec["load"]
    result = class_prototypes(
        get_adapter(dataset_cfg),
        spec["label"],
        spec["n"],
        spec["resolution"],
        spec["seed"],
        load["source"],
        load.get("revision"),
        spec["family"],
        device,
    )
    with atomic_path(out) as tmp:
        torch.save({**result, "spec_fingerprint": spec["fingerprint"]}, tmp)
    return {"train_images": result["train_images"], "cluster_sizes": result["cluster_sizes"].tolist()}
