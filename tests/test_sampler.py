"""Tier 1: sampling, augmentation and atomic writes on tiny random-weight pipelines (CPU).

The sampler tests run once per pipeline family, each on a tiny random-weight pipeline of that family's real
component classes (gendistill.generator.build): one sampling path, one adapter per family.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gendistill.atomic import atomic_path
from gendistill.distilled.augment import augment_class, draw_params
from gendistill.families import BY_NAME, family_of
from gendistill.families.facts import tiny_facts
from gendistill.generator.build import build_tiny_pipeline
from gendistill.sampling.generate import Sampler, is_bad_image
from gendistill.seeds import image_seed

CLS = {"index": 3, "name": "cat", "id": "003_cat", "prompt": "a photo of a cat", "seed": 0, "n_generated": 5}
GEN = {"resolution": 32, "steps": 1, "guidance_scale": 0.0}


@pytest.fixture(scope="module", params=list(BY_NAME))
def pipe(request):
    p = build_tiny_pipeline({"seed": 0, "family": request.param})
    p.set_progress_bar_config(disable=True)
    return p


def cls_of(pipe) -> dict:
    """The test class; a class-conditional DiT is given one of its labels (the tiny one's are digit names)."""
    return {**CLS, "prompt": "three"} if type(pipe).__name__ == "DiTPipeline" else CLS


def test_the_plans_tiny_facts_are_those_of_the_built_pipeline(pipe):
    """The plan checks a tiny model from its spec and its family's facts (tiny_facts), without building it: they
    must be the facts of the pipeline the family's builder makes, read from its configs as for a real model."""
    family = family_of(pipe)
    planned, built = tiny_facts({"seed": 0, "family": family.name}), family.adapter_for(pipe).facts()
    keys = ("family", "pipeline", "latent_channels", "scale", "multiple", "native_resolution")
    assert {k: planned[k] for k in keys} == {k: built[k] for k in keys}


def test_images_independent_of_batch_size_and_other_images(pipe):
    cls = cls_of(pipe)
    outs = [Sampler(pipe, "cpu", torch.float32, bs).sample_class(cls, GEN, 16)[0] for bs in (1, 2, 5)]
    assert outs[0].shape == (5, 16, 16, 3) and outs[0].dtype == np.uint8
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    # image 2 alone (only its seed) equals image 2 of the class run
    alone, _ = Sampler(pipe, "cpu", torch.float32, 1).generate_seeds(cls["prompt"], [image_seed(0, 3, 2)], GEN, 16)
    assert np.array_equal(alone[0], outs[0][2])
    # different images differ (seeds differ per image)
    assert not np.array_equal(outs[0][0], outs[0][1])


def test_same_seed_same_image_different_seed_different(pipe):
    s = Sampler(pipe, "cpu", torch.float32, 4)
    a = s.sample_class(cls_of(pipe), GEN, 16)[0]
    b = s.sample_class(cls_of(pipe), GEN, 16)[0]
    c = s.sample_class({**cls_of(pipe), "seed": 1}, GEN, 16)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_guided_multi_step_sampling_runs(pipe):
    """guidance 3 with 2 steps: the family's classifier-free-guidance (or embedded-guidance) path and its
    multi-step scheduler give valid images, seeded like the rest."""
    s = Sampler(pipe, "cpu", torch.float32, 2)
    gen = {**GEN, "steps": 2, "guidance_scale": 3.0}
    imgs, recs, _ = s.sample_class({**cls_of(pipe), "n_generated": 3}, gen, 16)
    again, _ = Sampler(pipe, "cpu", torch.float32, 3).generate_seeds(
        cls_of(pipe)["prompt"], [r["seed"] for r in recs], gen, 16
    )
    assert imgs.shape == (3, 16, 16, 3) and all(r["attempt"] == 0 for r in recs)
    assert np.array_equal(imgs, again)


def nan_on_seeds(sampler: Sampler, bad_seeds) -> Sampler:
    """Images made from these seeds come back NaN (as from an overflowing fp16 VAE), whatever the family."""
    generate, bad = sampler.adapter.generate, set(bad_seeds)

    def patched(emb, seeds, gen):
        out = generate(emb, seeds, gen)
        for k, s in enumerate(seeds):
            if s in bad:
                out[k] = float("nan")
        return out

    sampler.adapter.generate = patched
    return sampler


def test_nan_images_are_regenerated_with_recorded_seed(pipe):
    bad = [image_seed(0, 3, 1), image_seed(0, 3, 3)]
    s = nan_on_seeds(Sampler(pipe, "cpu", torch.float32, 5), bad)
    imgs, recs, _ = s.sample_class(cls_of(pipe), GEN, 16)
    assert [r["attempt"] for r in recs] == [0, 1, 0, 1, 0]
    assert recs[1]["seed"] == image_seed(0, 3, 1, 1) and recs[1]["rejected"][0]["seed"] == bad[0]
    assert recs[1]["rejected"][0]["reason"] == "non-finite values"
    clean, _ = Sampler(pipe, "cpu", torch.float32, 1).generate_seeds(cls_of(pipe)["prompt"], [recs[1]["seed"]], GEN, 16)
    assert np.array_equal(imgs[1], clean[0])


def test_gives_up_after_max_retries(pipe):
    every = [image_seed(0, 3, 0, a) for a in range(5)]
    s = nan_on_seeds(Sampler(pipe, "cpu", torch.float32, 5), every)
    with pytest.raises(RuntimeError, match="attempts all gave bad images"):
        s.sample_class({**cls_of(pipe), "n_generated": 1}, GEN, 16, max_retries=2)


def test_bad_image_detection():
    assert is_bad_image(torch.full((3, 8, 8), float("inf"))) == "non-finite values"
    assert is_bad_image(torch.zeros(3, 8, 8)) == "blank (constant) image"
    assert is_bad_image(torch.rand(3, 8, 8)) is None


def test_augmentation_seeded_keeps_originals_and_records():
    params = {
        "n_aug": 3,
        "crop_scale": [0.5, 1.0],
        "rotation": 60,
        "hflip": 0.5,
        "vflip": 0.5,
        "brightness": 0.3,
        "contrast": 0.3,
        "gamma": [0.7, 1.5],
    }
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    recs = [
        {
            "class_index": 1,
            "class_name": "a",
            "class_id": "001_a",
            "prompt": "a",
            "image_index": i,
            "seed": i,
            "file": f"{i:04d}.png",
        }
        for i in range(2)
    ]
    out1, r1 = augment_class(imgs, recs, params, seed=0)
    out2, _ = augment_class(imgs, recs, params, seed=0)
    out3, _ = augment_class(imgs, recs, params, seed=1)
    assert len(out1) == 2 * (1 + 3)
    assert np.array_equal(out1[0], imgs[0]) and np.array_equal(out1[4], imgs[1])  # originals kept
    assert all(np.array_equal(a, b) for a, b in zip(out1, out2))
    assert not all(np.array_equal(a, b) for a, b in zip(out1, out3))
    assert r1[1]["augmentation"] == draw_params(np.random.default_rng(r1[1]["aug_seed"]), params, 16)
    assert [r["copy"] for r in r1] == [0, 1, 2, 3, 0, 1, 2, 3]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "half.png").write_bytes(b"\x89PNG")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done" and len(list(tmp_path.iterdir())) == 1


