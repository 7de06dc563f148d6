"""Build diffusion pipelines with random weights, offline.

Two uses:
* `build_tiny_pipeline`: a few-MB pipeline of the same component classes as a real checkpoint of one family
  (`spec["family"]`), built by that family's module (`gendistill.families.<family>.build_tiny`) for the demo and
  the tests, tokenizers included. Seeded, so the same spec gives the same weights byte for byte.
  `save_tiny_pipeline` also writes a tiny random `AutoencoderTiny` matching the pipeline's latents into
  `tiny_decoder/` (for `generation.decoder: tiny`).
* `build_full_random_pipeline`: the full-size SDXL-Turbo architecture from the real component configs with
  random weights, for speed and memory measurements.
Random weights make noise images: fine for plumbing and timing, useless as data.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_path
from ..families import family_named
from ..families.tiny import load_tokenizer, tiny_spec
from ..families.tokenizers import write_tokenizer_files


def build_tiny_pipeline(spec: dict | None = None):
    """Return a tiny random-weight pipeline of `spec["family"]` (see families.tiny.TINY_DEFAULTS; default SDXL),
    built by its family's module."""
    s = tiny_spec(spec)
    pipe = family_named(s["family"]).build_tiny(s)
    for module in pipe.components.values():  # inference mode, as from_pretrained leaves them (T5 has dropout)
        if hasattr(module, "eval"):
            module.eval()
    return pipe


def build_tiny_decoder(spec: dict | None = None):
    """A tiny random `AutoencoderTiny` (TAESD's architecture) whose latents match the tiny pipeline of `spec`:
    same latent channels, same upscaling factor. Seeded."""
    import torch  # deferred (here and below): heavy, and the plan imports this module
    from diffusers import AutoencoderTiny

    s = tiny_spec(spec)
    family = family_named(s["family"])
    n = len(s["vae_channels"])
    torch.manual_seed(s["seed"] + 10)
    return AutoencoderTiny(
        encoder_block_out_channels=(8,) * n,
        decoder_block_out_channels=(8,) * n,
        num_encoder_blocks=(1,) * n,
        num_decoder_blocks=(1,) * n,
        latent_channels=family.latent_channels,
    )


def save_tiny_pipeline(out_dir: Path, spec: dict | None = None) -> Path:
    """Build the tiny pipeline and save it as a diffusers directory (with `tiny_decoder/`), written atomically
    (gendistill.atomic: an interrupted build leaves nothing that looks complete)."""
    out_dir = Path(out_dir)
    pipe = build_tiny_pipeline(spec)
    with atomic_path(out_dir) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        build_tiny_decoder(spec).save_pretrained(tmp / "tiny_decoder", safe_serialization=True)
        (tmp / "RANDOM_WEIGHTS.txt").write_text(
            "This pipeline has RANDOM weights (built offline by gendistill.generator.build for the demo/tests).\n"
            "Its images are noise, not pictures of the prompted classes. tiny_decoder/ is a random AutoencoderTiny\n"
            "for generation.decoder: tiny.\n"
            f"spec: {json.dumps(tiny_spec(spec), sort_keys=True)}\n"
        )
    return out_dir


def build_full_random_pipeline(config_dir: Path, torch_dtype=None, seed: int = 0):
    """Full-size SDXL-Turbo architecture with random weights from the component configs in `config_dir`.

    The tokenizers are the project's character-level CLIP tokenizer (77 tokens, same sequence length as the
    real one), so the compute per image equals the real checkpoint's.
    """
    import torch  # deferred: heavy, and the plan imports this module
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config_dir = Path(config_dir)
    torch.manual_seed(seed)
    tokenizer, _ = load_tokenizer(write_tokenizer_files, "CLIPTokenizer")
    tokenizer_2, _ = load_tokenizer(write_tokenizer_files, "CLIPTokenizer")
    dtype = torch_dtype or torch.float32
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet")).to(dtype)
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae")).to(dtype)
    te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder")).to(dtype)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(config_dir / "text_encoder_2")).to(dtype)
    scheduler = EulerAncestralDiscreteScheduler.from_config(
        EulerAncestralDiscreteScheduler.load_config(config_dir / "scheduler")
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=te1,
        text_encoder_2=te2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )
