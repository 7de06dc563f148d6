"""Build SDXL-Turbo-architecture pipelines with random weights, offline.

Two uses:
* `build_tiny_pipeline`: a few-MB pipeline of the same component classes as SDXL-Turbo (two CLIP text
  encoders, an SDXL "text_time" UNet, a KL VAE, Euler-ancestral with trailing timesteps) for the demo and
  the tests. Seeded, so the same seed gives the same weights byte for byte.
* `build_full_random_pipeline`: the full-size architecture from the real component configs (e.g.
  ../shared/sdxl-turbo-config) with random weights, for speed and memory measurements.
Random weights make noise images: fine for plumbing and timing, useless as data.
"""

from __future__ import annotations

import json
from pathlib import Path

from .tokenizer_files import write_tokenizer_files

TINY_DEFAULTS = {
    "seed": 0,
    "unet_channels": [16, 32],
    "text_hidden": 16,
    "text_layers": 2,
    "vae_channels": [8, 16],
    "sample_size": 32,  # pixels; the latent is sample_size / 2 with two VAE blocks
}


def _text_encoder_configs(hidden: int, layers: int, vocab_size: int):
    from transformers import CLIPTextConfig

    common = dict(bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
                  vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2,
                  num_attention_heads=2, num_hidden_layers=layers, max_position_embeddings=77,
                  hidden_act="gelu", layer_norm_eps=1e-5)
    return CLIPTextConfig(**common), CLIPTextConfig(**common, projection_dim=hidden)


def build_tiny_pipeline(spec: dict | None = None):
    """Return a tiny random-weight `StableDiffusionXLPipeline` built from `spec` (see TINY_DEFAULTS)."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    s = {**TINY_DEFAULTS, **(spec or {})}
    with tempfile.TemporaryDirectory() as tmp:
        vocab_size = write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
        tokenizer_2 = CLIPTokenizer.from_pretrained(tmp)
    cfg1, cfg2 = _text_encoder_configs(s["text_hidden"], s["text_layers"], vocab_size)
    uc, vc = list(s["unet_channels"]), list(s["vae_channels"])
    time_dim = 8
    torch.manual_seed(s["seed"])
    unet = UNet2DConditionModel(
        sample_size=s["sample_size"] // 2 ** (len(vc) - 1), in_channels=4, out_channels=4,
        block_out_channels=uc, layers_per_block=1, norm_num_groups=8,
        down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (len(uc) - 1),
        up_block_types=["CrossAttnUpBlock2D"] * (len(uc) - 1) + ["UpBlock2D"],
        attention_head_dim=[2] * len(uc), use_linear_projection=True,
        cross_attention_dim=cfg1.hidden_size + cfg2.hidden_size,
        addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=time_dim * 6 + cfg2.projection_dim,
        transformer_layers_per_block=1,
    )
    torch.manual_seed(s["seed"] + 1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=vc,
                        down_block_types=["DownEncoderBlock2D"] * len(vc),
                        up_block_types=["UpDecoderBlock2D"] * len(vc), layers_per_block=1,
                        norm_num_groups=8, sample_size=s["sample_size"], scaling_factor=0.13025)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModel(cfg1)
    torch.manual_seed(s["seed"] + 3)
    text_encoder_2 = CLIPTextModelWithProjection(cfg2)
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                num_train_timesteps=1000, steps_offset=1,
                                                timestep_spacing="trailing", prediction_type="epsilon")
    return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)


def save_tiny_pipeline(out_dir: Path, spec: dict | None = None) -> Path:
    """Build the tiny pipeline and save it as a diffusers directory, written atomically (temp dir + rename)."""
    import os
    import shutil

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe = build_tiny_pipeline(spec)
    pipe.save_pretrained(tmp, safe_serialization=True)
    (tmp / "RANDOM_WEIGHTS.txt").write_text(
        "This pipeline has RANDOM weights (built offline by gendistill.model_build for the demo/tests).\n"
        "Its images are noise, not pictures of the prompted classes.\n"
        f"spec: {json.dumps({**TINY_DEFAULTS, **(spec or {})}, sort_keys=True)}\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def build_full_random_pipeline(config_dir: Path, torch_dtype=None, seed: int = 0):
    """Full-size SDXL-Turbo architecture with random weights from the component configs in `config_dir`.

    The tokenizers are the project's character-level CLIP tokenizer (77 tokens, same sequence length as the
    real one), so the compute per image equals the real checkpoint's.
    """
    import tempfile

    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    config_dir = Path(config_dir)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
        tokenizer_2 = CLIPTokenizer.from_pretrained(tmp)
    dtype = torch_dtype or torch.float32
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet")).to(dtype)
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae")).to(dtype)
    te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(config_dir / "text_encoder")).to(dtype)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(config_dir / "text_encoder_2")).to(dtype)
    scheduler = EulerAncestralDiscreteScheduler.from_config(
        EulerAncestralDiscreteScheduler.load_config(config_dir / "scheduler"))
    return StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)