def test_vae_dtype_modes_decode_in_their_dtype():
    """generation.vae_dtype: bfloat16 decodes in bf16 (latents cast on the way in), close to the fp32 decode."""
    from gendistill.sampling.pipeline import configure_vae

    ref_pipe = build_tiny_pipeline({"seed": 0})
    ref_pipe.set_progress_bar_config(disable=True)
    ref = Sampler(ref_pipe, "cpu", torch.float32, 2).sample_class(CLS, GEN, 16)[0]
    same = build_tiny_pipeline({"seed": 0})
    same.set_progress_bar_config(disable=True)
    configure_vae(same, "float32")  # fp32 pipeline: the same decode as auto
    assert np.array_equal(Sampler(same, "cpu", torch.float32, 2).sample_class(CLS, GEN, 16)[0], ref)
    bf = build_tiny_pipeline({"seed": 0})
    bf.set_progress_bar_config(disable=True)
    configure_vae(bf, "bfloat16")
    assert bf.vae.dtype == torch.bfloat16 and bf.unet.dtype == torch.float32
    out = Sampler(bf, "cpu", torch.float32, 2).sample_class(CLS, GEN, 16)[0]
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert out.shape == ref.shape and diff.mean() < 3, diff.mean()  # bf16 rounding, not a different image
    with pytest.raises(ValueError, match="vae_dtype"):
        configure_vae(bf, "float8")


def test_one_device_resolver_for_sampling_and_evaluation(monkeypatch):
    """`auto` is the GPU when one is visible, else the CPU; `cuda` without a visible GPU is refused up front,
    naming the setting the job read (sampling and the evaluation stages alike)."""
    from gendistill.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu", "evaluation.device") == "cpu"
    for setting in ("generation.device", "evaluation.device"):
        with pytest.raises(RuntimeError, match=f"{setting}: cuda requested .* set {setting}: cpu"):
            resolve_device("cuda", setting)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", "evaluation.device") == "cuda" and resolve_device("cuda") == "cuda"
