"""SDXL (StableDiffusionXLPipeline; SDXL-Turbo, the paper's generator): two CLIP text encoders with pooled
embeddings, a "text_time" UNet, a KL autoencoder with 4 latent channels at 8x."""

from __future__ import annotations

from .base import Family

FAMILY = Family(
    name="sdxl",
    title="SDXL (SDXL-Turbo)",
    pipelines=("StableDiffusionXLPipeline",),
    example="stabilityai/sdxl-turbo",
    tiny_decoders="madebyollin/taesdxl",
    latent_channels=4,
)
FAMILIES = (FAMILY,)
