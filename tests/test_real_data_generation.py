"""Generation from real data: D4M's prototypes (generation.init: prototypes, strength) and CoDA's guidance
(generation.real_guidance): plan-time errors, that each option changes the images and follows the real data, on
every family with an img2img pipeline, and that a class's prototypes are cached per class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG, deep_update, job_counts, run_snakemake, with_tiny_model

from gendistill.config import ConfigError
from gendistill.plan import build_plan
from gendistill.prototypes import GUIDED, IMG2IMG, denoiser_latents, kmeans

PROTOTYPES = {"generation": {"init": "prototypes", "strength": 0.5, "steps": 4}}
GUIDANCE = {"generation": {"steps": 4, "real_guidance": {"method": "coda", "weight": 0.1}}}


def problems_of(*patches) -> str:
    cfg = TINY_CONFIG
    for p in patches:
        cfg = deep_update(cfg, p)
    with pytest.raises(ConfigError) as e:
        build_plan(cfg)
    return str(e.value)


# --- plan-time errors, before any job -----------------------------------------------------------------------


def test_prototypes_and_guidance_need_real_training_images():
    no_data = {"dataset": {"name": "classlist", "class_names": ["cat", "dog"], "classes": None}}
    msg = problems_of(no_data, PROTOTYPES, {"evaluation": {"activate": False}})
    assert "has none" in msg and "Fix: a dataset with a train split" in msg
    msg = problems_of(no_data, GUIDANCE, {"evaluation": {"activate": False}})
    assert "real_guidance" in msg and "has none" in msg


@pytest.mark.parametrize("strength", [0, -0.2, 1.5])
def test_strength_outside_0_1_is_refused(strength):
    msg = problems_of(PROTOTYPES, {"generation": {"strength": strength}})
    assert "generation.strength" in msg and "(0, 1]" in msg


def test_strength_times_steps_below_one_names_the_steps_needed():
    msg = problems_of(PROTOTYPES, {"generation": {"strength": 0.3, "steps": 3}})
    assert "int(steps x strength)" in msg and "generation.steps >= 4" in msg


def test_guidance_with_one_step_is_refused():
    msg = problems_of(GUIDANCE, {"generation": {"steps": 1}})
    assert "generation.steps is 1" in msg and "Fix: generation.steps >= 2" in msg


@pytest.mark.parametrize("family", ["pixart", "sana", "sana_sprint", "dit"])
def test_a_family_without_img2img_is_refused_by_name(family):
    msg = problems_of({"model": {"tiny": {"family": family}}}, PROTOTYPES)
    assert f"diffusers has none for the {family} family" in msg and "Fix: generation.init: noise" in msg


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_guidance_on_a_flow_family_is_refused_by_name(family):
    msg = problems_of({"model": {"tiny": {"family": family}}}, GUIDANCE)
    assert f"the {family} family" in msg and "real_guidance: null" in msg


def test_more_prototypes_than_real_images_is_refused():
    msg = problems_of(PROTOTYPES, {"prompts": {"overrides": {"one": {"n_generated": 500}}}})
    assert "class 'one' has" in msg and "real training images, fewer than the 500 prototypes" in msg


def test_sample_jobs_carry_what_decides_the_prototypes():
    plain = build_plan(TINY_CONFIG)
    assert "init" not in plain.gen_spec and "prototypes" not in plain.sample_class("", "001_one")  # caches kept
    p = build_plan(deep_update(TINY_CONFIG, PROTOTYPES))
    assert p.gen_spec["init"] == "prototypes" and p.gen_spec["strength"] == 0.5
    cls = p.sample_class("", "001_one")
    assert cls["prototypes"].endswith("results/t/prototypes/001_one.pt")
    spec = cls["prototypes_spec"]
    assert (spec["label"], spec["n"], spec["seed"], spec["family"]) == (1, 2, 0, "sdxl") and spec["fingerprint"]
    g = build_plan(deep_update(TINY_CONFIG, GUIDANCE)).gen_spec
    assert g["real_guidance"] == {"method": "coda", "weight": 0.1, "fraction": 0.9}  # defaults filled


def test_kmeans_is_seeded_and_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20, 3, generator=g) * 0.1 + c for c in (0.0, 5.0, 10.0)])
    centres, labels = kmeans(x, 3, seed=7)
    assert sorted(round(float(c.mean())) for c in centres) == [0, 5, 10]
    assert torch.equal(kmeans(x, 3, seed=7)[0], centres)
    assert sorted(torch.bincount(labels).tolist()) == [20, 20, 20]


# --- the sampler: each option changes the images and follows the real data ----------------------------------


def _sampler(family: str):
    from gendistill.generator.build import build_tiny_pipeline
    from gendistill.sampling.generate import Sampler

    pipe = build_tiny_pipeline({"family": family, "seed": 0})
    pipe.set_progress_bar_config(disable=True)
    return Sampler(pipe, "cpu", torch.float32, batch_size=4, family=family)


def _targets(sampler, family: str, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """n latents of distinct real-looking images (smooth blobs) as the family's denoiser sees them, and the
    images they decode to through the same VAE (pixels in [0, 1])."""
    pipe = sampler.pipe
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    imgs = torch.stack([((xx - 0.4 * k) ** 2 + yy**2 < 0.3).float().expand(3, -1, -1) * 2 - 1 for k in range(n)])
    sched = dict(pipe.scheduler.config)
    with torch.no_grad():
        z = denoiser_latents(pipe.vae, imgs, family, sched)
    return z, imgs.add(1).div(2)


def _images(sampler, gen: dict, start=None, guide=None, seeds=(11, 12)) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, the latents the pipeline decoded them from) of one batch, seeded per image."""
    g = {"resolution": 32, "guidance_scale": 0.0, **gen}
    if start is not None:
        g.update(start=start)
    if guide is not None:
        g.update(guide=guide)
    vae, decoded = sampler.pipe.vae, []
    decode = vae.decode

    def recording(z, *args, **kwargs):
        decoded.append(z.detach().clone())
        return decode(z, *args, **kwargs)

    vae.decode = recording
    try:
        with torch.no_grad():
            imgs = sampler.adapter.generate(sampler._encode("a handwritten digit one", 0.0), list(seeds), g).float()
    finally:
        del vae.decode
    return imgs, decoded[-1].flatten(1)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(IMG2IMG))
