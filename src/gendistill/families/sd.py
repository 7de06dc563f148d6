"""Stable Diffusion 1.x / 2.x (StableDiffusionPipeline; sd-turbo): one CLIP text encoder, a UNet with
cross-attention, a KL autoencoder with 4 latent channels at 8x."""

from __future__ import annotations

from .base import Family

FAMILY = Family(
    name="sd",
    title="Stable Diffusion 1.x / 2.x (sd-turbo)",
    pipelines=("StableDiffusionPipeline",),
    example="stabilityai/sd-turbo",
    tiny_decoders="madebyollin/taesd",
    latent_channels=4,
)
FAMILIES = (FAMILY,)
