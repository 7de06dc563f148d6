"""Stable Diffusion 3 / 3.5 (StableDiffusion3Pipeline, their Turbo versions too): two CLIP text encoders with
projection and a T5 encoder, an MMDiT on 2x2 latent patches, a KL autoencoder with 16 latent channels at 8x."""

from __future__ import annotations

from .base import Family

FAMILY = Family(
    name="sd3",
    title="Stable Diffusion 3 / 3.5",
    pipelines=("StableDiffusion3Pipeline",),
    example="stabilityai/stable-diffusion-3.5-large-turbo",
    tiny_decoders="madebyollin/taesd3",
    latent_channels=16,
    tiny_patch_size=2,
)
FAMILIES = (FAMILY,)