def test_prototypes_change_the_images_and_stay_near_their_prototype(family):
    """Every family with an img2img pipeline: images from prototypes differ from noise-started ones, and the
    latents they decode are closer to their own prototype than noise-started ones, more so at a low strength."""
    sampler = _sampler(family)
    z, _ = _targets(sampler, family)
    noise, z_noise = _images(sampler, {"steps": 4})
    low, z_low = _images(sampler, {"init": "prototypes", "steps": 4, "strength": 0.25}, start=z)
    _, z_high = _images(sampler, {"init": "prototypes", "steps": 4, "strength": 1.0}, start=z)
    assert not torch.allclose(low, noise, atol=1e-3)

    def dist(latents):  # to each image's own prototype, as the decoder sees it (scale-free: cosine)
        return 1 - torch.nn.functional.cosine_similarity(latents, z.flatten(1).to(latents), dim=1)

    assert (dist(z_low) < dist(z_noise)).all(), (family, dist(z_low), dist(z_noise))
    assert dist(z_low).mean() < dist(z_high).mean(), (family, dist(z_low), dist(z_high))


@pytest.mark.slow
@pytest.mark.parametrize("family", list(GUIDED))
def test_guidance_changes_the_images_toward_the_targets(family):
    sampler = _sampler(family)
    z, _ = _targets(sampler, family)
    rg = {"method": "coda", "fraction": 0.9}
    plain, z_plain = _images(sampler, {"steps": 4, "real_guidance": {**rg, "weight": 0.0}}, guide=z)
    guided, z_guided = _images(sampler, {"steps": 4, "real_guidance": {**rg, "weight": 0.05}}, guide=z)
    assert torch.equal(plain, _images(sampler, {"steps": 4})[0])  # weight 0 is the unguided sampler
    assert not torch.allclose(guided, plain, atol=1e-3)
    target = z.flatten(1) / sampler.pipe.vae.config.scaling_factor  # what the decoder is given
    d_plain, d_guided = (z_plain - target).norm(dim=1), (z_guided - target).norm(dim=1)
    assert (d_guided < d_plain).all(), (d_guided, d_plain)


# --- per-class caching of the prototypes ----------------------------------------------------------------------


@pytest.mark.long  # two workflow runs and a dry run on the imagefolder fixture: ~90 s on 2 busy cores
def test_one_class_real_images_or_count_regenerate_that_class_only(tiny_run, tmp_path):
    from dataset_fixtures import make_imagefolder

    from gendistill.imageio import load_png

    data = make_imagefolder(tmp_path / "data", train_per_class=3)
    cfg = deep_update(
        TINY_CONFIG,
        {
            "dataset": {"name": "imagefolder", "root": str(data.root), "classes": None, "image_size": 32},
            **PROTOTYPES,
            "evaluation": {"activate": False},
        },
    )
    wd = with_tiny_model(tmp_path / "run", tiny_run)
    run_snakemake(wd, cfg, targets=("package",))
    assert job_counts(run_snakemake(wd, cfg, "--dag", targets=("package",)).stdout) == {}
    # a class's images follow its prototypes: the prototypes file holds its k-means centres
    first = data.names[0]
    from gendistill.naming import class_ids

    cid = class_ids(data.names)[0]
    saved = torch.load(wd / "results" / "t" / "prototypes" / f"{cid}.pt", weights_only=True)
    assert saved["centres"].shape[0] == 2 and int(saved["cluster_sizes"].sum()) == 3
    png = sorted((data.root / "train" / first).glob("*.png"))[0]
    img = load_png(png)
    np.asarray(img)  # readable
    from PIL import Image

    Image.fromarray(255 - np.asarray(img)).save(png)  # one class's real images change
    counts = job_counts(run_snakemake(wd, cfg, "--dag", targets=("package",)).stdout)
    assert counts.get("prototypes") == 1 and counts.get("sample") == 1, counts
    recount = deep_update(cfg, {"prompts": {"overrides": {data.names[1]: {"n_generated": 3}}}})
    run_snakemake(wd, cfg, targets=("package",))
    counts = job_counts(run_snakemake(wd, recount, "--dag", targets=("package",)).stdout)
    assert counts.get("prototypes") == 1 and counts.get("sample") == 1, counts
